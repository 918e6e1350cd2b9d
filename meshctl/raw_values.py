"""One RAW value, checked against its column's type and rendered as the text the warehouse casts.

Shared by `load-raw` (values parsed from JSON Lines) and `demo-data` (values built in Python),
so both write exactly what the other would.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd

from meshctl.raw_schema import RawColumn, RawTable

_NUMBER_LIMIT = 10**38  # NUMBER(38,0)


def to_text(column: RawColumn, value: object) -> str | None:
    """The canonical text of `value` for `column`, or None for NULL; ValueError if it does not fit."""
    if value is None:
        return None
    kind = column.kind
    if kind == "variant":
        # Any JSON value is a VARIANT; JSON null is stored as SQL NULL (handled above).
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"{column.name}: expected a string, got {_describe(value)}")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ValueError(f"{column.name}: expected an integer, got {_describe(value)}")
        if abs(value) >= _NUMBER_LIMIT:
            raise ValueError(f"{column.name}: {value} does not fit NUMBER(38,0)")
        return str(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"{column.name}: expected true or false, got {_describe(value)}")
        return "true" if value else "false"
    if kind == "timestamp_ntz":
        return _timestamp(column, value, with_zone=False)
    if kind == "timestamp_tz":
        return _timestamp(column, value, with_zone=True)
    raise AssertionError(kind)


def _timestamp(column: RawColumn, value: object, *, with_zone: bool) -> str:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{column.name}: {value!r} is not an ISO-8601 timestamp") from None
    else:
        raise ValueError(f"{column.name}: expected an ISO-8601 string, got {_describe(value)}")
    if with_zone:
        if parsed.tzinfo is None:
            raise ValueError(f"{column.name}: {value!r} has no UTC offset (TIMESTAMP_TZ needs one)")
        return parsed.astimezone(timezone.utc).isoformat(sep=" ", timespec="microseconds")
    if parsed.tzinfo is not None:
        # An offset on a zone-less column is ambiguous (convert or drop?): make the file say.
        raise ValueError(f"{column.name}: {value!r} has a UTC offset (TIMESTAMP_NTZ takes none)")
    return parsed.isoformat(sep=" ", timespec="microseconds")


def _describe(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, datetime) else value.isoformat()
    return f"{type(value).__name__} {text[:40]}"


def text_frame(table: RawTable, rows: list[dict]) -> pd.DataFrame:
    """Rows keyed by column name (a missing key is NULL) as the text frame the writer lands."""
    columns = table.columns
    return pd.DataFrame(
        [[to_text(column, row.get(column.name)) for column in columns] for row in rows],
        columns=[column.name for column in columns],
        dtype=object,
    )
