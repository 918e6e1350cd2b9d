"""`meshctl doctor` on the emulated Snowflake gateway, real PostgreSQL state and moto S3: the
all-green case and each failure a newcomer meets, each with its own row and fix."""

from __future__ import annotations

import socket
import subprocess
import sys

import boto3
import pytest

from meshctl.project.gateways import open_context
from meshctl.raw import warehouse as raw_warehouse
from meshctl.raw.schema import raw_tables
from meshctl.service import doctor
from meshctl.settings import PROJECT_DIR, Settings

BUCKET = "doctor-artifacts"


@pytest.fixture
def emulated(tmp_path, pg_server, pg_database, aws_env, monkeypatch) -> Settings:
    """fakesnow warehouse with every RAW table (empty), fresh state database, a real bucket."""
    env = pg_server.env(pg_database) | {
        "FAKESNOW_DATA_DIR": str(tmp_path / "fakesnow"),
        "LOCAL_DATA_DIR": str(tmp_path / "local"),
        "MESHCTL_GATEWAY": "fakesnow",
        "ARTIFACTS_BUCKET": BUCKET,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    try:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-east-2"})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    settings = Settings(_env_file=None)
    with raw_warehouse.open_warehouse(settings) as adapter:
        for table in raw_tables(settings.project_dir).values():
            raw_warehouse.create_table(adapter, table, replace=True)
    return settings


def _by_name(checks):
    return {c.name: c for c in checks}


def _failed(checks):
    return {c.name: c for c in checks if not c.ok}


def _describe(checks) -> str:
    return "\n".join(f"{c.name}: {c.detail}" for c in checks if not c.ok)


def test_all_green(emulated):
    checks = doctor.run_checks(emulated)
    assert not _failed(checks), _describe(checks)
    names = [c.name for c in checks]
    for table in raw_tables(PROJECT_DIR):
        assert f"read {table}" in names
    assert "create in GOODWORD_WH.MARTS" in names and "create in GOODWORD_WH.sqlmesh__MARTS" in names
    assert any(n.startswith("S3 bucket") for n in names)
    assert "empty" in _by_name(checks)["state database: reachable, version matches"].detail


def test_wrong_password(emulated, monkeypatch):
    monkeypatch.setenv("FAKESNOW_PASSWORD", "not-the-password")
    failed = _failed(doctor.run_checks(Settings(_env_file=None)))
    login = failed["warehouse: reachable and authenticated"]
    assert "Incorrect username or password" in login.detail
    assert "key or password" in login.fix
    assert "not-the-password" not in login.detail + login.fix


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_state_database_down(emulated, monkeypatch):
    monkeypatch.setenv("STATE_DB_PORT", str(_closed_port()))
    failed = _failed(doctor.run_checks(Settings(_env_file=None)))
    assert set(failed) == {"state database: reachable, version matches"}
    state = failed["state database: reachable, version matches"]
    assert "Connection refused" in state.detail or "could not connect" in state.detail
    assert "STATE_DB_HOST" in state.fix


def test_raw_table_missing(emulated):
    with raw_warehouse.open_warehouse(emulated) as adapter:
        adapter.drop_table(raw_warehouse.quoted("AIRBYTE_DB.RAW.STRIPE_INVOICES"))
    failed = _failed(doctor.run_checks(emulated))
    assert set(failed) == {"read AIRBYTE_DB.RAW.STRIPE_INVOICES"}
    assert "SELECT" in failed["read AIRBYTE_DB.RAW.STRIPE_INVOICES"].fix


def test_bucket_missing(emulated, monkeypatch):
    monkeypatch.setenv("ARTIFACTS_BUCKET", "no-such-bucket-here")
    failed = _failed(doctor.run_checks(Settings(_env_file=None)))
    assert set(failed) == {"S3 bucket no-such-bucket-here: reachable and writable"}
    assert "NoSuchBucket" in failed["S3 bucket no-such-bucket-here: reachable and writable"].detail


def test_state_version_mismatch_says_migrate(emulated, pg_server):
    with open_context(emulated) as context:
        context.plan(auto_apply=True, no_prompts=True, skip_tests=True)
    with pg_server.connect(emulated.state_db.name) as conn, conn.cursor() as cur:
        cur.execute(f'UPDATE "{emulated.state_db.state_schema}"."_versions" SET sqlmesh_version = %s', ("0.200.0",))
    failed = _failed(doctor.run_checks(emulated))
    state = failed["state database: reachable, version matches"]
    assert "0.200.0" in state.detail
    assert "sqlmesh migrate" in state.fix and "never automatically" in state.fix


def test_cli_exit_code_and_table(emulated, monkeypatch):
    monkeypatch.setenv("FAKESNOW_PASSWORD", "wrong")
    result = subprocess.run(
        [sys.executable, "-m", "meshctl", "doctor"],
        capture_output=True, text=True, timeout=180, cwd=PROJECT_DIR,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "fix:" in result.stdout
