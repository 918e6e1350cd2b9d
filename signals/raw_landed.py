"""Readiness signals: compute an interval only after its RAW source data has landed.

A cron run asks each model's signals which of its missing intervals are ready. A RAW table has
landed for the interval [start, end) once its newest load timestamp -- `_REPLICATED_AT` for
GOODWORD_WH.RAW (the replication service), `_AIRBYTE_EXTRACTED_AT` for AIRBYTE_DB.RAW (Airbyte)
-- is at or after `end - tolerance_seconds` (a signal argument, default 0). Intervals not ready
stay missing, and the next run checks them again.

Use in a model (arguments are SQL literals; a config.yaml variable works too, as
`tolerance_seconds := @VAR('name')`):
    signals [goodword_raw_landed(table := 'GOODWORD_WH.RAW.EVENTS')]
    signals [airbyte_raw_landed(table := 'AIRBYTE_DB.RAW.STRIPE_INVOICES', tolerance_seconds := 600)]
    signals [raw_landed(table := 'GOODWORD_WH.RAW.USERS', column := '_REPLICATED_AT')]

The project never imports the runtime (meshctl): what a signal needs comes in its arguments.
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timedelta

from sqlglot import exp
from sqlmesh import signal

# SQLMesh imports signal files as modules of the project (signals.<file>), from its root.
from signals.arrivals import as_utc

if t.TYPE_CHECKING:
    from sqlmesh import ExecutionContext
    from sqlmesh.utils.date import DatetimeRanges


def ready_intervals(batch: DatetimeRanges, watermark: datetime | None, tolerance: timedelta) -> bool | DatetimeRanges:
    """The intervals of `batch` whose end is covered by the load watermark (True: all, False: none)."""
    if watermark is None:
        return False
    ready = [(start, end) for start, end in batch if as_utc(end) - tolerance <= watermark]
    if len(ready) == len(batch):
        return True
    return ready or False


def landed_watermark(context: ExecutionContext, table: str, column: str) -> datetime | None:
    """The newest load timestamp in a RAW table (None when it is empty)."""
    query = exp.select(exp.func("MAX", exp.column(column))).from_(exp.to_table(table, dialect="snowflake"))
    row = context.engine_adapter.fetchone(query)
    return as_utc(row[0]) if row else None


def check_landed(batch: DatetimeRanges, context: ExecutionContext, table: str, column: str,
                 tolerance_seconds: float = 0) -> bool | DatetimeRanges:
    return ready_intervals(batch, landed_watermark(context, table, column), timedelta(seconds=float(tolerance_seconds)))


@signal()
def raw_landed(batch: DatetimeRanges, context: ExecutionContext, table: str, column: str,
               tolerance_seconds: float = 0) -> bool | DatetimeRanges:
    """Ready once `table`'s newest `column` value reaches the interval end (minus tolerance)."""
    return check_landed(batch, context, table, column, tolerance_seconds)


@signal()
def goodword_raw_landed(batch: DatetimeRanges, context: ExecutionContext, table: str,
                        tolerance_seconds: float = 0) -> bool | DatetimeRanges:
    """GOODWORD_WH.RAW tables: ready once the replication service's `_REPLICATED_AT` reaches the end."""
    return check_landed(batch, context, table, "_REPLICATED_AT", tolerance_seconds)


@signal()
def airbyte_raw_landed(batch: DatetimeRanges, context: ExecutionContext, table: str,
                       tolerance_seconds: float = 0) -> bool | DatetimeRanges:
    """AIRBYTE_DB.RAW tables: ready once Airbyte's `_AIRBYTE_EXTRACTED_AT` reaches the end."""
    return check_landed(batch, context, table, "_AIRBYTE_EXTRACTED_AT", tolerance_seconds)
