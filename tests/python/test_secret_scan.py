"""The upload scan (meshctl/artifacts/secret_scan.py) on its own: credentials found by their shape in files
named for nothing, the secret values this process holds in any layout, the allowlist comment,
archives member by member; and the real project's bundle passes, cheaply."""

from __future__ import annotations

import base64
import io
import secrets as random
import string
import tarfile
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from meshctl.artifacts import bundles as artifacts
from meshctl.artifacts import secret_scan
from meshctl.artifacts.secret_scan import known_secrets, scan_bytes, scan_file
from meshctl.settings import PROJECT_DIR, Settings

PASSPHRASE = "pass-phrase-7f3e1a"


def _rsa():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key, fmt=serialization.PrivateFormat.PKCS8, encryption=None) -> str:
    """A private key made now, never committed."""
    return key.private_bytes(
        serialization.Encoding.PEM, fmt, encryption or serialization.NoEncryption()
    ).decode()


RSA = _rsa()
PEM = _pem(RSA)
ENCRYPTED_PEM = _pem(RSA, encryption=serialization.BestAvailableEncryption(PASSPHRASE.encode()))


def _upper(n: int) -> str:
    return "".join(random.choice(string.ascii_uppercase + string.digits) for _ in range(n))


def _alnum(n: int) -> str:
    return "".join(random.choice(string.ascii_letters + string.digits) for _ in range(n))


# Made at random on each run: the shapes of real credentials, never real ones.
CREDENTIALS = {
    "PKCS#8 private key": (PEM, "Private Key"),
    "encrypted PKCS#8 key (docs/deployment.md's openssl pkcs8 -v2)": (ENCRYPTED_PEM, "Private Key"),
    "traditional RSA key": (_pem(RSA, serialization.PrivateFormat.TraditionalOpenSSL), "Private Key"),
    "OpenSSH key": (_pem(ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.OpenSSH), "Private Key"),
    "AWS access key id": (f"aws_access_key_id = AKIA{_upper(16)}\n", "AWS Access Key"),
    "GitHub token": (f"token: ghp_{_alnum(36)}\n", "GitHub Token"),
    "password in a URL": (f"dsn = postgresql://sqlmesh:{_alnum(20)}@aurora:5432/state\n", "Basic Auth Credentials"),
    "Stripe live key": (f"STRIPE_KEY=sk_live_{_alnum(24)}\n", "Stripe Access Key"),
}


@pytest.mark.parametrize("text, kind", CREDENTIALS.values(), ids=CREDENTIALS.keys())
def test_a_credential_is_found_by_its_shape_in_a_file_named_for_nothing(tmp_path, text, kind):
    notes = tmp_path / "dev_notes.txt"
    notes.write_text(f"Notes from the pairing session\n\n{text}\nthat's all\n")

    finding = scan_file(notes, known=[])

    assert finding is not None and finding.line == 3 and finding.kind == kind and not finding.known
    assert str(finding) == f"line 3: {kind}"


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://sqlmesh:<password>@aurora/state\n",  # a placeholder, as in docs
        "postgresql://sqlmesh:***STATE_DB_PASSWORD***@aurora/state\n",  # a masked run record
        'password = env_var("STATE_DB_PASSWORD")\n',  # the keyword detector is not used
        "sha256 3f79bb7b435b05321651daefd374cdc681dc06faa65e374e38337b88ca046dea\n",  # no entropy guess
    ],
)
def test_what_only_looks_like_a_secret_passes(text):
    assert scan_bytes(text.encode(), known=[]) is None


def test_the_allowlist_comment_clears_a_shape_but_never_a_known_value():
    line = f'EXAMPLE = "AKIA{_upper(16)}"  # pragma: allowlist secret\n'.encode()
    assert scan_bytes(line, known=[]) is None
    assert scan_bytes(b"# pragma: allowlist nextline secret\n" + line.split(b"  #")[0] + b"\n", known=[]) is None
    known = [("STATE_DB_PASSWORD", b"state-db-pw-4d2a8f")]
    finding = scan_bytes(b'PW = "state-db-pw-4d2a8f"  # pragma: allowlist secret\n', known)
    assert finding.kind == "the value of STATE_DB_PASSWORD" and finding.known


def _settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_every_secret_setting_is_looked_for_and_named_never_shown():
    settings = _settings(
        snowflake={"password": "sf-Pa55-word-91c7e2"},
        state_db={"password": "state-db-pw-4d2a8f"},
        notify={"slack_webhook_url": "https://hooks.example.com/services/T000/B000/xyzzy-plugh",
                "smtp_password": "abc"},  # too short to look for: it would match ordinary text
        ui={"password": "ui-login-4471"},
    )
    known = dict((name, value) for name, value in known_secrets(settings))
    assert set(known.values()) >= {
        b"sf-Pa55-word-91c7e2",
        b"state-db-pw-4d2a8f",
        b"https://hooks.example.com/services/T000/B000/xyzzy-plugh",
        b"ui-login-4471",
    }
    assert b"abc" not in known.values()
    finding = scan_bytes(b"first\nlogin ui-login-4471 ok\n", known_secrets(settings))
    assert str(finding) == "line 2: the value of MESHCTL_UI_PASSWORD"


def _one_line(pem: str) -> str:
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


@pytest.mark.parametrize(
    "layout",
    [
        lambda pem: f"SNOWFLAKE_PRIVATE_KEY={_one_line(pem)}\n",  # joined, as in an env file
        lambda pem: "key: |\n" + "".join(f"    {l}\n" for l in pem.splitlines()[1:-1]),  # indented YAML
        lambda pem: f"key = {pem.splitlines()[5]!r}\n",  # one line of it, quoted
    ],
    ids=["joined", "indented", "one line quoted"],
)
def test_a_private_key_setting_is_found_in_any_layout_without_its_header(layout):
    known = known_secrets(_settings(snowflake={"private_key": PEM}))
    assert scan_bytes(layout(PEM).encode(), known).kind == "the value of SNOWFLAKE_PRIVATE_KEY"


def test_the_key_file_and_the_decrypted_key_sqlmesh_is_handed_are_looked_for(tmp_path):
    key_file = tmp_path / "rsa_key.p8"
    key_file.write_text(ENCRYPTED_PEM)
    from_file = known_secrets(_settings(snowflake={"private_key_path": key_file, "private_key_passphrase": PASSPHRASE}))
    body = ENCRYPTED_PEM.splitlines()[3]
    assert scan_bytes(f"x {body}\n".encode(), from_file).kind == "the value of the key file at SNOWFLAKE_PRIVATE_KEY_PATH"
    assert scan_bytes(f"phrase={PASSPHRASE}\n".encode(), from_file).kind == "the value of SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"

    # An encrypted key in the setting: SQLMesh gets it decrypted, as base64 DER (secrets.py).
    in_setting = known_secrets(_settings(snowflake={"private_key": ENCRYPTED_PEM, "private_key_passphrase": PASSPHRASE}))
    der = base64.b64encode(
        RSA.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    ).decode()
    assert scan_bytes(f"SNOWFLAKE_PRIVATE_KEY={der}\n".encode(), in_setting).kind == "the value of SNOWFLAKE_PRIVATE_KEY"


def test_an_archive_is_scanned_file_by_file_and_the_finding_names_the_member():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("models/a.sql", b"SELECT 1\n"), ("macros/dev_notes.txt", f"hi\n{PEM}".encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    finding = scan_bytes(buf.getvalue(), known=[])
    assert str(finding) == "macros/dev_notes.txt line 2: Private Key"


def test_the_real_project_bundle_passes_and_the_scan_is_cheap(tmp_path, capsys):
    """The repo's own models, SQL, seeds, config, runtime source and README hold nothing that
    looks like a secret; the scan of the bundle (every file in it) takes a fraction of a second."""
    settings = _settings(project_dir=PROJECT_DIR, state_db={"password": "state-db-pw-4d2a8f"}, snowflake={"private_key": PEM})
    tar_path, manifest = artifacts.build_bundle(settings, tmp_path, version="scan-check")
    known = known_secrets(settings)

    start = time.perf_counter()
    finding = scan_file(tar_path, known)
    seconds = time.perf_counter() - start

    assert finding is None, f"the project's own bundle is refused: {finding}"
    size = sum(entry["size"] for entry in manifest["files"].values())
    with capsys.disabled():
        print(f"\nscan of the real project's bundle: {len(manifest['files'])} files, {size} bytes, {seconds:.3f} s")
    assert seconds < 5, seconds  # measured 0.2 s on 2 shared cores
    assert {f for f in manifest["files"] if f.startswith(("models/", "seeds/"))}, "the bundle holds the models and seeds"


def test_detectors_are_detect_secrets_own_less_the_guessing_ones():
    names = {type(d).__name__ for d in secret_scan.DETECTORS}
    assert {"PrivateKeyDetector", "AWSKeyDetector", "BasicAuthDetector", "EncryptedPrivateKeyDetector"} <= names
    assert not names & {"KeywordDetector", "Base64HighEntropyString", "HexHighEntropyString", "IPPublicDetector"}
