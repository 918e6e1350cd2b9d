"""What may not leave this machine: the check `meshctl.artifacts.s3.Bucket` runs on every object before it
puts it (bundles, docs, run records and logs, state backups).

Two checks, line by line; a finding names the line and the kind of secret, never the value:
- the secret values this process holds, whatever their source: every secret setting as
  resolved (environment, `.env`, or Secrets Manager with MESHCTL_SECRETS=aws), the key file at
  SNOWFLAKE_PRIVATE_KEY_PATH, and the key as handed to SQLMesh (base64 DER). A multi-line value
  (a PEM) is looked for line by line, so a copy laid out otherwise (joined into one line as in an
  env file, indented in YAML, quoted) is still found;
- detect-secrets' (Yelp) detectors for credentials recognisable by their shape, whichever file
  holds them: private keys, cloud and SaaS tokens, `user:password@` URLs, JWTs.

Of detect-secrets, only the plugins and filters are used, not its scan entry points: those read
and write one process-wide settings object (two uploads in threads would swap it under each
other) and scan files only, while objects here are also bytes. Left out are the detectors that
guess (keyword `password = ...` and high-entropy strings: the runtime's own source names its
password settings, and checksums are entropy), and public IP addresses, which are no secret.
A line that holds something shaped like a secret and is none can say so the detect-secrets way,
with a `pragma: allowlist secret` comment; a known secret value is refused regardless.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.filters.allowlist import is_line_allowlisted
from detect_secrets.filters.heuristic import is_templated_secret
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.util.code_snippet import CodeSnippet
from pydantic import SecretStr

# Values shorter than this are not looked for: they would match ordinary text. Lines of a
# multi-line value (a PEM body) need more, since a short last line ("Ab==") is common text.
MIN_SECRET_LENGTH = 6
MIN_SECRET_LINE_LENGTH = 16
_GUESSING_DETECTORS = {
    "KeywordDetector",
    "Base64HighEntropyString",
    "HexHighEntropyString",
    "IPPublicDetector",
}


class EncryptedPrivateKeyDetector(RegexBasedDetector):
    """PKCS#8 encrypted keys, which detect-secrets 1.5's PrivateKeyDetector does not list: the
    docs/deployment.md's `openssl pkcs8 -topk8 -v2 aes-256-cbc` makes exactly this kind."""

    secret_type = "Private Key"
    denylist = (re.compile(r"BEGIN ENCRYPTED PRIVATE KEY"),)  # pragma: allowlist secret


DETECTORS = tuple(
    cls()
    for _, cls in sorted(get_mapping_from_secret_type_to_class().items())
    if cls.__name__ not in _GUESSING_DETECTORS
) + (EncryptedPrivateKeyDetector(),)


@dataclass(frozen=True)
class Finding:
    line: int
    kind: str  # a detector's name ("Private Key"), or "the value of STATE_DB_PASSWORD"
    known: bool  # a secret value this process holds (never a false positive)
    member: str | None = None  # the file inside an archive

    def __str__(self) -> str:
        where = f"{self.member} line {self.line}" if self.member else f"line {self.line}"
        return f"{where}: {self.kind}"


# --- the values this process holds -----------------------------------------------------------


def known_secrets(settings) -> list[tuple[str, bytes]]:
    """(setting name, value) for every secret value `settings` holds: what to look for."""
    from meshctl.secrets import SecretError, connection_env
    from meshctl.settings import PARTS, env_names

    values: list[tuple[str, str]] = []
    for part_name in PARTS:
        part = getattr(settings, part_name)
        for name, env_name in env_names(type(part)).items():
            value = getattr(part, name)
            if isinstance(value, SecretStr):
                values.append((env_name, value.get_secret_value()))
    path = settings.snowflake.private_key_path
    if path:
        try:
            values.append(("the key file at SNOWFLAKE_PRIVATE_KEY_PATH", Path(path).read_text(errors="replace")))
        except OSError:
            pass  # not on this machine: nothing of it can be uploaded from here either
    try:  # the forms SQLMesh is handed, e.g. the key decrypted to base64 DER
        env = connection_env(settings)
    except SecretError:
        env = {}
    values += [(k, v) for k, v in env.items() if k.endswith(("PASSWORD", "PRIVATE_KEY", "PASSPHRASE"))]

    found: dict[bytes, str] = {}
    for name, value in values:
        for needle in _needles(value):
            found.setdefault(needle.encode(), name)
    return [(name, needle) for needle, name in found.items()]


def _needles(value: str) -> list[str]:
    lines = [line.strip() for line in value.splitlines()]
    if len(lines) <= 1:
        return [value] if len(value) >= MIN_SECRET_LENGTH else []
    # A PEM's "-----BEGIN/END ...-----" lines are the same in every key: not this key's secret.
    return [l for l in lines if len(l) >= MIN_SECRET_LINE_LENGTH and not l.startswith("-----")]


def redact(data: bytes, known: list[tuple[str, bytes]]) -> bytes:
    """`data` with every known secret value replaced by ***NAME***."""
    for name, value in known:
        data = data.replace(value, f"***{name}***".encode())
    return data


# --- scanning --------------------------------------------------------------------------------


def scan_lines(lines: Iterable[bytes], known: list[tuple[str, bytes]]) -> Finding | None:
    """The first line that holds a known secret value or a detected credential."""
    previous = ""
    for number, raw in enumerate(lines, 1):
        for name, value in known:
            if value in raw:
                return Finding(number, f"the value of {name}", known=True)
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        for detector in DETECTORS:
            if any(not is_templated_secret(s) for s in detector.analyze_string(line)):
                snippet = CodeSnippet([previous, line], start_line=number - 1, target_index=1)
                if not is_line_allowlisted("", line, snippet):
                    return Finding(number, detector.secret_type, known=False)
                break
        previous = line
    return None


def scan_stream(fh: IO[bytes], known: list[tuple[str, bytes]]) -> Finding | None:
    """Scan a seekable binary stream: each file of a tar archive (compressed or not) on its own,
    a gzip stream decompressed, anything else as it is."""
    try:
        with tarfile.open(fileobj=fh, mode="r:*") as tar:
            for member in tar:
                if member.isfile():
                    finding = scan_lines(tar.extractfile(member), known)
                    if finding:
                        return Finding(finding.line, finding.kind, finding.known, member.name)
            return None
    except tarfile.TarError:
        fh.seek(0)
    if fh.read(2) == b"\x1f\x8b":
        fh.seek(0)
        with gzip.GzipFile(fileobj=fh) as unzipped:
            return scan_lines(unzipped, known)
    fh.seek(0)
    return scan_lines(fh, known)


def scan_file(path: Path, known: list[tuple[str, bytes]]) -> Finding | None:
    with Path(path).open("rb") as fh:
        return scan_stream(fh, known)


def scan_bytes(data: bytes, known: list[tuple[str, bytes]]) -> Finding | None:
    return scan_stream(io.BytesIO(data), known)
