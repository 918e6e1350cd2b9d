"""One RAW value, checked against its column's type and rendered as the text the warehouse casts.

Shared by `load-raw` (values parsed from JSON Lines) and `demo-data` (values built in Python),
so both write exactly what the other would. The rules are docs/raw-files.md's: nothing is
rounded, truncated or re-encoded on the way; a value that cannot be stored exactly is refused
(ValueError naming the column).
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from decimal import Decimal

import pandas as pd

from meshctl.raw.schema import RawColumn, RawTable

_NUMBER_DIGITS = 38  # NUMBER(38,0)
_NUMBER_LIMIT = 10**_NUMBER_DIGITS
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# The fraction of an ISO-8601 time (dates and offsets hold no '.' or ',').
_SUB_MICROSECOND = re.compile(r"[.,]\d{6}(\d+)")


class JsonNumber(Decimal):
    """A JSON number that is not a short integer, exactly as written: the Decimal of its value and
    its original `text` (a VARIANT gets that text, never a float's rounding of it)."""

    __slots__ = ("text",)

    def __new__(cls, text: str) -> JsonNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number

    @property
    def is_integer_text(self) -> bool:
        """Written as digits only (no fraction, no exponent): a VARIANT keeps it exactly."""
        return not any(c in self.text for c in ".eE")


def to_text(column: RawColumn, value: object) -> str | None:
    """The canonical text of `value` for `column`, or None for NULL; ValueError if it does not fit."""
    if value is None:
        return None
    kind = column.kind
    if kind == "variant":
        # Any JSON value is a VARIANT; JSON null is stored as SQL NULL (handled above).
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except TypeError:
            text = _json_text(value, column.name)  # holds JsonNumber (or Decimal) values
        except ValueError as exc:  # NaN or infinity, from Python callers
            raise ValueError(f"{column.name}: {exc}") from None
        _check_unicode(column, text)
        return text
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"{column.name}: expected a string, got {_describe(value)}")
        _check_unicode(column, value)
        return value
    if kind == "number":
        return _number(column, value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"{column.name}: expected true or false, got {_describe(value)}")
        return "true" if value else "false"
    if kind == "timestamp_ntz":
        return _timestamp(column, value, with_zone=False)
    if kind == "timestamp_tz":
        return _timestamp(column, value, with_zone=True)
    raise AssertionError(kind)


def _number(column: RawColumn, value: object) -> str:
    if isinstance(value, bool):
        raise ValueError(f"{column.name}: expected an integer, got {_describe(value)}")
    if isinstance(value, Decimal):
        # An exact value: 1e3 and 1000.0 are the integer 1000; 7.5 and 1e-3 are not integers.
        if not value.is_finite() or value != value.to_integral_value():
            raise ValueError(f"{column.name}: expected an integer, got {_describe(value)}")
        if value and value.adjusted() >= _NUMBER_DIGITS:  # before int(): 1e999999999 is cheap here
            raise ValueError(f"{column.name}: {_short(_number_text(value))} does not fit "
                             "NUMBER(38,0)")
        value = int(value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)  # Python callers; load-raw never hands a float (see JsonNumber)
    elif not isinstance(value, int):
        raise ValueError(f"{column.name}: expected an integer, got {_describe(value)}")
    if abs(value) >= _NUMBER_LIMIT:
        raise ValueError(f"{column.name}: {_short(str(value))} does not fit NUMBER(38,0)")
    return str(value)


def _timestamp(column: RawColumn, value: object, *, with_zone: bool) -> str:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{column.name}: {value!r} is not an ISO-8601 timestamp") from None
        extra = _SUB_MICROSECOND.search(value)
        if extra and extra.group(1).strip("0"):
            # Python (and DuckDB) keep microseconds: the extra digits would be cut silently.
            raise ValueError(f"{column.name}: {value!r} has digits below the microsecond "
                             "(RAW timestamps keep 6 fractional digits)")
    else:
        raise ValueError(f"{column.name}: expected an ISO-8601 string, got {_describe(value)}")
    if with_zone:
        if parsed.tzinfo is None:
            raise ValueError(f"{column.name}: {value!r} has no UTC offset (TIMESTAMP_TZ needs one)")
        try:
            utc = parsed.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError(f"{column.name}: {value!r} is out of range in UTC (years 1 to 9999)"
                             ) from None
        return utc.isoformat(sep=" ", timespec="microseconds")
    if parsed.tzinfo is not None:
        # An offset on a zone-less column is ambiguous (convert or drop?): make the file say.
        raise ValueError(f"{column.name}: {value!r} has a UTC offset (TIMESTAMP_NTZ takes none)")
    return parsed.isoformat(sep=" ", timespec="microseconds")


def _check_unicode(column: RawColumn, text: str) -> None:
    """A lone UTF-16 surrogate (a JSON "\\ud800" escape without its pair) is no character: it
    cannot be written as UTF-8, and a DuckDB database that is handed one is left unusable."""
    bad = LONE_SURROGATE.search(text)
    if bad:
        raise ValueError(f"{column.name}: lone surrogate U+{ord(bad.group()):04X} (an unpaired "
                         "\\u escape, not a character); RAW stores valid Unicode only")


def _json_text(value: object, path: str | None = None) -> str:
    """`json.dumps(value)` (compact, unescaped) that also writes JSON numbers as given. With a
    `path` (where `value` is, for the message), a number the warehouse would change is refused."""
    if isinstance(value, JsonNumber):
        if path is not None and not value.is_integer_text and not _fits_double(value):
            raise ValueError(f"{path}: {_short(value.text)} is stored as a double and would become "
                             f"{float(value.text)!r}; write it as a string to keep every digit")
        return value.text
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not valid JSON")
        return str(value)
    if isinstance(value, dict):
        items = (f"{_key_text(k)}:{_json_text(v, _child(path, f'.{k}'))}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, (list, tuple)):
        items = (_json_text(v, _child(path, f"[{i}]")) for i, v in enumerate(value))
        return "[" + ",".join(items) + "]"
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:  # NaN or infinity, from Python callers
        raise ValueError(f"{path}: {exc}") from None


def _child(path: str | None, step: str) -> str | None:
    return None if path is None else path + step


def _fits_double(number: JsonNumber) -> bool:
    """Whether a double reads back as this value (0.1, 1.5e1 and 1e3 do; 1e400, 1e-400 and
    0.10000000000000000001 do not): DuckDB holds a VARIANT fraction as a double."""
    as_double = float(number.text)
    return math.isfinite(as_double) and Decimal(repr(as_double)) == number


def _key_text(key: object) -> str:
    if isinstance(key, str):
        return json.dumps(key, ensure_ascii=False)
    return json.dumps({key: 0}, separators=(",", ":"))[1:-3]  # json's own key conversion


def _short(text: str) -> str:
    return text if len(text) <= 45 else f"{text[:20]}...{text[-5:]} ({len(text)} characters)"


def _number_text(value: Decimal) -> str:
    return value.text if isinstance(value, JsonNumber) else str(value)


def _describe(value: object) -> str:
    if isinstance(value, Decimal):
        return f"number {_number_text(value)[:40]}"
    if isinstance(value, datetime):
        text = value.isoformat()
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = _json_text(value) if isinstance(value, (dict, list)) else repr(value)
    return f"{type(value).__name__} {text[:40]}"


def text_frame(table: RawTable, rows: list[dict]) -> pd.DataFrame:
    """Rows keyed by column name (a missing key is NULL) as the text frame the writer lands."""
    columns = table.columns
    return pd.DataFrame(
        [[to_text(column, row.get(column.name)) for column in columns] for row in rows],
        columns=[column.name for column in columns],
        dtype=object,
    )
