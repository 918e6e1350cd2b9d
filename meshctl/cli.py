"""`meshctl`: the one console entry point of the runtime.

Each verb lives in the module named for what it does; this file only wires them up. Modules are
imported when their verb runs: most pull in SQLMesh (seconds), and `meshctl health` -- the
container health check, every 30 s -- must not pay for that.
"""

from __future__ import annotations

import importlib

import click

from meshctl.settings import get_settings

# verb -> "module:attribute"
VERBS = {
    # build and data
    "demo": "meshctl.demo:demo_command",
    "demo-data": "meshctl.demo_data:demo_data_command",
    "load-raw": "meshctl.raw_load:load_raw_command",
    "sqlmesh": "meshctl.sqlmesh_cli:sqlmesh_command",
    # operate
    "doctor": "meshctl.doctor:doctor_command",
    "ui": "meshctl.ui:ui_command",
    "scheduler": "meshctl.scheduler:scheduler_command",
    "run-once": "meshctl.scheduler:run_once_command",
    "runs": "meshctl.scheduler:runs_command",
    "health": "meshctl.heartbeat:health_command",
    "cost": "meshctl.cost:cost_command",
    # artifacts in S3
    "artifacts": "meshctl.artifacts:artifacts_group",
    "state": "meshctl.state_backup:state_group",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(VERBS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in VERBS:
            return None
        module, attribute = VERBS[name].split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
