"""Money in a currency's major unit (marts.md), with the exponents kept in one seed."""

from __future__ import annotations

from sqlglot import exp, parse_one
from sqlmesh import macro


def _per_major_sql(exponent: exp.Expression) -> str:
    return f"POWER(10, COALESCE({exponent.sql('snowflake')}, 2))"


@macro()
def minor_units_per_major(evaluator, exponent: exp.Expression) -> exp.Expression:
    """How many minor units make one major unit: 10^exponent, where `exponent` is the currency's
    row of seeds.stripe_currency_exponents (null: two decimals, Stripe's usual)."""
    return evaluator.transform(parse_one(_per_major_sql(exponent), read="snowflake"))


@macro()
def minor_to_major(evaluator, amount: exp.Expression, exponent: exp.Expression) -> exp.Expression:
    """A Stripe amount (an integer in the currency's minor unit) in major units, NUMBER(38, 2)."""
    return evaluator.transform(parse_one(
        f"({amount.sql('snowflake')} / {_per_major_sql(exponent)})::NUMBER(38, 2)", read="snowflake"
    ))
