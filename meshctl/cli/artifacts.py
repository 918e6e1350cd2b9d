"""`meshctl artifacts ...` (bundles and docs in S3) and `meshctl state ...` (state backups)."""

from __future__ import annotations

from pathlib import Path

import click

from meshctl.artifacts.bundles import LATEST, list_versions, pull, push
from meshctl.artifacts.docs import publish_docs
from meshctl.artifacts.s3 import ArtifactsError, Bucket, error_text
from meshctl.artifacts.state_backups import backup_state, list_backups, restore_state
from meshctl.settings import Settings


def _human(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


class ArtifactsGroup(click.Group):
    """A failure of a command's S3 (or state) work is one line, `Error: <why>` and exit 1: the
    command's own message for an ArtifactsError, S3's error code and message for the rest.
    click's own exits, expected failures (the run lock held) and a lost state database go on to
    meshctl's one error handler (cli/__init__.py), which knows their exit codes and fixes."""

    def invoke(self, ctx: click.Context):
        from meshctl.cli import _is_state_db_error
        from meshctl.errors import ExpectedFailure

        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, ExpectedFailure):
            raise
        except Exception as exc:
            if _is_state_db_error(exc):
                raise
            raise click.ClickException(str(exc) if isinstance(exc, ArtifactsError) else error_text(exc)) from exc


@click.group("artifacts", cls=ArtifactsGroup)
def artifacts_group() -> None:
    """Project bundles and docs in the artifacts bucket (ARTIFACTS_BUCKET)."""


@artifacts_group.command("push")
@click.option("--version", "version", default=None, help="Bundle version (default: UTC time + git revision).")
@click.pass_obj
def push_command(settings: Settings, version: str | None) -> None:
    """Pack the project, upload it, verify it, then move `latest` to it."""
    result = push(settings, version)
    click.echo(
        f"pushed bundle {result.version}: {result.files} files, {_human(result.size)}, "
        f"sha256 {result.sha256[:12]}… -> {result.bundle_url}; latest -> {result.version}"
    )


@artifacts_group.command("pull")
@click.argument("version", required=False, default=LATEST)
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to put the project in (default: MESHCTL_BUNDLE_DIR).",
)
@click.pass_obj
def pull_command(settings: Settings, version: str, dest: Path | None) -> None:
    """Download bundle VERSION (default: latest), verify every file, swap it into place."""
    result = pull(settings, version, dest)
    click.echo(
        f"pulled bundle {result.version}: {result.files} files verified -> {result.dest}"
        + (" (previous project replaced)" if result.replaced else "")
    )


@artifacts_group.command("list")
@click.pass_obj
def list_command(settings: Settings) -> None:
    """List pushed bundle versions; `*` marks latest."""
    versions, current = list_versions(Bucket(settings))
    for v in versions:
        click.echo(f"{'*' if v == current else ' '} {v}")
    click.echo(f"{len(versions)} bundle(s); latest: {current or 'none'}")


@artifacts_group.command("docs")
@click.pass_obj
def docs_command(settings: Settings) -> None:
    """Render the model DAG and upload it to <prefix>/docs/index.html (plus a versioned copy)."""
    result = publish_docs(settings)
    click.echo(f"docs: {_human(result.size)} -> {result.index_url} (and {result.versioned_url})")


@click.group("state", cls=ArtifactsGroup)
def state_group() -> None:
    """Back up and restore SQLMesh state through the artifacts bucket."""


@state_group.command("backup")
@click.pass_obj
def backup_command(settings: Settings) -> None:
    """Export the SQLMesh state to S3, then apply retention."""
    result = backup_state(settings)
    click.echo(
        f"state backup: {len(result.environments)} environment(s), {result.size} bytes -> {result.url}; "
        f"retention kept {result.kept}, deleted {len(result.deleted)}"
    )


@state_group.command("restore")
@click.argument("key", required=False)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--merge", is_flag=True, help="Merge into the current state instead of replacing it.")
@click.pass_obj
def restore_command(settings: Settings, key: str | None, yes: bool, merge: bool) -> None:
    """Import state backup KEY (default: the newest) after confirming."""
    confirm = None if yes else (lambda question: click.confirm(question, default=False))
    result = restore_state(settings, key, confirm=confirm, replace=not merge)
    if not result.restored:
        click.echo("restore cancelled; the state is unchanged")
        raise SystemExit(1)
    extra = f"; the previous state was backed up to {result.safety_backup}" if result.safety_backup else ""
    click.echo(f"restored {result.key}: environments {', '.join(result.environments) or 'none'}{extra}")


@state_group.command("list")
@click.pass_obj
def state_list_command(settings: Settings) -> None:
    """List state backups, oldest first."""
    backups = list_backups(Bucket(settings))
    for b in backups:
        click.echo(f"{b.taken_at:%Y-%m-%d %H:%M:%SZ}  sqlmesh {b.sqlmesh_version:<10} {b.size or 0:>10}  {b.name}")
    click.echo(f"{len(backups)} backup(s)")
