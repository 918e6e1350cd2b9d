"""`meshctl demo-data`: deterministic, written through either gateway, and every messy case of
sources.md really is in RAW (each checked by querying the warehouse, not the generator)."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date, datetime, timedelta, timezone

import pytest
from raw_helpers import fetch, invoke, isolated_settings, read_raw

from meshctl.demo.generator import DemoParams, generate
from meshctl.raw import warehouse as raw_warehouse
from meshctl.raw.schema import raw_tables

END = date(2026, 3, 10)
SMALL = DemoParams(organizations=30, users=250, days=10, events_per_day=150, seed=11, end_date=END)
WINDOW_START = datetime(2026, 3, 1)
WINDOW_END = datetime(2026, 3, 11)
KNOWN_TYPES = "('session_started', 'document_created', 'document_shared', 'comment_added', 'invite_sent')"

G, A = "GOODWORD_WH.RAW", "AIRBYTE_DB.RAW"
ITEMS = f"""(SELECT ID, CUSTOMER, UNNEST(from_json(ITEMS -> '$.data', '["JSON"]')) AS item
             FROM {A}.STRIPE_SUBSCRIPTIONS)"""
# name -> DuckDB query counting the rows that show the case; each must be > 0.
MESSY_CASES = {
    "user with several versions": f"SELECT COUNT(*) FROM (SELECT ID FROM {G}.USERS GROUP BY ID "
                                  "HAVING COUNT(DISTINCT UPDATED_AT) > 1)",
    "two different versions with the same UPDATED_AT, told apart by _REPLICATED_AT":
        f"SELECT COUNT(*) FROM (SELECT ID FROM {G}.USERS GROUP BY ID, UPDATED_AT "
        "HAVING COUNT(DISTINCT _REPLICATED_AT) > 1 AND COUNT(DISTINCT (ROLE, FULL_NAME)) > 1)",
    "user row appended twice": f"SELECT (SELECT COUNT(*) FROM {G}.USERS) - "
                               f"(SELECT COUNT(*) FROM (SELECT DISTINCT * FROM {G}.USERS))",
    "event row appended twice": f"SELECT (SELECT COUNT(*) FROM {G}.EVENTS) - "
                                f"(SELECT COUNT(*) FROM (SELECT DISTINCT * FROM {G}.EVENTS))",
    "event arriving more than a day late": f"SELECT COUNT(*) FROM {G}.EVENTS "
                                           "WHERE _REPLICATED_AT - OCCURRED_AT > INTERVAL 24 HOUR",
    "event arriving exactly 72 hours late": f"SELECT COUNT(*) FROM {G}.EVENTS "
                                            "WHERE _REPLICATED_AT - OCCURRED_AT = INTERVAL 72 HOUR",
    "event from the future": f"SELECT COUNT(*) FROM {G}.EVENTS WHERE OCCURRED_AT > _REPLICATED_AT",
    "NULL PROPERTIES": f"SELECT COUNT(*) FROM {G}.EVENTS WHERE PROPERTIES IS NULL",
    "empty PROPERTIES": f"SELECT COUNT(*) FROM {G}.EVENTS WHERE PROPERTIES = ''",
    "PROPERTIES not JSON": f"SELECT COUNT(*) FROM {G}.EVENTS WHERE PROPERTIES <> '' "
                           "AND NOT json_valid(PROPERTIES)",
    "PROPERTIES a JSON array": f"SELECT COUNT(*) FROM {G}.EVENTS WHERE json_valid(PROPERTIES) "
                               "AND json_type(PROPERTIES) = 'ARRAY'",
    "PROPERTIES a JSON scalar": f"SELECT COUNT(*) FROM {G}.EVENTS WHERE json_valid(PROPERTIES) "
                                "AND json_type(PROPERTIES) NOT IN ('OBJECT', 'ARRAY')",
    "PROPERTIES a JSON object": f"SELECT COUNT(*) FROM {G}.EVENTS WHERE json_valid(PROPERTIES) "
                                "AND json_type(PROPERTIES) = 'OBJECT'",
    "unknown event type": f"SELECT COUNT(*) FROM {G}.EVENTS WHERE EVENT_TYPE NOT IN {KNOWN_TYPES}",
    "anonymous event": f"SELECT COUNT(*) FROM {G}.EVENTS WHERE USER_ID IS NULL",
    "soft-deleted user": f"SELECT COUNT(*) FROM {G}.USERS WHERE DELETED_AT IS NOT NULL",
    "soft-deleted organization": f"SELECT COUNT(*) FROM {G}.ORGANIZATIONS WHERE DELETED_AT IS NOT NULL",
    "lower-case country code": f"SELECT COUNT(*) FROM {G}.ORGANIZATIONS "
                               "WHERE COUNTRY_CODE <> UPPER(COUNTRY_CODE)",
    "email with surrounding spaces": f"SELECT COUNT(*) FROM {G}.USERS WHERE EMAIL <> TRIM(EMAIL)",
    "mixed-case email": f"SELECT COUNT(*) FROM {G}.USERS WHERE TRIM(EMAIL) <> LOWER(TRIM(EMAIL))",
    "user of an organization not replicated (yet)":
        f"SELECT COUNT(*) FROM {G}.USERS WHERE ORGANIZATION_ID NOT IN "
        f"(SELECT ID FROM {G}.ORGANIZATIONS)",
    "Stripe customer without organization metadata":
        f"SELECT COUNT(*) FROM {A}.STRIPE_CUSTOMERS WHERE METADATA ->> 'organization_id' IS NULL",
    "Stripe customer whose metadata names a missing organization":
        f"SELECT COUNT(*) FROM {A}.STRIPE_CUSTOMERS WHERE CAST(METADATA ->> 'organization_id' "
        f"AS BIGINT) NOT IN (SELECT ID FROM {G}.ORGANIZATIONS)",
    "paying organization linked only through the customer's metadata":
        f"SELECT COUNT(*) FROM {G}.ORGANIZATIONS o JOIN {A}.STRIPE_CUSTOMERS c "
        "ON CAST(c.METADATA ->> 'organization_id' AS BIGINT) = o.ID "
        "WHERE o.STRIPE_CUSTOMER_ID IS NULL",
    "subscription with a trial": f"SELECT COUNT(*) FROM {A}.STRIPE_SUBSCRIPTIONS WHERE TRIAL_END IS NOT NULL",
    "yearly price": f"SELECT COUNT(*) FROM {ITEMS} WHERE item ->> '$.price.recurring.interval' = 'year'",
    "weekly price": f"SELECT COUNT(*) FROM {ITEMS} WHERE item ->> '$.price.recurring.interval' = 'week'",
    "daily price": f"SELECT COUNT(*) FROM {ITEMS} WHERE item ->> '$.price.recurring.interval' = 'day'",
    "interval_count > 1": f"SELECT COUNT(*) FROM {ITEMS} WHERE CAST(COALESCE(item ->> "
                          "'$.price.recurring.interval_count', item ->> '$.plan.interval_count') "
                          "AS INT) > 1",
    "legacy plan item without a price key": f"SELECT COUNT(*) FROM {ITEMS} WHERE (item -> '$.plan') "
                                            "IS NOT NULL AND (item -> '$.price') IS NULL",
    "legacy plan item with a null price": f"SELECT COUNT(*) FROM {ITEMS} WHERE (item -> '$.plan') IS NOT "
                                          "NULL AND json_type(item -> '$.price') = 'NULL'",
    "metered price with null unit_amount": f"SELECT COUNT(*) FROM {ITEMS} WHERE "
                                           "json_type(item -> '$.price.unit_amount') = 'NULL'",
    "one-time price (no recurring)": f"SELECT COUNT(*) FROM {ITEMS} WHERE "
                                     "json_type(item -> '$.price.recurring') = 'NULL'",
    "item without quantity": f"SELECT COUNT(*) FROM {ITEMS} WHERE (item -> '$.quantity') IS NULL "
                             "AND (item ->> '$.price.recurring.usage_type') = 'licensed'",
    "incomplete subscription": f"SELECT COUNT(*) FROM {A}.STRIPE_SUBSCRIPTIONS WHERE STATUS = 'incomplete'",
    "incomplete_expired subscription": f"SELECT COUNT(*) FROM {A}.STRIPE_SUBSCRIPTIONS "
                                       "WHERE STATUS = 'incomplete_expired'",
    "canceled subscription that ended": f"SELECT COUNT(*) FROM {A}.STRIPE_SUBSCRIPTIONS "
                                        "WHERE ENDED_AT IS NOT NULL",
    "non-USD subscription": f"SELECT COUNT(*) FROM {ITEMS} WHERE COALESCE(item ->> '$.price.currency', "
                            "item ->> '$.plan.currency') <> 'usd'",
    "non-USD invoice": f"SELECT COUNT(*) FROM {A}.STRIPE_INVOICES WHERE CURRENCY <> 'usd'",
    "Airbyte nulled a field": f"SELECT COUNT(*) FROM {A}.STRIPE_CUSTOMERS WHERE "
                              "json_array_length(_AIRBYTE_META -> '$.changes') > 0",
    "invoice without subscription": f"SELECT COUNT(*) FROM {A}.STRIPE_INVOICES WHERE SUBSCRIPTION IS NULL",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One small generated dataset, shared by the read-only checks of this module."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = isolated_settings(tmp_path_factory.mktemp("demo"), monkeypatch)
        with raw_warehouse.open_warehouse(settings) as adapter:
            generate(adapter, raw_tables(settings.project_dir), SMALL, lambda _: None)
    return settings


@pytest.fixture
def demo_settings(demo, monkeypatch):
    return isolated_settings(demo.resolve(demo.data_dirs.local).parent, monkeypatch)


def scalar(settings, sql: str):
    with raw_warehouse.open_warehouse(settings) as adapter:
        return adapter.fetchone(sql)[0]


@pytest.mark.parametrize("case", sorted(MESSY_CASES))
def test_messy_case_is_present(demo_settings, case):
    assert scalar(demo_settings, MESSY_CASES[case]) > 0, case


def test_lateness_and_clock_skew_stay_within_the_contract(demo_settings):
    late, ahead = map(timedelta.total_seconds, (scalar(demo_settings, sql) for sql in (
        f"SELECT MAX(_REPLICATED_AT - OCCURRED_AT) FROM {G}.EVENTS",
        f"SELECT MAX(OCCURRED_AT - _REPLICATED_AT) FROM {G}.EVENTS")))
    assert late == 72 * 3600
    assert 0 < ahead <= 300


def test_one_batch_a_day_and_nothing_replicated_after_the_window(demo_settings):
    batches = [WINDOW_START + timedelta(days=d + 1) for d in range(SMALL.days)]
    for table in ("EVENTS", "USERS"):
        got = [r["B"] for r in fetch_all(demo_settings,
                                         f"SELECT DISTINCT _REPLICATED_AT AS B FROM {G}.{table} ORDER BY 1")]
        assert got == batches, table
    assert [r["B"] for r in fetch_all(demo_settings, f"SELECT DISTINCT _REPLICATED_AT AS B "
                                                     f"FROM {G}.ORGANIZATIONS")] == [WINDOW_END]
    for table in ("STRIPE_CUSTOMERS", "STRIPE_SUBSCRIPTIONS", "STRIPE_INVOICES"):
        newest = scalar(demo_settings, f"SELECT MAX(_AIRBYTE_EXTRACTED_AT) FROM {A}.{table}")
        assert newest.replace(tzinfo=None) <= WINDOW_END, table
    assert scalar(demo_settings, f"SELECT MAX(_AIRBYTE_EXTRACTED_AT) FROM {A}.STRIPE_CUSTOMERS"
                  ).replace(tzinfo=None) == WINDOW_END
    assert scalar(demo_settings, f"SELECT MIN(OCCURRED_AT) FROM {G}.EVENTS") >= WINDOW_START


def test_stripe_tables_have_one_row_per_id_and_an_undeclared_column(demo_settings):
    for table in ("STRIPE_CUSTOMERS", "STRIPE_SUBSCRIPTIONS", "STRIPE_INVOICES"):
        assert scalar(demo_settings, f"SELECT COUNT(*) - COUNT(DISTINCT ID) FROM {A}.{table}") == 0
    declared = set(raw_tables(demo_settings.project_dir)[f"{A}.STRIPE_CUSTOMERS"].column_names)
    with raw_warehouse.open_warehouse(demo_settings) as adapter:
        actual = raw_warehouse.existing_columns(adapter, f"{A}.STRIPE_CUSTOMERS")
    assert actual - declared == {"INVOICE_PREFIX"}
    assert scalar(demo_settings, f"SELECT COUNT(INVOICE_PREFIX) FROM {A}.STRIPE_CUSTOMERS") > 0


def fetch_all(settings, sql: str) -> list[dict]:
    with raw_warehouse.open_warehouse(settings) as adapter:
        return fetch(adapter, sql)


def test_same_seed_same_rows_other_seed_other_rows(demo, tmp_path, monkeypatch):
    expected = read_raw(isolated_settings(demo.resolve(demo.data_dirs.local).parent, monkeypatch))
    again = isolated_settings(tmp_path / "again", monkeypatch)
    with raw_warehouse.open_warehouse(again) as adapter:
        generate(adapter, raw_tables(again.project_dir), SMALL, lambda _: None)
    assert read_raw(again) == expected
    other = isolated_settings(tmp_path / "other", monkeypatch)
    with raw_warehouse.open_warehouse(other) as adapter:
        generate(adapter, raw_tables(other.project_dir), dataclasses.replace(SMALL, seed=12),
                 lambda _: None)
    differs = read_raw(other)
    assert all(differs[t] != expected[t] for t in expected)


def test_emulated_snowflake_gets_the_same_rows(demo, tmp_path, monkeypatch):
    expected = read_raw(isolated_settings(demo.resolve(demo.data_dirs.local).parent, monkeypatch))
    settings = isolated_settings(tmp_path, monkeypatch)
    result = invoke(settings, monkeypatch, "--gateway", "fakesnow", "demo-data",
                    "--organizations", "30", "--users", "250", "--days", "10",
                    "--events-per-day", "150", "--seed", "11", "--end-date", "2026-03-10")
    assert result.exit_code == 0, result.output
    assert read_raw(settings.updated(gateway="fakesnow")) == expected


def test_cli_prints_a_line_per_table_and_a_summary(tmp_path, monkeypatch):
    settings = isolated_settings(tmp_path, monkeypatch)
    result = invoke(settings, monkeypatch, "demo-data", "--organizations", "8", "--users", "30",
                    "--days", "2", "--events-per-day", "20", "--end-date", "2026-03-10")
    assert result.exit_code == 0, result.output
    for fqn in raw_tables(settings.project_dir):
        assert f"{fqn}: " in result.output
    assert "Done: " in result.output and "rows in 6 tables" in result.output


def test_append_day_adds_the_next_batch(demo, tmp_path, monkeypatch):
    source = demo.resolve(demo.data_dirs.local)
    shutil.copytree(source, tmp_path / "local")
    settings = isolated_settings(tmp_path, monkeypatch)
    before = read_raw(settings)
    result = invoke(settings, monkeypatch, "demo-data", "--append-day", "--events-per-day", "150",
                    "--seed", "11")
    assert result.exit_code == 0, result.output
    assert "Appended 2026-03-11" in result.output
    after = read_raw(settings)
    new_batch = WINDOW_END + timedelta(days=1)

    for table in ("EVENTS", "USERS"):  # append-only: every earlier row is still there
        old, new = before[f"{G}.{table}"], after[f"{G}.{table}"]
        assert [r for r in new if r["_REPLICATED_AT"] != new_batch] == old, table
    batch = [e for e in after[f"{G}.EVENTS"] if e["_REPLICATED_AT"] == new_batch]
    late_dates = {e["OCCURRED_AT"].date() for e in batch if e["OCCURRED_AT"] < WINDOW_END}
    # Batches load at midnight and lateness is at most 72 hours: the two days before reach back.
    assert late_dates == {date(2026, 3, 9), date(2026, 3, 10)}
    assert min(e["ID"] for e in batch) > max(e["ID"] for e in before[f"{G}.EVENTS"])

    old_users = {u["ID"] for u in before[f"{G}.USERS"]}
    new_versions = [u for u in after[f"{G}.USERS"] if u["_REPLICATED_AT"] == new_batch]
    assert any(u["ID"] in old_users for u in new_versions)
    assert any(u["ID"] not in old_users for u in new_versions)

    orgs_before = {o["ID"]: o for o in before[f"{G}.ORGANIZATIONS"]}
    orgs_after = {o["ID"]: o for o in after[f"{G}.ORGANIZATIONS"]}
    assert {o["_REPLICATED_AT"] for o in orgs_after.values()} == {new_batch}
    assert len(orgs_after) == len(orgs_before) + 1
    assert any(orgs_before[i]["PLAN"] != o["PLAN"] for i, o in orgs_after.items() if i in orgs_before)

    subs = after[f"{A}.STRIPE_SUBSCRIPTIONS"]
    assert len({s["ID"] for s in subs}) == len(subs)
    changed = [s for s in subs if s["_AIRBYTE_EXTRACTED_AT"].replace(tzinfo=None) == new_batch]
    new_day_s = int(WINDOW_END.replace(tzinfo=timezone.utc).timestamp())
    assert any(s["STATUS"] == "canceled" and new_day_s <= s["ENDED_AT"] < new_day_s + 86400
               for s in changed)
    assert len(subs) > len(before[f"{A}.STRIPE_SUBSCRIPTIONS"])
