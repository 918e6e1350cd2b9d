"""`meshctl health`: the container health check (kept free of SQLMesh: it runs every 30 s)."""

from __future__ import annotations

import click

from meshctl.service.heartbeat import check
from meshctl.settings import Settings


@click.command("health")
@click.pass_obj
def health_command(settings: Settings) -> None:
    """Container health check: fresh scheduler heartbeat, or the UI's /healthz answering."""
    ok, detail = check(settings)
    click.echo(("healthy: " if ok else "unhealthy: ") + detail)
    raise SystemExit(0 if ok else 1)
