"""meshctl/settings.py: one Settings object in parts, each read from its own flat variables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from meshctl.settings import (
    Settings,
    every_setting,
    settings_for_child,
    settings_from_parent,
    variable_names,
)

REPO = Path(__file__).resolve().parents[2]


def test_each_part_reads_its_documented_variables(monkeypatch):
    monkeypatch.setenv("MESHCTL_RUN_LOCK_LEASE_SECONDS", "9")
    monkeypatch.setenv("STATE_DB_HOST", "db.internal")
    monkeypatch.setenv("MESHCTL_SCHEDULE_CRON", "*/5 * * * *")
    monkeypatch.setenv("MESHCTL_GATEWAY", "fakesnow")
    settings = Settings(_env_file=None)
    assert settings.run_lock.lease_seconds == 9
    assert settings.state_db.host == "db.internal"
    assert settings.scheduler.cron == "*/5 * * * *"
    assert settings.gateway == "fakesnow"


def test_a_field_is_never_read_from_a_variable_named_like_it(monkeypatch):
    """`settings.state_db.user` is STATE_DB_USER or PGUSER, never $USER; `ui.port` never $PORT."""
    for name in ("USER", "PGUSER", "STATE_DB_USER", "PORT", "HOST", "PGHOST", "STATE_DB_HOST", "KEY", "PATH_"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USER", "someone")
    monkeypatch.setenv("PORT", "1234")
    monkeypatch.setenv("HOST", "elsewhere")
    monkeypatch.setenv("KEY", "1")
    settings = Settings(_env_file=None)
    assert settings.state_db.user == "postgres"
    assert settings.ui.port == 8000 and settings.ui.host == "0.0.0.0"
    assert settings.state_db.host == "127.0.0.1"
    assert settings.run_lock.key == 7_311_203_145_002_001


def test_every_part_reads_the_env_file_given_to_the_whole(tmp_path, monkeypatch):
    for name in ("MESHCTL_RUN_LOCK_WAIT_SECONDS", "MESHCTL_UI_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / "x.env"
    env_file.write_text("MESHCTL_RUN_LOCK_WAIT_SECONDS=7\nMESHCTL_UI_USERNAME=ops\n")
    settings = Settings(_env_file=env_file)
    assert settings.run_lock.wait_seconds == 7 and settings.ui.username == "ops"
    assert Settings(_env_file=None).run_lock.wait_seconds == 600
    # A part given in part keeps reading the file for the rest.
    assert Settings(_env_file=env_file, ui={"port": 9000}).ui.username == "ops"


def test_old_flat_names_and_unknown_settings_are_refused():
    with pytest.raises(TypeError, match="no setting state_db_host"):
        Settings(_env_file=None, state_db_host="x")
    with pytest.raises(TypeError, match="StateDbSettings has no setting hostname"):
        Settings(_env_file=None, state_db={"hostname": "x"})
    with pytest.raises(TypeError, match="RunLockSettings has no setting lease"):
        Settings(_env_file=None).updated(run_lock={"lease": 4})
    with pytest.raises(TypeError, match="Settings has no setting run_lock_lease_seconds"):
        Settings(_env_file=None).updated(run_lock_lease_seconds=4)


def test_updated_copies_only_the_named_values():
    settings = Settings(_env_file=None)
    settings._secrets_resolved = True
    other = settings.updated(gateway="fakesnow", run_lock={"lease_seconds": 4})
    assert (other.gateway, other.run_lock.lease_seconds, other.run_lock.wait_seconds) == ("fakesnow", 4, 600)
    assert (settings.gateway, settings.run_lock.lease_seconds) == ("local", 60)
    assert other._secrets_resolved


def test_a_child_gets_every_part_and_secret_from_its_parent(monkeypatch):
    settings = Settings(_env_file=None, gateway="fakesnow", state_db={"password": SecretStr("pw-1")},
                        snowflake={"private_key": SecretStr("k")}, run_lock={"lease_seconds": 5},
                        data_dirs={"local": Path("/tmp/x")})
    settings._secrets_resolved = True
    text = settings_for_child(settings)
    assert json.loads(text)["state_db"]["password"] == "pw-1"
    monkeypatch.setenv("MESHCTL_RUN_LOCK_LEASE_SECONDS", "99")  # the child's environment is not read
    child = settings_from_parent(text)
    assert child == settings and child._secrets_resolved
    assert child.state_db.password.get_secret_value() == "pw-1"
    assert child.run_lock.lease_seconds == 5 and child.data_dirs.local == Path("/tmp/x")


def test_every_variable_belongs_to_one_setting():
    names = [name for name, _ in every_setting()]
    assert len(names) == len(set(names)) > 70
    assert {"MESHCTL_RUN_LOCK_LEASE_SECONDS", "PGHOST", "AWS_DEFAULT_REGION", "MESHCTL_GATEWAY"} <= variable_names()


def _defaults_by_variable() -> dict[str, str]:
    return {name: str(field.default) for name, field in every_setting() if field.default is not None}


def test_config_yaml_fallbacks_are_the_settings_defaults():
    """settings.py is the home of every default; config.yaml's env_var() fallbacks (for bare
    `sqlmesh`) must say the same."""
    defaults = _defaults_by_variable()
    text = (REPO / "config.yaml").read_text()
    found = re.findall(r"env_var\('([A-Z_]+)',\s*'([^']*)'\)", text)
    checked = 0
    for name, fallback in found:
        if name not in defaults or fallback == "":
            continue  # read by config.yaml only (MODEL_START, FAKESNOW_PASSWORD), or "when set"
        assert fallback == defaults[name], f"config.yaml's fallback for {name} is {fallback!r}, settings.py's default {defaults[name]!r}"
        checked += 1
    assert checked >= 9
