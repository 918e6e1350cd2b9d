"""Comparing the marts SQLMesh built with the oracle's (oracle.py): shared by test_marts and the
replay (test_replay). Row set against row set, keyed by each mart's grain; duplicates of a grain
key are a difference of their own."""

from __future__ import annotations

import json
from datetime import datetime
from fractions import Fraction

import oracle
from raw_helpers import fetch, plain

MARTS = sorted(oracle.KEYS)
HALF_CENT = Fraction(1, 200)


def read_marts(adapter) -> dict[str, list[dict]]:
    """Every mart's rows, through an engine adapter (a Context's `engine_adapter`)."""
    return {mart: fetch(adapter, f'SELECT * FROM "GOODWORD_WH"."MARTS"."{mart}"') for mart in MARTS}


def normalized(value):
    value = plain(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.replace(tzinfo=None)
    return value


def _decimals(value) -> int:
    exponent = value.as_tuple().exponent if hasattr(value, "as_tuple") else 0
    return max(0, -exponent) if isinstance(exponent, int) else 0


def money_tolerance(mart: str, column: str, expected: dict, fct_mrr: list[dict]):
    """None for exact columns; otherwise how far the mart may be from the oracle's exact value:
    half a cent per amount that was rounded to cents."""
    if mart == "FCT_MRR_DAILY" and column == "MRR":
        return HALF_CENT
    if mart == "METRICS_DAILY" and column == "MRR_USD":
        rows = sum(1 for r in fct_mrr if r["DATE"] == expected["DATE"] and r["CURRENCY"] == "usd")
        return Fraction(max(rows, 1), 200)
    if mart == "FCT_INVOICES" and column in ("AMOUNT_DUE", "AMOUNT_PAID"):
        # NUMBER(38,2): exact unless the currency has more decimals (kwd, bhd...).
        value = expected[column]
        if value is not None and _decimals(value.normalize()) > 2:
            return HALF_CENT
    return None


def same(actual, expected, tolerance) -> bool:
    if tolerance is not None and actual is not None and expected is not None:
        return abs(Fraction(str(actual)) - Fraction(expected)) <= tolerance
    if isinstance(expected, dict) and isinstance(actual, str):
        actual = json.loads(actual)  # VARIANT comes back as JSON text
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    return actual == expected


def differences(mart: str, actual_rows: list[dict], expected_rows: list[dict],
                fct_mrr: list[dict]) -> str:
    """'' when the mart's rows are the oracle's; else what differs (a few examples of each)."""
    key_columns = oracle.KEYS[mart]
    key = lambda row: tuple(normalized(row.get(c)) for c in key_columns)  # noqa: E731
    actual = {}
    duplicates = []
    for row in actual_rows:
        row = {c.upper(): normalized(v) for c, v in row.items()}
        if key(row) in actual:
            duplicates.append(key(row))
        actual[key(row)] = row
    expected = {key(row): row for row in expected_rows}
    problems = []
    if duplicates:
        problems.append(f"{len(duplicates)} duplicate keys {key_columns} in the mart, e.g. "
                        f"{sorted(duplicates, key=str)[:5]}")
    missing_columns = set(expected_rows[0]) - set(next(iter(actual.values()), {})) if (
        expected_rows and actual) else set()
    if missing_columns:
        problems.append(f"columns missing from the mart: {sorted(missing_columns)}")
    missing = sorted(set(expected) - set(actual), key=str)
    extra = sorted(set(actual) - set(expected), key=str)
    if missing:
        problems.append(f"{len(missing)} rows the oracle expects are missing, e.g.:\n  " +
                        "\n  ".join(repr(expected[k]) for k in missing[:8]))
    if extra:
        problems.append(f"{len(extra)} rows the oracle does not expect, e.g.:\n  " +
                        "\n  ".join(repr(actual[k]) for k in extra[:8]))
    changed = []
    for k in sorted(set(expected) & set(actual), key=str):
        diff = {
            column: (actual[k].get(column), want)
            for column, want in expected[k].items()
            if column not in missing_columns
            and not same(actual[k].get(column), want,
                         money_tolerance(mart, column, expected[k], fct_mrr))
        }
        if diff:
            changed.append(f"{dict(zip(key_columns, k))}: " + ", ".join(
                f"{c} mart={a!r} oracle={e!r}" for c, (a, e) in diff.items()))
    if changed:
        problems.append(f"{len(changed)} rows differ (of {len(expected)}), e.g.:\n  " +
                        "\n  ".join(changed[:12]))
    return "\n".join(problems)


def all_differences(marts: dict[str, list[dict]],
                    expected: dict[str, list[dict]]) -> dict[str, str]:
    """Per mart, its differences; marts that match are left out."""
    out = {}
    for mart in MARTS:
        problems = differences(mart, marts[mart], expected[mart], expected["FCT_MRR_DAILY"])
        if problems:
            out[mart] = problems
    return out
