"""How source values become staging values, written once for every staging model."""

from __future__ import annotations

from sqlglot import exp, parse_one
from sqlmesh import macro


@macro()
def unix_to_timestamp(evaluator, seconds: exp.Expression) -> exp.Expression:
    """Unix seconds (how Stripe sends every time) as a UTC TIMESTAMP_NTZ; null stays null."""
    return evaluator.transform(parse_one(f"TO_TIMESTAMP_NTZ({seconds.sql('snowflake')}, 0)", read="snowflake"))


@macro()
def normalized_email(evaluator, email: exp.Expression) -> exp.Expression:
    """An e-mail address as the marts compare it: surrounding whitespace removed, lower case
    (sources.md: the app and Stripe both send addresses as typed)."""
    return evaluator.transform(parse_one(
        f"LOWER(REGEXP_REPLACE({email.sql('snowflake')}, '^[[:space:]]+|[[:space:]]+$', ''))::VARCHAR",
        read="snowflake",
    ))
