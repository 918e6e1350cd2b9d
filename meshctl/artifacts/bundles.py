"""Project bundles and rendered docs in the artifacts bucket.

Layout under `<prefix>/`:

    bundles/<version>/bundle.tar.gz     the project files, plus bundle-manifest.json at the root
    bundles/<version>/manifest.json     the same manifest plus the tarball's SHA-256 and size
    bundles/latest                      {"version": ...}: moved only after a verified push
    docs/index.html, docs/<version>/index.html

`push` packs an allow-list of project paths (never `.env`, keys, local warehouses, caches),
uploads, verifies with HEAD, then moves `latest`. The bucket refuses a bundle if any file in it
holds a secret (meshctl/artifacts/s3.py), and a version that exists: the version's first write is
create-only, so of two pushes of one version exactly one gets through. `pull` downloads, checks
the tarball and every file against the manifest, and only then swaps the new project into place;
on any failure the previous project is left as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fnmatch
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from meshctl.artifacts.s3 import ArtifactsError, Bucket, ObjectExists, ObjectMissing, error_text
from meshctl.settings import Settings

log = logging.getLogger("meshctl.artifacts.bundles")


MANIFEST_NAME = "bundle-manifest.json"


BUNDLE_NAME = "bundle.tar.gz"


LATEST = "latest"


MANIFEST_FORMAT = 1


# What a bundle holds: the SQLMesh project, what runs it (compose file, runtime source and its
# pins, so a bundle says exactly what it was built with), and nothing else.
INCLUDE = (
    "models",
    "macros",
    "audits",
    "signals",
    "linter",
    "tests",
    "seeds",
    "config.yaml",
    "config.py",
    "external_models.yaml",
    "meshctl",
    "pyproject.toml",
    "constraints.txt",
    "docker-compose.yml",
    "Dockerfile",
    ".dockerignore",
    "Makefile",
    "README.md",
)


# Never packed, wherever they appear under an included path.
EXCLUDE_DIRS = {
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    ".cache",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "node_modules",
    "data",
    "logs",
}


EXCLUDE_FILES = (
    ".env",
    ".env.*",
    "*.pem",
    "*.p8",
    "*.p12",
    "*.pfx",
    "*.key",
    "id_rsa*",
    "id_ed25519*",
    "*.duckdb",
    "*.duckdb.wal",
    "*.pyc",
    "*.pyo",
    ".DS_Store",
)


# Under included directories, never packed either (the runtime's own pytest suite; the image
# leaves it out too, see .dockerignore).
EXCLUDE_PATHS = {"tests/python"}


# Runtime directories a pulled project carries over from the one it replaces.
CARRY_OVER = ("data", "logs")


_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class BundleError(ArtifactsError):
    """A bundle is missing, incomplete or fails verification."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _git(project_dir: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(project_dir), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_info(project_dir: Path, paths: list[str]) -> dict:
    """The checkout's revision, or "unknown" when the project is not tracked in a checkout."""
    revision = _git(project_dir, "rev-parse", "HEAD")
    tracked = _git(project_dir, "ls-files", "--", *paths) if revision else None
    if not revision or not tracked:
        return {"revision": "unknown", "dirty": None}
    status = _git(project_dir, "status", "--porcelain", "--", *paths)
    return {"revision": revision, "dirty": bool(status)}


def _excluded_file(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDE_FILES)


def collect_files(project_dir: Path) -> list[str]:
    """Project-relative POSIX paths of every file a bundle holds, sorted. Symlinks are skipped
    (a link could point anywhere, including at a key outside the project)."""
    files: list[str] = []
    for top in INCLUDE:
        path = project_dir / top
        if path.is_symlink() or not path.exists():
            continue
        if path.is_file():
            if not _excluded_file(path.name):
                files.append(top)
            continue
        for root, dirs, names in os.walk(path):
            rel_root = Path(root).relative_to(project_dir)
            dirs[:] = sorted(
                d
                for d in dirs
                if d not in EXCLUDE_DIRS
                and (rel_root / d).as_posix() not in EXCLUDE_PATHS
                and not (Path(root) / d).is_symlink()
            )
            for name in sorted(names):
                full = Path(root) / name
                if _excluded_file(name) or full.is_symlink() or not full.is_file():
                    continue
                files.append(full.relative_to(project_dir).as_posix())
    return sorted(files)


def _safe_name(name: str) -> bool:
    p = PurePosixPath(name)
    return bool(name) and not p.is_absolute() and ".." not in p.parts and "\\" not in name


def bundle_key(bucket: Bucket, version: str, name: str) -> str:
    return bucket.key("bundles", version, name)


def latest_key(bucket: Bucket) -> str:
    return bucket.key("bundles", LATEST)


def new_version(now: dt.datetime, revision: str) -> str:
    rev = revision[:12] if revision != "unknown" else "nogit"
    return f"{now:%Y%m%dT%H%M%SZ}-{rev}"


def _check_version(version: str) -> str:
    if version == LATEST or not _VERSION_RE.match(version):
        raise BundleError(
            f"invalid bundle version {version!r}: use letters, digits, '.', '_' and '-' "
            "(and not 'latest')"
        )
    return version


@dataclass
class PushResult:
    version: str
    files: int
    size: int
    sha256: str
    bundle_url: str
    multipart: bool
    manifest: dict = field(repr=False)


def build_bundle(
    settings: Settings, out_dir: Path, version: str | None = None, now: dt.datetime | None = None
) -> tuple[Path, dict]:
    """Pack the project into `out_dir/bundle.tar.gz`; returns (path, manifest)."""
    from sqlmesh import __version__ as sqlmesh_version

    project_dir = settings.project_dir.resolve()
    now = now or utcnow()
    files = collect_files(project_dir)
    if not files:
        raise BundleError(f"nothing to bundle in {project_dir}: no models, config.yaml, ...")
    if MANIFEST_NAME in files:
        raise BundleError(f"the project has a file named {MANIFEST_NAME}; that name is reserved")
    entries: dict[str, dict] = {}
    for rel in files:
        path = project_dir / rel
        entries[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    git = git_info(project_dir, [f for f in INCLUDE if (project_dir / f).exists()])
    version = _check_version(version or new_version(now, git["revision"]))
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": version,
        "created_at": iso(now),
        "git": git,
        "sqlmesh_version": sqlmesh_version,
        "files": entries,
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    tar_path = out_dir / BUNDLE_NAME
    with tarfile.open(tar_path, "w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size, info.mtime, info.mode = len(manifest_bytes), int(now.timestamp()), 0o644
        tar.addfile(info, fileobj=io.BytesIO(manifest_bytes))
        for rel in files:
            path = project_dir / rel
            st = path.stat()
            info = tarfile.TarInfo(rel)
            info.size, info.mtime = st.st_size, int(st.st_mtime)
            info.mode = 0o755 if st.st_mode & 0o100 else 0o644
            with path.open("rb") as fh:
                tar.addfile(info, fileobj=fh)
    return tar_path, manifest


def _verify_upload(bucket: Bucket, key: str, size: int, sha256: str) -> dict:
    head = bucket.head(key)
    if head is None:
        raise BundleError(f"{bucket.url(key)} is not there after upload")
    if head.get("ContentLength") != size:
        raise BundleError(
            f"{bucket.url(key)} has {head.get('ContentLength')} bytes after upload, expected {size}"
        )
    if (head.get("Metadata") or {}).get("sha256") != sha256:
        raise BundleError(f"{bucket.url(key)} does not carry the expected sha256 after upload")
    return head


def push(
    settings: Settings,
    version: str | None = None,
    bucket: Bucket | None = None,
    now: dt.datetime | None = None,
) -> PushResult:
    """Bundle the project, upload it, verify it, then move `latest` to it."""
    bucket = bucket or Bucket(settings)
    with tempfile.TemporaryDirectory(prefix="meshctl-push-") as tmp:
        tar_path, manifest = build_bundle(settings, Path(tmp), version, now)
        version = manifest["version"]
        tar_key = bundle_key(bucket, version, BUNDLE_NAME)
        manifest_key = bundle_key(bucket, version, "manifest.json")
        size, digest = tar_path.stat().st_size, sha256_file(tar_path)
        metadata = {
            "sha256": digest,
            "bundle-version": version,
            "git-revision": manifest["git"]["revision"],
        }
        remote_manifest = dict(manifest, bundle={"key": tar_key, "sha256": digest, "size": size})
        manifest_bytes = json.dumps(remote_manifest, indent=2, sort_keys=True).encode()
        # Both objects are scanned before either goes up, so a refusal leaves nothing behind.
        bucket.check_bytes(manifest_key, manifest_bytes)
        try:
            # The tarball is the version's first write and create-only: of two pushes of one
            # version, S3 lets exactly one through, and the other stops here having written nothing.
            bucket.upload_file(tar_path, tar_key, "application/gzip", metadata, create_only=True)
        except ObjectExists:
            raise BundleError(
                f"bundle {version} already exists in {bucket.url(tar_key)} (pushed by someone "
                "else, or an earlier push of it did not finish); push another --version"
            ) from None
        head = _verify_upload(bucket, tar_key, size, digest)
        bucket.put_bytes(
            manifest_key, manifest_bytes, "application/json", {"bundle-version": version}, create_only=True
        )
        if bucket.head(manifest_key) is None:
            raise BundleError(f"{bucket.url(manifest_key)} is not there after upload")
        # Only now, with both objects in place and checked, does `latest` move.
        move_latest(bucket, remote_manifest)
    log.info(
        json.dumps(
            {"event": "bundle_pushed", "version": version, "key": tar_key, "size": size, "sha256": digest}
        )
    )
    return PushResult(
        version=version,
        files=len(manifest["files"]),
        size=size,
        sha256=digest,
        bundle_url=bucket.url(tar_key),
        multipart="-" in head.get("ETag", ""),
        manifest=remote_manifest,
    )


def move_latest(bucket: Bucket, manifest: dict) -> None:
    pointer = {
        "version": manifest["version"],
        "manifest": bundle_key(bucket, manifest["version"], "manifest.json"),
        "bundle_sha256": manifest["bundle"]["sha256"],
        "git_revision": manifest["git"]["revision"],
        "updated_at": iso(utcnow()),
    }
    bucket.put_json(latest_key(bucket), pointer, cache_control="no-cache")


@dataclass
class PullResult:
    version: str
    dest: Path
    files: int
    replaced: bool


def resolve_version(bucket: Bucket, version: str | None) -> str:
    if version in (None, "", LATEST):
        key = latest_key(bucket)
        try:
            pointer = bucket.get_json(key)
        except ObjectMissing:
            raise BundleError(
                f"no bundle has been pushed yet ({bucket.url(key)} does not exist); "
                "run `meshctl artifacts push` first"
            ) from None
        return _check_version(str(pointer["version"]))
    return _check_version(version)


def fetch_manifest(bucket: Bucket, version: str) -> dict:
    key = bundle_key(bucket, version, "manifest.json")
    try:
        manifest = bucket.get_json(key)
    except ObjectMissing:
        raise BundleError(
            f"bundle {version} does not exist or its push did not finish "
            f"({bucket.url(key)} is missing)"
        ) from None
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(_safe_name(n) for n in files):
        raise BundleError(f"manifest.json of bundle {version}: malformed file list")
    return manifest


def _short(digest: str | None) -> str:
    return (digest or "none")[:12] + "…"


def _check_members(tar: tarfile.TarFile, manifest: dict) -> list[str]:
    """Problems with the archive's member list (before anything is extracted)."""
    problems: list[str] = []
    expected = set(manifest["files"]) | {MANIFEST_NAME}
    seen: set[str] = set()
    for member in tar.getmembers():
        name = member.name
        if not member.isfile() or not _safe_name(name):
            problems.append(f"{name}: not a regular project file")
        elif name not in expected:
            problems.append(f"{name}: in the archive but not in the manifest")
        elif name in seen:
            problems.append(f"{name}: appears twice in the archive")
        seen.add(name)
    for name in sorted(expected - seen):
        problems.append(f"{name}: in the manifest but missing from the archive")
    return problems


def verify_tree(root: Path, manifest: dict) -> list[str]:
    """Check every file in the manifest against the files under `root`."""
    problems = []
    for name, entry in sorted(manifest["files"].items()):
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            problems.append(
                f"{name}: checksum mismatch (manifest {_short(entry.get('sha256'))}, "
                f"file {_short(digest)})"
            )
    return problems


def installed_manifest(dest: Path) -> dict | None:
    try:
        manifest = json.loads((dest / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) else None


def _is_mount(path: Path) -> bool:
    """A mount point, including a bind mount from the same filesystem (which os.path.ismount
    misses): Linux lists every mount point in /proc/self/mountinfo (field 5, octal-escaped)."""
    if os.path.ismount(path):
        return True
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return False
    target = str(path.resolve())
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])
            if point == target:
                return True
    return False


def _in_place(dest: Path) -> bool:
    """Swap entries inside `dest` instead of renaming it: when it is a mount point (a bind-mounted
    volume such as the deploy script's /project cannot be renamed, and its siblings are on
    another filesystem) or its parent is not writable."""
    return dest.is_dir() and (_is_mount(dest) or not os.access(dest.parent, os.W_OK))


def _download_and_verify(bucket: Bucket, version: str, manifest: dict, staging: Path) -> Path:
    """Download and unpack into `staging/project`, verified; raises BundleError naming files."""
    tar_key = bundle_key(bucket, version, BUNDLE_NAME)
    tar_path = staging / BUNDLE_NAME
    try:
        bucket.download_file(tar_key, tar_path)
    except Exception as exc:
        raise BundleError(f"{BUNDLE_NAME}: cannot download {bucket.url(tar_key)}: {error_text(exc)}") from None
    problems: list[str] = []
    expected = (manifest.get("bundle") or {}).get("sha256")
    digest = sha256_file(tar_path)
    tar_problem = (
        None
        if digest == expected
        else f"{BUNDLE_NAME}: checksum mismatch (manifest {_short(expected)}, object {_short(digest)})"
    )
    project = staging / "project"
    project.mkdir()
    try:
        with tarfile.open(tar_path, "r:gz") as tar:
            problems += _check_members(tar, manifest)
            if not problems:
                tar.extractall(project, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        problems.append(f"{BUNDLE_NAME}: not a readable tar.gz ({exc})")
    if not problems:
        problems += verify_tree(project, manifest)
        embedded = installed_manifest(project)
        if embedded is None or embedded.get("files") != manifest["files"]:
            problems.append(f"{MANIFEST_NAME}: differs from manifest.json in the bucket")
    if tar_problem:
        problems.append(tar_problem)
    if problems:
        raise BundleError("; ".join(problems))
    return project


def _swap_rename(project: Path, dest: Path, staging: Path) -> bool:
    previous = staging / "previous"
    replaced = dest.exists()
    if replaced:
        os.rename(dest, previous)
    try:
        os.rename(project, dest)
    except OSError:
        if replaced:
            os.rename(previous, dest)
        raise
    if replaced:
        _carry_over(previous, dest)
    return replaced


def _swap_in_place(project: Path, dest: Path, staging: Path) -> bool:
    previous = staging / "previous"
    previous.mkdir()
    old = [e for e in dest.iterdir() if e != staging]
    moved_out: list[str] = []
    moved_in: list[str] = []
    try:
        for entry in old:
            os.rename(entry, previous / entry.name)
            moved_out.append(entry.name)
        for entry in sorted(project.iterdir()):
            os.rename(entry, dest / entry.name)
            moved_in.append(entry.name)
    except OSError:
        for name in moved_in:
            os.rename(dest / name, project / name)
        for name in moved_out:
            os.rename(previous / name, dest / name)
        raise
    _carry_over(previous, dest)
    return bool(old)


def _carry_over(previous: Path, dest: Path) -> None:
    for name in CARRY_OVER:
        if (previous / name).exists() and not (dest / name).exists():
            os.rename(previous / name, dest / name)


@contextlib.contextmanager
def _staging_dir(dest: Path, in_place: bool) -> Iterator[Path]:
    if in_place:
        staging = Path(tempfile.mkdtemp(prefix=".meshctl-pull-", dir=dest))
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.pull-", dir=dest.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pull(
    settings: Settings,
    version: str | None = LATEST,
    dest: Path | None = None,
    bucket: Bucket | None = None,
) -> PullResult:
    """Download bundle `version` (or latest), verify every file, and swap it into `dest`."""
    bucket = bucket or Bucket(settings)
    dest = Path(dest) if dest else settings.resolve(settings.artifacts.bundle_dir)
    dest = dest.absolute()
    if (dest / ".git").exists():
        raise BundleError(f"refusing to replace {dest}: it is a git checkout; pull with --dest DIR")
    if dest.exists() and not dest.is_dir():
        raise BundleError(f"{dest} exists and is not a directory")
    version = resolve_version(bucket, version)
    manifest = fetch_manifest(bucket, version)
    in_place = _in_place(dest)
    with _staging_dir(dest, in_place) as staging:
        try:
            project = _download_and_verify(bucket, version, manifest, staging)
        except BundleError as exc:
            log.warning("bundle %s refused: %s", version, exc,
                        extra={"event": "bundle_pull_refused", "version": version, "dest": str(dest), "reason": str(exc)})
            raise BundleError(
                f"bundle {version} refused; {dest} left as it was: {exc}"
            ) from None
        try:
            replaced = (_swap_in_place if in_place else _swap_rename)(project, dest, staging)
        except OSError as exc:
            hint = " (a mount point? it is swapped in place)" if exc.errno in (errno.EBUSY, errno.EXDEV) else ""
            raise BundleError(f"could not move bundle {version} into {dest}{hint}: {exc}") from None
    log.info("bundle %s pulled into %s", version, dest,
             extra={"event": "bundle_pulled", "version": version, "dest": str(dest), "files": len(manifest["files"])})
    return PullResult(version=version, dest=dest, files=len(manifest["files"]), replaced=replaced)


def list_versions(bucket: Bucket) -> tuple[list[str], str | None]:
    """(pushed versions, oldest first; the version `latest` points at, if any)."""
    prefix = bucket.key("bundles") + "/"
    versions = sorted(
        {
            obj["Key"][len(prefix) :].split("/")[0]
            for obj in bucket.list(prefix)
            if obj["Key"].endswith("/manifest.json")
        }
    )
    try:
        current = resolve_version(bucket, LATEST)
    except BundleError:
        current = None
    return versions, current


def ensure_project(settings: Settings, bucket: Bucket | None = None) -> Path:
    """The project directory to open. Without MESHCTL_BUNDLE, `settings.project_dir`. With it,
    MESHCTL_BUNDLE_DIR, holding bundle MESHCTL_BUNDLE (`latest` or a version): pulled unless that
    version is already there intact. If S3 or the new bundle fails and an intact bundle that
    satisfies the setting is already in place, that one is used (with a warning)."""
    if not settings.artifacts.bundle:
        return settings.project_dir
    dest = settings.resolve(settings.artifacts.bundle_dir).absolute()
    current = installed_manifest(dest)
    current_ok = current is not None and not verify_tree(dest, current)
    try:
        bucket = bucket or Bucket(settings)
        wanted = resolve_version(bucket, settings.artifacts.bundle)
        if current_ok and current.get("version") == wanted:
            log.info("bundle %s already in %s", wanted, dest,
                     extra={"event": "bundle_in_place", "version": wanted, "dest": str(dest)})
            return dest
        pull(settings, wanted, dest, bucket=bucket)
        return dest
    except Exception as exc:
        acceptable = current_ok and settings.artifacts.bundle in (LATEST, current.get("version"))
        using = current.get("version") if acceptable else None
        log.warning(
            "bundle %s could not be pulled (%s)%s", settings.artifacts.bundle, error_text(exc),
            f"; using {using}, in place" if using else "",
            extra={"event": "bundle_pull_failed", "wanted": settings.artifacts.bundle, "dest": str(dest),
                   "error": error_text(exc), "using": using},
        )
        if acceptable:
            return dest
        raise ArtifactsError(
            f"cannot start from bundle {settings.artifacts.bundle!r}: {error_text(exc)}"
        ) from exc
