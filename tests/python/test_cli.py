"""The entry point: every verb resolves, and the health check stays light."""

import subprocess
import sys

import click

from meshctl.cli import VERBS, main


def test_every_verb_resolves_to_a_command():
    ctx = click.Context(main)
    for name in VERBS:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        assert command.name == name, f"{name} maps to a command named {command.name}"
    assert main.get_command(ctx, "no-such-verb") is None


def test_health_check_does_not_load_sqlmesh(tmp_path):
    # The container runs `meshctl health` every 30 s; importing SQLMesh there costs seconds.
    code = (
        "import sys; from click.testing import CliRunner; from meshctl.cli import main; "
        "CliRunner().invoke(main, ['health']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlmesh', 'duckdb')))"
    )
    env = {"MESHCTL_HEARTBEAT_PATH": str(tmp_path / "heartbeat.json"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
