"""State backups against moto over HTTP and real PostgreSQL state: a backup restored into a fresh
database gives the same environments and intervals; incompatible backups are refused; retention
keeps exactly what the policy says."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from s3_helpers import deny_missing_keys

from meshctl.artifacts import state_backups as state_backup
from meshctl.artifacts.s3 import Bucket, SecretInUpload
from meshctl.artifacts.state_backups import IncompatibleBackup, StateBackupError
from meshctl.cli.artifacts import state_group
from meshctl.project.gateways import open_context
from meshctl.settings import Settings

# The emulated Snowflake gateway is proven elsewhere; state export/import is the same code for
# any warehouse, so this project keeps the warehouse in DuckDB and the state in PostgreSQL.
CONFIG = """\
gateways:
  local:
    connection:
      type: duckdb
      database: "{{ env_var('LOCAL_DATA_DIR') }}/warehouse.duckdb"
    state_connection:
      type: postgres
      host: "{{ env_var('STATE_DB_HOST') }}"
      port: "{{ env_var('STATE_DB_PORT') }}"
      user: "{{ env_var('STATE_DB_USER') }}"
      password: "{{ env_var('STATE_DB_PASSWORD', '') }}"
      database: "{{ env_var('STATE_DB_NAME') }}"
      sslmode: disable
    state_schema: sqlmesh
default_gateway: local
disable_anonymized_analytics: true
model_defaults:
  dialect: duckdb
  start: "2026-11-01"
"""
MODEL = """\
MODEL (
  name demo.daily_orders,
  kind INCREMENTAL_BY_TIME_RANGE (time_column order_date),
  cron '@daily',
  start '2026-11-01'
);
SELECT @start_ds::DATE AS order_date, 1 AS orders
"""
T0 = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.timezone.utc)


def make_settings(project: Path, pg_server, dbname: str, **overrides) -> Settings:
    env = pg_server.env(dbname)
    return Settings(
        _env_file=None,
        project_dir=project,
        gateway="local",
        state_db={"host": env["STATE_DB_HOST"], "port": int(env["STATE_DB_PORT"]), "user": env["STATE_DB_USER"],
                  "name": dbname, "sslmode": "disable"},
        **overrides,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    (root / "config.yaml").write_text(CONFIG)
    (root / "models" / "daily_orders.sql").write_text(MODEL)
    return root


@pytest.fixture
def planned(project, pg_server, pg_database_factory, artifacts_bucket) -> Settings:
    """A state with two environments (prod and dev) and backfilled intervals."""
    settings = make_settings(project, pg_server, pg_database_factory("statesrc"))
    with open_context(settings) as ctx:
        ctx.plan("prod", auto_apply=True, no_prompts=True)
        ctx.plan("dev", auto_apply=True, no_prompts=True, include_unmodified=True)
    return settings


def state_summary(settings: Settings) -> dict:
    """What `sqlmesh environments` shows, plus every environment's snapshots and intervals."""
    with open_context(settings) as ctx:
        reader = ctx.state_reader
        names = sorted(e.name for e in reader.get_environments_summary())
        envs = {}
        ids = set()
        for env in reader.get_environments():
            snapshot_ids = sorted(str(s.snapshot_id) for s in env.snapshots)
            envs[env.name] = {"plan_id": env.plan_id, "snapshots": snapshot_ids}
            ids |= {s.snapshot_id for s in env.snapshots}
        snapshots = reader.get_snapshots(ids)
        intervals = {str(sid): (s.intervals, s.dev_intervals) for sid, s in snapshots.items()}
    return {"names": names, "environments": envs, "intervals": intervals}


def stub_export(context, output_file: Path) -> None:
    """A minimal, valid state export with the installed versions (for retention tests, which
    are about listing and deleting backups, not about SQLMesh)."""
    output_file.write_text(
        json.dumps(
            {
                "metadata": {"timestamp": "2026-11-20 03:00:00+00:00", "file_version": 1, "importable": True},
                "versions": state_backup.installed_versions(),
                "snapshots": [],
                "environments": {},
            }
        )
    )


@pytest.fixture
def stub_state(monkeypatch):
    """No SQLMesh project or state database: backups export `stub_export`."""
    import contextlib

    monkeypatch.setattr(state_backup, "export_state_file", stub_export)
    monkeypatch.setattr(state_backup, "_context", lambda settings, context=None: contextlib.nullcontext(object()))


# --- backup and restore ----------------------------------------------------------------------


def test_backup_restored_into_a_fresh_database_gives_the_same_state(
    planned, project, pg_server, pg_database_factory, artifacts_bucket, aws_env
):
    before = state_summary(planned)
    assert before["names"] == ["dev", "prod"]
    assert all(iv for iv, _ in before["intervals"].values())

    result = state_backup.backup_state(planned)

    s3 = boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    head = s3.head_object(Bucket=artifacts_bucket, Key=result.key)
    installed = state_backup.installed_versions()["sqlmesh_version"]
    assert result.key.startswith("sqlmesh/state-backups/") and result.key.endswith(f"-sqlmesh-{installed}.json")
    assert head["Metadata"]["sqlmesh-version"] == installed
    assert head["Metadata"]["schema-version"] == str(state_backup.installed_versions()["schema_version"])
    assert head["ServerSideEncryption"] == "AES256"
    assert result.environments == ["dev", "prod"]

    fresh = make_settings(project, pg_server, pg_database_factory("statedst"))
    restored = state_backup.restore_state(fresh, result.key.rsplit("/", 1)[-1])

    assert restored.restored and restored.safety_backup is None  # nothing to save in a fresh db
    assert state_summary(fresh) == before


def test_restore_asks_first_and_backs_up_the_state_it_replaces(planned, artifacts_bucket):
    backup = state_backup.backup_state(planned, now=T0)
    questions = []

    declined = state_backup.restore_state(planned, confirm=lambda q: questions.append(q) or False)
    assert not declined.restored
    assert "Replace the SQLMesh state" in questions[0] and "environments now: dev, prod" in questions[0]
    assert [b.key for b in state_backup.list_backups(Bucket(planned))] == [backup.key]

    before = state_summary(planned)
    accepted = state_backup.restore_state(planned, backup.key, confirm=lambda q: True)
    assert accepted.restored and accepted.safety_backup
    assert {b.key for b in state_backup.list_backups(Bucket(planned))} == {backup.key, accepted.safety_backup}
    assert state_summary(planned) == before

    # The CLI prompts; answering no leaves the state alone.
    result = CliRunner().invoke(state_group, ["restore", backup.key], obj=planned, input="n\n")
    assert result.exit_code == 1 and "restore cancelled" in result.output


def test_a_backup_from_another_sqlmesh_version_is_refused(
    planned, project, pg_server, pg_database_factory, artifacts_bucket, aws_env, tmp_path
):
    backup = state_backup.backup_state(planned)
    s3 = boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    export = json.loads(s3.get_object(Bucket=artifacts_bucket, Key=backup.key)["Body"].read())
    export["versions"]["sqlmesh_version"] = "0.200.3"
    export["versions"]["schema_version"] = 80
    old_key = "sqlmesh/state-backups/20260101T000000.000Z-sqlmesh-0.200.3.json"
    s3.put_object(Bucket=artifacts_bucket, Key=old_key, Body=json.dumps(export).encode())

    fresh = make_settings(project, pg_server, pg_database_factory("statedst"))
    asked = []
    with pytest.raises(IncompatibleBackup) as err:
        state_backup.restore_state(fresh, old_key, confirm=lambda q: asked.append(q) or True)

    message = str(err.value)
    assert f"SQLMesh 0.200.3 (installed {state_backup.installed_versions()['sqlmesh_version']})" in message
    assert f"state schema 80 (installed {state_backup.installed_versions()['schema_version']})" in message
    assert 'pip install "sqlmesh==0.200.3"' in message
    assert not asked  # refused before anything was asked or touched
    assert state_summary(fresh)["names"] == []

    result = CliRunner().invoke(state_group, ["restore", old_key, "--yes"], obj=fresh)
    assert result.exit_code == 1 and "refusing to restore" in result.output


def test_backup_names_round_trip_to_the_millisecond():
    taken = dt.datetime(2026, 11, 23, 3, 0, 5, 123456, tzinfo=dt.timezone.utc)
    name = state_backup.backup_name(taken, "0.233.0")
    assert name == "20261123T030005.123Z-sqlmesh-0.233.0.json"
    parsed = state_backup.parse_backup(f"sqlmesh/state-backups/{name}")
    assert parsed.taken_at == taken.replace(microsecond=123000) and parsed.sqlmesh_version == "0.233.0"
    assert state_backup.parse_backup("sqlmesh/state-backups/20261123T030005Z-sqlmesh-0.233.0.json")
    assert state_backup.parse_backup("sqlmesh/state-backups/notes.json") is None


def test_incompatibility_checks_the_versions_sqlmesh_checks():
    here = state_backup.installed_versions()
    assert state_backup.incompatibility(dict(here)) is None
    major, minor = here["sqlmesh_version"].split(".")[:2]
    assert state_backup.incompatibility(dict(here, sqlmesh_version=f"{major}.{minor}.99")) is None  # patch only
    assert "sqlglot 29.0.0" in state_backup.incompatibility(dict(here, sqlglot_version="29.0.0"))
    assert "SQLMesh 1.0.0" in state_backup.incompatibility(dict(here, sqlmesh_version="1.0.0"))


def test_restore_of_a_missing_backup_names_it(planned):
    with pytest.raises(StateBackupError, match="no backup at s3://.*/nope.json"):
        state_backup.restore_state(planned, "nope.json")


def test_backups_work_when_s3_answers_403_for_a_missing_key(project, artifacts_bucket, pg_server, stub_state, monkeypatch):
    """The server's role may list only the prefixes it reads, so S3 answers a HEAD of a key that
    is not there with 403: a backup must not need to ask (it writes create-only instead)."""
    deny_missing_keys(monkeypatch)
    settings = make_settings(project, pg_server, "unused")

    result = state_backup.backup_state(settings, now=T0)

    assert Bucket(settings).head(result.key)["ContentLength"] == result.size
    with pytest.raises(StateBackupError, match=r"already exists; try again"):
        state_backup.backup_state(settings, now=T0)  # the same millisecond: never replaced
    with pytest.raises(StateBackupError, match="no backup at s3://.*/nope.json"):
        state_backup.resolve_backup_key(Bucket(settings), "nope.json")
    assert state_backup.resolve_backup_key(Bucket(settings), result.key.rsplit("/", 1)[-1]) == result.key


def test_a_secret_in_the_state_export_stops_the_backup(project, artifacts_bucket, pg_server, monkeypatch, aws_env):
    """A model's Python environment (a macro's source, say) is in the export: a key in it must
    not go to S3."""
    import contextlib

    def export_with_a_key(context, output_file: Path) -> None:
        stub_export(context, output_file)
        export = json.loads(output_file.read_text())
        export["snapshots"] = [{"python_env": {"TOKEN": f"ghp_{'Ab1' * 12}"}}]
        output_file.write_text(json.dumps(export, indent=2))

    monkeypatch.setattr(state_backup, "export_state_file", export_with_a_key)
    monkeypatch.setattr(state_backup, "_context", lambda settings, context=None: contextlib.nullcontext(object()))
    settings = make_settings(project, pg_server, "unused")

    with pytest.raises(SecretInUpload, match=r"-sqlmesh-.*\.json: line \d+: GitHub Token; nothing was uploaded"):
        state_backup.backup_state(settings, now=T0)
    assert state_backup.list_backups(Bucket(settings)) == []


# --- retention -------------------------------------------------------------------------------


def put_fake_backups(settings: Settings, ages_days: list[float]) -> list[str]:
    bucket = Bucket(settings)
    keys = []
    for age in ages_days:
        name = state_backup.backup_name(T0 - dt.timedelta(days=age), "0.233.0")
        key = bucket.key("state-backups", name)
        bucket.put_bytes(key, b"{}", "application/json")
        keys.append(key)
    return keys


@pytest.mark.parametrize(
    ("keep_count", "keep_days", "kept_ages"),
    [
        (2, 0, [0, 1]),  # newest two (the new one counts)
        (0, 7, [0, 1, 3]),  # younger than a week
        (2, 7, [0, 1, 3]),  # either rule keeps
        (5, 2, [0, 1, 3, 8, 20]),
        (0, 0, [0, 1, 3, 8, 20, 40]),  # no policy: keep all
    ],
)
def test_retention_keeps_exactly_what_the_policy_says(
    project, artifacts_bucket, pg_server, stub_state, keep_count, keep_days, kept_ages
):
    settings = make_settings(
        project, pg_server, "unused", state_backup={"keep_count": keep_count, "keep_days": keep_days}
    )
    fake = dict(zip([1, 3, 8, 20, 40], put_fake_backups(settings, [1, 3, 8, 20, 40])))
    bucket = Bucket(settings)
    bucket.put_bytes(bucket.key("state-backups", "README.txt"), b"not a backup", "text/plain")

    result = state_backup.backup_state(settings, now=T0)

    by_age = {**fake, 0: result.key}
    remaining = [b.key for b in state_backup.list_backups(bucket)]
    assert sorted(remaining) == sorted(by_age[a] for a in kept_ages)
    assert sorted(result.deleted) == sorted(k for a, k in by_age.items() if a not in kept_ages)
    assert bucket.head(bucket.key("state-backups", "README.txt")) is not None


def test_retention_never_deletes_the_backup_just_made(project, artifacts_bucket, pg_server, stub_state):
    settings = make_settings(project, pg_server, "unused", state_backup={"keep_count": 1, "keep_days": 0})
    newer = put_fake_backups(settings, [-1, -2])  # clock skew: two backups "from the future"

    result = state_backup.backup_state(settings, now=T0)

    remaining = {b.key for b in state_backup.list_backups(Bucket(settings))}
    assert remaining == {result.key, newer[1]}


def test_scheduled_backup_logs_and_returns_none_on_failure(project, pg_server, aws_env, stub_state, caplog, monkeypatch):
    monkeypatch.setenv("ARTIFACTS_BUCKET", "no-such-bucket-for-backups")
    settings = make_settings(project, pg_server, "unused")
    with caplog.at_level(logging.ERROR, logger="meshctl.artifacts.state_backups"):
        assert state_backup.run_scheduled_backup(settings) is None
    event = caplog.records[-1]  # the fields are the record's, not JSON inside its message
    assert event.event == "state_backup_failed" and "NoSuchBucket" in event.error


def test_scheduled_backup_succeeds_and_next_run_follows_the_cron(project, pg_server, artifacts_bucket, stub_state):
    settings = make_settings(project, pg_server, "unused", state_backup={"cron": "30 2 * * *"})
    result = state_backup.run_scheduled_backup(settings)
    assert result is not None and Bucket(settings).head(result.key)["Metadata"]["reason"] == "scheduled"
    assert state_backup.next_backup_at(settings, T0) == dt.datetime(2026, 11, 21, 2, 30, tzinfo=dt.timezone.utc)
    default = make_settings(project, pg_server, "unused")
    assert state_backup.next_backup_at(default, T0) == dt.datetime(2026, 11, 21, 3, 0, tzinfo=dt.timezone.utc)

    runner = CliRunner()
    backed_up = runner.invoke(state_group, ["backup"], obj=settings)
    assert backed_up.exit_code == 0, backed_up.output
    assert "state backup: 0 environment(s)" in backed_up.output and "retention kept" in backed_up.output
    listed = runner.invoke(state_group, ["list"], obj=settings)
    assert "2 backup(s)" in listed.output


# --- the scheduler's own backup cron -----------------------------------------------------------


def test_scheduler_takes_the_due_backup_once_and_never_under_a_run(planned, artifacts_bucket):
    from meshctl.service.run_lock import RunLock
    from meshctl.service.scheduler import Scheduler

    settings = planned.updated(artifacts={"bucket": artifacts_bucket})
    scheduler = Scheduler(settings, runner=lambda *a, **k: pytest.fail("no run expected"))
    due = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    before = len(state_backup.list_backups(Bucket(settings)))

    # A run holds the lock: no export while it may write state; retried about a minute later.
    run = RunLock(settings.state_db, settings.run_lock)
    assert run.try_acquire()
    try:
        retry_at = scheduler._backup(due)
    finally:
        run.release()
    assert len(state_backup.list_backups(Bucket(settings))) == before
    assert dt.timedelta(seconds=50) < retry_at - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(minutes=1)

    next_due = scheduler._backup(due)
    backups = state_backup.list_backups(Bucket(settings))
    assert len(backups) == before + 1 and backups[-1].taken_at >= due
    assert next_due == state_backup.next_backup_at(settings, due)
    # A second scheduler reaching the same slot finds the backup taken and adds none.
    Scheduler(settings, runner=lambda *a, **k: None)._backup(due)
    assert len(state_backup.list_backups(Bucket(settings))) == before + 1


def test_scheduler_loop_runs_the_backup_cron(planned, artifacts_bucket, monkeypatch):
    from meshctl.service.attempts import Attempt
    from meshctl.service.scheduler import Scheduler

    settings = planned.updated(
        artifacts={"bucket": artifacts_bucket},
        scheduler={"cron": "* * * * * */2"},  # the run tick: at most two seconds away
    )
    # The first backup slot is already due when the loop starts, whatever the clock says.
    real_next = state_backup.next_backup_at
    slots = []

    def next_backup_at(settings, after):
        slots.append(after)
        return after - dt.timedelta(seconds=1) if len(slots) == 1 else real_next(settings, after)

    monkeypatch.setattr(state_backup, "next_backup_at", next_backup_at)
    runs = []
    scheduler = Scheduler(settings, runner=lambda *a, **k: runs.append(1) or Attempt("nothing_to_do"))
    assert scheduler.serve(max_ticks=1) == 0
    assert runs == [1]
    backups = state_backup.list_backups(Bucket(settings))
    assert len(backups) == 1 and len(slots) == 2  # taken once, then the next slot was scheduled
