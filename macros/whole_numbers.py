"""Engine-neutral number sequences for date spines and array positions."""

from __future__ import annotations

from sqlglot import exp, parse_one
from sqlmesh import macro


@macro()
def whole_numbers(evaluator, count: int, column: exp.Expression) -> exp.Query:
    """`SELECT <column>` over the whole numbers 0 .. count-1, as a cross join of decimal digits.

    Neither `@DATE_SPINE` (fails on fakesnow) nor Snowflake's GENERATOR (no DuckDB transpilation)
    works on every engine this project builds on; VALUES and CROSS JOIN do.
    """
    name = column.name
    places = len(str(max(count - 1, 0)))
    digits = "(VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9))"
    terms = " + ".join(f"d{i}.digit * {10 ** i}" for i in range(places))
    joins = " CROSS JOIN ".join(f"{digits} AS d{i}(digit)" for i in range(places))
    return parse_one(f"SELECT {terms} AS {name} FROM {joins} WHERE {terms} < {count}", read="snowflake")
