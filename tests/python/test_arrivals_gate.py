"""The daily job's gate (signals/arrivals.py): the arithmetic, one probe per RAW table per run, and,
end to end on the real project, that a tick with nothing new evaluates no model and sends the
warehouse nothing but those probes, while a tick after one landed batch does the work."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from project_files import project_module
from raw_helpers import fetch, isolated_settings

from meshctl.demo.generator import DemoParams, append_day, generate
from meshctl.project.gateways import open_context
from meshctl.raw import warehouse as raw_warehouse
from meshctl.raw.schema import raw_tables

UTC = timezone.utc


arrivals = project_module("signals.arrivals")


def _quarters(start: datetime, count: int) -> list[tuple[datetime, datetime]]:
    step = timedelta(minutes=15)
    return [(start + i * step, start + (i + 1) * step) for i in range(count)]


def test_anything_arrived_looks_one_interval_before_the_missing_ones():
    batch = _quarters(datetime(2026, 3, 2, 10, 0, tzinfo=UTC), 2)  # missing: 10:00 .. 10:30
    quiet = {"A": datetime(2026, 3, 2, 9, 44, tzinfo=UTC), "B": None}
    assert arrivals.anything_arrived(batch, quiet) is False
    # a batch stamped 09:50, possibly committed after the 10:00 tick: the overlap re-reads it
    assert arrivals.anything_arrived(batch, {**quiet, "B": datetime(2026, 3, 2, 9, 50, tzinfo=UTC)})
    assert arrivals.anything_arrived(batch, {"A": datetime(2026, 3, 2, 10, 20, tzinfo=UTC)})
    assert arrivals.anything_arrived(batch, {"A": None}) is False  # empty tables: nothing landed
    # staging events has `lookback 1`: SQLMesh hands it the interval before the missing ones too,
    # which is no later run; the gate still looks back from 10:00
    with_lookback = _quarters(datetime(2026, 3, 2, 9, 45, tzinfo=UTC), 3)
    assert arrivals.anything_arrived(with_lookback, quiet, lookback=1) is False
    assert arrivals.anything_arrived(with_lookback, {"A": datetime(2026, 3, 2, 9, 50, tzinfo=UTC)}, lookback=1)


def test_the_tick_that_releases_a_day_by_time_opens_the_gate():
    """A quiet Stripe holds a day until 7 h past its midnight (closed_through_date): the first run
    at or after 07:00 must evaluate, with nothing new, to publish it; the runs around it need not."""
    day = datetime(2026, 3, 14, tzinfo=UTC)
    assert arrivals.day_released(_quarters(day + timedelta(hours=6, minutes=45), 1), 7)
    assert not arrivals.day_released(_quarters(day + timedelta(hours=6, minutes=30), 1), 7)
    assert not arrivals.day_released(_quarters(day + timedelta(hours=7), 1), 7)
    # a run held since the evening before (nothing landed overnight) still crosses 07:00
    assert arrivals.day_released(_quarters(day - timedelta(hours=3), 41), 7)
    # the gate opens on it without asking the warehouse
    context = SimpleNamespace(engine_adapter=None)
    assert arrivals.raw_arrivals(_quarters(day + timedelta(hours=6, minutes=45), 1), context,
                                 sync_gap_hours=7) is True


def test_one_probe_per_table_per_run():
    statements = []

    class Adapter:
        def fetchone(self, query):
            statements.append(query.sql("duckdb"))
            return ("2026-03-02 10:05:00",)

    adapter = Adapter()
    tick = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    context = SimpleNamespace(engine_adapter=adapter)
    batch = _quarters(datetime(2026, 3, 2, 10, 0, tzinfo=UTC), 1)
    for _ in range(6):  # six staging models ask in one run
        assert arrivals.raw_arrivals(batch, context, sync_gap_hours=7) is True
    assert len(statements) == len(arrivals.ARRIVAL_COLUMNS)
    assert all(s.startswith("SELECT MAX(") for s in statements)
    arrivals.raw_arrivals(_quarters(tick, 1), context, sync_gap_hours=7)  # the next run probes again
    assert len(statements) == 2 * len(arrivals.ARRIVAL_COLUMNS)


END = date(2026, 3, 10)
PARAMS = DemoParams(organizations=12, users=60, days=8, events_per_day=80, seed=3, end_date=END)
BUILT_AT = datetime(2026, 3, 11, 0, 30)  # the demo's last batch landed at 03-11 00:00


# sqlmesh 0.236 tags every statement of a run with the run's id, as it tags a plan's.
_CORRELATION_ID = re.compile(r"^/\* SQLMESH_(RUN|PLAN): [0-9a-f-]+ \*/ ")


def _statements(monkeypatch) -> list[str]:
    """Every SQL statement any engine adapter sends from now on (SQLMesh's scheduler may use its
    own adapter, not the context's), without SQLMesh's run or plan id comment."""
    from sqlmesh.core.engine_adapter.base import EngineAdapter

    sent: list[str] = []
    original = EngineAdapter._execute

    def recording(self, sql, *args, **kwargs):
        sent.append(_CORRELATION_ID.sub("", sql, count=1))
        return original(self, sql, *args, **kwargs)

    monkeypatch.setattr(EngineAdapter, "_execute", recording)
    return sent


def test_a_tick_with_nothing_new_sends_only_the_probes(tmp_path, monkeypatch):
    from sqlmesh.core.snapshot.evaluator import SnapshotEvaluator

    monkeypatch.setenv("MODEL_START", "2026-03-03")
    settings = isolated_settings(tmp_path, monkeypatch)
    tables = raw_tables(settings.project_dir)
    with raw_warehouse.open_warehouse(settings) as adapter:
        generate(adapter, tables, PARAMS, lambda _: None)
    evaluated: list[str] = []
    evaluate = SnapshotEvaluator.evaluate

    def counting(self, snapshot, *args, **kwargs):
        evaluated.append(snapshot.name)
        return evaluate(self, snapshot, *args, **kwargs)

    monkeypatch.setattr(SnapshotEvaluator, "evaluate", counting)
    with open_context(settings) as context:
        context.plan(auto_apply=True, no_prompts=True, execution_time=BUILT_AT,
                     skip_tests=True, skip_linter=True)
        events_before = fetch(context.engine_adapter, 'SELECT COUNT(*) AS N FROM "GOODWORD_WH"."MARTS"."FCT_EVENTS"')

        # The 00:00 batch was read by the 00:30 build, whose overlap reaches back to 00:15: from
        # the next tick on, nothing is new (staging events' lookback included).
        evaluated.clear()
        # Its own monkeypatch: undoing the test's would also undo MODEL_START, and the context's
        # exit would then put it back for every later test.
        with pytest.MonkeyPatch.context() as recording:
            sent = _statements(recording)
            assert context.run(execution_time=datetime(2026, 3, 11, 0, 45)).is_success
        assert evaluated == [], f"a tick with nothing new evaluated {evaluated}"
        # On `local` SQLMesh keeps its state in the same DuckDB file (schema "sqlmesh"); in
        # production that is PostgreSQL, so those statements never reach the warehouse.
        # A new context also asks the catalog which model tables exist (metadata, no table data).
        warehouse = [s for s in sent if '"sqlmesh".' not in s]
        probes = [s for s in warehouse if s.upper().startswith("SELECT MAX(")]
        catalog = [s for s in warehouse if s == "SELECT CURRENT_CATALOG" or "information_schema" in s]
        data = [s for s in warehouse if s not in probes and s not in catalog]
        assert len(probes) == 6, probes
        assert data == [], f"statements beyond the watermark probes: {data}"

    # One batch lands (the next day, stamped 03-12 00:00): the tick after it does the work.
    with raw_warehouse.open_warehouse(settings) as adapter:
        append_day(adapter, tables, PARAMS.seed, PARAMS.events_per_day, lambda _: None)
    with open_context(settings) as context:
        evaluated.clear()
        assert context.run(execution_time=datetime(2026, 3, 12, 0, 15)).is_success
        assert "\"GOODWORD_WH\".\"MARTS\".\"FCT_EVENTS\"" in evaluated
        assert "\"GOODWORD_WH\".\"MARTS\".\"METRICS_DAILY\"" in evaluated
        events_after = fetch(context.engine_adapter, 'SELECT COUNT(*) AS N FROM "GOODWORD_WH"."MARTS"."FCT_EVENTS"')
        assert events_after[0]["N"] > events_before[0]["N"]
