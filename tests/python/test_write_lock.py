"""One writer at a time, proven with faults: the state database resetting every connection in
the middle of a run, and plans from the UI's code path and the CLI arriving while a run writes.

Each writer's window is read from the lock's own record (`meshctl.run_lock_grants`): DuckDB's
file lock would serialize two overlapping writers by itself and hide an overlap, the lock's
record does not. Real `meshctl` processes, real PostgreSQL, the test project of service_helpers.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from service_helpers import (
    DAYS,
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
)

EVENTS_PER_DAY = 5


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


@pytest.fixture
def env(project, pg_server, pg_database):
    # A short lease, so a trial sees several renewals; writers wait up to a minute.
    return service_env(project, pg_server.env(pg_database), MESHCTL_RUN_LOCK_LEASE_SECONDS="6",
                       MESHCTL_RUN_LOCK_WAIT_SECONDS="120")


def _grants(pg_server, db) -> list[dict]:
    with pg_server.connect(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT token, holder, acquired_at, verified_at, released_at, ended "
                    "FROM meshctl.run_lock_grants ORDER BY token")
        names = [d.name for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def _assert_windows_do_not_overlap(grants: list[dict]) -> None:
    """Every grant released (nobody died here), each writer's last write check inside its own
    window, and each window starting after the previous one ended."""
    assert grants, "the lock recorded no writer"
    for grant in grants:
        assert grant["ended"] == "released" and grant["released_at"] is not None, grant
        if grant["verified_at"] is not None:
            assert grant["acquired_at"] <= grant["verified_at"] <= grant["released_at"], grant
    for before, after in zip(grants, grants[1:]):
        assert after["acquired_at"] >= before["released_at"], f"overlap:\n{before}\n{after}"


def _wait_for(predicate, timeout: float, what: str, log=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text() if log and log.exists() else ''}")


def _assert_marts_exact(project) -> None:
    rows = model_rows(project)
    ids = [int(r[0]) for r in rows["staging.stg_events"]]
    assert sorted(ids) == sorted(i * 1000 + n for i in range(DAYS) for n in range(EVENTS_PER_DAY))
    counts = rows["marts.daily_event_counts"]
    assert len(counts) == len({(r[0], r[1]) for r in counts}), "duplicate rows in the mart"
    assert sum(r[2] for r in counts) == len(ids) == DAYS * EVENTS_PER_DAY


def test_connection_resets_mid_run_do_not_let_a_second_run_in(project, env, pg_server, pg_database, tmp_path):
    plan_prod(env)
    for i in range(DAYS):
        land_day(project, i, now_utc())
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = spawn_meshctl("run-once", env={**env, "SERVICE_TEST_PAUSE": "2"}, log=first_log)
    with terminating(first):
        _wait_for(lambda: "Evaluating" in first_log.read_text(), 60, "the first run to evaluate", first_log)
        second = spawn_meshctl("run-once", env=env, log=second_log)
        with terminating(second):
            resets = 0
            for _ in range(3):  # the state database drops every connection, three times
                with pg_server.connect(pg_database) as conn, conn.cursor() as cur:
                    cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
                    resets += cur.fetchone()[0]
                time.sleep(2.5)
            assert first.wait(timeout=120) == 0, first_log.read_text()
            assert second.wait(timeout=120) == 0, second_log.read_text()
    assert resets >= 3, "the resets cut live connections"
    assert "waiting for the run lock, held by scheduler manual run" in second_log.read_text()

    grants = _grants(pg_server, pg_database)
    _assert_windows_do_not_overlap(grants)
    runs = [g for g in grants if "scheduler manual run" in g["holder"]]
    assert len(runs) == 2 and runs[0]["verified_at"] is not None, "the first run checked the lock before writing"
    statuses = [r["status"] for r in history_rows(pg_server, pg_database)]
    assert statuses in (["success", "success"], ["success", "nothing_to_do"]), statuses
    _assert_marts_exact(project)


# What the UI does when "Apply" is pressed: its own run_plan_apply on the context it loaded (a
# restatement, so the apply writes for a while). The real UI keeps its context -- and on DuckDB
# the warehouse file -- open for good, which is why compose gives each role its own local copy;
# this process closes both once the apply is done.
UI_APPLY = textwrap.dedent(
    """
    from sqlmesh import Context
    from web.server import models
    from web.server.api.endpoints.commands import run_plan_apply

    from meshctl.service import writers
    from meshctl.settings import get_settings

    settings = get_settings()
    writers.install_context_guards(settings)  # as `meshctl ui` does before serving
    context = Context(paths=[settings.project_dir], gateway=settings.gateway)
    run_plan_apply(context, "prod", models.PlanOptions(restate_models="staging.stg_events", skip_tests=True))
    context.close()
    print("ui apply done", flush=True)
    """
)


def test_plans_from_the_ui_and_the_cli_take_turns_with_scheduled_runs(project, env, pg_server, pg_database, tmp_path):
    plan_prod(env)
    for i in range(DAYS):
        land_day(project, i, now_utc())
    assert meshctl("run-once", env=env).returncode == 0
    slow = {**env, "SERVICE_TEST_PAUSE": "3"}
    logs = {name: tmp_path / f"{name}.log" for name in ("ui", "cron", "cli", "manual")}
    ui = subprocess.Popen([sys.executable, "-c", UI_APPLY], env=slow, cwd=env["MESHCTL_PROJECT_DIR"],
                          stdout=open(logs["ui"], "wb"), stderr=subprocess.STDOUT)
    with terminating(ui):
        # The UI's console shows nothing on stdout: the lock says when the apply holds it.
        _wait_for(lambda: any(g["released_at"] is None and "sqlmesh plan" in g["holder"]
                              for g in _grants(pg_server, pg_database)), 90, "the UI's apply to hold the lock", logs["ui"])
        # While it writes: a cron tick, a CLI restatement and a manual run arrive.
        cron = spawn_meshctl("scheduler", "--max-ticks", "1", env={**env, "MESHCTL_SCHEDULE_CRON": "* * * * * */2"},
                             log=logs["cron"])
        cli = spawn_meshctl("sqlmesh", "plan", "prod", "--restate-model", "staging.stg_events", "--auto-apply",
                            "--no-prompts", "--skip-tests", env=slow, log=logs["cli"])
        manual = spawn_meshctl("run-once", env=env, log=logs["manual"])
        with terminating(cron), terminating(cli), terminating(manual):
            for name, proc in (("ui", ui), ("cron", cron), ("cli", cli), ("manual", manual)):
                assert proc.wait(timeout=180) == 0, f"{name}:\n{logs[name].read_text()}"
    assert "ui apply done" in logs["ui"].read_text()
    assert "waiting for the run lock, held by sqlmesh plan" in logs["cli"].read_text() + logs["manual"].read_text()

    grants = _grants(pg_server, pg_database)
    _assert_windows_do_not_overlap(grants)
    rows = history_rows(pg_server, pg_database, plans=True)
    by_trigger = {}
    for row in rows:
        by_trigger.setdefault(row["trigger"], []).append(row)
    # Set-up plan, the UI's and the CLI's restatements: all recorded as plans, all done.
    assert [r["status"] for r in by_trigger["plan"]] == ["success"] * 3, by_trigger["plan"]
    # The cron tick found the UI's apply holding the lock, stood down, and said who held it.
    (tick,) = by_trigger["cron"]
    assert tick["status"] == "skipped" and "sqlmesh plan" in tick["error"], tick
    assert [r["status"] for r in by_trigger["manual"]][-1] in ("success", "nothing_to_do")
    _assert_marts_exact(project)
