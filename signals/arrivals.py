"""The daily job's gate: evaluate models only when something landed in RAW since they last ran.

Every staging model carries `signals [raw_arrivals()]`. The scheduler ticks every 15 minutes and
every model has that cron, so each run asks: did any RAW table receive rows since the start of
the intervals still missing (less one interval, the overlap the arrival windows re-read, see
macros/arrivals.py)? If none did, the run evaluates nothing; SQLMesh then holds every downstream
interval too, so a tick with nothing new costs one watermark probe per RAW table and no table
data (Snowflake answers MAX of a column from metadata, without a warehouse).

The gate looks at every source at once, not only at the model's own: USERS, EVENTS and the Stripe
streams gain rows only when something happened, and SQLMesh holds a model whenever one of its
parents is held, so a per-source gate would stall every mart behind a quiet table.

It also opens, with nothing new, on the first tick at or after `sync_gap_hours` past a midnight:
that is when the whole-days rule (macros/arrivals.py, closed_through_date) stops waiting for a
quiet Stripe and publishes the day before, which only a run can do.
"""

from __future__ import annotations

import time
import typing as t
from datetime import datetime, timedelta, timezone

from sqlglot import exp
from sqlmesh import signal

if t.TYPE_CHECKING:
    from sqlmesh import ExecutionContext
    from sqlmesh.core.engine_adapter import EngineAdapter
    from sqlmesh.utils.date import DatetimeRanges

# Each RAW table with the column its loader stamps on every row (sources.md).
ARRIVAL_COLUMNS = (
    ("GOODWORD_WH.RAW.ORGANIZATIONS", "_REPLICATED_AT"),
    ("GOODWORD_WH.RAW.USERS", "_REPLICATED_AT"),
    ("GOODWORD_WH.RAW.EVENTS", "_REPLICATED_AT"),
    ("AIRBYTE_DB.RAW.STRIPE_CUSTOMERS", "_AIRBYTE_EXTRACTED_AT"),
    ("AIRBYTE_DB.RAW.STRIPE_SUBSCRIPTIONS", "_AIRBYTE_EXTRACTED_AT"),
    ("AIRBYTE_DB.RAW.STRIPE_INVOICES", "_AIRBYTE_EXTRACTED_AT"),
)
# One run asks once per staging model; the answer is kept on the adapter (shared by the run's
# models) for this long, keyed by the run's tick, so each table is probed once per run.
PROBE_REUSE_SECONDS = 60.0


def as_utc(value: t.Any) -> datetime | None:
    """A warehouse timestamp as an aware UTC datetime (TIMESTAMP_NTZ is stored in UTC)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def probe_watermarks(adapter: EngineAdapter) -> dict[str, datetime | None]:
    """MAX of each RAW table's arrival column (None for an empty table)."""
    marks = {}
    for table, column in ARRIVAL_COLUMNS:
        query = exp.select(exp.func("MAX", exp.column(column))).from_(
            exp.to_table(table, dialect="snowflake")
        )
        row = adapter.fetchone(query)
        marks[table] = as_utc(row[0]) if row else None
    return marks


def watermarks(adapter: EngineAdapter, tick: datetime) -> dict[str, datetime | None]:
    cache = adapter.__dict__.setdefault("_raw_arrival_watermarks", {})
    probed_at, marks = cache.get(tick, (None, None))
    if probed_at is None or time.monotonic() - probed_at > PROBE_REUSE_SECONDS:
        marks = probe_watermarks(adapter)
        cache.clear()
        cache[tick] = (time.monotonic(), marks)
    return marks


def since_last_run(batch: DatetimeRanges, lookback: int = 0) -> datetime:
    """When the last run that evaluated the model ended: the start of its first missing interval.
    A model with `lookback N` is handed its N intervals before that one too."""
    return as_utc(batch[min(lookback, len(batch) - 1)][0])


def anything_arrived(batch: DatetimeRanges, marks: dict[str, datetime | None], lookback: int = 0) -> bool:
    """True when some table has rows at or after the last run, less one interval (the overlap
    re-read by every arrival window, for a batch stamped before that tick and committed after)."""
    start, end = (as_utc(ts) for ts in batch[0])
    since = since_last_run(batch, lookback) - (end - start)
    return any(mark is not None and mark >= since for mark in marks.values())


def day_released(batch: DatetimeRanges, sync_gap_hours: int, lookback: int = 0) -> bool:
    """True when `sync_gap_hours` past some midnight falls after the last run and at or before
    this one (the last interval's end)."""
    last_run, tick = since_last_run(batch, lookback), as_utc(batch[-1][1])
    gap = timedelta(hours=sync_gap_hours)
    release = datetime.combine((tick - gap).date(), datetime.min.time(), timezone.utc) + gap
    return last_run < release <= tick


@signal()
def raw_arrivals(batch: DatetimeRanges, context: ExecutionContext, sync_gap_hours: int,
                 snapshot: t.Any = None) -> bool:
    """Ready when any RAW table received rows since the last run (less one interval), or when the
    whole-days rule releases a day by time (`sync_gap_hours` past a midnight)."""
    # (SQLMesh passes the model's Snapshot; typed Any: SQLMesh coerces the arguments by their
    # type hints, and a name it cannot resolve would turn that off for all of them.)
    lookback = snapshot.model.lookback if snapshot is not None and snapshot.is_model else 0
    if day_released(batch, sync_gap_hours, lookback):
        return True
    marks = watermarks(context.engine_adapter, as_utc(batch[-1][1]))
    return anything_arrived(batch, marks, lookback)
