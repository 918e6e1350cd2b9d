"""`meshctl load-raw` on malformed and edge-case input: the rules of docs/raw-files.md, one
class of input per test.

A refused snapshot must end in exactly the `file:line: reason` lines asserted here and leave RAW
as it was (no landing table either); an accepted edge case must land exactly the values asserted.
"""

from __future__ import annotations

import gzip
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from raw_helpers import fetch, invoke, isolated_settings, read_raw

from meshctl.raw import loader as raw_load
from meshctl.raw import warehouse as raw_warehouse
from meshctl.raw.schema import raw_tables

EVENTS = "GOODWORD_WH.RAW.EVENTS"
CUSTOMERS = "AIRBYTE_DB.RAW.STRIPE_CUSTOMERS"
GOOD_EVENT = {"ID": 1, "EVENT_TYPE": "comment_added", "OCCURRED_AT": "2026-03-01T10:00:00"}
GOOD_CUSTOMER = {"ID": "cus_1", "METADATA": {"organization_id": "7"},
                 "_AIRBYTE_EXTRACTED_AT": "2026-03-02T00:00:00Z"}


def write(directory: Path, fqn: str, *lines) -> Path:
    """A table file of `lines` (dicts as JSON, str as they are, bytes as they are)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = b"".join(
        line if isinstance(line, bytes)
        else (line if isinstance(line, str) else json.dumps(line)).encode() + b"\n"
        for line in lines)
    path = directory / f"{fqn}.jsonl"
    path.write_bytes(data)
    return path


def landing_tables(settings) -> list[str]:
    with raw_warehouse.open_warehouse(settings) as adapter:
        return [raw_warehouse.landing_name(t) for t in raw_tables(settings.project_dir).values()
                if raw_warehouse.table_exists(adapter, raw_warehouse.landing_name(t))]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """One warehouse with a row in EVENTS and STRIPE_CUSTOMERS, and RAW as read back."""
    root = tmp_path_factory.mktemp("loaded")
    with pytest.MonkeyPatch.context() as patch:
        settings = isolated_settings(root, patch)
        before = root / "before"
        write(before, EVENTS, GOOD_EVENT)
        write(before, CUSTOMERS, GOOD_CUSTOMER)
        raw_load.load_raw(settings, before, replace=True)
        yield settings, read_raw(settings)


def refused(loaded, snap: Path) -> list[str]:
    """The problems load-raw reports for `snap` (appending or replacing), RAW left unchanged."""
    settings, expected = loaded
    for replace in (False, True):
        with pytest.raises(raw_load.SnapshotError) as failure:
            raw_load.load_raw(settings, snap, replace=replace)
    assert read_raw(settings) == expected
    assert landing_tables(settings) == []
    return failure.value.errors


def bad_events(tmp_path: Path, *lines) -> tuple[Path, Path]:
    """A snapshot: a good customers file (sorting first), then an events file whose line 1 is
    good and whose next lines are `lines`."""
    snap = tmp_path / "snap"
    write(snap, CUSTOMERS, GOOD_CUSTOMER)
    return snap, write(snap, EVENTS, {**GOOD_EVENT, "ID": 2}, *lines)


def bad_customers(tmp_path: Path, *lines) -> tuple[Path, Path]:
    snap = tmp_path / "snap"
    write(snap, EVENTS, GOOD_EVENT)
    return snap, write(snap, CUSTOMERS, GOOD_CUSTOMER, *lines)


# --- JSON: one object a line ------------------------------------------------------------------

@pytest.mark.parametrize("line, reason", [
    ('{"ID": 3,', "not valid JSON: Expecting property name enclosed in double quotes (column 10)"),
    ('{"ID": 3} {"ID": 4}', "not valid JSON: Extra data (column 11)"),
    ('{"ID": NaN}', "not valid JSON: NaN is not valid JSON"),
    ('{"ID": -Infinity}', "not valid JSON: -Infinity is not valid JSON"),
    ("[1, 2]", "expected a JSON object, got an array"),
    ("null", "expected a JSON object, got null"),
    ('"text"', "expected a JSON object, got a string"),
    ("1.5", "expected a JSON object, got a number"),
], ids=["cut short", "two objects", "NaN", "Infinity", "array", "null", "string", "number"])
def test_a_line_that_is_no_json_object_is_refused(loaded, tmp_path, line, reason):
    snap, path = bad_events(tmp_path, "", line)  # the blank line 2 still counts
    assert refused(loaded, snap) == [f"{path}:3: {reason}"]


# --- duplicate keys: refused wherever they are (JSON parsers keep the last without a word) ------

LAST_WINS = "(JSON would keep only the last)"


@pytest.mark.parametrize("line, reason", [
    ('{"ID": 3, "ID": 4}', f"column ID given twice {LAST_WINS}"),
    ('{"ID": 3, "id": 4}', "column ID given twice (keys are case-insensitive)"),
    ('{"ID": 3, "extra": 1, "extra": 2}', f'key "extra" given twice {LAST_WINS}'),
], ids=["same case", "other case", "ignored key"])
def test_a_key_given_twice_in_the_row_is_refused(loaded, tmp_path, line, reason):
    snap, path = bad_events(tmp_path, line)
    assert refused(loaded, snap) == [f"{path}:2: {reason}"]


@pytest.mark.parametrize("metadata, reason", [
    ('{"a": 1, "a": 2}', f'METADATA: key "a" given twice in one object {LAST_WINS}'),
    ('{"n": [0, {"x": 1}, {"x": 1, "x": 1}]}',
     f'METADATA.n[2]: key "x" given twice in one object {LAST_WINS}'),
], ids=["top", "nested"])
def test_a_key_given_twice_inside_a_variant_is_refused(loaded, tmp_path, metadata, reason):
    snap, path = bad_customers(tmp_path, f'{{"ID": "cus_2", "metadata": {metadata}}}')
    assert refused(loaded, snap) == [f"{path}:2: {reason}"]


def test_a_duplicate_key_on_a_line_broken_further_on_reports_the_json_error(loaded, tmp_path):
    snap, path = bad_events(tmp_path, '{"ID": 3, "ID": 4} trailing')
    assert refused(loaded, snap) == [f"{path}:2: not valid JSON: Extra data (column 20)"]


# --- numbers: an exact integer value fits NUMBER(38,0) in any JSON form; nothing is rounded -----

@pytest.mark.parametrize("number, reason", [
    ("7.5", "ID: expected an integer, got number 7.5"),
    ("1e-3", "ID: expected an integer, got number 1e-3"),
    ("1.00000000000000000000001", "ID: expected an integer, got number 1.00000000000000000000001"),
    ("1e38", "ID: 1e38 does not fit NUMBER(38,0)"),
    ("100000000000000000000000000000000000000", "ID: 100000000000000000000000000000000000000 "
                                                "does not fit NUMBER(38,0)"),
    ("-1E+999999999", "ID: -1E+999999999 does not fit NUMBER(38,0)"),
    ("9" * 5000, "ID: 99999999999999999999...99999 (5000 characters) does not fit NUMBER(38,0)"),
    ('"7"', "ID: expected an integer, got str \"7\""),
    ("true", "ID: expected an integer, got bool true"),
], ids=["fraction", "exponent fraction", "fraction far down", "1e38", "10^38", "huge exponent",
        "5000 digits", "string", "boolean"])
def test_a_number_column_refuses_what_is_no_integer_or_too_large(loaded, tmp_path, number, reason):
    snap, path = bad_events(tmp_path, f'{{"ID": {number}}}')
    assert refused(loaded, snap) == [f"{path}:2: {reason}"]


@pytest.mark.parametrize("number, shown", [
    ("0.10000000000000000001", "0.1"),
    ("12345678901234567890123456789.5", "1.2345678901234568e+28"),
    ("1e400", "inf"),
    ("1e-400", "0.0"),
], ids=["digits", "large fraction", "overflow", "underflow"])
def test_a_variant_fraction_a_double_cannot_hold_is_refused(loaded, tmp_path, number, shown):
    snap, path = bad_customers(tmp_path, f'{{"ID": "cus_2", "metadata": {{"n": [1, {number}]}}}}')
    assert refused(loaded, snap) == [
        f"{path}:2: METADATA.n[1]: {number} is stored as a double and would become {shown}; "
        "write it as a string to keep every digit"]


# The largest integers a gateway holds: Snowflake's 38 digits locally, 64 bits on fakesnow (it
# emulates NUMBER(38,0) as a DuckDB BIGINT).
LARGEST = {"local": ("9.9999999999999999999999999999999999999e37", 10**38 - 1),
           "fakesnow": ("9.223372036854775807E+18", 2**63 - 1)}


@pytest.mark.parametrize("gateway", ["local", "fakesnow"])
def test_numbers_in_any_exact_form_load_exactly(tmp_path, monkeypatch, gateway):
    settings = isolated_settings(tmp_path, monkeypatch, gateway)
    snap = tmp_path / "snap"
    largest, value = LARGEST[gateway]
    forms = {1: "1e3", 2: "1000.0", 3: "1.234567890123456789e18", 4: "-0.0", 5: "0e5",
             6: "150E-1", 7: largest, 8: "-" + largest}
    write(snap, EVENTS, *(f'{{"ID": {i}, "USER_ID": {form}}}' for i, form in forms.items()))
    write(snap, CUSTOMERS,
          '{"ID": "cus_1", "METADATA": {"a": 0.1, "b": 1.50, "c": 1e3, "d": -0.0, '
          '"e": 123456789012345678901234567890123456789012345, "f": -9223372036854775809}}')
    raw_load.load_raw(settings, snap, replace=True)
    assert [r["USER_ID"] for r in fetch_events(settings)] == [
        1000, 1000, 1234567890123456789, 0, 0, 15, value, -value]
    with raw_warehouse.open_warehouse(settings) as adapter:
        (customer,) = fetch(adapter, 'SELECT "METADATA" FROM "AIRBYTE_DB"."RAW"."STRIPE_CUSTOMERS"')
    metadata = json.loads(customer["METADATA"])
    assert metadata == {"a": 0.1, "b": 1.5, "c": 1000.0, "d": -0.0,
                        "e": 123456789012345678901234567890123456789012345,
                        "f": -9223372036854775809}
    assert customer["METADATA"].endswith('"e":123456789012345678901234567890123456789012345,'
                                         '"f":-9223372036854775809}')


def test_fakesnow_refuses_an_integer_beyond_64_bits(tmp_path, monkeypatch):
    settings = isolated_settings(tmp_path, monkeypatch, "fakesnow")
    before = tmp_path / "before"
    write(before, EVENTS, GOOD_EVENT)
    raw_load.load_raw(settings, before, replace=True)
    expected = read_raw(settings)
    snap, path = bad_events(tmp_path, {"ID": 3, "USER_ID": 2**63}, {"ID": -(2**63)})
    with pytest.raises(raw_load.SnapshotError) as failure:
        raw_load.load_raw(settings, snap, replace=True)
    assert failure.value.errors == [
        f"{path}:2: USER_ID: 9223372036854775808 does not fit NUMBER(38,0) as the fakesnow "
        "gateway stores it (a 64-bit integer); load it into gateway local"]
    assert read_raw(settings) == expected
    assert landing_tables(settings) == []


# --- encodings: UTF-8 only (a leading UTF-8 BOM is ignored); one line per file says what it is --

@pytest.mark.parametrize("data, line, reason", [
    ('{"ID": 3, "EVENT_TYPE": "caf\xe9"}\n'.encode("latin-1"), 2,
     "not UTF-8: byte 0xE9 at byte 29 of the line (Latin-1, Windows-1252 or binary?); "
     "save the file as UTF-8"),
    ('{"ID": 3, "EVENT_TYPE": "\u20ac"}\n'.encode("cp1252"), 2,
     "not UTF-8: byte 0x80 at byte 26 of the line (Latin-1, Windows-1252 or binary?); "
     "save the file as UTF-8"),
    (b'{"ID": 3, "EVENT_TYPE": "\xed\xa0\x80"}\n', 2,  # a surrogate encoded as UTF-8 bytes
     "not UTF-8: byte 0xED at byte 26 of the line (Latin-1, Windows-1252 or binary?); "
     "save the file as UTF-8"),
    ('{"ID": 3}\n'.encode("utf-16-le"), 2,
     "NUL byte at byte 2 of the line (UTF-16 or binary?); save the file as UTF-8 "
     "(a NUL inside a string is written \\u0000)"),
    (b'{"ID": 3, "EVENT_TYPE": "a\x00b"}\n', 2,
     "NUL byte at byte 27 of the line (UTF-16 or binary?); save the file as UTF-8 "
     "(a NUL inside a string is written \\u0000)"),
], ids=["latin-1", "windows-1252", "utf-8 surrogate", "utf-16-le", "nul in a string"])
def test_bytes_that_are_not_utf8_text_are_refused_at_their_line(loaded, tmp_path, data, line,
                                                               reason):
    snap, path = bad_events(tmp_path, data, {"ID": 4, "EVENT_TYPE": "caf\u00e9"})
    assert refused(loaded, snap) == [f"{path}:{line}: {reason}"]


@pytest.mark.parametrize("data, reason", [
    ('{"ID": 3}\n'.encode("utf-16"), "UTF-16 text (byte order mark FF FE); save it as UTF-8"),
    ('{"ID": 3}\n'.encode("utf-16-be"), "NUL byte at byte 1 of the line (UTF-16 or binary?); "
                                        "save the file as UTF-8 (a NUL inside a string is "
                                        "written \\u0000)"),
    (gzip.compress(b'{"ID": 3}\n'), "gzip-compressed data; decompress it first (gunzip)"),
    (b"PK\x03\x04rest", "a zip archive; extract it first"),
], ids=["utf-16 bom", "utf-16-be", "gzip", "zip"])
def test_a_file_that_is_not_utf8_text_is_refused_at_line_1(loaded, tmp_path, data, reason):
    snap = tmp_path / "snap"
    write(snap, CUSTOMERS, GOOD_CUSTOMER)
    path = write(snap, EVENTS, data)
    if not reason.startswith("NUL"):
        reason += ": load-raw reads plain UTF-8 JSON Lines"
    assert refused(loaded, snap) == [f"{path}:1: {reason}"]


def test_utf8_text_loads_exactly_bom_crlf_and_escapes_included(tmp_path, monkeypatch):
    settings = isolated_settings(tmp_path, monkeypatch)
    snap = tmp_path / "snap"
    write(snap, EVENTS,
          b'\xef\xbb\xbf{"ID": 1, "EVENT_TYPE": "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac"}\r\n',
          b'{"ID": 2, "EVENT_TYPE": "a\\u0000b", "PROPERTIES": "\\ud83d\\ude00 \\u00e9"}\r\n',
          b' \t\r\n',
          b'{"ID": 3, "\xc4\xb1d": 9}')  # "ıd" upper-cases to "ID" but is not the key ID
    summary = raw_load.load_raw(settings, snap, replace=True)
    assert summary == [f"{EVENTS}: replaced with 3 rows from {EVENTS}.jsonl; ignored keys not in "
                       "the contract: \u0131d (1)"]
    got = fetch_events(settings)
    assert [(r["ID"], r["EVENT_TYPE"], r["PROPERTIES"]) for r in got] == [
        (1, "caf\u00e9 \u65e5\u672c", None), (2, "a\x00b", "\U0001F600 \u00e9"), (3, None, None)]


def fetch_events(settings) -> list[dict]:
    with raw_warehouse.open_warehouse(settings) as adapter:
        return fetch(adapter, 'SELECT * FROM "GOODWORD_WH"."RAW"."EVENTS" ORDER BY "ID"')


# --- strings the warehouse cannot store: a lone surrogate, anywhere ------------------------------

SURROGATE = "lone surrogate U+D800 (an unpaired \\u escape, not a character); RAW stores valid " \
            "Unicode only"


@pytest.mark.parametrize("table, line, reason", [
    (EVENTS, r'{"ID": 3, "EVENT_TYPE": "a\ud800"}', f"EVENT_TYPE: {SURROGATE}"),
    (EVENTS, r'{"ID": 3, "PROPERTIES": "\ude00\ud800"}',
     f"PROPERTIES: {SURROGATE.replace('D800', 'DE00')}"),
    (EVENTS, r'{"ID": 3, "\ud800": 1}',
     'key "\\ud800" is not valid Unicode (a lone surrogate \\u escape)'),
    (CUSTOMERS, r'{"ID": "c", "METADATA": {"n": ["\ud800"]}}', f"METADATA: {SURROGATE}"),
    (CUSTOMERS, r'{"ID": "c", "METADATA": {"\ud800": 1}}', f"METADATA: {SURROGATE}"),
], ids=["varchar", "varchar pair reversed", "ignored key", "variant value", "variant key"])
def test_a_lone_surrogate_is_refused(loaded, tmp_path, table, line, reason):
    maker = bad_events if table == EVENTS else bad_customers
    snap, path = maker(tmp_path, line)
    assert refused(loaded, snap) == [f"{path}:2: {reason}"]


@pytest.mark.parametrize("gateway", ["local", "fakesnow"])
def test_a_lone_surrogate_leaves_the_warehouse_usable_and_no_landing_table(tmp_path, monkeypatch,
                                                                          gateway):
    """It used to pass the checks, break the DuckDB database and leave _LANDING_ tables."""
    settings = isolated_settings(tmp_path, monkeypatch, gateway)
    before = tmp_path / "before"
    write(before, EVENTS, GOOD_EVENT)
    raw_load.load_raw(settings, before, replace=True)
    expected = read_raw(settings)
    snap = tmp_path / "snap"
    write(snap, CUSTOMERS, GOOD_CUSTOMER)
    write(snap, EVENTS, r'{"ID": 9, "EVENT_TYPE": "\ud800"}')
    with pytest.raises(raw_load.SnapshotError, match="lone surrogate U"):
        raw_load.load_raw(settings, snap, replace=True)
    assert read_raw(settings) == expected
    assert landing_tables(settings) == []
    raw_load.load_raw(settings, before, replace=False)  # still writable
    assert [r["ID"] for r in fetch_events(settings)] == [1, 1]


# --- timestamps: exact to the microsecond, within years 1 to 9999 in UTC -------------------------

@pytest.mark.parametrize("table, line, reason", [
    (CUSTOMERS, '{"ID": "c", "_AIRBYTE_EXTRACTED_AT": "0001-01-01T00:00:00+01:00"}',
     "_AIRBYTE_EXTRACTED_AT: '0001-01-01T00:00:00+01:00' is out of range in UTC "
     "(years 1 to 9999)"),
    (CUSTOMERS, '{"ID": "c", "_AIRBYTE_EXTRACTED_AT": "9999-12-31T23:30:00-01:00"}',
     "_AIRBYTE_EXTRACTED_AT: '9999-12-31T23:30:00-01:00' is out of range in UTC "
     "(years 1 to 9999)"),
    (EVENTS, '{"ID": 3, "OCCURRED_AT": "10000-01-01T00:00:00"}',
     "OCCURRED_AT: '10000-01-01T00:00:00' is not an ISO-8601 timestamp"),
    (EVENTS, '{"ID": 3, "OCCURRED_AT": "2026-03-01T10:00:00.1234567"}',
     "OCCURRED_AT: '2026-03-01T10:00:00.1234567' has digits below the microsecond "
     "(RAW timestamps keep 6 fractional digits)"),
    (EVENTS, '{"ID": 3, "OCCURRED_AT": "2026-03-01T23:59:60"}',
     "OCCURRED_AT: '2026-03-01T23:59:60' is not an ISO-8601 timestamp"),
], ids=["tz before year 1", "tz after 9999", "ntz year 10000", "nanoseconds", "leap second"])
def test_a_timestamp_out_of_range_or_finer_than_a_microsecond_is_refused(loaded, tmp_path, table,
                                                                         line, reason):
    maker = bad_events if table == EVENTS else bad_customers
    snap, path = maker(tmp_path, line)
    assert refused(loaded, snap) == [f"{path}:2: {reason}"]


@pytest.mark.parametrize("gateway", ["local", "fakesnow"])
def test_timestamps_at_the_edges_load_exactly(tmp_path, monkeypatch, gateway):
    settings = isolated_settings(tmp_path, monkeypatch, gateway)
    snap = tmp_path / "snap"
    write(snap, EVENTS, {"ID": 1, "OCCURRED_AT": "0001-01-01T00:00:00"},
          {"ID": 2, "OCCURRED_AT": "9999-12-31T23:59:59.999999"},
          {"ID": 3, "OCCURRED_AT": "2026-03-01T10:00:00.123456000"})
    write(snap, CUSTOMERS, {"ID": "a", "_AIRBYTE_EXTRACTED_AT": "0001-01-01T00:59:00+00:59"},
          {"ID": "b", "_AIRBYTE_EXTRACTED_AT": "9999-12-31T23:59:59.999999Z"})
    raw_load.load_raw(settings, snap, replace=True)
    assert [r["OCCURRED_AT"] for r in fetch_events(settings)] == [
        datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999),
        datetime(2026, 3, 1, 10, 0, 0, 123456)]
    raw = read_raw(settings)
    assert [r["_AIRBYTE_EXTRACTED_AT"] for r in raw[CUSTOMERS]] == [
        datetime(1, 1, 1, tzinfo=timezone.utc),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)]


# --- nesting: at most 64 levels of objects and arrays on a line, the row's object included -------

def nested(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


@pytest.mark.parametrize("levels", [64, 100_000])
def test_deeper_nesting_is_refused_at_its_column(loaded, tmp_path, levels):
    snap, path = bad_customers(tmp_path, f'{{"ID": "c", "METADATA": {nested(levels)}}}')
    column = len('{"ID": "c", "METADATA": ') + 64  # the 65th bracket
    assert refused(loaded, snap) == [
        f"{path}:2: nested deeper than 64 levels of objects and arrays (column {column})"]


def test_nesting_up_to_the_bound_loads_exactly(tmp_path, monkeypatch):
    settings = isolated_settings(tmp_path, monkeypatch)
    snap = tmp_path / "snap"
    # Brackets inside strings do not count.
    write(snap, CUSTOMERS, f'{{"ID": "c", "NAME": "{"[" * 99}", "METADATA": {nested(63)}}}')
    raw_load.load_raw(settings, snap, replace=True)
    (row,) = read_raw(settings)[CUSTOMERS]
    assert row["METADATA"] == json.loads(nested(63)) and row["NAME"] == "[" * 99


# --- the snapshot folder: table files only, one per table; nothing in it is skipped -------------

def test_everything_in_the_folder_that_is_no_table_file_is_refused(loaded, tmp_path):
    snap = tmp_path / "snap"
    write(snap, EVENTS, GOOD_EVENT)
    write(snap / "old", CUSTOMERS, GOOD_CUSTOMER)                     # a table file in a sub-folder
    (snap / f"{CUSTOMERS}.jsonl.gz").write_bytes(gzip.compress(b"{}"))  # compressed
    (snap / "GOODWORD_WH.RAW.USERS.jsonl").mkdir()                    # a folder named like a file
    (snap / "notes.txt").write_text("hi")
    (snap / "GOODWORD_WH.RAW.ORGANIZATIONS.jsonl").symlink_to(snap / "notes.txt")
    (snap / "AIRBYTE_DB.RAW.STRIPE_INVOICES.jsonl").symlink_to(tmp_path / "gone.jsonl")
    os.mkfifo(snap / "AIRBYTE_DB.RAW.STRIPE_SUBSCRIPTIONS.jsonl")
    assert refused(loaded, snap) == [
        f"{snap}/AIRBYTE_DB.RAW.STRIPE_CUSTOMERS.jsonl.gz: compressed; decompress it into the "
        "snapshot folder first (load-raw reads plain .jsonl files)",
        f"{snap}/AIRBYTE_DB.RAW.STRIPE_INVOICES.jsonl: a dangling symbolic link; links are not "
        "followed, copy the file into the snapshot folder",
        f"{snap}/AIRBYTE_DB.RAW.STRIPE_SUBSCRIPTIONS.jsonl: not a regular file",
        f"{snap}/GOODWORD_WH.RAW.ORGANIZATIONS.jsonl: a symbolic link; links are not followed, "
        "copy the file into the snapshot folder",
        f"{snap}/GOODWORD_WH.RAW.USERS.jsonl: a folder; a snapshot is one flat folder of table "
        "files (<DATABASE>.<SCHEMA>.<TABLE>.jsonl), sub-folders are not read",
        f"{snap}/notes.txt: not a table file (<DATABASE>.<SCHEMA>.<TABLE>.jsonl); move it out of "
        "the snapshot folder",
        f"{snap}/old: a folder; a snapshot is one flat folder of table files "
        "(<DATABASE>.<SCHEMA>.<TABLE>.jsonl), sub-folders are not read",
    ]


def test_two_files_for_one_table_are_refused(loaded, tmp_path):
    snap = tmp_path / "snap"
    write(snap, EVENTS, GOOD_EVENT)
    write(snap, EVENTS.lower(), {**GOOD_EVENT, "ID": 2})
    (snap / "GOODWORD_WH.RAW.Events.JSONL").write_text("")
    assert refused(loaded, snap) == [
        f"{snap}/GOODWORD_WH.RAW.Events.JSONL: the same table as GOODWORD_WH.RAW.EVENTS.jsonl "
        "(file names are case-insensitive); keep one file per table",
        f"{snap}/goodword_wh.raw.events.jsonl: the same table as GOODWORD_WH.RAW.EVENTS.jsonl "
        "(file names are case-insensitive); keep one file per table",
    ]


def test_a_file_name_in_any_case_names_its_table_in_a_linked_folder(tmp_path, monkeypatch):
    settings = isolated_settings(tmp_path, monkeypatch)
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "goodword_wh.raw.Events.JSONL").write_text(json.dumps(GOOD_EVENT) + "\n")
    (tmp_path / "link").symlink_to(snap)  # the folder given may be a link
    raw_load.load_raw(settings, tmp_path / "link", replace=True)
    assert [r["ID"] for r in fetch_events(settings)] == [1]


@pytest.mark.parametrize("make, reason", [
    (lambda p: None, "no *.jsonl files"),
    (lambda p: p.rmdir(), "not a directory (give the snapshot folder)"),
], ids=["empty", "missing"])
def test_an_empty_or_missing_folder_is_refused(loaded, tmp_path, make, reason):
    snap = tmp_path / "snap"
    snap.mkdir()
    make(snap)
    assert refused(loaded, snap) == [f"{snap}: {reason}"]


# --- the CLI: one line per problem, a non-zero exit, no traceback --------------------------------

def test_the_cli_prints_the_problems_and_exits_non_zero(loaded, tmp_path, monkeypatch):
    settings, expected = loaded
    snap, path = bad_events(tmp_path, b'{"ID": 3, "EVENT_TYPE": "caf\xe9"}\n', '{"ID": 1e-3}')
    result = invoke(settings, monkeypatch, "load-raw", str(snap))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output == (
        "Error: 1 problem(s) in the snapshot; nothing was loaded:\n"
        f"{path}:2: not UTF-8: byte 0xE9 at byte 29 of the line (Latin-1, Windows-1252 or "
        "binary?); save the file as UTF-8\n")
    assert "Traceback" not in result.output
    assert read_raw(settings) == expected


# --- landing tables: dropped on every path ------------------------------------------------------

@pytest.mark.parametrize("gateway", ["local", "fakesnow"])
def test_a_failure_while_staging_drops_the_landing_tables_already_made(tmp_path, monkeypatch,
                                                                       gateway):
    settings = isolated_settings(tmp_path, monkeypatch, gateway)
    before = tmp_path / "before"
    write(before, EVENTS, GOOD_EVENT)
    write(before, CUSTOMERS, GOOD_CUSTOMER)
    raw_load.load_raw(settings, before, replace=True)
    expected = read_raw(settings)
    real_stage = raw_warehouse.stage_text

    def stage_then_fail(adapter, table, frame):
        if table.name == "EVENTS":  # the second file: CUSTOMERS is staged by now
            raise RuntimeError("disk full")
        return real_stage(adapter, table, frame)

    monkeypatch.setattr(raw_warehouse, "stage_text", stage_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        raw_load.load_raw(settings, before, replace=True)
    assert landing_tables(settings) == []
    assert read_raw(settings) == expected


def test_a_landing_table_that_cannot_be_dropped_does_not_hide_the_first_failure(tmp_path,
                                                                              monkeypatch):
    settings = isolated_settings(tmp_path, monkeypatch)
    snap = tmp_path / "snap"
    write(snap, EVENTS, GOOD_EVENT)
    write(snap, CUSTOMERS, GOOD_CUSTOMER)
    real_drop = raw_warehouse.drop_landing
    dropped = []

    def failing_insert(adapter, table, landing):
        raise RuntimeError("warehouse went away")

    def failing_drop(adapter, table):
        dropped.append(table.name)
        if table.name == "STRIPE_CUSTOMERS":
            raise RuntimeError("still away")
        real_drop(adapter, table)

    monkeypatch.setattr(raw_warehouse, "insert_from_landing", failing_insert)
    monkeypatch.setattr(raw_warehouse, "drop_landing", failing_drop)
    with pytest.raises(RuntimeError, match="warehouse went away") as failure:
        raw_load.load_raw(settings, snap, replace=True)
    assert dropped == ["STRIPE_CUSTOMERS", "EVENTS"]  # the second is tried after the first fails
    assert failure.value.__notes__ == [
        "could not drop AIRBYTE_DB.RAW._LANDING_STRIPE_CUSTOMERS (still away); the next load-raw "
        "replaces it"]
