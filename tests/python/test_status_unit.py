"""The status page's parts without processes: the freshness verdicts against marts.md, the query
tags and the cost report over recorded tags, the per-model detail lines, the SVG charts, the
Prometheus text and the landing-page link."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

from meshctl.project import query_tags
from project_files import project_module
from meshctl.service import run_details
from meshctl.status import charts, cost, freshness, web
from meshctl.status.freshness import MartFacts, Source, closed_through, judge

UTC = timezone.utc
CRON = "*/15 * * * *"

# The writer of the tags is the project's macro; the runtime only reads them.
tags_macro = project_module("macros.query_tag")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def facts(**kw) -> MartFacts:
    base = dict(name="GOODWORD_WH.MARTS.FCT_EVENTS", date_column="EVENT_DATE", published=date(2026, 3, 13),
                processed_through=at("2026-03-14 10:00"),
                sources=[Source("GOODWORD_WH.RAW.EVENTS", "_REPLICATED_AT", at("2026-03-14 09:05"))])
    base.update(kw)
    return MartFacts(**base)


# --- freshness -------------------------------------------------------------------------------
def test_everything_landed_before_the_last_build_is_fresh():
    verdict = judge(facts(), at("2026-03-14 10:07"), CRON)
    assert verdict.status == "fresh"
    assert "built through 2026-03-14 10:00 UTC" in verdict.reason and "EVENTS" in verdict.reason


def test_a_landing_is_pending_until_the_second_run_after_it_then_behind():
    landed = at("2026-03-14 10:03")
    mart = facts(sources=[Source("GOODWORD_WH.RAW.EVENTS", "_REPLICATED_AT", at("2026-03-14 10:40"), landed)])
    # The runs at 10:15 and 10:30 are the first and second after it: due by 10:30.
    pending = judge(mart, at("2026-03-14 10:20"), CRON)
    assert pending.status == "pending" and pending.due == at("2026-03-14 10:30")
    assert "landed at 2026-03-14 10:03 UTC" in pending.reason and "due by the run at 2026-03-14 10:30" in pending.reason
    behind = judge(mart, at("2026-03-14 10:31"), CRON)
    assert behind.status == "behind" and behind.behind_since == at("2026-03-14 10:30")
    assert "last built through 2026-03-14 10:00" in behind.reason
    # A run in flight may still build it: not behind yet.
    assert judge(mart, at("2026-03-14 10:31"), CRON, run_in_flight=True).status == "pending"


def test_whole_days_mart_behind_when_its_last_build_should_have_published_the_day():
    mart = facts(name="GOODWORD_WH.MARTS.METRICS_DAILY", date_column="DATE", whole_days=True,
                 published=date(2026, 3, 12), expected_at_processed=date(2026, 3, 13), expected_now=date(2026, 3, 13))
    verdict = judge(mart, at("2026-03-14 10:07"), CRON)
    assert verdict.status == "behind" and "had what it needed for 2026-03-13" in verdict.reason


def test_whole_days_mart_waiting_for_a_source_is_pending_with_the_reason():
    mart = facts(name="GOODWORD_WH.MARTS.METRICS_DAILY", date_column="DATE", whole_days=True,
                 published=date(2026, 3, 12), expected_at_processed=date(2026, 3, 12), expected_now=date(2026, 3, 12),
                 waiting_for="2026-03-13 is not complete: waiting for the ORGANIZATIONS reload after 2026-03-14 00:00 UTC")
    verdict = judge(mart, at("2026-03-14 10:07"), CRON)
    assert verdict.status == "pending" and "waiting for the ORGANIZATIONS reload" in verdict.reason
    # A day that became complete after the last build: due by the second tick after that.
    released = facts(name="GOODWORD_WH.MARTS.METRICS_DAILY", date_column="DATE", whole_days=True,
                     published=date(2026, 3, 12), expected_at_processed=date(2026, 3, 12),
                     expected_now=date(2026, 3, 13), complete_since=at("2026-03-14 07:00"),
                     processed_through=at("2026-03-14 07:00"))
    assert judge(released, at("2026-03-14 07:20"), CRON).status == "pending"
    late = judge(released, at("2026-03-14 07:31"), CRON)
    assert late.status == "behind" and "2026-03-13 is complete since 2026-03-14 07:00" in late.reason


def test_unassessed_and_unbuilt_marts_are_unknown():
    assert judge(facts(error="boom"), at("2026-03-14 10:07"), CRON).status == "unknown"
    assert judge(facts(processed_through=None), at("2026-03-14 10:07"), CRON).status == "unknown"


def test_closed_through_follows_the_whole_days_macro():
    # macros/arrivals.py: min(yesterday, day before the ORGANIZATIONS reload, max(day before the
    # Airbyte sync, day before (run - 7 h))).
    run = at("2026-03-14 10:00")
    assert closed_through(run, at("2026-03-14 00:05"), at("2026-03-14 00:40"), 7) == date(2026, 3, 13)
    assert closed_through(run, at("2026-03-13 23:05"), at("2026-03-14 00:40"), 7) == date(2026, 3, 12)
    # Stripe quiet since yesterday: released by time once 07:00 has passed...
    assert closed_through(run, at("2026-03-14 09:05"), at("2026-03-13 18:40"), 7) == date(2026, 3, 13)
    # ...and not before.
    assert closed_through(at("2026-03-14 06:45"), at("2026-03-14 06:05"), at("2026-03-13 18:40"), 7) == date(2026, 3, 12)
    assert closed_through(run, None, None, 7) is None


def test_facts_survive_their_json_round_trip():
    mart = facts(whole_days=True, expected_now=date(2026, 3, 13), complete_since=at("2026-03-14 07:00"),
                 sources=[Source("GOODWORD_WH.RAW.EVENTS", "_REPLICATED_AT", at("2026-03-14 10:40"), at("2026-03-14 10:03"))])
    again = MartFacts.from_json(json.loads(json.dumps(mart.as_json())))
    assert again == mart


# --- query tags and cost ---------------------------------------------------------------------
def test_model_tags_round_trip_and_other_tags_are_ignored():
    assert tags_macro.SERVICE == query_tags.SERVICE, "the writer and the reader name one service"
    tag = tags_macro.model_tag("prod", "GOODWORD_WH.MARTS.FCT_EVENTS", "abc123")
    assert tag == '{"service":"goodword-sqlmesh","env":"prod","run":"abc123","model":"GOODWORD_WH.MARTS.FCT_EVENTS"}'
    assert query_tags.parse(tag) == {"service": "goodword-sqlmesh", "env": "prod", "run": "abc123",
                                     "model": "GOODWORD_WH.MARTS.FCT_EVENTS"}
    assert query_tags.parse("goodword-sqlmesh:prod") == {"service": "goodword-sqlmesh", "env": "prod", "run": None, "model": None}
    for other in (None, "", "dbt", '{"service":"someone-else"}', "{not json", '["goodword-sqlmesh"]'):
        assert query_tags.parse(other) is None
    assert tags_macro.sql_literal("it's a \\ test") == "'it\\'s a \\\\ test'"


def test_cost_report_groups_credits_by_model_run_and_day():
    tag = lambda model, run=None: tags_macro.model_tag("prod", model, run)  # noqa: E731
    rows = [
        # (QUERY_TAG, DAY, WINDOW_RUN, WAREHOUSE_SIZE, STATEMENTS, EXECUTION_MS, CLOUD_CREDITS)
        (tag("M.FCT_EVENTS", "run1"), date(2026, 3, 14), "run1", "X-Small", 4, 360_000, 0.001),
        (tag("M.METRICS_DAILY", "run1"), date(2026, 3, 14), "run1", "Small", 2, 180_000, 0.0),
        (tag("M.FCT_EVENTS", "run2"), date(2026, 3, 15), None, "X-Small", 1, 36_000, 0.0),  # the tag wins
        ("goodword-sqlmesh:prod", date(2026, 3, 15), "run2", None, 6, 0, 0.0002),  # probes: by window
        ("goodword-sqlmesh:prod", date(2026, 3, 16), None, None, 6, 0, 0.0002),  # no run then
        ("someone-elses-tag", date(2026, 3, 14), "run1", "X-Small", 9, 9_000_000, 1.0),
    ]
    report = cost.build(rows, source="snowflake", days=30)
    by_model = {line.key: line for line in report.by_model}
    assert round(by_model["M.FCT_EVENTS"].credits, 4) == round(0.1 + 0.001 + 0.01, 4)  # 6 min XS + 36 s XS
    assert round(by_model["M.METRICS_DAILY"].credits, 4) == round(3 / 60 * 2, 4)  # 3 min on Small
    assert by_model[cost.NO_MODEL].statements == 12
    by_run = {line.key: line for line in report.by_run}
    assert by_run["run2"].statements == 1 + 6  # its tagged statement and the probes during it
    assert by_run[cost.NO_RUN].statements == 6
    assert [line.key for line in report.by_day] == ["2026-03-14", "2026-03-15", "2026-03-16"]
    assert report.total.statements == 19  # the foreign tag is not ours
    assert report.run("run1").statements == 6


def test_the_report_query_runs_the_same_over_the_emulations_recorded_history(tmp_path):
    from meshctl.project.gateways import QueryHistoryRecorder

    recorder = QueryHistoryRecorder(tmp_path / "query_history.jsonl")
    now = datetime.now(UTC).timestamp()
    tag = tags_macro.model_tag("prod", "GOODWORD_WH.MARTS.FCT_EVENTS", "run9")
    recorder.record(tag, now - 10, now - 8, "INSERT INTO x SELECT 1", True)
    recorder.record(tag, now - 8, now - 7.5, "SELECT 1", True)
    recorder.record("goodword-sqlmesh:fakesnow", now - 7, now - 7, "SELECT MAX(a) FROM t", True)  # in run9
    recorder.record("goodword-sqlmesh:fakesnow", now - 3, now - 3, "SELECT MAX(a) FROM t", True)  # after it
    recorder.record("goodword-sqlmesh:fakesnow", now - 86400 * 40, now - 86400 * 40, "SELECT 1", True)  # too old
    window = [("run9", datetime.fromtimestamp(now - 11, UTC), datetime.fromtimestamp(now - 6, UTC)),
              ("run8", datetime.fromtimestamp(now - 500, UTC), datetime.fromtimestamp(now - 400, UTC))]
    rows = cost.emulated_rows(tmp_path / "query_history.jsonl", days=30, runs=window)
    report = cost.build(rows, source="emulated", days=30)
    assert report.total.statements == 4
    line = report.run("run9")
    assert line.statements == 3 and abs(line.seconds - 2.5) < 0.01
    assert report.run(cost.NO_RUN).statements == 1
    assert {t.key for t in report.tags} == {tag, "goodword-sqlmesh:fakesnow"}
    # No run history at all: the query still runs, and only the tags name runs.
    assert cost.build(cost.emulated_rows(tmp_path / "query_history.jsonl", days=30), source="emulated",
                      days=30).run("run9").statements == 2


# --- per-model detail lines -------------------------------------------------------------------
def test_the_run_console_records_the_run_and_writes_lines_the_run_page_reads_back(monkeypatch):
    console = run_details.RecordingConsole()
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    snapshot = SimpleNamespace(name='"GOODWORD_WH"."MARTS"."FCT_EVENTS"')
    start, end = 1773446400000, 1773447300000
    console.update_snapshot_evaluation_progress(snapshot, (start, end), 0, 1500, 2, 1,
                                                execution_stats=SimpleNamespace(total_rows_processed=40, total_bytes_processed=None))
    console.update_snapshot_evaluation_progress(snapshot, (end, end + 900000), 1, 500, 3, 0)
    console.update_snapshot_evaluation_progress(snapshot, (start, end), 0, None, 0, 0)  # not finished: no line
    console.update_snapshot_evaluation_progress(snapshot, (start, end), 0, 300, 1, 0, True)  # audit only
    console.log_warning("\nMARTS.FCT_EVENTS: 'accepted_values' audit error: 7 rows failed.", "query ...")
    console.log_warning("Something else")
    # 00:00 to 01:00 checked, 00:00 to 00:30 ready: 00:30 to 01:00 held back.
    console.update_signal_progress(snapshot, "raw_landed", 1, 1, [(start, start + 1800000)],
                                   [(start, start + 3600000)], 0.1)
    # What the run history row gets: evaluated intervals (not the audit-only pass), the hold.
    assert console.evaluated == [
        {"model": "GOODWORD_WH.MARTS.FCT_EVENTS", "start": "2026-03-14T00:00:00+00:00", "end": "2026-03-14T00:15:00+00:00"},
        {"model": "GOODWORD_WH.MARTS.FCT_EVENTS", "start": "2026-03-14T00:15:00+00:00", "end": "2026-03-14T00:30:00+00:00"}]
    assert console.waiting == [{"model": "GOODWORD_WH.MARTS.FCT_EVENTS", "signal": "raw_landed",
                                "start": "2026-03-14T00:30:00+00:00", "end": "2026-03-14T01:00:00+00:00"}]
    log_text = "[10:00:00] Evaluating ...\n" + out.getvalue()
    models, warnings = run_details.parse(log_text)
    assert models == [{"model": "GOODWORD_WH.MARTS.FCT_EVENTS", "batches": 3, "duration_ms": 2300, "audits_passed": 6,
                       "audits_failed": 1, "rows": 40, "start": "2026-03-14T00:00:00+00:00",
                       "end": "2026-03-14T00:30:00+00:00", "audit_only": False}]
    assert warnings == [{"model": "MARTS.FCT_EVENTS", "audit": "accepted_values", "count": 7}]


# --- charts, metrics, the landing link --------------------------------------------------------
def test_charts_are_inline_svg_with_one_mark_per_run_and_per_day():
    points = [{"started_at": "2026-03-14T10:00:00+00:00", "seconds": 12.0, "status": "success", "run_id": "a"},
              {"started_at": "2026-03-14T10:15:00+00:00", "seconds": 30.0, "status": "failed", "run_id": "b"}]
    svg = str(charts.durations(points, "2026-02-13", 30))
    assert svg.startswith("<svg") and svg.count("<circle") == 2 and "#c62828" in svg and "<script" not in svg
    bars = str(charts.per_day([{"day": "2026-03-14", "seconds": 42.0}], "2026-02-13", 30, "x"))
    assert bars.count('class="day-bar"') == 1


def test_prometheus_text():
    text = web.prometheus({
        "runs": [{"status": "failed", "failed": True, "seconds": 3.5, "started_at": "2026-03-14T10:00:00+00:00"},
                 {"status": "success", "failed": False, "seconds": 2, "started_at": "2026-03-14T09:45:00+00:00"}],
        "freshness": {"marts": [{"mart": "FCT_EVENTS", "status": "behind"}]},
        "alerts": {"open": [{"kind": "run_failed"}]},
    })
    assert "meshctl_last_run_failed 1" in text
    assert 'meshctl_mart_freshness{mart="FCT_EVENTS",status="behind"} 1' in text
    assert 'meshctl_alerts_open{kind="run_failed"} 1' in text
    assert "meshctl_last_good_run_timestamp_seconds 1773481500.0" in text


def _call(app, path: str) -> tuple[list[dict], bytes]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "http", "method": "GET", "path": path, "headers": []}, receive, send))
    return sent, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_html_pages_of_the_ui_get_the_status_link_and_nothing_else_changes(tmp_path):
    async def sqlmesh_ui(scope, receive, send):
        html = scope["path"] != "/api/models"
        body = b"<html><body><div id=root></div></body></html>" if html else b'{"models": []}'
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/html; charset=utf-8" if html else b"application/json"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    from meshctl.settings import Settings

    app = web.mount(sqlmesh_ui, Settings(MESHCTL_PROJECT_DIR=str(tmp_path)))
    messages, body = _call(app, "/")
    assert b'href="/status"' in body and body.endswith(b"</body></html>")
    assert dict(messages[0]["headers"])[b"content-length"] == str(len(body)).encode()
    _, body = _call(app, "/api/models")
    assert body == b'{"models": []}'


def test_without_its_state_database_the_page_says_so_in_one_line(pg_server, tmp_path):
    """On `local` with no state database (run history lives there), /status is a 503 with the
    fix, not a traceback; the JSON endpoint says the same."""
    from meshctl.settings import Settings

    async def sqlmesh_ui(scope, receive, send):  # never reached
        raise AssertionError("the status routes answer themselves")

    settings = Settings(_env_file=None, project_dir=tmp_path, state_db={
        "host": pg_server.host, "port": pg_server.port, "user": pg_server.user, "name": "no_such_state_db",
        "sslmode": "disable"})
    app = web.mount(sqlmesh_ui, settings)
    for path in ("/status", "/status.json"):
        messages, body = _call(app, path)
        assert messages[0]["status"] == 503
        text = body.decode()
        assert "database no_such_state_db does not exist: create it" in text and "Traceback" not in text


def test_freshness_load_columns_are_the_arrival_gates():
    # The facts read the same load stamps the arrivals gate probes (signals/arrivals.py).
    from project_files import project_module

    gate = project_module("signals.arrivals")
    assert {column for _, column in gate.ARRIVAL_COLUMNS} == set(freshness.LOAD_COLUMNS)
    tables = {table for table, _ in gate.ARRIVAL_COLUMNS}
    assert freshness.ORGANIZATIONS in tables and set(freshness.STRIPE) <= tables


def test_the_page_shows_cost_per_model_and_run_and_warehouse_seconds_per_day():
    from meshctl.settings import Settings
    from meshctl.status import data

    now = datetime.now(UTC)
    tag = tags_macro.model_tag("prod", "GOODWORD_WH.MARTS.FCT_EVENTS", "run1")
    report = cost.build([(tag, now.date(), "run1", "X-Small", 5, 72_000, 0.0)], source="emulated", days=30,
                        explanation="emulated")
    run = {"run_id": "run1", "trigger": "cron", "status": "success", "started_at": now - timedelta(minutes=1),
           "ended_at": now, "attempts": 1, "models": ["GOODWORD_WH.MARTS.FCT_EVENTS"], "intervals": [{}],
           "waiting": [], "error": None}
    facts = {
        "generated_at": now.isoformat(), "environment": "prod", "gateway": "fakesnow",
        "scheduler": {"cron": CRON, "next_tick": now.isoformat(), "lock_holder": "meshctl-run-lock from 10.0.0.5 (backend 42)",
                      "lock_error": None, "run_in_flight": False, "last_run": data.run_summary(run)},
        "runs": [data.run_summary(run, None, report.run("run1"))],
        "freshness": {"marts": [], "counts": {}, "assessed_at": None},
        "alerts": {"open": [], "recent": []},
        "charts": data.charts_data([run], report, now, 30),
        "cost": data.cost_section(report),
    }
    html = web._environment().get_template("status.html").render(s=facts, settings=Settings())
    assert "GOODWORD_WH.MARTS.FCT_EVENTS" in html and "0.0200" in html  # 72 s of X-Small, in the runs table too
    assert "Warehouse seconds per day" in html and html.count('class="day-bar"') == 1
    assert "meshctl-run-lock from 10.0.0.5" in html
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
