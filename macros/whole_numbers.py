"""Engine-neutral number sequences and the daily calendar the daily marts are built on."""

from __future__ import annotations

from sqlglot import exp, parse_one
from sqlmesh import macro

def _whole_numbers_sql(count: int, name: str) -> str:
    places = len(str(max(count - 1, 0)))
    digits = "(VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9))"
    terms = " + ".join(f"d{i}.digit * {10 ** i}" for i in range(places))
    joins = " CROSS JOIN ".join(f"{digits} AS d{i}(digit)" for i in range(places))
    return f"SELECT {terms} AS {name} FROM {joins} WHERE {terms} < {count}"


@macro()
def whole_numbers(evaluator, count: int, column: exp.Expression) -> exp.Query:
    """`SELECT <column>` over the whole numbers 0 .. count-1, as a cross join of decimal digits.

    Neither `@DATE_SPINE` (fails on fakesnow) nor Snowflake's GENERATOR (no DuckDB transpilation)
    works on every engine this project builds on; VALUES and CROSS JOIN do.
    """
    return parse_one(_whole_numbers_sql(count, column.name), read="snowflake")


@macro()
def calendar_days(evaluator, source: exp.Expression, first_date: exp.Expression,
                  last_date: exp.Expression) -> exp.Query:
    """`SELECT date_day`: every day from MIN(first_date) in `source` through `last_date` (up to
    100,000 days); the marts pass `@closed_through_date()` (macros/arrivals.py)."""
    day = "DATEADD(DAY, offsets.day_offset, spine.first_date)::DATE"
    query = (
        f"SELECT {day} AS date_day "
        f"FROM (SELECT MIN({first_date.sql('snowflake')}) AS first_date FROM {source.sql('snowflake')}) AS spine "
        f"CROSS JOIN ({_whole_numbers_sql(100_000, 'day_offset')}) AS offsets "
        f"WHERE {day} <= {last_date.sql('snowflake')}"
    )
    return parse_one(query, read="snowflake")
