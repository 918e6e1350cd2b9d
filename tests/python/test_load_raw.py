"""`meshctl load-raw`: the snapshot format, its checks, and that a bad snapshot loads nothing."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from raw_helpers import dump_snapshot, fetch, invoke, isolated_settings, read_raw

from meshctl.demo.generator import DemoParams, generate
from meshctl.raw import loader as raw_load
from meshctl.raw import warehouse as raw_warehouse
from meshctl.raw.airbyte_records import convert
from meshctl.raw.schema import raw_tables
from meshctl.settings import PROJECT_DIR

EVENTS = "GOODWORD_WH.RAW.EVENTS"
CUSTOMERS = "AIRBYTE_DB.RAW.STRIPE_CUSTOMERS"
ORGS = "GOODWORD_WH.RAW.ORGANIZATIONS"
# shared/ sits beside the checkout (on developer machines and in CI alike).
AIRBYTE_RECORDS = PROJECT_DIR.parent / "shared" / "data" / "airbyte-stripe-records"


@pytest.fixture
def settings(tmp_path, monkeypatch):
    return isolated_settings(tmp_path, monkeypatch)


def write(directory: Path, fqn: str, *lines) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (directory / f"{fqn}.jsonl").write_text(text)


def event(i: int, **extra) -> dict:
    return {"ID": i, "USER_ID": 10 + i, "ORGANIZATION_ID": 1, "EVENT_TYPE": "comment_added",
            "PROPERTIES": '{"a": 1}', "OCCURRED_AT": "2026-03-01T10:00:00.123456",
            "_REPLICATED_AT": "2026-03-02T00:00:00", **extra}


def customer(cid: str, **extra) -> dict:
    return {"id": cid, "email": "a@b.c", "name": "A", "created": 1700000000, "currency": "usd",
            "delinquent": False, "deleted": None, "livemode": True,
            "metadata": {"organization_id": "7", "tags": ["x", 1, None], "n": {"deep": True}},
            "updated": 1700000001, "_airbyte_raw_id": "r1",
            "_airbyte_extracted_at": "2026-03-02T01:02:03.5+02:00",
            "_airbyte_meta": {"sync_id": 3, "changes": []}, "_airbyte_generation_id": 0, **extra}


def rows(settings, fqn: str, order: str = '"ID"') -> list[dict]:
    with raw_warehouse.open_warehouse(settings) as adapter:
        return fetch(adapter, f"SELECT * FROM {raw_warehouse.quoted(fqn).sql(adapter.dialect)} "
                              f"ORDER BY {order}")


@pytest.mark.parametrize("gateway", ["local", "fakesnow"])
def test_values_of_every_type_round_trip(settings, tmp_path, gateway):
    settings = settings.updated(gateway=gateway)
    snap = tmp_path / "snap"
    write(snap, EVENTS, event(1), event(2, USER_ID=None, PROPERTIES=None))
    write(snap, CUSTOMERS, customer("cus_1"),
          customer("cus_2", metadata="just text", _airbyte_meta={"sync_id": 4, "changes": [
              {"field": "name", "change": "NULLED", "reason": "DESTINATION_FIELD_SIZE_LIMITATION"}]}),
          customer("cus_3", metadata=[1, "two"], deleted=True))
    raw_load.load_raw(settings, snap, replace=True)

    events = rows(settings, EVENTS)
    assert [e["ID"] for e in events] == [1, 2]
    assert events[0]["OCCURRED_AT"] == datetime(2026, 3, 1, 10, 0, 0, 123456)
    assert events[0]["PROPERTIES"] == '{"a": 1}'  # VARCHAR keeps the app's text as it was
    assert events[1]["USER_ID"] is None and events[1]["PROPERTIES"] is None

    got = {r["ID"]: r for r in rows(settings, CUSTOMERS)}
    assert json.loads(got["cus_1"]["METADATA"]) == customer("x")["metadata"]
    assert json.loads(got["cus_2"]["METADATA"]) == "just text"
    assert json.loads(got["cus_3"]["METADATA"]) == [1, "two"]
    assert json.loads(got["cus_2"]["_AIRBYTE_META"])["changes"][0]["change"] == "NULLED"
    assert got["cus_1"]["_AIRBYTE_EXTRACTED_AT"] == datetime(2026, 3, 1, 23, 2, 3, 500000,
                                                             tzinfo=timezone.utc)
    assert got["cus_1"]["CREATED"] == 1700000000 and got["cus_1"]["DELINQUENT"] is False
    assert got["cus_1"]["DELETED"] is None and got["cus_3"]["DELETED"] is True


def test_missing_key_is_null_and_unknown_keys_are_ignored_and_reported(settings, tmp_path,
                                                                     monkeypatch):
    snap = tmp_path / "snap"
    write(snap, EVENTS, {"id": 5, "Event_Type": "x", "brand_new_field": 1, "ANOTHER": [1]},
          {"ID": 6, "brand_new_field": 2})
    result = invoke(settings, monkeypatch, "load-raw", str(snap))
    assert result.exit_code == 0, result.output
    assert "ignored keys not in the contract: ANOTHER (1), BRAND_NEW_FIELD (2)" in result.output
    got = rows(settings, EVENTS)
    assert [(r["ID"], r["EVENT_TYPE"], r["USER_ID"], r["OCCURRED_AT"]) for r in got] == [
        (5, "x", None, None), (6, None, None, None)]


def test_append_by_default_and_replace_on_request(settings, tmp_path):
    snap = tmp_path / "snap"
    write(snap, EVENTS, event(1), event(2))
    raw_load.load_raw(settings, snap, replace=False)
    raw_load.load_raw(settings, snap, replace=False)
    assert [r["ID"] for r in rows(settings, EVENTS)] == [1, 1, 2, 2]
    write(snap, EVENTS, event(3))
    raw_load.load_raw(settings, snap, replace=True)
    assert [r["ID"] for r in rows(settings, EVENTS)] == [3]
    write(snap, EVENTS)  # an empty file replaces a table with no rows
    raw_load.load_raw(settings, snap, replace=True)
    assert rows(settings, EVENTS) == []


BAD_LINES = {
    "bad json": ('{"ID": 1, "EVENT_TYPE": ', "not valid JSON"),
    "not an object": ("[1, 2]", "expected a JSON object"),
    "string in NUMBER": ({"ID": "7"}, "ID: expected an integer"),
    "fraction in NUMBER": ({"ID": 7.5}, "ID: expected an integer"),
    "number in VARCHAR": ({"ID": 7, "EVENT_TYPE": 3}, "EVENT_TYPE: expected a string"),
    "unparsable timestamp": ({"ID": 7, "OCCURRED_AT": "yesterday"},
                             "OCCURRED_AT: 'yesterday' is not an ISO-8601 timestamp"),
    "offset on NTZ": ({"ID": 7, "OCCURRED_AT": "2026-03-01T10:00:00+01:00"}, "has a UTC offset"),
    "NaN": ('{"ID": NaN}', "not valid JSON"),
    "key twice": ({"ID": 7, "id": 8}, "column ID given twice"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_a_bad_line_is_reported_with_file_and_line_and_nothing_is_loaded(settings, tmp_path, case):
    before = tmp_path / "before"
    write(before, EVENTS, event(1))
    write(before, CUSTOMERS, customer("cus_1"))
    raw_load.load_raw(settings, before, replace=True)
    expected = read_raw(settings)

    bad_line, message = BAD_LINES[case]
    snap = tmp_path / "snap"
    # The good file sorts first, so a loader that wrote file by file would already have written it.
    write(snap, CUSTOMERS, customer("cus_2"))
    write(snap, EVENTS, event(2), event(3), bad_line)
    for replace in (False, True):
        with pytest.raises(raw_load.SnapshotError) as failure:
            raw_load.load_raw(settings, snap, replace=replace)
        assert f"{snap / (EVENTS + '.jsonl')}:3: " in str(failure.value.message)
        assert message in failure.value.message
        assert read_raw(settings) == expected


def test_timestamp_tz_needs_an_offset_and_every_problem_is_listed(settings, tmp_path, monkeypatch):
    snap = tmp_path / "snap"
    write(snap, CUSTOMERS, customer("cus_1", _airbyte_extracted_at="2026-03-02T01:02:03"),
          customer("cus_2", delinquent="no"))
    write(snap, EVENTS, "", event(1), "{")
    result = invoke(settings, monkeypatch, "load-raw", str(snap))
    assert result.exit_code != 0
    out = result.output
    assert "3 problem(s) in the snapshot; nothing was loaded" in out
    assert f"{CUSTOMERS}.jsonl:1: _AIRBYTE_EXTRACTED_AT: '2026-03-02T01:02:03' has no UTC offset" in out
    assert f"{CUSTOMERS}.jsonl:2: DELINQUENT: expected true or false" in out
    assert f"{EVENTS}.jsonl:3: not valid JSON" in out  # the blank line 1 still counts


def test_unknown_table_file_fails_the_whole_snapshot(settings, tmp_path):
    snap = tmp_path / "snap"
    write(snap, EVENTS, event(1))
    write(snap, "GOODWORD_WH.RAW.EVENTZ", event(1))
    with pytest.raises(raw_load.SnapshotError, match=r"EVENTZ.jsonl: no RAW table GOODWORD_WH.RAW.EVENTZ"):
        raw_load.load_raw(settings, snap, replace=False)
    with raw_warehouse.open_warehouse(settings) as adapter:
        assert not raw_warehouse.table_exists(adapter, EVENTS)


@pytest.mark.parametrize("gateway", ["local", "fakesnow"])
def test_a_failure_while_publishing_rolls_back_the_database(settings, tmp_path, monkeypatch, gateway):
    """Both tables of GOODWORD_WH are published in one transaction: if the second insert fails,
    the first table keeps its old rows too."""
    settings = settings.updated(gateway=gateway)
    before = tmp_path / "before"
    write(before, EVENTS, event(1))
    write(before, ORGS, {"ID": 1, "NAME": "old"})
    raw_load.load_raw(settings, before, replace=True)

    snap = tmp_path / "snap"
    write(snap, EVENTS, event(2))
    write(snap, ORGS, {"ID": 2, "NAME": "new"})
    real_insert = raw_warehouse.insert_from_landing

    def failing_insert(adapter, table, landing):
        if table.name == "ORGANIZATIONS":
            raise RuntimeError("warehouse went away")
        real_insert(adapter, table, landing)

    monkeypatch.setattr(raw_warehouse, "insert_from_landing", failing_insert)
    with pytest.raises(RuntimeError, match="went away"):
        raw_load.load_raw(settings, snap, replace=True)
    assert [r["ID"] for r in rows(settings, EVENTS)] == [1]
    assert [r["NAME"] for r in rows(settings, ORGS)] == ["old"]
    with raw_warehouse.open_warehouse(settings) as adapter:
        assert not raw_warehouse.table_exists(adapter, "GOODWORD_WH.RAW._LANDING_EVENTS")


def test_demo_data_round_trips_through_a_snapshot(settings, tmp_path, monkeypatch):
    """Every RAW table and type: generate, dump to JSON Lines, load into another warehouse."""
    params = DemoParams(organizations=12, users=60, days=4, events_per_day=40, seed=3,
                        end_date=datetime(2026, 3, 10).date())
    with raw_warehouse.open_warehouse(settings) as adapter:
        generate(adapter, raw_tables(settings.project_dir), params, lambda _: None)
    original = read_raw(settings)
    dump_snapshot(original, tmp_path / "snap")
    other = isolated_settings(tmp_path / "other", monkeypatch)
    raw_load.load_raw(other, tmp_path / "snap", replace=True)
    assert read_raw(other) == original


def test_real_airbyte_stripe_records_load(settings, tmp_path):
    result = convert(AIRBYTE_RECORDS, tmp_path / "snap")
    assert result["written"] == {CUSTOMERS: 1307, "AIRBYTE_DB.RAW.STRIPE_SUBSCRIPTIONS": 1,
                                 "AIRBYTE_DB.RAW.STRIPE_INVOICES": 10}
    assert result["skipped"] == {"invoice_line_items": 7, "subscription_items": 1}
    summary = raw_load.load_raw(settings, tmp_path / "snap", replace=True)
    assert any("ignored keys not in the contract: ADDRESS (1307)" in line for line in summary)
    raw = read_raw(settings)
    (sub,) = raw["AIRBYTE_DB.RAW.STRIPE_SUBSCRIPTIONS"]
    assert sub["ID"] == "sub_1O2Dg0EcXtiJtvvhz7Q4zS0n" and sub["STATUS"] == "canceled"
    assert sub["ITEMS"]["data"][0]["price"]["unit_amount"] == 600
    assert sub["_AIRBYTE_EXTRACTED_AT"] == datetime(2024, 1, 19, 3, 52, 58, 387000, tzinfo=timezone.utc)
    assert len({c["ID"] for c in raw[CUSTOMERS]}) == 1307


def test_the_documented_example_loads(settings, tmp_path):
    readme = (settings.project_dir / "docs" / "raw-files.md").read_text()
    section = readme.split("## RAW snapshot files", 1)[1]
    example = section.split("```json\n", 1)[1].split("```", 1)[0].splitlines()
    snap = tmp_path / "snap"
    write(snap, EVENTS, example[0])
    write(snap, CUSTOMERS, example[1])
    raw_load.load_raw(settings, snap, replace=True)
    raw = read_raw(settings)
    assert raw[EVENTS][0]["PROPERTIES"] == '{"document_id": 3}'
    assert raw[CUSTOMERS][0]["METADATA"] == {"organization_id": "42"}
