"""Money in a currency's major unit (marts.md), with the exponents kept in one seed."""

from __future__ import annotations

from sqlglot import exp, parse_one
from sqlmesh import macro


@macro()
def minor_to_major(evaluator, amount: exp.Expression, exponent: exp.Expression) -> exp.Expression:
    """A Stripe amount (an integer in the currency's minor unit) in major units, NUMBER(38, 2);
    `exponent` is the currency's row of seeds.stripe_currency_exponents, null for two decimals."""
    return evaluator.transform(parse_one(
        f"({amount.sql('snowflake')} / POWER(10, COALESCE({exponent.sql('snowflake')}, 2)))::NUMBER(38, 2)",
        read="snowflake",
    ))
