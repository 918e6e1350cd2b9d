"""The service's verbs: `ui`, `scheduler`, `run-once`, `runs`, `doctor`."""

from __future__ import annotations

import json
import logging
from datetime import timezone

import click

from meshctl import secrets
from meshctl.logs import configure_logging
from meshctl.service.run_history import RunHistory
from meshctl.service.scheduler import Scheduler
from meshctl.settings import Settings

log = logging.getLogger("meshctl.cli.service")


def _prepare(settings: Settings) -> Settings:
    configure_logging(settings)
    return secrets.resolve(settings)


@click.command("scheduler")
@click.option("--max-ticks", type=int, default=None, help="Exit after this many cron ticks (tests, one-off hosts).")
@click.pass_obj
def scheduler_command(settings: Settings, max_ticks: int | None) -> None:
    """Run `sqlmesh run` for the environment on MESHCTL_SCHEDULE_CRON, one run at a time."""
    from meshctl.service.state_db import StateDatabaseUnavailable, wait_for_state_db

    settings = _prepare(settings)
    scheduler = Scheduler(settings, beat=True)
    scheduler.install_signal_handlers()
    scheduler.beat(force=True, state="waiting for the state database")
    try:
        wait_for_state_db(settings.state_db)
    except StateDatabaseUnavailable as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None
    raise SystemExit(scheduler.serve(max_ticks=max_ticks))


@click.command("run-once")
@click.pass_obj
def run_once_command(settings: Settings) -> None:
    """One locked, recorded `sqlmesh run` now. Exit 0 ok, 1 failed/timeout, 75 skipped (locked)."""
    from meshctl.service.state_db import wait_for_state_db

    settings = _prepare(settings)
    wait_for_state_db(settings.state_db)  # the run lock and its history live there
    scheduler = Scheduler(settings)
    scheduler.install_signal_handlers()
    record = scheduler.run_once("manual")
    click.echo(f"{record.status}: run {record.run_id}" + (f" -- {record.error.splitlines()[0]}" if record.error else ""))
    raise SystemExit({"success": 0, "nothing_to_do": 0, "skipped": 75}.get(record.status, 1))


@click.command("runs")
@click.option("--limit", "-n", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def runs_command(settings: Settings, limit: int, as_json: bool) -> None:
    """Recent runs from the run history, newest first."""
    from meshctl.service.state_db import wait_for_state_db

    settings = _prepare(settings)
    wait_for_state_db(settings.state_db)
    history = RunHistory(settings.state_db)
    history.ensure()
    rows = history.recent(limit)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=str))
        return
    header = f"{'started (UTC)':<20} {'trigger':<7} {'status':<13} {'try':>3} {'secs':>7} {'ivals':>5} {'wait':>4}  error"
    click.echo(header)
    click.echo("-" * len(header))
    for row in rows:
        secs = (row["ended_at"] - row["started_at"]).total_seconds() if row["ended_at"] else None
        error = (row["error"] or "").splitlines()[0][:80] if row["error"] else ""
        click.echo(
            f"{row['started_at'].astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}  {row['trigger']:<7} {row['status']:<13} "
            f"{row['attempts']:>3} {secs if secs is None else round(secs, 1)!s:>7} {len(row['intervals']):>5} "
            f"{len(row['waiting']):>4}  {error}"
        )
    if not rows:
        click.echo("(no runs recorded yet)")

@click.command("ui")
@click.option("--host", default=None, help="Bind address. Default: MESHCTL_UI_HOST (0.0.0.0).")
@click.option("--port", type=int, default=None, help="Port. Default: MESHCTL_UI_PORT (8000).")
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    default=None,
    help="Serve without authentication (local development only; also MESHCTL_UI_INSECURE_NO_AUTH).",
)
@click.pass_obj
def ui_command(settings: Settings, host: str | None, port: int | None, insecure_no_auth: bool | None) -> None:
    """Serve SQLMesh's UI behind HTTP Basic auth, after checking the state database."""
    # Here, not at the top: the UI pulls in SQLMesh and its web app, which the scheduler's
    # long-lived parent process never needs.
    import uvicorn

    from meshctl.artifacts.bundles import ensure_project
    from meshctl.project.gateways import emulation
    from meshctl.service import heartbeat, writers
    from meshctl.service.ui import StartupRefused, build_app, preflight

    configure_logging(settings)
    settings = secrets.export(settings)
    host = host or settings.ui.host
    port = port or settings.ui.port
    insecure = settings.ui.insecure_no_auth if insecure_no_auth is None else insecure_no_auth
    if not insecure and not settings.ui.password:
        raise StartupRefused(
            "no UI credentials: set MESHCTL_UI_PASSWORD (and MESHCTL_UI_USERNAME, default 'admin'); "
            "the UI can apply plans, so it never runs open. For local development only: "
            "--insecure-no-auth."
        )
    if insecure:
        log.warning("UI authentication is OFF (--insecure-no-auth): local development only")
    # With MESHCTL_BUNDLE set, serve the project pulled (and verified) from S3.
    settings = settings.model_copy(update={"project_dir": ensure_project(settings)})
    with emulation(settings):
        preflight(settings)
        # A plan applied from the UI takes the run lock like every other writer.
        writers.install_context_guards(settings)
        app = build_app(settings, insecure_no_auth=insecure)
        heartbeat.write(settings, "ui", port=port)
        log.info("SQLMesh UI for %s (gateway %s) on http://%s:%d", settings.project_dir, settings.gateway, host, port)
        # log_config=None: uvicorn keeps the handler configure_logging gave it (one format per role).
        config = uvicorn.Config(app, host=host, port=port, log_level="info", log_config=None, timeout_keep_alive=300)
        uvicorn.Server(config).run()


@click.command("doctor")
@click.pass_obj
def doctor_command(settings: Settings) -> None:
    """Check warehouse access, RAW grants, target schemas, state database and bucket."""
    from meshctl.service.doctor import render, run_checks

    checks = run_checks(settings)
    render(checks)
    if not all(c.ok for c in checks):
        raise SystemExit(1)
