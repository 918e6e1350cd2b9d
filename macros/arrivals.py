"""Arrival windows and the whole-days rule, shared by every incremental model of the daily job."""

from __future__ import annotations

from sqlglot import exp, parse_one
from sqlmesh import macro

# Every arrival window re-reads the interval before its own: a batch stamped just before a tick
# but committed just after it is picked up by the next run instead of being skipped for good.
# The staging model that reads RAW gets the same overlap from `lookback 1` (one 15-minute
# interval); downstream models, merged by key, re-read it here, which changes nothing twice.
OVERLAP_MINUTES = 15


@macro()
def arrived(evaluator, column: exp.Expression) -> exp.Expression:
    """`column` (an arrival timestamp) inside this run's window: [start - overlap, end]
    (SQLMesh's @end_ts is the interval's last microsecond)."""
    name = column.sql("snowflake")
    return evaluator.transform(parse_one(
        f"{name} >= DATEADD(MINUTE, -{OVERLAP_MINUTES}, @start_ts::TIMESTAMP_NTZ) "
        f"AND {name} <= @end_ts::TIMESTAMP_NTZ",
        read="snowflake",
    ))


@macro()
def closed_through_date(evaluator) -> exp.Expression:
    """The latest date whose inputs are complete (marts.md "Whole days only"): the day before
    the run, and no later than the day before both the newest ORGANIZATIONS reload (the
    replication run that closes a day reloads it) and the newest Airbyte sync. Stripe streams
    gain rows only when something changed, so a sync that brought nothing is invisible: once
    `airbyte_max_sync_gap_hours` have passed since a midnight, a sync must have run after it."""
    gap = int(evaluator.var("airbyte_max_sync_gap_hours", 7))
    return evaluator.transform(parse_one(
        f"""
        LEAST(
          DATEADD(DAY, -1, @execution_date)::DATE,
          (SELECT DATEADD(DAY, -1, MAX(replicated_at)::DATE)::DATE
             FROM staging.stg_goodword_app__organizations),
          GREATEST(
            COALESCE(
              (SELECT DATEADD(DAY, -1, MAX(extracted_at)::DATE)::DATE FROM (
                SELECT extracted_at FROM staging.stg_stripe__customers
                UNION ALL SELECT extracted_at FROM staging.stg_stripe__subscriptions
                UNION ALL SELECT extracted_at FROM staging.stg_stripe__invoices
              ) AS airbyte_syncs),
              '1970-01-01'::DATE
            ),
            DATEADD(DAY, -1, DATEADD(HOUR, -{gap}, @execution_ts::TIMESTAMP_NTZ)::DATE)::DATE
          )
        )
        """,
        read="snowflake",
    ))

