"""`meshctl`: the one console entry point of the runtime.

Each verb lives in the module named for what it does; this file only wires them up.
"""

from __future__ import annotations

import click

from meshctl.artifacts import artifacts_group
from meshctl.demo import demo_command
from meshctl.demo_data import demo_data_command
from meshctl.doctor import doctor_command
from meshctl.heartbeat import health_command
from meshctl.raw_load import load_raw_command
from meshctl.scheduler import run_once_command, runs_command, scheduler_command
from meshctl.settings import get_settings
from meshctl.sqlmesh_cli import sqlmesh_command
from meshctl.state_backup import state_group
from meshctl.ui import ui_command


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
        settings = settings.model_copy(update={"gateway": gateway})
    ctx.obj = settings


for command in (
    # build and data
    demo_command,
    demo_data_command,
    load_raw_command,
    sqlmesh_command,
    # operate
    doctor_command,
    ui_command,
    scheduler_command,
    run_once_command,
    runs_command,
    health_command,
    # artifacts in S3
    artifacts_group,
    state_group,
):
    main.add_command(command)
