"""The events path's overlap: `lookback 1` on staging.stg_goodword_app__events, whose MODEL block
gives the reason (a batch stamped _REPLICATED_AT before a tick can commit after that tick's run;
the next run must re-read the 15 minutes before its own window) and which marts.fct_events
relies on (it merges the copies the re-read brings, "the overlap re-read").

Checked by behaviour, not by reading the number back: the project is loaded through SQLMesh's
Python API and SQLMesh's own interval arithmetic says which intervals the 10:15 run processes
after a 10:00 run, and the arrivals gate, handed the model's lookback as SQLMesh hands it, opens
for that window. With lookback 0 a batch stamped 09:58 and committed at 10:02 would never be
read (the 10:15 run would start at 10:00); with lookback 2 every run would re-read 30 minutes,
twice what the reason needs, against the contract's "a run pays for what is new"
(shared/design/marts.md). Both fail here. No warehouse is needed for this: which intervals a run
evaluates is what SQLMesh decides from the model, and the replay test runs such batches end to
end."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlmesh import Context
from sqlmesh.core.node import IntervalUnit

from meshctl.settings import PROJECT_DIR
from project_files import project_module

UTC = timezone.utc
MODEL = "staging.stg_goodword_app__events"
TICK = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # the run that went before
NEXT = TICK + timedelta(minutes=15)  # the run under test
QUARTER = timedelta(minutes=15)

arrivals = project_module("signals.arrivals")


@pytest.fixture(scope="module")
def events_model(tmp_path_factory):
    # The local gateway attaches DuckDB files under LOCAL_DATA_DIR: keep them out of the checkout
    # (and start from an empty state, so no interval is already recorded).
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOCAL_DATA_DIR", str(tmp_path_factory.mktemp("lookback")))
        context = Context(paths=[str(PROJECT_DIR)])
        model = context.get_model(MODEL)
        yield model, context.snapshots[model.fqn]


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_the_run_after_a_tick_re_reads_exactly_the_interval_before_it(events_model):
    model, snapshot = events_model
    assert model.interval_unit == IntervalUnit.QUARTER_HOUR  # the unit the 15 minutes count in
    snapshot.intervals = []
    snapshot.add_interval(TICK - timedelta(days=1), TICK)  # everything up to the 10:00 run is done

    batch = [
        (_utc(start), _utc(end))
        for start, end in snapshot.missing_intervals(TICK - timedelta(days=1), NEXT, execution_time=NEXT)
    ]

    # The 10:15 run evaluates [09:45, 10:00) again, then its own [10:00, 10:15), and nothing older.
    assert batch == [(TICK - QUARTER, TICK), (TICK, NEXT)], (
        f"{MODEL} has lookback {model.lookback}: the run after a tick must re-read exactly the one "
        "15-minute interval before it (a batch stamped before the tick, committed after its run)"
    )
    stamped_before_committed_after = TICK - timedelta(minutes=2)
    read_by_the_last_run = TICK - QUARTER - timedelta(minutes=1)
    assert batch[0][0] <= stamped_before_committed_after < TICK
    assert read_by_the_last_run < batch[0][0]

    # The gate, given the lookback the way SQLMesh gives it, opens for that late batch, and not
    # for one the 10:00 run already read.
    assert arrivals.anything_arrived(batch, {"EVENTS": stamped_before_committed_after}, lookback=model.lookback)
    assert not arrivals.anything_arrived(batch, {"EVENTS": read_by_the_last_run}, lookback=model.lookback)
