"""The scheduler as it runs in the container: real `meshctl scheduler` / `meshctl run-once`
processes, SQLMesh runs in child processes, state and run history in PostgreSQL, a DuckDB (or
emulated Snowflake) warehouse. Each test is bounded (processes are killed on the way out)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from datetime import datetime
from datetime import time as dtime
from pathlib import Path

import pytest
from service_helpers import (
    DAYS,
    day,
    history_rows,
    land_day,
    make_project,
    meshctl,
    model_rows,
    now_utc,
    plan_prod,
    service_env,
    spawn_meshctl,
    terminating,
    webhook_receiver,
)

EVENTS_PER_DAY = 5


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


@pytest.fixture
def env(project, pg_server, pg_database):
    return service_env(project, pg_server.env(pg_database))


def _wait_for(predicate, timeout: float, what: str, log: Path | None = None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text() if log and log.exists() else ''}")


def _align_to(period: int, lead: float = 0.5) -> None:
    """Sleep until just after a multiple of `period` seconds, so processes started now all see
    the same next cron tick (`*/period` in the seconds field)."""
    now = time.time()
    time.sleep((period - now % period) + lead)


def _expected_stg(days: range) -> list[int]:
    return sorted(i * 1000 + n for i in days for n in range(EVENTS_PER_DAY))


def _assert_clean_tables(project: Path, days: range) -> dict:
    rows = model_rows(project)
    ids = [int(r[0]) for r in rows["staging.stg_events"]]
    assert len(ids) == len(set(ids)), "duplicate rows in staging.stg_events"
    assert sorted(ids) == _expected_stg(days)
    counts = rows["marts.daily_event_counts"]
    assert len(counts) == len(set((r[0], r[1]) for r in counts)), "duplicate rows in the mart"
    assert sum(r[2] for r in counts) == len(ids)
    return rows


def test_two_schedulers_one_run_per_tick(project, env, pg_server, pg_database, tmp_path):
    plan_prod(env)  # RAW is empty: prod exists, nothing is built yet
    landed = now_utc()
    for i in range(DAYS):
        land_day(project, i, landed)
    env = {**env, "MESHCTL_SCHEDULE_CRON": "* * * * * */10"}
    _align_to(10)
    logs = [tmp_path / f"scheduler{n}.log" for n in (1, 2)]
    procs = [
        spawn_meshctl("scheduler", "--max-ticks", "2", env={**env, "MESHCTL_HEARTBEAT_PATH": str(tmp_path / f"hb{n}.json")}, log=log)
        for n, log in zip((1, 2), logs)
    ]
    with terminating(procs[0]), terminating(procs[1]):
        for proc, log in zip(procs, logs):
            assert proc.wait(timeout=45) == 0, log.read_text()
    rows = history_rows(pg_server, pg_database)
    by_tick: dict = {}
    for row in rows:
        assert row["trigger"] == "cron"
        by_tick.setdefault(row["scheduled_for"], []).append(row)
    assert len(by_tick) == 2, rows
    for tick, tick_rows in by_tick.items():
        statuses = Counter(r["status"] for r in tick_rows)
        ran = statuses["success"] + statuses["nothing_to_do"]
        assert ran == 1, f"tick {tick}: {statuses}"
        assert statuses["skipped"] == 1, f"tick {tick}: both schedulers saw it, one stood down: {statuses}"
        assert {r["pid"] for r in tick_rows} == {p.pid for p in procs}
    first, second = sorted(by_tick)
    assert [r["status"] for r in by_tick[first] if r["status"] != "skipped"] == ["success"]
    built = [r for r in by_tick[first] if r["status"] == "success"][0]
    assert len([i for i in built["intervals"] if i["model"].endswith("STG_EVENTS")]) == DAYS
    _assert_clean_tables(project, range(DAYS))


def _tree(marker: str) -> list[int]:
    """Live processes (zombies excluded) started under the environment marker `marker`: the
    scheduler, its run process, and anything either forked."""
    out = []
    needle = f"MESHCTL_TEST_TREE={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z":
            out.append(int(entry.name))
    return out


def _kill_and_check_no_orphans(proc: subprocess.Popen, marker: str, log: Path) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    # Nothing of the run outlives its scheduler: no orphan keeps writing after the lock is gone.
    _wait_for(lambda: not _tree(marker), 10, f"the run's processes to die: {_tree(marker)}", log)


def test_sigkill_mid_run_then_next_tick_completes_like_a_clean_build(
    project, env, pg_server, pg_database_factory, tmp_path
):
    db = pg_database_factory()
    # A short lease: the killed scheduler's lock runs out before the next one starts.
    env = service_env(project, pg_server.env(db), MESHCTL_SCHEDULE_CRON="* * * * * */2",
                      MESHCTL_RUN_LOCK_LEASE_SECONDS="4")
    plan_prod(env)
    landed = now_utc()
    for i in range(DAYS):
        land_day(project, i, landed)

    log = tmp_path / "killed.log"
    # 5 s per interval: the kill must land inside the run even when a loaded machine relays the
    # log late (with 2 s the run sometimes finished before the kill).
    marker = uuid.uuid4().hex
    proc = spawn_meshctl("scheduler", env={**env, "SERVICE_TEST_PAUSE": "5", "MESHCTL_TEST_TREE": marker}, log=log)
    with terminating(proc):
        # Two of the four daily intervals are in; the third is being computed.
        _wait_for(lambda: log.read_text().count("Evaluated \"GOODWORD_WH\".\"STAGING\"") >= 2, 45, "two intervals", log)
        assert len(_tree(marker)) >= 2, "the scheduler and its run process"
        _kill_and_check_no_orphans(proc, marker, log)
    time.sleep(4)  # the dead scheduler's lease runs out

    partial = model_rows(project)["staging.stg_events"]
    assert 0 < len(partial) < DAYS * EVENTS_PER_DAY, "the kill landed mid-run"

    log2 = tmp_path / "next.log"
    proc = spawn_meshctl("scheduler", "--max-ticks", "1", env=env, log=log2)
    with terminating(proc):
        assert proc.wait(timeout=45) == 0, log2.read_text()
    rows = history_rows(pg_server, db)
    assert [r["status"] for r in rows] == ["abandoned", "success"], rows
    resumed = rows[1]
    stg_done = [i for i in resumed["intervals"] if i["model"].endswith("STG_EVENTS")]
    assert 0 < len(stg_done) < DAYS, "only the missing intervals are recomputed"
    after_recovery = _assert_clean_tables(project, range(DAYS))

    # A clean build of the same RAW data, in a fresh warehouse and a fresh state.
    clean = make_project(tmp_path / "clean")
    for i in range(DAYS):
        land_day(clean, i, landed)
    plan_prod(service_env(clean, pg_server.env(pg_database_factory())))
    assert model_rows(clean) == after_recovery


def test_twenty_random_kills_leave_no_orphans(project, env, tmp_path):
    """SIGKILL `meshctl run-once` at random points -- loading the project with a forked loader
    pool, probing, evaluating -- and nothing it started survives: the run process and
    everything it forked die with it (the keeper in scheduler._die_with_parent)."""
    import random

    plan_prod(env)
    for i in range(DAYS):
        land_day(project, i, now_utc())
    rng = random.Random(20261201)
    landed, tried = [], 0
    while len(landed) < 20:
        tried += 1
        assert tried <= 40, f"only {len(landed)} kills landed on a live run"
        marker = uuid.uuid4().hex
        log = tmp_path / f"kill{tried}.log"
        delay = rng.uniform(0.3, 8.0)
        proc = spawn_meshctl("run-once", env={
            # An evaluation outlasts every kill, so no trial commits an interval: each has work.
            **env, "SERVICE_TEST_PAUSE": "30", "MESHCTL_TEST_TREE": marker,
            "MAX_FORK_WORKERS": "2",  # SQLMesh's loader forks a pool: the orphans of issue 11
            "SERVICE_TEST_SPAWN": "1",  # and each evaluation leaves a process running
            # Each kill leaves its lease behind; a key per trial keeps them from waiting on it.
            "MESHCTL_RUN_LOCK_KEY": str(7_000 + tried),
        }, log=log)
        with terminating(proc):
            time.sleep(delay)
            if proc.poll() is not None:
                continue  # finished before the kill: not a kill
            forked = len(_tree(marker)) - 2  # beyond meshctl and its run process
            _kill_and_check_no_orphans(proc, marker, log)
        landed.append((round(delay, 1), forked))
    print(f"20 kills landed in {tried} trials (delay s, extra processes at the kill): {landed}")
    # The run process's keeper is 1; more means the run had started processes of its own.
    assert sum(forked > 1 for _, forked in landed) >= 5, "enough kills hit while the run had forked"


@pytest.fixture
def webhook():
    with webhook_receiver() as hook:
        yield hook


def _create_fakesnow_raw(project: Path) -> None:
    import fakesnow
    import snowflake.connector

    (project / "fakesnow").mkdir(exist_ok=True)
    with fakesnow.patch(db_path=str(project / "fakesnow")):
        conn = snowflake.connector.connect(account="fakesnow", user="fakesnow", password="fakesnow")
        cur = conn.cursor()
        cur.execute("CREATE DATABASE IF NOT EXISTS GOODWORD_WH")
        cur.execute("CREATE SCHEMA IF NOT EXISTS GOODWORD_WH.RAW")
        cur.execute(
            "CREATE TABLE GOODWORD_WH.RAW.EVENTS "
            "(ID NUMBER(38,0), EVENT_TYPE VARCHAR, OCCURRED_AT TIMESTAMP_NTZ, _REPLICATED_AT TIMESTAMP_NTZ)"
        )
        conn.close()


def test_wrong_warehouse_credentials_fail_once_are_recorded_and_notified(project, env, pg_server, pg_database, webhook):
    """SQLMesh's Snowflake adapter against the emulated account, which refuses a wrong password
    exactly as Snowflake's login does (390100): a permanent error, so no retry."""
    url, received = webhook
    env = {**env, "MESHCTL_GATEWAY": "fakesnow", "MESHCTL_RUN_MAX_ATTEMPTS": "3"}
    _create_fakesnow_raw(project)
    plan_prod(env)
    result = meshctl("run-once", env={**env, "FAKESNOW_PASSWORD": "not-the-password", "MESHCTL_SLACK_WEBHOOK_URL": url}, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Incorrect username or password" in result.stdout
    rows = history_rows(pg_server, pg_database)
    assert len(rows) == 1
    row = rows[0]
    assert (row["status"], row["attempts"], row["error_class"]) == ("failed", 1, "permanent")
    assert row["error"].startswith("390100 (08004): Incorrect username or password was specified.")
    assert row["ended_at"] is not None and row["intervals"] == []
    assert result.stdout.count("started (manual") == 1 and "retrying" not in result.stdout
    # The Slack-format notification reached the webhook: once, with the run and the cause.
    assert len(received) == 1, received
    text = json.dumps(received[0])
    assert "wrong path" not in text
    assert "SQLMesh run failed" in text and "Incorrect username or password" in text and row["run_id"] in text
    # The right password on the same state: the run proceeds (nothing landed yet, so it waits).
    ok = meshctl("run-once", env=env, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_newest_day_waits_for_its_source_then_the_next_tick_builds_it(project, env, pg_server, pg_database, tmp_path):
    plan_prod(env)
    # Days 0..2 landed in a batch loaded at 01:00 on day 3; day 3's own data has not landed.
    for i in range(DAYS - 1):
        land_day(project, i, datetime.combine(day(DAYS - 1), dtime(1, 0)))
    first = meshctl("run-once", env=env)
    assert first.returncode == 0
    rows = history_rows(pg_server, pg_database)
    assert rows[-1]["status"] == "success"
    waiting = rows[-1]["waiting"]
    assert [(w["model"], w["start"][:10], w["end"][:10]) for w in waiting] == [
        ("GOODWORD_WH.STAGING.STG_EVENTS", day(DAYS - 1).isoformat(), day(DAYS).isoformat())
    ]
    _assert_clean_tables(project, range(DAYS - 1))
    assert not [r for r in model_rows(project)["marts.daily_event_counts"] if r[0] == day(DAYS - 1)]

    # The replication service lands day 3 now; the next cron tick builds it.
    land_day(project, DAYS - 1, now_utc())
    log = tmp_path / "tick.log"
    proc = spawn_meshctl("scheduler", "--max-ticks", "1", env={**env, "MESHCTL_SCHEDULE_CRON": "* * * * * */2"}, log=log)
    with terminating(proc):
        assert proc.wait(timeout=45) == 0, log.read_text()
    tick = history_rows(pg_server, pg_database)[-1]
    assert (tick["trigger"], tick["status"], tick["waiting"]) == ("cron", "success", [])
    built = {(i["model"], i["start"][:10]) for i in tick["intervals"]}
    assert ("GOODWORD_WH.STAGING.STG_EVENTS", day(DAYS - 1).isoformat()) in built
    assert any(m.endswith("DAILY_EVENT_COUNTS") for m, _ in built)
    rows = _assert_clean_tables(project, range(DAYS))
    assert [r for r in rows["marts.daily_event_counts"] if r[0] == day(DAYS - 1)]


def test_sigterm_during_a_run_lets_it_finish_releases_the_lock_and_exits_0(project, env, pg_server, pg_database, tmp_path):
    from meshctl.service.run_lock import RunLock
    from meshctl.settings import Settings

    plan_prod(env)
    for i in range(DAYS):
        land_day(project, i, now_utc())
    log = tmp_path / "sigterm.log"
    proc = spawn_meshctl(
        "scheduler", env={**env, "SERVICE_TEST_PAUSE": "1", "MESHCTL_SCHEDULE_CRON": "* * * * * */2"}, log=log
    )
    with terminating(proc):
        _wait_for(lambda: "Evaluating \"GOODWORD_WH\".\"STAGING\"" in log.read_text(), 45, "the run to start", log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0, log.read_text()
    text = log.read_text()
    assert "received SIGTERM: finishing the current run" in text
    rows = history_rows(pg_server, pg_database)
    assert [r["status"] for r in rows] == ["success"], "the run completed, and no new one was started"
    assert len([i for i in rows[0]["intervals"] if i["model"].endswith("STG_EVENTS")]) == DAYS
    _assert_clean_tables(project, range(DAYS))
    settings = Settings(state_db={"host": pg_server.host, "port": pg_server.port, "user": pg_server.user,
                                  "name": pg_database, "sslmode": "disable"})
    lock = RunLock(settings.state_db, settings.run_lock)
    assert lock.try_acquire(), "the advisory lock was released"
    lock.release()
    beat = json.loads(Path(env["MESHCTL_HEARTBEAT_PATH"]).read_text())
    assert beat["state"] == "stopped"


def test_scheduler_gives_up_on_an_unreachable_state_db(project, env, tmp_path):
    from service_helpers import free_port

    env = {**env, "STATE_DB_PORT": str(free_port()), "MESHCTL_STATE_DB_WAIT_SECONDS": "3"}
    started = time.monotonic()
    result = meshctl("scheduler", env=env, check=False, timeout=30)
    assert result.returncode == 2
    assert time.monotonic() - started < 20
    assert "did not answer within 3s" in result.stdout
    assert result.stdout.count("not ready (attempt") >= 2


def test_a_run_over_its_time_limit_is_killed_and_recorded_as_timeout(project, env, pg_server, pg_database):
    plan_prod(env)
    for i in range(DAYS):
        land_day(project, i, now_utc())
    env = {**env, "SERVICE_TEST_PAUSE": "3", "MESHCTL_RUN_TIME_LIMIT_SECONDS": "8"}
    started = time.monotonic()
    result = meshctl("run-once", env=env, check=False, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert time.monotonic() - started < 30
    row = history_rows(pg_server, pg_database)[-1]
    assert (row["status"], row["attempts"], row["error_class"]) == ("timeout", 1, "timeout")
    assert "time limit of 8s" in row["error"]
    # Killed, not finished: some intervals are still missing, and the lock is free again.
    assert len(model_rows(project)["staging.stg_events"]) < DAYS * EVENTS_PER_DAY
    again = meshctl("run-once", env={**env, "SERVICE_TEST_PAUSE": "0"})
    assert again.returncode == 0
    _assert_clean_tables(project, range(DAYS))
