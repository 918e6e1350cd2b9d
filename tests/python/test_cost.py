"""Cost attribution proven on the emulated gateway: a scheduled run on SQLMesh's Snowflake adapter
over fakesnow tags every model's statements with the service, the run and the model (the emulation
records the tag each statement ran under, as QUERY_HISTORY would), and `meshctl cost` groups the
recorded statements per model, run and day with the query it runs on Snowflake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from service_helpers import history_rows

from meshctl.project import query_tags

REPO = Path(__file__).resolve().parents[2]
UTC = timezone.utc


def _meshctl(*args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "meshctl", "-g", "fakesnow", *args], env=env, cwd=str(REPO),
                          capture_output=True, text=True, timeout=240)
    if check and proc.returncode != 0:
        raise AssertionError(f"meshctl {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def test_a_runs_statements_carry_its_tags_and_the_cost_report_groups_them(tmp_path, pg_server, pg_database):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESHCTL_", "STATE_DB_", "SNOWFLAKE_", "DEMO_"))}
    env.update(pg_server.env(pg_database))
    env.update(
        MESHCTL_PROJECT_DIR=str(REPO), FAKESNOW_DATA_DIR=str(tmp_path / "fakesnow"),
        LOCAL_DATA_DIR=str(tmp_path / "local"), MESHCTL_RUN_LOG_DIR=str(tmp_path / "logs"),
        MESHCTL_HEARTBEAT_PATH=str(tmp_path / "heartbeat.json"), MESHCTL_RUN_MAX_ATTEMPTS="1",
        MAX_FORK_WORKERS="1", DEPLOY_ENV="ci", DEMO_ORGANIZATIONS="5", DEMO_USERS="20", DEMO_DAYS="2",
        DEMO_EVENTS_PER_DAY="30",
    )
    now = datetime.now(UTC).replace(microsecond=0)
    planned = now - timedelta(minutes=40)
    _meshctl("demo-data", "--end-date", (now.date() - timedelta(days=3)).isoformat(), env=env)
    _meshctl("sqlmesh", "plan", "prod", "--auto-apply", "--no-prompts", "--execution-time",
             planned.strftime("%Y-%m-%d %H:%M:%S"), env=env)
    batch = tmp_path / "batch"
    batch.mkdir()
    stamp = (planned + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    (batch / "GOODWORD_WH.RAW.EVENTS.jsonl").write_text(json.dumps(
        {"ID": 8_000_001, "USER_ID": 1, "EVENT_TYPE": "session_started", "PROPERTIES": "{}",
         "OCCURRED_AT": stamp, "_REPLICATED_AT": stamp}) + "\n")
    _meshctl("load-raw", str(batch), env=env)
    history = tmp_path / "fakesnow" / "query_history.jsonl"
    before = len(history.read_text().splitlines())
    _meshctl("run-once", env=env)

    (row,) = history_rows(pg_server, pg_database)
    assert row["status"] == "success" and row["models"], row
    run_id = row["run_id"]
    statements = [json.loads(line) for line in history.read_text().splitlines()[before:]]
    tags = [query_tags.parse(s["QUERY_TAG"]) for s in statements]
    # Every statement of the run is the service's; every model it built tagged its own, with the run.
    assert all(t is not None and t["service"] == "goodword-sqlmesh" for t in tags)
    tagged = {(t["run"], t["model"]) for t in tags if t["model"]}
    assert {model for run, model in tagged if run == run_id} == set(row["models"])
    assert all(run == run_id for run, _ in tagged)
    assert all(t["env"] == "ci" for t in tags if t["model"])

    report = json.loads(_meshctl("cost", "--json", env=env).stdout)
    assert report["source"] == "emulated" and "QUERY_HISTORY" in report["explanation"]
    runs = {line["key"]: line for line in report["by_run"]}
    # The run's own statements: model-tagged, and the rest by its time window (the probes).
    started, ended = row["started_at"], row["ended_at"]
    during = [s for s in statements if started <= datetime.fromisoformat(s["START_TIME"]) <= ended]
    assert len(during) > len([t for t in tags if t["model"]])  # the run sent untagged probes too
    assert runs[run_id]["statements"] == len(during)
    models = {line["key"] for line in report["by_model"]}
    assert set(row["models"]) <= models
    assert report["total"]["statements"] == len(history.read_text().splitlines())
    text = _meshctl("cost", env=env).stdout
    assert text.startswith("Cost comes from Snowflake's QUERY_HISTORY")
    assert "Query tags seen (what QUERY_HISTORY would be grouped by):" in text
    assert f'"run":"{run_id}"' in text and "goodword-sqlmesh:fakesnow" in text
