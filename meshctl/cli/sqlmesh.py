"""`meshctl sqlmesh ARGS...`: the sqlmesh CLI with secrets resolved, the emulated gateway
patched in-process (so `meshctl -g fakesnow sqlmesh plan` works like `sqlmesh plan`), and every
write under the run lock (writers.py). In the image, `sqlmesh` itself is this command.

A writing command takes the lock before SQLMesh opens anything, and holds it to the end: a plan
is computed against the state it is applied to (the plan/run race of SQLMesh issues 3866 and
5825), and on DuckDB the warehouse file admits one process at a time anyway. An interactive
`plan` therefore holds the lock while it waits at its prompt; cron ticks meanwhile are skipped
and say so (`meshctl runs`).
"""

from __future__ import annotations

import click

from meshctl import secrets
from meshctl.project.gateways import emulation

# sqlmesh commands that write to an environment or to state, and the run-history trigger each
# is recorded under (`plan --restate-model` is a plan).
WRITING_COMMANDS = {
    "plan": "plan",
    "run": "run",
    "migrate": "migrate",
    "janitor": "janitor",
    "invalidate": "invalidate",
    "rollback": "rollback",
    "destroy": "destroy",
}


def _command(args: tuple[str, ...], commands) -> tuple[str | None, str]:
    """(the sqlmesh subcommand, the environment it names or 'prod') from raw CLI arguments:
    the first argument that is one of sqlmesh's commands (root options may carry values), its
    own arguments parsed by its own click definition without running it."""
    for i, arg in enumerate(args):
        if arg in commands:
            with commands[arg].make_context(arg, list(args[i + 1:]), resilient_parsing=True) as parsed:
                environment = parsed.params.get("environment")
            return arg, environment or "prod"
    return None, "prod"


@click.command(
    "sqlmesh",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def sqlmesh_command(settings, args: tuple[str, ...]) -> None:
    """Run any sqlmesh command against the selected gateway (e.g. `meshctl sqlmesh plan prod`)."""
    import contextlib

    from sqlmesh.cli.main import cli

    from meshctl.service import writers

    if settings.gateway == "local":
        settings.resolve(settings.data_dirs.local).mkdir(parents=True, exist_ok=True)
    argv = ["--paths", str(settings.project_dir), "--gateway", settings.gateway, *args]
    command, environment = _command(args, cli.commands)
    with secrets.exported(settings), emulation(settings):
        writers.install_context_guards(settings)
        guard = contextlib.nullcontext(None)
        if command in WRITING_COMMANDS and writers.gateway_needs_lock(settings):
            from meshctl.service.state_db import wait_for_state_db

            wait_for_state_db(settings.state_db)
            guard = writers.exclusive(settings, WRITING_COMMANDS[command], environment, what=f"sqlmesh {command}")
        code = 0
        with guard as record:  # LockHeld: one line from meshctl's error handler
            try:
                cli.main(args=argv, prog_name="sqlmesh", standalone_mode=False)
            except click.exceptions.Exit as exc:
                code = exc.exit_code
            except click.ClickException as exc:
                exc.show()
                code = exc.exit_code
            if code and record is not None:
                record.status, record.error = "failed", f"sqlmesh {command} exited {code}"
        if code:
            raise SystemExit(code)
