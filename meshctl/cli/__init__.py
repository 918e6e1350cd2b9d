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
    "demo": "meshctl.cli.data:demo_command",
    "demo-data": "meshctl.cli.data:demo_data_command",
    "load-raw": "meshctl.cli.data:load_raw_command",
    "sqlmesh": "meshctl.cli.sqlmesh:sqlmesh_command",
    "project-docs": "meshctl.cli.project:project_docs_command",
    # operate
    "doctor": "meshctl.cli.service:doctor_command",
    "ui": "meshctl.cli.service:ui_command",
    "scheduler": "meshctl.cli.service:scheduler_command",
    "run-once": "meshctl.cli.service:run_once_command",
    "runs": "meshctl.cli.service:runs_command",
    "health": "meshctl.cli.health:health_command",
    "cost": "meshctl.cli.project:cost_command",
    # artifacts in S3
    "artifacts": "meshctl.cli.artifacts:artifacts_group",
    "state": "meshctl.cli.artifacts:state_group",
}


def _is_state_db_error(exc: Exception) -> bool:
    """psycopg2 talks to the state database only (the warehouse is Snowflake or DuckDB): an
    OperationalError from it after the start-up wait means the database went away."""
    if not type(exc).__module__.startswith("psycopg2"):
        return False
    import psycopg2

    return isinstance(exc, psycopg2.OperationalError)


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context):
        """The one error handler: an expected failure is one line (with its fix), no traceback."""
        from meshctl.errors import ExpectedFailure

        try:
            return super().invoke(ctx)
        except ExpectedFailure as exc:
            click.echo(f"meshctl: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except Exception as exc:
            if not _is_state_db_error(exc):
                raise
            from meshctl.service.state_db import refusal

            reason = refusal(ctx.obj.state_db, exc) or (
                f"lost the state database: {str(exc).strip().splitlines()[0]}. A run's lease expires by "
                "itself; `meshctl runs` shows what happened once the database is back."
            )
            click.echo(f"meshctl: error: {reason}", err=True)
            ctx.exit(2)

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
        settings = settings.updated(gateway=gateway)
    ctx.obj = settings
