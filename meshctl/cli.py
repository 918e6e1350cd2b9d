"""`meshctl`: the one console entry point of the runtime.

Each verb lives in the module named for what it does; this file only wires them up.
"""

from __future__ import annotations

import click

from meshctl.settings import get_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--gateway",
    "-g",
    default=None,
    help="SQLMesh gateway (local, fakesnow, snowflake). Default: MESHCTL_GATEWAY or local.",
)
@click.pass_context
def main(ctx: click.Context, gateway: str | None) -> None:
    """Run and operate the Goodword SQLMesh project."""
    settings = get_settings()
    if gateway:
        settings.gateway = gateway
    ctx.obj = settings


# Verbs are registered below, one line each, so parallel work touches only its own line.
from meshctl.sqlmesh_cli import sqlmesh_command  # noqa: E402

main.add_command(sqlmesh_command)
from meshctl.doctor import doctor_command  # noqa: E402

main.add_command(doctor_command)
from meshctl.scheduler import run_once_command, runs_command, scheduler_command  # noqa: E402

main.add_command(scheduler_command)
main.add_command(run_once_command)
main.add_command(runs_command)
from meshctl.heartbeat import health_command  # noqa: E402

main.add_command(health_command)
from meshctl.ui import ui_command  # noqa: E402

main.add_command(ui_command)
from meshctl.demo_data import demo_data_command  # noqa: E402

main.add_command(demo_data_command)
from meshctl.artifacts import artifacts_group  # noqa: E402

main.add_command(artifacts_group)
from meshctl.state_backup import state_group  # noqa: E402

main.add_command(state_group)
from meshctl.raw_load import load_raw_command  # noqa: E402

main.add_command(load_raw_command)
