"""The status page as a person sees it, in headless Chromium, over a stretch of real runs: the
project's own marts on a small demo warehouse (the `local` gateway), run history and alert state
in PostgreSQL, `meshctl run-once` processes as cron runs them, a real `meshctl ui` serving the page
(on its own copy of the warehouse, as in the compose setup) and a webhook receiver on loopback.

The stretch: prod is planned as of 70 minutes ago; then an EVENTS batch lands, stamped 10 minutes
after that plan. Run 1 cannot use the warehouse (another writer holds it) and fails; run 2 is killed at
its time limit, by which time the batch is more than two ticks old and not in the marts, so
FCT_EVENTS and METRICS_DAILY are behind; run 3 builds it. At each step the page must show what run
history and the marts say, the failure in red with its error, the stale marts as behind, and the
webhook must have got one message per incident and one per recovery.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from png_pixels import share
from service_helpers import (assert_runs_match_history, chromium_page, free_port, history_rows, spawn_meshctl,
                             terminating, wait_http, webhook_receiver)

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "admin", "status-page-test"
RED, RED_BG, GREEN = (0xC6, 0x28, 0x28), (0xFD, 0xEC, 0xEA), (0x2E, 0x7D, 0x32)
UTC = timezone.utc


def _env(root: Path, data: Path, pg_env: dict, hook_url: str, base_url: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESHCTL_", "STATE_DB_", "SNOWFLAKE_", "DEMO_"))}
    env.update(pg_env)
    env.update(
        MESHCTL_PROJECT_DIR=str(REPO), MESHCTL_GATEWAY="local", LOCAL_DATA_DIR=str(data),
        MESHCTL_HEARTBEAT_PATH=str(data / "heartbeat.json"), MESHCTL_RUN_LOG_DIR=str(root / "logs"),
        MESHCTL_RUN_MAX_ATTEMPTS="1", MESHCTL_SLACK_WEBHOOK_URL=hook_url, MESHCTL_STATUS_BASE_URL=base_url,
        MESHCTL_ALERT_BEHIND_AFTER_SECONDS="0", MAX_FORK_WORKERS="1", PYTHONUNBUFFERED="1",
        DEMO_ORGANIZATIONS="8", DEMO_USERS="40", DEMO_DAYS="3", DEMO_EVENTS_PER_DAY="60",
    )
    env.update(extra)
    return env


def _meshctl(*args: str, env: dict, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "meshctl", *args], env=env, cwd=str(REPO),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"meshctl {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def stretch(pg_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("status")
    dbname = f"meshtest_status_{uuid.uuid4().hex[:10]}"
    admin = pg_server.connect()
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{dbname}"')

    receiver = contextlib.ExitStack()  # the webhook receiver lives as long as the stretch
    hook_url, received = receiver.enter_context(webhook_receiver("/services/T0/B0/X"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runs_env = _env(root, root / "warehouse", pg_server.env(dbname), hook_url, base)
    ui_env = _env(root, root / "ui-warehouse", pg_server.env(dbname), hook_url, base,
                  MESHCTL_UI_USERNAME=USER, MESHCTL_UI_PASSWORD=PASSWORD)
    now = datetime.now(UTC).replace(microsecond=0)
    planned_at = now - timedelta(minutes=70)
    timings = {}
    try:
        began = time.monotonic()
        end_date = (now.date() - timedelta(days=3)).isoformat()
        _meshctl("demo-data", "--end-date", end_date, env=runs_env)
        _meshctl("sqlmesh", "plan", "prod", "--auto-apply", "--no-prompts", "--execution-time",
                 planned_at.strftime("%Y-%m-%d %H:%M:%S"), env=runs_env)
        timings["demo data and plan"] = time.monotonic() - began
        proc = spawn_meshctl("ui", "--host", "127.0.0.1", "--port", str(port), env=ui_env, log=root / "ui.log")
        with terminating(proc):
            began = time.monotonic()
            wait_http(f"{base}/healthz", 90, proc, root / "ui.log")
            timings["ui start"] = time.monotonic() - began
            yield {"root": root, "base": base, "env": runs_env, "db": dbname, "received": received,
                   "planned_at": planned_at, "landed_at": planned_at + timedelta(minutes=10), "timings": timings,
                   "warehouse": root / "warehouse" / "goodword_wh.duckdb"}
    finally:
        receiver.close()
        print("status page stretch:", ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.close()


def _land_events(stretch: dict) -> list[int]:
    """A replication batch of EVENTS, stamped 10 minutes after the plan, through `load-raw`."""
    snapshot = stretch["root"] / "batch"
    snapshot.mkdir(exist_ok=True)
    landed = stretch["landed_at"]
    ids = [9_000_001 + n for n in range(4)]
    lines = [json.dumps({"ID": i, "USER_ID": 1 + n, "EVENT_TYPE": "session_started", "PROPERTIES": "{}",
                         "OCCURRED_AT": (landed - timedelta(minutes=5 + n)).strftime("%Y-%m-%dT%H:%M:%S"),
                         "_REPLICATED_AT": landed.strftime("%Y-%m-%dT%H:%M:%S")})
             for n, i in enumerate(ids)]
    (snapshot / "GOODWORD_WH.RAW.EVENTS.jsonl").write_text("\n".join(lines) + "\n")
    _meshctl("load-raw", str(snapshot), env=stretch["env"])
    return ids


def _marts(stretch: dict) -> dict:
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{stretch['warehouse']}' AS GOODWORD_WH (READ_ONLY)")
        return {
            "FCT_EVENTS": con.execute("SELECT MAX(EVENT_DATE) FROM GOODWORD_WH.MARTS.FCT_EVENTS").fetchone()[0],
            "METRICS_DAILY": con.execute("SELECT MAX(DATE) FROM GOODWORD_WH.MARTS.METRICS_DAILY").fetchone()[0],
            "FCT_MRR_DAILY": con.execute("SELECT MAX(DATE) FROM GOODWORD_WH.MARTS.FCT_MRR_DAILY").fetchone()[0],
            "events": {r[0] for r in con.execute("SELECT EVENT_ID FROM GOODWORD_WH.MARTS.FCT_EVENTS WHERE EVENT_ID >= 9000000").fetchall()},
        }


def _status_json(page, base: str) -> dict:
    response = page.context.request.get(f"{base}/status.json")
    assert response.status == 200
    return response.json()


def test_the_status_page_follows_a_stretch_of_runs(stretch, pg_server):
    base, received, env = stretch["base"], stretch["received"], stretch["env"]
    shots = stretch["root"] / "screenshots"
    shots.mkdir()
    timings = stretch["timings"]
    with chromium_page((USER, PASSWORD)) as page:
        # The landing page (SQLMesh's UI) links to the status page; nothing has run yet.
        assert page.goto(base + "/").status == 200
        page.locator("#meshctl-status-link").click()
        page.wait_for_url(base + "/status")
        assert page.locator("#runs").inner_text().count("No run recorded yet") == 1
        assert "nobody" in page.locator("#lock").inner_text()
        next_tick = _status_json(page, base)["scheduler"]["next_tick"]
        assert page.locator("#next-tick").inner_text().endswith(next_tick[:19].replace("T", " "))

        ids = _land_events(stretch)

        # Run 1: another writer holds the DuckDB warehouse, so the run cannot open it.
        began = time.monotonic()
        with duckdb.connect(str(stretch["warehouse"])):
            first = _meshctl("run-once", env=env, check=False)
        timings["run 1 (failed)"] = time.monotonic() - began
        assert first.returncode == 1, first.stdout[-2000:] + first.stderr[-2000:]
        rows = history_rows(pg_server, stretch["db"])
        assert [r["status"] for r in rows] == ["failed"]
        page.reload()
        facts = _status_json(page, base)
        assert_runs_match_history(page, facts, rows)
        error = rows[0]["error"].strip().splitlines()[0]  # whatever SQLMesh made of the held file
        failed = page.locator(f'tr.run[data-run="{rows[0]["run_id"]}"]')
        assert failed.locator("td.error").inner_text() == error
        assert share(failed.locator(".badge").screenshot(), RED) > 0.3  # a red badge...
        assert share(failed.screenshot(path=str(shots / "failed-run.png")), RED_BG) > 0.5  # ...on a red row
        assert page.locator("#alerts .alert.open").inner_text().startswith("SQLMesh run failed")
        # Its page: the error in full and the run's log.
        page.locator(f'tr.run[data-run="{rows[0]["run_id"]}"] a').click()
        assert page.locator("#run-error").inner_text() == rows[0]["error"].strip()
        assert error in page.locator("#log pre").inner_text()
        assert share(page.locator("#run .badge").screenshot(), RED) > 0.3
        page.screenshot(path=str(shots / "failed-run-page.png"), full_page=True)

        # Run 2: killed at its time limit. The batch landed more than two ticks ago and is not
        # in the marts: FCT_EVENTS and METRICS_DAILY (which read EVENTS) are behind.
        began = time.monotonic()
        second = _meshctl("run-once", env={**env, "MESHCTL_RUN_TIME_LIMIT_SECONDS": "1"}, check=False)
        timings["run 2 (timeout)"] = time.monotonic() - began
        assert second.returncode == 1
        rows = history_rows(pg_server, stretch["db"])
        assert [r["status"] for r in rows] == ["failed", "timeout"]
        marts = _marts(stretch)
        assert not marts["events"] & set(ids)
        page.goto(base + "/status")
        facts = _status_json(page, base)
        assert_runs_match_history(page, facts, rows)
        verdicts = {m["mart"]: m for m in facts["freshness"]["marts"]}
        assert {m for m, v in verdicts.items() if v["status"] == "behind"} == {"FCT_EVENTS", "METRICS_DAILY"}
        landed = stretch["landed_at"].strftime("%Y-%m-%d %H:%M UTC")
        assert f"EVENTS rows landed at {landed} are not in the mart" in verdicts["FCT_EVENTS"]["reason"]
        assert verdicts["FCT_EVENTS"]["newest_landed"]["table"] == "GOODWORD_WH.RAW.EVENTS"
        for mart in ("FCT_EVENTS", "METRICS_DAILY", "FCT_MRR_DAILY"):  # as the marts say
            assert verdicts[mart]["published"] == marts[mart].isoformat()
        behind = page.locator('tr.mart[data-mart="FCT_EVENTS"]')
        assert behind.locator(".badge").inner_text() == "behind"
        assert "are not in the mart" in behind.locator("td.reason").inner_text()
        assert share(behind.locator(".badge").screenshot(), RED) > 0.3
        assert share(page.locator('tr.mart[data-mart="DIM_USERS"] .badge').screenshot(), GREEN) > 0.3
        page.locator("#freshness").screenshot(path=str(shots / "behind.png"))
        assert "2 mart(s) behind" in page.locator("#alerts").inner_text()

        # Run 3: builds the batch. Everything recovers.
        began = time.monotonic()
        _meshctl("run-once", env=env)
        timings["run 3 (success)"] = time.monotonic() - began
        rows = history_rows(pg_server, stretch["db"])
        assert [r["status"] for r in rows] == ["failed", "timeout", "success"]
        marts = _marts(stretch)
        assert set(ids) <= marts["events"]
        page.goto(base + "/status")
        facts = _status_json(page, base)
        assert_runs_match_history(page, facts, rows)
        verdicts = {m["mart"]: m for m in facts["freshness"]["marts"]}
        assert verdicts["FCT_EVENTS"]["status"] == "fresh"
        assert not [m for m, v in verdicts.items() if v["status"] == "behind"]
        for mart in ("FCT_EVENTS", "METRICS_DAILY", "FCT_MRR_DAILY"):
            assert verdicts[mart]["published"] == marts[mart].isoformat()
        # The demo's ORGANIZATIONS were last reloaded days ago: the newest day waits for it.
        assert verdicts["METRICS_DAILY"]["status"] == "pending"
        assert "waiting for the ORGANIZATIONS reload" in verdicts["METRICS_DAILY"]["reason"]
        assert page.locator("#alerts .alert.open").count() == 0
        assert page.locator("#alerts .alert.resolved").count() == 2
        assert page.locator("#chart-durations circle.run-dot").count() == 3
        page.screenshot(path=str(shots / "status.png"), full_page=True)
        # The run's page lists what each model built, from run history.
        built = page.locator(f'tr.run[data-run="{rows[2]["run_id"]}"]')
        assert int(built.locator("td.num").nth(3).inner_text()) == len(rows[2]["intervals"]) > 0
        built.locator("a").click()
        models = page.locator("#models tbody tr[data-model]")
        assert {models.nth(i).get_attribute("data-model") for i in range(models.count())} == set(rows[2]["models"])

    # One message per incident and one per recovery, each with a link to the page.
    texts = [json.dumps(m) for m in received]
    assert len(texts) == 4, texts
    assert "SQLMesh run failed" in texts[0] and f"{base}/status/runs/{rows[0]['run_id']}" in texts[0]
    assert "Marts behind their freshness target" in texts[1] and "FCT_EVENTS, METRICS_DAILY" in texts[1]
    recoveries = texts[2:]
    assert any("SQLMesh runs succeed again" in t and "after 2 failed run(s)" in t for t in recoveries)
    assert any("every mart meets its freshness target again" in t for t in recoveries)
    assert all(f"{base}/status" in t for t in texts)


def test_status_is_behind_the_login(stretch):
    base = stretch["base"]
    with chromium_page() as page:  # no login
        for path in ("/status", "/status.json", "/status/metrics", "/status/runs/x"):
            response = page.context.request.get(base + path)
            assert response.status == 401, path
            assert response.headers["www-authenticate"].startswith("Basic realm=")
