"""SQLMesh state backups in the artifacts bucket: `meshctl state backup | restore | list`.

A backup is SQLMesh's own state export (`sqlmesh.core.state_sync.export_import`, what
`Context.export_state` and `sqlmesh state export` run), uploaded to
`<prefix>/state-backups/<UTC time, to the ms>-sqlmesh-<version>.json` with the SQLMesh, sqlglot
and state-schema versions in its metadata. A restore is SQLMesh's `import_state`, after
a confirmation, and only from a backup whose versions match the installed SQLMesh (the same
three versions SQLMesh checks before it uses a state). Before replacing a non-empty state, a
restore backs that state up first, so a wrong restore can itself be undone.

Retention (`STATE_BACKUP_KEEP_COUNT`, `STATE_BACKUP_KEEP_DAYS`) runs after each successful
backup: a backup is kept if it is among the newest KEEP_COUNT or younger than KEEP_DAYS (0 turns
a rule off); the backup just made is never deleted, nor any object not named like a backup.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from meshctl.artifacts.s3 import ArtifactsError, Bucket, ObjectExists, error_text
from meshctl.settings import Settings

log = logging.getLogger("meshctl.artifacts.state_backups")


BACKUP_DIR = "state-backups"


# <UTC time to the millisecond>-sqlmesh-<version>.json, e.g. 20261123T030000.000Z-sqlmesh-0.233.0.json
_NAME_RE = re.compile(
    r"^(?P<ts>\d{8}T\d{6})(?:\.(?P<ms>\d{3}))?Z-sqlmesh-(?P<version>[0-9A-Za-z.+_-]+)\.json$"
)


class StateBackupError(ArtifactsError):
    """A backup or restore cannot go on; the message says why."""


class IncompatibleBackup(StateBackupError):
    """The backup was exported by a SQLMesh whose state format differs from the installed one."""


@dataclass(frozen=True)
class Backup:
    key: str
    taken_at: dt.datetime
    sqlmesh_version: str
    size: int | None = None

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@dataclass
class BackupResult:
    key: str
    url: str
    size: int
    taken_at: dt.datetime
    versions: dict
    environments: list[str]
    deleted: list[str] = field(default_factory=list)
    kept: int = 0


@dataclass
class RestoreResult:
    key: str
    restored: bool
    environments: list[str]
    safety_backup: str | None = None


def installed_versions() -> dict:
    """The state versions the installed SQLMesh writes and expects."""
    from sqlglot import __version__ as sqlglot_version
    from sqlmesh import __version__ as sqlmesh_version
    from sqlmesh.core.state_sync.base import SCHEMA_VERSION

    return {
        "schema_version": SCHEMA_VERSION,
        "sqlglot_version": sqlglot_version,
        "sqlmesh_version": sqlmesh_version,
    }


def read_export_header(path: Path) -> tuple[dict, dict]:
    """(metadata, versions) of a state export file, read without loading the whole file."""
    import json_stream
    from json_stream import to_standard_types

    try:
        with path.open("r", encoding="utf8") as fh:
            stream = json_stream.load(fh)
            metadata = to_standard_types(stream["metadata"])
            versions = to_standard_types(stream["versions"])
    except (KeyError, ValueError, TypeError) as exc:
        raise StateBackupError(
            f"not a SQLMesh state export (no metadata/versions at the top): {exc}"
        ) from None
    if not isinstance(metadata, dict) or not isinstance(versions, dict):
        raise StateBackupError("not a SQLMesh state export (metadata/versions are not objects)")
    return metadata, versions


def export_environment_names(path: Path) -> list[str]:
    import json_stream

    with path.open("r", encoding="utf8") as fh:
        stream = json_stream.load(fh)
        try:
            return sorted(str(name) for name in stream["environments"].keys())
        except KeyError:
            return []


def incompatibility(versions: dict) -> str | None:
    """Why a backup with these versions cannot be imported here, or None if it can. SQLMesh
    major.minor and the state schema version define the export's shape; sqlglot's major.minor
    is what SQLMesh checks before it uses a state (the snapshots hold parsed SQL)."""
    from sqlmesh.utils import major_minor

    here = installed_versions()
    reasons = []
    try:
        if major_minor(str(versions.get("sqlmesh_version"))) != major_minor(here["sqlmesh_version"]):
            reasons.append(
                f"SQLMesh {versions.get('sqlmesh_version')} (installed {here['sqlmesh_version']})"
            )
        if int(versions.get("schema_version", -1)) != here["schema_version"]:
            reasons.append(
                f"state schema {versions.get('schema_version')} (installed {here['schema_version']})"
            )
        if major_minor(str(versions.get("sqlglot_version"))) != major_minor(here["sqlglot_version"]):
            reasons.append(
                f"sqlglot {versions.get('sqlglot_version')} (installed {here['sqlglot_version']})"
            )
    except (TypeError, ValueError):
        return f"unreadable versions in the backup: {versions!r}"
    if not reasons:
        return None
    return (
        "it was exported with " + ", ".join(reasons) + ". Restore it with the SQLMesh release "
        f"that made it (pip install \"sqlmesh=={versions.get('sqlmesh_version')}\" in a separate "
        "environment), or pick a backup made by this release (`meshctl state list`)."
    )


def backup_name(taken_at: dt.datetime, sqlmesh_version: str) -> str:
    utc = taken_at.astimezone(dt.timezone.utc)
    return f"{utc:%Y%m%dT%H%M%S}.{utc.microsecond // 1000:03d}Z-sqlmesh-{sqlmesh_version}.json"


def parse_backup(key: str, size: int | None = None) -> Backup | None:
    match = _NAME_RE.match(key.rsplit("/", 1)[-1])
    if not match:
        return None
    taken_at = dt.datetime.strptime(match["ts"], "%Y%m%dT%H%M%S").replace(
        tzinfo=dt.timezone.utc, microsecond=int(match["ms"] or 0) * 1000
    )
    return Backup(key=key, taken_at=taken_at, sqlmesh_version=match["version"], size=size)


def list_backups(bucket: Bucket) -> list[Backup]:
    """Every object named like a backup under <prefix>/state-backups/, oldest first."""
    prefix = bucket.key(BACKUP_DIR) + "/"
    found = [parse_backup(obj["Key"], obj.get("Size")) for obj in bucket.list(prefix)]
    return sorted((b for b in found if b), key=lambda b: (b.taken_at, b.key))


def retention_plan(
    backups: list[Backup],
    keep_count: int,
    keep_days: float,
    now: dt.datetime,
    protect: set[str] = frozenset(),
) -> tuple[list[Backup], list[Backup]]:
    """(kept, deleted). Kept: among the newest `keep_count`, or younger than `keep_days`, or
    protected. Both rules off (0): everything is kept."""
    if not keep_count and not keep_days:
        return list(backups), []
    keep = set(protect)
    newest_first = sorted(backups, key=lambda b: (b.taken_at, b.key), reverse=True)
    if keep_count:
        keep |= {b.key for b in newest_first[:keep_count]}
    if keep_days:
        cutoff = now - dt.timedelta(days=keep_days)
        keep |= {b.key for b in backups if b.taken_at >= cutoff}
    return [b for b in backups if b.key in keep], [b for b in backups if b.key not in keep]


def apply_retention(
    settings: Settings, bucket: Bucket, now: dt.datetime | None = None, protect: set[str] = frozenset()
) -> tuple[list[Backup], list[Backup]]:
    now = now or dt.datetime.now(dt.timezone.utc)
    kept, doomed = retention_plan(
        list_backups(bucket),
        settings.state_backup.keep_count,
        settings.state_backup.keep_days,
        now,
        protect,
    )
    if doomed:
        bucket.delete(b.key for b in doomed)
        log.info(
            json.dumps(
                {"event": "state_backup_retention", "deleted": [b.key for b in doomed], "kept": len(kept)}
            )
        )
    return kept, doomed


@contextlib.contextmanager
def _context(settings: Settings, context=None) -> Iterator:
    if context is not None:
        yield context
        return
    from meshctl.project.gateways import open_context

    with open_context(settings) as ctx:
        yield ctx


def export_state_file(context, path: Path) -> None:
    """SQLMesh's state export (what `Context.export_state` / `sqlmesh state export` run), called
    without the console's confirmation step: some consoles treat confirm=False as "don't"."""
    from sqlmesh.core.state_sync.export_import import export_state

    context.state_sync.get_versions(validate=True)
    export_state(state_sync=context.state_sync, output_file=path)


def import_state_file(context, path: Path, replace: bool) -> None:
    """SQLMesh's state import (what `Context.import_state` runs), without the console prompt."""
    from sqlmesh.core.state_sync.export_import import import_state

    import_state(state_sync=context.state_sync, input_file=path, clear=replace)
    clear_cache = getattr(context.state_sync, "clear_cache", None)
    if clear_cache:
        clear_cache()


def backup_state(
    settings: Settings,
    *,
    context=None,
    bucket: Bucket | None = None,
    now: dt.datetime | None = None,
    retention: bool = True,
    reason: str = "backup",
) -> BackupResult:
    """Export the state, upload it, verify it is there, then apply retention."""
    bucket = bucket or Bucket(settings)
    now = now or dt.datetime.now(dt.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="meshctl-state-") as tmp:
        path = Path(tmp) / "state.json"
        with _context(settings, context) as ctx:
            export_state_file(ctx, path)
        metadata, versions = read_export_header(path)
        environments = export_environment_names(path)
        key = bucket.key(BACKUP_DIR, backup_name(now, str(versions["sqlmesh_version"])))
        try:
            # Create-only: an existing backup is never replaced, and no HEAD of a key that is not
            # there yet is needed (S3 answers one with 403 to this host's role, see meshctl/artifacts/s3.py).
            bucket.upload_file(
                path,
                key,
                "application/json",
                {
                    "sqlmesh-version": str(versions.get("sqlmesh_version")),
                    "sqlglot-version": str(versions.get("sqlglot_version")),
                    "schema-version": str(versions.get("schema_version")),
                    "exported-at": str(metadata.get("timestamp")),
                    "environments": str(len(environments)),
                    "reason": reason,
                },
                create_only=True,
            )
        except ObjectExists:
            raise StateBackupError(f"{bucket.url(key)} already exists; try again") from None
        size = path.stat().st_size
    head = bucket.head(key)
    if head is None or head.get("ContentLength") != size:
        raise StateBackupError(f"{bucket.url(key)} is missing or incomplete after upload")
    result = BackupResult(
        key=key,
        url=bucket.url(key),
        size=size,
        taken_at=now,
        versions=versions,
        environments=environments,
    )
    log.info("state backup %s (%d bytes, %s)", result.url, size, reason,
             extra={"event": "state_backup", "key": key, "size": size, "environments": environments, "reason": reason})
    if retention:
        kept, deleted = apply_retention(settings, bucket, now, protect={key})
        result.deleted, result.kept = [b.key for b in deleted], len(kept)
    return result


def run_scheduled_backup(settings: Settings) -> BackupResult | None:
    """For the scheduler's own cron (STATE_BACKUP_CRON; see `next_backup_at`): a backup plus
    retention. Never raises: a failure is logged as a structured error and gives None. Call it
    while holding the run lock, so no `sqlmesh run` writes state during the export."""
    try:
        return backup_state(settings, reason="scheduled")
    except Exception as exc:
        log.error("state backup failed: %s", error_text(exc), extra={"event": "state_backup_failed", "error": error_text(exc)})
        return None


def next_backup_at(settings: Settings, after: dt.datetime) -> dt.datetime:
    """When the next scheduled backup is due after `after` (STATE_BACKUP_CRON, UTC)."""
    from croniter import croniter

    return croniter(settings.state_backup.cron, after).get_next(dt.datetime)


def resolve_backup_key(bucket: Bucket, key: str | None) -> str:
    if not key:
        backups = list_backups(bucket)
        if not backups:
            raise StateBackupError(
                f"no state backups under {bucket.url(bucket.key(BACKUP_DIR))}/; "
                "run `meshctl state backup` first"
            )
        return backups[-1].key
    if "/" not in key:
        key = bucket.key(BACKUP_DIR, key)
    if not bucket.exists(key):
        raise StateBackupError(f"no backup at {bucket.url(key)}; `meshctl state list` shows them")
    return key


def describe_target(settings: Settings, context) -> str:
    config = getattr(context, "_state_connection_config", None)
    kind = getattr(config, "type_", None) or "embedded"
    if kind == "postgres":
        where = f"{config.host}:{config.port}/{config.database}"
    else:
        where = kind
    return f"gateway {context.selected_gateway}, state {where}"


def restore_state(
    settings: Settings,
    key: str | None = None,
    *,
    confirm: Callable[[str], bool] | None = None,
    context=None,
    bucket: Bucket | None = None,
    replace: bool = True,
    now: dt.datetime | None = None,
) -> RestoreResult:
    """Import backup `key` (default: the newest) into the state of the selected gateway.

    `confirm` gets a description and returns whether to go on (None: go on). With `replace`
    the state is cleared first (SQLMesh's `--replace`); else the backup is merged into it."""
    bucket = bucket or Bucket(settings)
    key = resolve_backup_key(bucket, key)
    with tempfile.TemporaryDirectory(prefix="meshctl-restore-") as tmp:
        path = Path(tmp) / "state.json"
        try:
            bucket.download_file(key, path)
        except Exception as exc:
            raise StateBackupError(f"cannot download {bucket.url(key)}: {error_text(exc)}") from None
        metadata, versions = read_export_header(path)
        reason = incompatibility(versions)
        if reason:
            raise IncompatibleBackup(f"refusing to restore {bucket.url(key)}: {reason}")
        if not metadata.get("importable", False):
            raise StateBackupError(f"{bucket.url(key)} is marked not importable (a local-only export)")
        environments = export_environment_names(path)
        with _context(settings, context) as ctx:
            current = sorted(e.name for e in ctx.state_reader.get_environments_summary())
            question = (
                f"{'Replace' if replace else 'Merge into'} the SQLMesh state ({describe_target(settings, ctx)}; "
                f"environments now: {', '.join(current) or 'none'}) with backup {bucket.url(key)} "
                f"(exported {metadata.get('timestamp')}, environments: {', '.join(environments) or 'none'})?"
            )
            if confirm is not None and not confirm(question):
                return RestoreResult(key=key, restored=False, environments=environments)
            safety = None
            # A restore rewrites the state every writer reads: it takes the run lock like one.
            from meshctl.service.writers import exclusive, state_in_postgres

            guard = exclusive(settings, "restore", "*") if state_in_postgres(ctx) else contextlib.nullcontext()
            with guard:
                if current:
                    safety = backup_state(
                        settings, context=ctx, bucket=bucket, now=now, retention=False, reason="pre-restore"
                    ).key
                import_state_file(ctx, path, replace)
    log.info("state restored from %s (environments: %s)", key, ", ".join(environments) or "none",
             extra={"event": "state_restored", "key": key, "environments": environments, "safety_backup": safety})
    return RestoreResult(key=key, restored=True, environments=environments, safety_backup=safety)
