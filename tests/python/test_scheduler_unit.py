"""The scheduler's decisions with an injected runner (no SQLMesh run), against a real PostgreSQL:
failure classification, retries with exponential backoff, the advisory lock, the run history,
the heartbeat and `meshctl health`."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from meshctl.service import heartbeat
from meshctl.service.attempts import Attempt
from meshctl.service.failures import PERMANENT, TRANSIENT, classify, describe_exception
from meshctl.service.run_history import RunHistory
from meshctl.service.run_lock import RunLock
from meshctl.service.scheduler import Scheduler
from meshctl.service.state_db import connect_state_db
from meshctl.settings import Settings


@pytest.fixture
def settings(pg_server, pg_database, tmp_path) -> Settings:
    return Settings(
        project_dir=tmp_path,
        gateway="test",
        state_db={"host": pg_server.host, "port": pg_server.port, "user": pg_server.user,
                  "name": pg_database, "sslmode": "disable"},
        scheduler={"run_max_attempts": 4, "run_retry_initial_seconds": 1, "run_retry_max_seconds": 3,
                   "run_time_limit_seconds": 60, "run_log_dir": tmp_path / "runs"},
        heartbeat={"path": tmp_path / "hb.json"},
    )


import contextlib


@contextlib.contextmanager
def connect(settings):
    conn = connect_state_db(settings.state_db)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


class ScriptedRunner:
    """Returns the given attempts in order; records each call."""

    def __init__(self, *attempts: Attempt):
        self.attempts = list(attempts)
        self.calls = 0

    def __call__(self, settings, *, deadline, stop, tick, log_path, lock=None, run_id=None):
        self.calls += 1
        tick()
        return self.attempts.pop(0)


def _transient() -> Attempt:
    try:
        raise RuntimeError("run aborted") from ConnectionResetError("Connection reset by peer")
    except RuntimeError as exc:
        types, message, _ = describe_exception(exc)
    return Attempt("failed", error=message, error_types=types)


def _auth() -> Attempt:
    from snowflake.connector.errors import DatabaseError

    exc = DatabaseError(msg="Incorrect username or password was specified.", errno=390100, sqlstate="08004")
    types, message, _ = describe_exception(exc)
    return Attempt("failed", error=message, error_types=types)


@pytest.mark.parametrize(
    "types, message, expected",
    [
        (["snowflake.connector.errors.DatabaseError"], "390100 (08004): Incorrect username or password was specified.", PERMANENT),
        (["psycopg2.OperationalError"], 'connection to server failed: FATAL:  password authentication failed for user "x"', PERMANENT),
        (["psycopg2.OperationalError"], 'FATAL:  role "nobody" does not exist', PERMANENT),
        (["psycopg2.OperationalError"], "could not connect to server: Connection refused", TRANSIENT),
        (["snowflake.connector.errors.OperationalError"], "250003: Failed to get the response. Hanging? method: post", TRANSIENT),
        (["builtins.TimeoutError"], "", TRANSIENT),
        (["snowflake.connector.errors.ProgrammingError"], "001003 (42000): SQL compilation error: syntax error line 1", PERMANENT),
        (["duckdb.duckdb.BinderException"], 'Binder Error: Referenced column "x" not found', PERMANENT),
        (["duckdb.duckdb.IOException"], 'IO Error: Could not set lock on file "wh.duckdb": Conflicting lock is held', TRANSIENT),
        (["sqlmesh.utils.errors.NodeAuditsErrors"], "Audit 'not_null' failed for model x", PERMANENT),
        (["sqlmesh.utils.errors.ConfigError"], "Missing Slack webhook URL", PERMANENT),
        (["snowflake.connector.errors.ProgrammingError"], "000606 (57P03): No active warehouse selected", PERMANENT),
        (["snowflake.connector.errors.OperationalError"], "000625 (57014): Statement reached its statement or warehouse timeout", TRANSIENT),
        (["builtins.ValueError"], "something nobody has seen before", PERMANENT),
    ],
)
def test_classification(types, message, expected):
    assert classify(types, message) == expected


def test_transient_failures_are_retried_with_exponential_backoff_then_succeed(settings):
    sleeps: list[float] = []
    runner = ScriptedRunner(_transient(), _transient(), Attempt("success", models=["m"], intervals=[{"model": "m"}]))
    record = Scheduler(settings, runner=runner, sleep=sleeps.append).run_once()
    assert (record.status, record.attempts, runner.calls) == ("success", 3, 3)
    assert sleeps == [1, 2]  # initial 1 s, doubling, capped at 3 s
    row = RunHistory(settings.state_db).recent(1)[0]
    assert (row["status"], row["attempts"], row["models"]) == ("success", 3, ["m"])


def test_backoff_is_capped_and_attempts_are_bounded(settings):
    sleeps: list[float] = []
    runner = ScriptedRunner(*[_transient() for _ in range(4)])
    record = Scheduler(settings, runner=runner, sleep=sleeps.append).run_once()
    assert (record.status, record.attempts, record.error_class) == ("failed", 4, TRANSIENT)
    assert sleeps == [1, 2, 3]


def test_permanent_failure_is_not_retried(settings):
    sleeps: list[float] = []
    runner = ScriptedRunner(_auth(), Attempt("success"))
    record = Scheduler(settings, runner=runner, sleep=sleeps.append).run_once()
    assert (record.status, record.attempts, runner.calls, sleeps) == ("failed", 1, 1, [])
    assert record.error_class == PERMANENT and "Incorrect username or password" in record.error


def test_a_timeout_is_recorded_and_not_retried(settings):
    runner = ScriptedRunner(Attempt("timeout", error="run exceeded its time limit"), Attempt("success"))
    record = Scheduler(settings, runner=runner, sleep=lambda s: None).run_once()
    assert (record.status, record.attempts, record.error_class) == ("timeout", 1, "timeout")


def test_no_retry_that_would_end_past_the_time_limit(settings):
    settings = settings.updated(scheduler={"run_time_limit_seconds": 1.5, "run_retry_initial_seconds": 5})
    runner = ScriptedRunner(_transient(), Attempt("success"))
    record = Scheduler(settings, runner=runner, sleep=lambda s: None).run_once()
    assert (record.status, record.attempts) == ("failed", 1)


def test_lock_held_elsewhere_means_a_cron_tick_is_skipped_and_says_who_holds_it(settings):
    other = RunLock(settings.state_db, settings.run_lock, holder="a plan from the UI")
    assert other.try_acquire()
    try:
        runner = ScriptedRunner(Attempt("success"))
        record = Scheduler(settings, runner=runner).run_once("cron")
        assert record.status == "skipped" and record.error.startswith("locked")
        assert "a plan from the UI" in record.error
        assert runner.calls == 0
    finally:
        other.release()
    # Released: the next run takes it, and leaves it free again.
    record = Scheduler(settings, runner=ScriptedRunner(Attempt("success"))).run_once()
    assert record.status == "success"
    probe = RunLock(settings.state_db, settings.run_lock)
    assert probe.try_acquire()
    probe.release()


def test_a_manual_run_waits_for_the_lock_bounded_and_runs_once_it_is_free(settings, caplog):
    settings = settings.updated(run_lock={"wait_seconds": 20})
    other = RunLock(settings.state_db, settings.run_lock, holder="a plan from the CLI")
    assert other.try_acquire()
    threading.Timer(2.0, other.release).start()
    started = time.monotonic()
    with caplog.at_level("INFO", logger="meshctl.service.scheduler"):
        record = Scheduler(settings, runner=ScriptedRunner(Attempt("success"))).run_once()
    assert record.status == "success"
    assert 1.5 < time.monotonic() - started < 15
    assert "waiting for the run lock, held by a plan from the CLI" in caplog.text

    # Held for longer than the wait: skipped, naming the holder and the setting to raise.
    settings = settings.updated(run_lock={"wait_seconds": 1})
    assert other.try_acquire()
    try:
        record = Scheduler(settings, runner=ScriptedRunner(Attempt("success"))).run_once()
    finally:
        other.release()
    assert record.status == "skipped"
    assert "a plan from the CLI" in record.error and "MESHCTL_RUN_LOCK_WAIT_SECONDS" in record.error


def test_a_dead_holders_lease_blocks_others_for_one_lease_at_most(settings):
    """A killed holder stops renewing; its lease runs out and the next writer takes over, with a
    new fencing token, and the dead grant is recorded as expired."""
    settings = settings.updated(run_lock={"lease_seconds": 4})
    holder = RunLock(settings.state_db, settings.run_lock, holder="killed")
    assert holder.try_acquire()
    dead_token = holder.token
    holder._stop.set()  # what SIGKILL does to its renewal: it just stops
    started = time.monotonic()
    probe = RunLock(settings.state_db, settings.run_lock, holder="next")
    assert not probe.try_acquire(), "no takeover while the lease stands"
    while not probe.try_acquire():
        assert time.monotonic() - started < 8
        time.sleep(0.2)
    assert time.monotonic() - started > 2.5, "taken over only after the lease ran out"
    assert probe.token == dead_token + 1
    probe.release()
    with connect(settings) as cur:
        cur.execute("SELECT token, ended FROM meshctl.run_lock_grants ORDER BY token")
        assert cur.fetchall() == [(dead_token, "expired"), (dead_token + 1, "released")]


def test_a_connection_reset_does_not_lose_the_lease(settings):
    """The state database resets every connection (failover, restart): the holder re-connects,
    renews, and nobody else can take the lock meanwhile."""
    settings = settings.updated(run_lock={"lease_seconds": 4})
    holder = RunLock(settings.state_db, settings.run_lock, holder="long run")
    assert holder.try_acquire()
    try:
        for _ in range(3):
            with connect(settings) as cur:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            time.sleep(2)
            assert not RunLock(settings.state_db, settings.run_lock).try_acquire()
        time.sleep(3)  # past the first lease: renewed on new connections
        assert holder.held and holder.lost is None
        holder.verify()
        assert not RunLock(settings.state_db, settings.run_lock).try_acquire()
    finally:
        holder.release()


def test_a_holder_that_cannot_renew_is_told_before_its_lease_can_expire(settings):
    settings = settings.updated(run_lock={"lease_seconds": 4})
    lost = threading.Event()
    holder = RunLock(settings.state_db, settings.run_lock, holder="cut off", on_lost=lambda reason: lost.set())
    assert holder.try_acquire()
    # Cut it off from the state database: every renewal fails to connect.
    holder.db = settings.state_db.model_copy(update={"port": 1})
    assert lost.wait(6)
    told = time.monotonic()
    with pytest.raises(Exception, match="lost"):
        holder.verify()
    probe = RunLock(settings.state_db, settings.run_lock)
    while not probe.try_acquire():
        time.sleep(0.1)
    assert time.monotonic() - told > 0.5, "the holder knew before anyone could take over"
    probe.release()


def test_the_fence_covers_the_evaluator_copies_sqlmesh_writes_through():
    """Plans, and runs since sqlmesh 0.236, write through a copy of the context's evaluator
    (SnapshotEvaluator.set_correlation_id); the fence must be on those copies too, and only while
    it is up."""
    from sqlmesh.core.config.connection import DuckDBConnectionConfig
    from sqlmesh.core.snapshot.evaluator import SnapshotEvaluator
    from sqlmesh.utils import CorrelationId

    from meshctl.service.run_lock import fence_evaluator

    evaluator = SnapshotEvaluator({"local": DuckDBConnectionConfig().create_engine_adapter()})
    checks: list[str] = []
    try:
        with fence_evaluator(evaluator, lambda: checks.append("verified")):
            run_copy = evaluator.set_correlation_id(CorrelationId.from_run_id("r1"))
            run_copy.cleanup([])
            assert checks == ["verified"], "a write through the run's copy checked the lock"
            run_copy.set_correlation_id(CorrelationId.from_plan_id("p1")).cleanup([])
            evaluator.cleanup([])
            assert len(checks) == 3, "copies of copies and the evaluator itself are fenced"
        checks.clear()
        run_copy.cleanup([])
        evaluator.set_correlation_id(CorrelationId.from_run_id("r2")).cleanup([])
        assert checks == [], "after the fence is down nothing checks a lock it no longer holds"
        assert not {"cleanup", "set_correlation_id"} & (vars(evaluator).keys() | vars(run_copy).keys())
    finally:
        evaluator.close()


def test_a_cron_tick_runs_once_and_dead_runs_are_marked_abandoned(settings):
    from datetime import datetime, timezone

    from meshctl.service.run_history import RunRecord

    history = RunHistory(settings.state_db)
    history.ensure()
    dead = RunRecord(run_id="dead", trigger="cron", environment="prod", gateway="test", host="h", pid=1,
                     started_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    history.write(dead)
    tick = datetime(2026, 1, 2, 3, 0, tzinfo=timezone.utc)
    first = Scheduler(settings, runner=ScriptedRunner(Attempt("success"))).run_once("cron", scheduled_for=tick)
    second_runner = ScriptedRunner(Attempt("success"))
    second = Scheduler(settings, runner=second_runner).run_once("cron", scheduled_for=tick)
    assert first.status == "success"
    assert second.status == "skipped" and "already ran" in second.error and second_runner.calls == 0
    statuses = {r["run_id"]: r["status"] for r in history.recent(10)}
    assert statuses["dead"] == "abandoned"


def test_sigterm_between_attempts_stops_retrying(settings):
    scheduler = Scheduler(settings, runner=None, sleep=lambda s: scheduler.stop.set())
    scheduler.runner = ScriptedRunner(_transient(), Attempt("success"))
    record = scheduler.run_once()
    assert record.status == "interrupted" and record.attempts == 1
    assert "Connection reset" in record.error


def test_heartbeat_and_health(settings):
    ok, detail = heartbeat.check(settings)
    assert not ok and "no heartbeat" in detail
    scheduler = Scheduler(settings, runner=ScriptedRunner(Attempt("success")), beat=True)
    scheduler.run_once()
    ok, detail = heartbeat.check(settings)
    assert ok, detail
    beat = json.loads(Path(settings.heartbeat.path).read_text())
    assert beat["role"] == "scheduler"
    ok, detail = heartbeat.check(settings, now=beat["ts"] + settings.heartbeat.max_age_seconds + 1)
    assert not ok and "stuck" in detail


def test_runs_command_lists_recent_runs(settings, pg_server, pg_database):
    from click.testing import CliRunner

    from meshctl.cli import main
    from meshctl.settings import get_settings

    Scheduler(settings, runner=ScriptedRunner(_auth())).run_once()
    get_settings.cache_clear()
    env = {**pg_server.env(pg_database), "MESHCTL_PROJECT_DIR": str(settings.project_dir)}
    try:
        result = CliRunner().invoke(main, ["runs"], env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "failed" in result.output and "Incorrect username or password" in result.output


def test_notifications_are_built_from_settings(settings):
    from meshctl.service import notify

    assert notify.targets(settings.notify) == []
    configured = settings.notify.model_copy(
        update={
            "slack_webhook_url": SecretStr("http://127.0.0.1:9/hook"),
            "smtp_host": "smtp.example.invalid",
            "smtp_user": "u",
            "smtp_password": SecretStr("p"),
            "smtp_sender": "meshctl@example.invalid",
            "smtp_recipients": "a@example.invalid, b@example.invalid",
        }
    )
    kinds = sorted(t.type_ for t in notify.targets(configured))
    assert kinds == ["slack_webhook", "smtp"]
    # Unreachable targets are logged, never raised.
    assert notify.run_failed(configured.model_copy(update={"smtp_host": None}), "x", "y") == 0


def test_a_child_killed_after_writing_its_result_is_a_timeout(settings, tmp_path, monkeypatch):
    """The child wrote {"status": "success", ...} and then hung on its way out: at the deadline the
    runner kills it and reports a timeout (it raised TypeError: a keyword given twice)."""
    import subprocess
    import sys

    from meshctl.service import scheduler

    real_popen = subprocess.Popen

    def wrote_then_hung(args, **kwargs):
        result_path = args[args.index("--child") + 1]
        script = (f"import json, pathlib, time; pathlib.Path({result_path!r}).write_text("
                  "json.dumps({'status': 'success', 'models': ['m'], 'error': None})); time.sleep(60)")
        return real_popen([sys.executable, "-c", script], **kwargs)

    monkeypatch.setattr(scheduler.subprocess, "Popen", wrote_then_hung)
    runner = scheduler.ChildRunner()
    runner.poll_seconds = 0.1
    attempt = runner(settings, deadline=time.monotonic() + 2, stop=threading.Event(), tick=lambda: None,
                     log_path=tmp_path / "run.log")
    assert attempt.status == "timeout"
    assert attempt.models == ["m"]
    assert "time limit of 60s" in attempt.error


def test_a_hung_state_backup_is_killed_at_its_time_limit_and_the_scheduler_goes_on(settings, caplog, monkeypatch):
    """S3 accepts the connection and never answers: before, the backup ran in the loop's own
    process with no limit (botocore waits a minute per try, with retries), stopping the
    heartbeat and every run; now its child is killed at the limit and the lock comes back."""
    import socket

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # made-up keys: the request must be sent
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    blackhole = socket.create_server(("127.0.0.1", 0))  # accepts (the backlog), never answers
    settings = settings.updated(
        artifacts={"bucket": "goodword-artifacts"}, aws={"endpoint_url": f"http://127.0.0.1:{blackhole.getsockname()[1]}"},
        state_backup={"time_limit_seconds": 4}, run_lock={"lease_seconds": 8},
    )
    scheduler = Scheduler(settings, runner=ScriptedRunner(), beat=True)
    from datetime import datetime, timezone

    started = time.monotonic()
    with caplog.at_level("INFO", logger="meshctl.service.scheduler"):
        next_due = scheduler._backup(datetime.now(timezone.utc))
    elapsed = time.monotonic() - started
    blackhole.close()
    assert 3.5 < elapsed < 10, elapsed
    assert "exceeded its time limit of 4s; killed" in caplog.text
    assert next_due is not None
    ok, detail = heartbeat.check(settings)
    assert ok, f"the heartbeat went on during the backup: {detail}"
    probe = RunLock(settings.state_db, settings.run_lock)
    assert probe.try_acquire(), "the lock came back"
    probe.release()


def test_settings_reach_a_child_whole_with_secrets_outside_the_environment(settings):
    from meshctl.settings import settings_for_child, settings_from_parent

    settings = settings.updated(state_db={"password": SecretStr("pw-123")}, snowflake={"private_key": SecretStr("k")})
    settings._secrets_resolved = True
    again = settings_from_parent(settings_for_child(settings))
    assert again == settings
    assert again.state_db.password.get_secret_value() == "pw-123"
    assert again._secrets_resolved, "the child does not fetch the secrets again"
