"""Helpers for the service tests (UI, scheduler, signals): a tiny SQLMesh project on DuckDB with
its state in PostgreSQL, RAW data that lands day by day, and `meshctl` subprocesses.

The project is small but real: SQLMesh's scheduler, the PostgreSQL state, the repository's own
`signals/` and the same `meshctl` processes the container runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
gateways:
  test:
    connection:
      type: duckdb
      catalogs:
        GOODWORD_WH: "{{ env_var('LOCAL_DATA_DIR') }}/goodword_wh.duckdb"
    state_connection: &state
      type: postgres
      host: "{{ env_var('STATE_DB_HOST') }}"
      port: {{ env_var('STATE_DB_PORT') }}
      database: "{{ env_var('STATE_DB_NAME') }}"
      user: "{{ env_var('STATE_DB_USER') }}"
      password: "{{ env_var('STATE_DB_PASSWORD', '') }}"
      sslmode: disable
  # SQLMesh's Snowflake adapter over fakesnow (meshctl patches it in-process for this name).
  fakesnow:
    connection:
      type: snowflake
      account: fakesnow
      user: fakesnow
      password: "{{ env_var('FAKESNOW_PASSWORD', 'fakesnow') }}"
      database: GOODWORD_WH
    state_connection: *state
default_gateway: test
disable_anonymized_analytics: true
model_defaults:
  dialect: snowflake
  start: "%(start)s"
  cron: "@daily"
"""

STG_EVENTS = """\
MODEL (
  name staging.stg_events,
  kind INCREMENTAL_BY_TIME_RANGE (time_column occurred_at, batch_size 1),
  grain event_id,
  signals [goodword_raw_landed(table := 'GOODWORD_WH.RAW.EVENTS')],
  description 'One row per event (test project)'
);

SELECT
  id::NUMBER AS event_id,
  event_type::VARCHAR AS event_type,
  occurred_at::TIMESTAMP_NTZ AS occurred_at
FROM GOODWORD_WH.RAW.EVENTS
WHERE occurred_at BETWEEN @start_ts AND @end_ts AND @pause()
QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY _replicated_at DESC) = 1
"""

DAILY_COUNTS = """\
MODEL (
  name marts.daily_event_counts,
  kind FULL,
  grain (event_date, event_type),
  description 'Events per day and type (test project)'
);

SELECT
  occurred_at::DATE AS event_date,
  event_type,
  COUNT(*) AS events
FROM staging.stg_events
GROUP BY 1, 2
"""

PAUSE_MACRO = '''\
import os
import time

from sqlmesh import macro


@macro()
def pause(evaluator):
    """Slows each evaluated interval by SERVICE_TEST_PAUSE seconds (to kill a run mid-way)."""
    if evaluator.runtime_stage == "evaluating":
        if os.environ.get("SERVICE_TEST_SPAWN"):
            # A process the run starts and leaves running (as a forked loader pool or a driver's
            # helper would), in the run's process group: it must die with the run.
            import subprocess

            subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(os.environ.get("SERVICE_TEST_PAUSE", "0")))
    return "TRUE"
'''

EXTERNAL = """\
- name: GOODWORD_WH.RAW.EVENTS
  dialect: snowflake
  columns:
    ID: NUMBER(38,0)
    EVENT_TYPE: VARCHAR
    OCCURRED_AT: TIMESTAMP_NTZ
    _REPLICATED_AT: TIMESTAMP_NTZ
"""

DAYS = 4  # model start is DAYS days before today (UTC): intervals d0..d3, d3 = yesterday


def today_utc() -> date:
    return datetime.now(timezone.utc).date()


def day(i: int) -> date:
    return today_utc() - timedelta(days=DAYS - i)


def make_project(root: Path) -> Path:
    project = root / "project"
    (project / "models").mkdir(parents=True)
    (project / "macros").mkdir()
    (project / "data").mkdir()
    (project / "config.yaml").write_text(CONFIG % {"start": day(0).isoformat()})
    (project / "models" / "stg_events.sql").write_text(STG_EVENTS)
    (project / "models" / "daily_event_counts.sql").write_text(DAILY_COUNTS)
    (project / "macros" / "pause.py").write_text(PAUSE_MACRO)
    (project / "external_models.yaml").write_text(EXTERNAL)
    shutil.copytree(REPO / "signals", project / "signals", ignore=shutil.ignore_patterns("__pycache__"))
    create_raw(project)
    return project


def warehouse(project: Path) -> Path:
    return project / "data" / "goodword_wh.duckdb"


def create_raw(project: Path) -> None:
    with duckdb.connect(str(warehouse(project))) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        con.execute(
            "CREATE TABLE IF NOT EXISTS raw.events "
            "(id BIGINT, event_type VARCHAR, occurred_at TIMESTAMP, _replicated_at TIMESTAMP)"
        )


def land_day(project: Path, i: int, replicated_at: datetime, per_day: int = 5) -> None:
    """Append day i's events, as one replication batch loaded at `replicated_at` (UTC).
    The first event is appended twice (the at-least-once replication the models dedupe)."""
    start = datetime.combine(day(i), dtime(0, 0))
    rows = [
        (i * 1000 + n, ["session_started", "document_created"][n % 2], start + timedelta(hours=2 + 3 * n), replicated_at.replace(tzinfo=None))
        for n in range(per_day)
    ]
    rows.append(rows[0])
    with duckdb.connect(str(warehouse(project))) as con:
        con.executemany("INSERT INTO raw.events VALUES (?, ?, ?, ?)", rows)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def model_rows(project: Path) -> dict[str, list[tuple]]:
    """Every model table (prod views), sorted, read from the warehouse file."""
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{warehouse(project)}' AS GOODWORD_WH (READ_ONLY)")
        out = {}
        for name in ("staging.stg_events", "marts.daily_event_counts"):
            try:
                out[name] = sorted(con.execute(f"SELECT * FROM GOODWORD_WH.{name}").fetchall())
            except duckdb.CatalogException:
                out[name] = None
        return out


def service_env(project: Path, pg_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESHCTL_", "STATE_DB_", "SNOWFLAKE_"))}
    env.update(pg_env)
    env.update(
        MESHCTL_PROJECT_DIR=str(project),
        MESHCTL_GATEWAY="test",
        LOCAL_DATA_DIR=str(project / "data"),
        FAKESNOW_DATA_DIR=str(project / "fakesnow"),
        MESHCTL_HEARTBEAT_PATH=str(project / "run" / "heartbeat.json"),
        MESHCTL_RUN_LOG_DIR=str(project / "run" / "logs"),
        MESHCTL_RUN_RETRY_INITIAL_SECONDS="0.5",
        MESHCTL_RUN_RETRY_MAX_SECONDS="2",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def meshctl(*args: str, env: dict[str, str], timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "meshctl", *args],
        env=env,
        cwd=env["MESHCTL_PROJECT_DIR"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"meshctl {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def plan_prod(env: dict[str, str]) -> subprocess.CompletedProcess:
    return meshctl("sqlmesh", "plan", "prod", "--auto-apply", "--no-prompts", env=env, timeout=180)


def spawn_meshctl(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "meshctl", *args],
        env=env,
        cwd=env["MESHCTL_PROJECT_DIR"],
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited {proc.returncode} before {url} answered:\n{log.read_text() if log else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s:\n{log.read_text() if log else ''}")


@contextlib.contextmanager
def terminating(proc: subprocess.Popen, timeout: float = 20) -> Iterator[subprocess.Popen]:
    """Yield `proc`; make sure it is gone afterwards (SIGTERM, then SIGKILL)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def history_rows(pg_server, dbname: str, *, plans: bool = False) -> list[dict]:
    """Run history, oldest first; without the tests' own set-up plans unless `plans`."""
    with pg_server.connect(dbname) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM meshctl.run_history WHERE %s OR trigger <> 'plan' ORDER BY started_at", (plans,))
        names = [d.name for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def assert_runs_match_history(page, facts: dict, rows: list[dict]) -> None:
    """The status page (`page`, and its /status.json `facts`) lists every run of run history
    (`rows`), newest first, as run history says it."""
    expected = sorted(rows, key=lambda r: r["started_at"], reverse=True)
    assert [r["run_id"] for r in facts["runs"]] == [r["run_id"] for r in expected]
    for shown, row in zip(facts["runs"], expected):
        assert (shown["status"], shown["trigger"], shown["attempts"]) == (row["status"], row["trigger"], row["attempts"])
        assert shown["intervals"] == len(row["intervals"]) and shown["waiting"] == len(row["waiting"])
        assert shown["error"] == ((row["error"] or "").strip().splitlines() or [""])[0][:300]
        cells = page.locator(f'tr.run[data-run="{row["run_id"]}"]')
        assert cells.count() == 1
        assert cells.locator(".badge").inner_text() == row["status"]


CHROMIUM = "/usr/bin/chromium"  # Debian's (apt-get install chromium); never a downloaded browser
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextlib.contextmanager
def chromium_page(credentials: tuple[str, str] | None = None) -> Iterator:
    """A page in headless Chromium, its own browser (Chromium keeps HTTP auth across contexts),
    logged in over HTTP Basic with `credentials` when given."""
    import pytest
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium (see .ci/run)", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        login = {"http_credentials": {"username": credentials[0], "password": credentials[1]}} if credentials else {}
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, **login)
        context.set_default_timeout(20_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


@contextlib.contextmanager
def webhook_receiver(path: str = "/services/T000/B000/XXXX") -> Iterator[tuple[str, list[dict]]]:
    """A Slack-style incoming webhook on loopback (real HTTP): yields (url, received), received
    holding the JSON body of each POST; a POST to another path fails the test that reads it."""
    import http.server
    import json
    import threading

    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body) if self.path == path else {"wrong path": self.path})
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}", received
    finally:
        server.shutdown()
