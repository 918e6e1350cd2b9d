"""Every mart, built by SQLMesh on generated RAW, against the independent oracle (oracle.py).

Build 1: `plan` with the execution time pinned, so the latest complete date is END. Then one more
day of RAW arrives (late events for earlier days, new user versions, organization and Stripe
changes) and build 2 is a `run` the next day. Both builds are compared in full, row set against
row set. A last test loads the real Airbyte Stripe records with `load-raw` and builds on them.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import mart_checks
import oracle
import pytest
from mart_checks import differences
from raw_helpers import fetch, isolated_settings, read_raw

from meshctl.demo.generator import DemoParams, append_day, generate
from meshctl.project.gateways import open_context
from meshctl.raw import warehouse as raw_warehouse
from meshctl.raw.airbyte_records import convert
from meshctl.raw.loader import load_raw
from meshctl.raw.schema import raw_tables
from meshctl.settings import PROJECT_DIR

END = date(2026, 3, 10)
PARAMS = DemoParams(organizations=40, users=300, days=21, events_per_day=250, seed=7, end_date=END)
MODEL_START = "2026-02-18"  # the first generated day
# Shortly after midnight: the day before is the latest complete one.
EXECUTION_1 = datetime(2026, 3, 11, 0, 30)
EXECUTION_2 = datetime(2026, 3, 12, 0, 30)
# shared/ sits beside the checkout (on developer machines and in CI alike).
AIRBYTE_RECORDS = PROJECT_DIR.parent / "shared" / "data" / "airbyte-stripe-records"
MARTS = mart_checks.MARTS


def read_marts(context) -> dict[str, list[dict]]:
    return mart_checks.read_marts(context.engine_adapter)


def build(context, execution_time: datetime, *, first: bool) -> None:
    if first:
        # Unit tests and lint are `make test`'s job; this checks what the build produces.
        context.plan(auto_apply=True, no_prompts=True, execution_time=execution_time,
                     skip_tests=True, skip_linter=True)
    else:
        # A run that finds nothing to do would leave build 1's marts in place: demand work done.
        status = context.run(execution_time=execution_time)
        assert status.is_success, f"sqlmesh run at {execution_time}: {status}"


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MODEL_START", MODEL_START)
        settings = isolated_settings(tmp_path_factory.mktemp("marts"), monkeypatch)
        tables = raw_tables(settings.project_dir)
        with raw_warehouse.open_warehouse(settings) as adapter:
            generate(adapter, tables, PARAMS, lambda _: None)
        raw_1 = read_raw(settings)
        with open_context(settings) as context:
            build(context, EXECUTION_1, first=True)
            marts_1 = read_marts(context)
        with raw_warehouse.open_warehouse(settings) as adapter:
            append_day(adapter, tables, PARAMS.seed, PARAMS.events_per_day, lambda _: None)
        raw_2 = read_raw(settings)
        with open_context(settings) as context:
            build(context, EXECUTION_2, first=False)
            marts_2 = read_marts(context)
    history = [(EXECUTION_1, raw_1), (EXECUTION_2, raw_2)]
    # The demo's last replication batch and Airbyte sync land at the midnight that ends the
    # window, so the whole-days rule publishes through the window's last day.
    complete_1 = oracle.latest_complete_date(raw_1, EXECUTION_1)
    complete_2 = oracle.latest_complete_date(raw_2, EXECUTION_2)
    assert (complete_1, complete_2) == (END, END + timedelta(days=1))
    return {
        1: (marts_1, oracle.marts(raw_1, complete_1, history[:1]), raw_1),
        2: (marts_2, oracle.marts(raw_2, complete_2, history), raw_2),
    }


# --- the checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("build_no", [1, 2])
@pytest.mark.parametrize("mart", MARTS)
def test_mart_matches_oracle(builds, mart, build_no):
    marts, expected, _ = builds[build_no]
    assert expected[mart], f"the oracle expects no {mart} rows: the dataset is too small to test it"
    problems = differences(mart, marts[mart], expected[mart], expected["FCT_MRR_DAILY"])
    assert not problems, f"MARTS.{mart} after build {build_no}:\n{problems}"


def test_the_second_build_had_something_to_get_right(builds):
    """The appended day must move every mart, or build 2 would prove nothing about reruns."""
    (_, first, _), (_, second, raw_2) = builds[1], builds[2]
    appended_batch = datetime(2026, 3, 12)
    late = {e["OCCURRED_AT"].date() for e in raw_2[oracle.EVENTS]
            if e["_REPLICATED_AT"] == appended_batch and e["OCCURRED_AT"].date() <= END}
    assert late, "no late events in the appended batch"
    before = {r["DATE"]: r for r in first["METRICS_DAILY"]}
    after = {r["DATE"]: r for r in second["METRICS_DAILY"]}
    assert any(before[d]["DAU"] != after[d]["DAU"] for d in late), "late events changed no DAU"
    for mart in ("DIM_ORGANIZATIONS", "DIM_ORGANIZATIONS_HISTORY", "DIM_USERS", "FCT_INVOICES",
                 "FCT_MRR_DAILY"):
        assert sorted(map(repr, first[mart])) != sorted(map(repr, second[mart])), mart
    assert len(second["DIM_ORGANIZATIONS_HISTORY"]) > len(first["DIM_ORGANIZATIONS_HISTORY"])


def test_real_airbyte_stripe_records_build(tmp_path, monkeypatch):
    """The Stripe staging models build on what Stripe really sends, and the marts built on them
    agree with the oracle (app tables empty)."""
    monkeypatch.setenv("MODEL_START", MODEL_START)
    settings = isolated_settings(tmp_path, monkeypatch)
    snapshot = tmp_path / "snapshot"
    convert(AIRBYTE_RECORDS, snapshot)
    for fqn in ("GOODWORD_WH.RAW.USERS", "GOODWORD_WH.RAW.EVENTS"):
        (snapshot / f"{fqn}.jsonl").write_text("")
    # The readiness signal holds every model that reads ORGANIZATIONS until a replication batch
    # has landed there; one free organization, replicated at the end of the window, is that batch.
    landed = (EXECUTION_1.replace(hour=0, minute=0)).isoformat()
    (snapshot / "GOODWORD_WH.RAW.ORGANIZATIONS.jsonl").write_text(json.dumps({
        "ID": 1, "NAME": "Acme", "PLAN": "free", "CREATED_AT": "2026-01-05T09:00:00",
        "UPDATED_AT": "2026-01-05T09:00:00", "_REPLICATED_AT": landed}) + "\n")
    load_raw(settings, snapshot, replace=True)
    raw = read_raw(settings)
    with open_context(settings) as context:
        build(context, EXECUTION_1, first=True)
        staged = {
            name: fetch(context.engine_adapter,
                        f'SELECT COUNT(*) AS N FROM "GOODWORD_WH"."STAGING"."{name}"')[0]["N"]
            for name in ("STG_STRIPE__CUSTOMERS", "STG_STRIPE__SUBSCRIPTIONS", "STG_STRIPE__INVOICES")
        }
        marts = read_marts(context)
    assert staged == {"STG_STRIPE__CUSTOMERS": 1307, "STG_STRIPE__SUBSCRIPTIONS": 1,
                      "STG_STRIPE__INVOICES": 10}
    # Airbyte's test records are years old: only the clock (7 h without a sync) closes days.
    complete = oracle.latest_complete_date(raw, EXECUTION_1)
    assert complete == (EXECUTION_1 - timedelta(hours=7)).date() - timedelta(days=1)
    expected = oracle.marts(raw, complete, [(EXECUTION_1, raw)])
    for mart in ("FCT_INVOICES", "FCT_MRR_DAILY"):
        problems = differences(mart, marts[mart], expected[mart], expected["FCT_MRR_DAILY"])
        assert not problems, f"MARTS.{mart} on the real records:\n{problems}"
    # By hand, from subscriptions.jsonl: one $6/month item, started 2023-10-17, ended 2024-01-15.
    mrr = expected["FCT_MRR_DAILY"]
    assert {(r["STRIPE_CUSTOMER_ID"], r["CURRENCY"], r["MRR"]) for r in mrr} == {
        ("cus_NGoTFiJFVbSsvZ", "usd", Fraction(6))}
    assert (min(r["DATE"] for r in mrr), max(r["DATE"] for r in mrr)) == (
        date(2023, 10, 17), date(2024, 1, 14))
    assert sum(r["AMOUNT_PAID"] for r in expected["FCT_INVOICES"]) == Decimal(
        sum(i["AMOUNT_PAID"] for i in raw[oracle.INVOICES])) / 100
