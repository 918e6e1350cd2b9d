"""`meshctl sqlmesh ARGS...`: the sqlmesh CLI with secrets resolved and the emulated gateway
patched in-process, so `meshctl -g fakesnow sqlmesh plan` works like `sqlmesh plan`."""

from __future__ import annotations

import click

from meshctl import secrets
from meshctl.gateways import emulation


@click.command(
    "sqlmesh",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def sqlmesh_command(settings, args: tuple[str, ...]) -> None:
    """Run any sqlmesh command against the selected gateway (e.g. `meshctl sqlmesh plan prod`)."""
    from sqlmesh.cli.main import cli

    if settings.gateway == "local":
        settings.resolve(settings.local_data_dir).mkdir(parents=True, exist_ok=True)
    argv = ["--paths", str(settings.project_dir), "--gateway", settings.gateway, *args]
    with secrets.exported(settings), emulation(settings, settings.gateway):
        try:
            cli.main(args=argv, prog_name="sqlmesh", standalone_mode=False)
        except click.exceptions.Exit as exc:
            raise SystemExit(exc.exit_code) from None
        except click.ClickException as exc:
            exc.show()
            raise SystemExit(exc.exit_code) from None
