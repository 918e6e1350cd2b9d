"""`meshctl load-raw DIR`: load a RAW snapshot (JSON Lines, one file per table) into a gateway.

Every file is read and checked in full before anything is written; one bad line anywhere means
nothing is loaded. Rows are then staged in landing tables and published one database at a time,
all tables of a database in one transaction (DuckDB, and fakesnow on top of it, cannot write two
attached databases in one transaction), so a reader sees a database either before or after.
The file format, and what is refused or loaded exactly (duplicate keys, number forms, encodings,
the folder's other entries, ...), is documented in docs/raw-files.md.
"""

from __future__ import annotations

import functools
import json
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import click
import pandas as pd
from sqlmesh.core.engine_adapter import EngineAdapter

from meshctl.project import gateways
from meshctl.raw import warehouse as raw_warehouse
from meshctl.raw.schema import RawColumn, RawTable, raw_tables
from meshctl.raw.values import LONE_SURROGATE, JsonNumber, to_text
from meshctl.settings import Settings

SUFFIX = ".jsonl"


MAX_ERRORS_SHOWN = 50


MAX_KEYS_SHOWN = 12


MAX_DEPTH = 64  # levels of objects and arrays in one line, the row's own object included


UTF8_BOM = b"\xef\xbb\xbf"


# What a file that is not UTF-8 text starts with: compressed formats, then UTF-16/32 marks.
MAGIC = {
    b"\x1f\x8b": "gzip-compressed data; decompress it first (gunzip)",
    b"\x28\xb5\x2f\xfd": "zstd-compressed data; decompress it first (unzstd)",
    b"BZh": "bzip2-compressed data; decompress it first (bunzip2)",
    b"\xfd7zXZ\x00": "xz-compressed data; decompress it first (unxz)",
    b"PK\x03\x04": "a zip archive; extract it first",
    b"\xff\xfe": "UTF-16 text (byte order mark FF FE); save it as UTF-8",
    b"\xfe\xff": "UTF-16 text (byte order mark FE FF); save it as UTF-8",
}


COMPRESSED_SUFFIXES = (".gz", ".gzip", ".zst", ".bz2", ".xz", ".zip", ".lz4", ".z", ".br")


_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class SnapshotError(click.ClickException):
    def __init__(self, errors: list[str]):
        self.errors = errors
        shown = "\n".join(errors[:MAX_ERRORS_SHOWN])
        more = len(errors) - MAX_ERRORS_SHOWN
        tail = f"\n... and {more} more" if more > 0 else ""
        super().__init__(f"{len(errors)} problem(s) in the snapshot; nothing was loaded:\n"
                         f"{shown}{tail}")


@dataclass
class TableFile:
    table: RawTable
    path: Path
    rows: list[list[str | None]] = field(default_factory=list)  # values as text, column order
    ignored_keys: Counter = field(default_factory=Counter)
    landing: str = ""
    names: dict[str, str] = field(default_factory=dict, repr=False)  # key -> column name

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=self.table.column_names, dtype=object)


class _DuplicateKey(ValueError):
    pass


class _Pairs(list):
    """A JSON object as its (key, value) pairs, duplicates kept: to find where a key repeats."""


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _unique_object(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey()  # json would keep the last value without a word
    return obj


def _parse_int(text: str) -> int | JsonNumber:
    # int() refuses more than 4300 digits (and is slow long before): keep long ones as text.
    return int(text) if len(text) <= 40 else JsonNumber(text)


def _decoder(object_hook) -> json.JSONDecoder:
    return json.JSONDecoder(object_pairs_hook=object_hook, parse_float=JsonNumber,
                            parse_int=_parse_int, parse_constant=_reject_constant)


_DECODERS = {_unique_object: _decoder(_unique_object), _Pairs: _decoder(_Pairs)}


def _parse(line: str, object_hook=_unique_object) -> object:
    # json.loads() with options builds a decoder per call: a third of the time of a short line.
    return _DECODERS[object_hook].decode(line)


def _repeated_key(node: object, path: tuple[str, ...]) -> tuple[tuple[str, ...], str] | None:
    """(path of the object, key) of the first key given twice in one object of `node`."""
    if isinstance(node, _Pairs):
        seen = set()
        for key, _ in node:
            if key in seen:
                return path, key
            seen.add(key)
        children = ((path + (f".{key}" if path else key,), value) for key, value in node)
    elif isinstance(node, list):
        children = ((path + (f"[{i}]",), value) for i, value in enumerate(node))
    else:
        return None
    for child_path, value in children:
        found = _repeated_key(value, child_path)
        if found:
            return found
    return None


def _duplicate_problem(line: str, columns: dict[str, RawColumn]) -> str:
    try:
        found = _repeated_key(_parse(line, _Pairs), ())
    except ValueError as exc:  # the line is broken further on, too
        return _json_problem(exc)
    assert found, line
    path, key = found
    if not path:
        name = _column_name(key)
        if name in columns:
            return f"column {name} given twice (JSON would keep only the last)"
        return f"key {json.dumps(key)} given twice (JSON would keep only the last)"
    where = _column_name(path[0]) + "".join(path[1:])
    return (f"{where}: key {json.dumps(key)} given twice in one object (JSON would keep only "
            "the last)")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, JsonNumber)):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} (column {exc.colno})"
    return f"not valid JSON: {exc}"


def _shown(path: Path | str) -> str:
    """A path as printable text: a name that is not UTF-8 shows its bytes as \\x escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _column_name(key: str) -> str:
    # Case-insensitive in ASCII only: "ıd".upper() is "ID", but it is not the key ID.
    return key.upper() if key.isascii() else key


def _too_deep(line: str) -> int | None:
    """The column where `line` nests more than MAX_DEPTH objects and arrays, if it does."""
    if line.count("{") + line.count("[") <= MAX_DEPTH:
        return None  # the common case, without a scan
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(line):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return match.start() + 1
        elif token in "]}":
            depth -= 1
    return None


def _decode(raw: bytes, first: bool) -> tuple[str | None, str | None]:
    """(text, None) or (None, the reason `raw`, one line of the file, is not UTF-8 text)."""
    if first:
        for magic, reason in MAGIC.items():
            if raw.startswith(magic):
                return None, f"{reason}: load-raw reads plain UTF-8 JSON Lines"
        if raw.startswith(UTF8_BOM):
            raw = raw[len(UTF8_BOM):]  # JSON parsers may ignore a BOM (RFC 8259): it is no data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, (f"not UTF-8: byte 0x{raw[exc.start]:02X} at byte {exc.start + 1} of the "
                      "line (Latin-1, Windows-1252 or binary?); save the file as UTF-8")
    nul = text.find("\x00")
    if nul >= 0:
        return None, (f"NUL byte at byte {len(text[:nul].encode()) + 1} of the line (UTF-16 or "
                      "binary?); save the file as UTF-8 (a NUL inside a string is written \\u0000)")
    return text, None


def read_table_file(table: RawTable, path: Path, errors: list[str], *,
                    gateway: str | None = None) -> TableFile:
    """`path` read and checked for `table` (as `gateway` stores it, if given); problems are
    appended to `errors`."""
    result = TableFile(table, path)
    columns = {column.name: column for column in table.columns}
    try:
        handle = path.open("rb")
    except OSError as exc:
        errors.append(f"{_shown(path)}: cannot be read ({exc.strerror})")
        return result
    with handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{_shown(path)}:{number}"
            line, problem = _decode(raw, number == 1)
            if problem:
                # The rest of the file is in the same encoding: one line says it.
                errors.append(f"{where}: {problem}")
                return result
            line = line.removesuffix("\n").removesuffix("\r")  # for JSON's column numbers
            if not line.strip(" \t\r\n"):  # JSON's whitespace only
                continue
            column = _too_deep(line)
            if column:
                errors.append(f"{where}: nested deeper than {MAX_DEPTH} levels of objects and "
                              f"arrays (column {column})")
                continue
            try:
                record = _parse(line)
            except _DuplicateKey:
                errors.append(f"{where}: {_duplicate_problem(line, columns)}")
                continue
            except ValueError as exc:
                errors.append(f"{where}: {_json_problem(exc)}")
                continue
            if not isinstance(record, dict):
                errors.append(f"{where}: expected a JSON object, got {_json_type(record)}")
                continue
            _read_record(record, columns, result, where, errors, gateway)
    return result


def _read_record(record: dict, columns: dict[str, RawColumn], result: TableFile, where: str,
                 errors: list[str], gateway: str | None) -> None:
    values: dict[str, object] = {}
    ok = True
    int64 = _int64_columns(result.table) if gateway == gateways.EMULATED_GATEWAY else ()
    names = result.names
    for key, value in record.items():
        name = names.get(key)
        if name is None:
            name = names[key] = _column_name(key)
        if name in values:
            errors.append(f"{where}: column {name} given twice (keys are case-insensitive)")
            ok = False
        elif name in columns:
            values[name] = value
        elif LONE_SURROGATE.search(key):
            errors.append(f"{where}: key {json.dumps(key)} is not valid Unicode (a lone "
                          "surrogate \\u escape)")
            ok = False
        else:
            result.ignored_keys[name] += 1
    row = []
    for column in result.table.columns:
        try:
            text = to_text(column, values.get(column.name))
            if text and column.name in int64:
                _check_int64(column, text)
            row.append(text)
        except ValueError as exc:
            errors.append(f"{where}: {exc}")
            ok = False
    if ok:
        result.rows.append(row)


@functools.lru_cache(maxsize=None)
def _int64_columns(table: RawTable) -> frozenset[str]:
    return frozenset(column.name for column in table.columns if column.kind == "number")


def _check_int64(column: RawColumn, text: str) -> None:
    if not -(2**63) <= int(text) < 2**63:
        raise ValueError(f"{column.name}: {text} does not fit NUMBER(38,0) as the "
                         f"{gateways.EMULATED_GATEWAY} gateway stores it (a 64-bit integer); "
                         "load it into gateway local")


def _table_files(directory: Path, tables: dict[str, RawTable],
                 errors: list[str]) -> list[tuple[RawTable, Path]]:
    """The table files of `directory`; anything else in it is a problem (never skipped)."""
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        errors.append(f"{_shown(directory)}: cannot be listed ({exc.strerror})")
        return []
    if not entries:
        errors.append(f"{_shown(directory)}: no *{SUFFIX} files")
    found: dict[str, Path] = {}
    for path in entries:
        problem, table = _entry(path, tables)
        if table is not None and table.fqn in found:
            problem = (f"the same table as {_shown(found[table.fqn].name)} (file names are "
                       "case-insensitive); keep one file per table")
        if problem:
            errors.append(f"{_shown(path)}: {problem}")
        else:
            found[table.fqn] = path
    return [(tables[fqn], path) for fqn, path in found.items()]


def _entry(path: Path, tables: dict[str, RawTable]) -> tuple[str | None, RawTable | None]:
    """(why `path` is no table file, None) or (None, its table)."""
    try:
        mode = path.lstat().st_mode
    except OSError as exc:
        return f"cannot be read ({exc.strerror})", None
    lower = path.name.lower()
    if stat.S_ISLNK(mode):
        state = "a symbolic link" if path.exists() else "a dangling symbolic link"
        return f"{state}; links are not followed, copy the file into the snapshot folder", None
    if stat.S_ISDIR(mode):
        return ("a folder; a snapshot is one flat folder of table files "
                f"(<DATABASE>.<SCHEMA>.<TABLE>{SUFFIX}), sub-folders are not read"), None
    if not stat.S_ISREG(mode):
        return "not a regular file", None
    if lower.endswith(COMPRESSED_SUFFIXES):
        return (f"compressed; decompress it into the snapshot folder first (load-raw reads "
                f"plain {SUFFIX} files)"), None
    if not lower.endswith(SUFFIX):
        return (f"not a table file (<DATABASE>.<SCHEMA>.<TABLE>{SUFFIX}); move it out of the "
                "snapshot folder"), None
    name = _column_name(path.name[: -len(SUFFIX)])
    table = tables.get(name)
    if table is None:
        return (f"no RAW table {_shown(name)} (file names are DATABASE.SCHEMA.TABLE{SUFFIX}; "
                f"known: {', '.join(sorted(tables))})"), None
    return None, table


def read_snapshot(directory: Path, tables: dict[str, RawTable], *,
                  gateway: str | None = None) -> list[TableFile]:
    """Every table file of `directory`, checked (for `gateway`, if given: fakesnow stores
    NUMBER(38,0) in 64 bits); raises SnapshotError listing every problem."""
    if not directory.is_dir():
        raise SnapshotError([f"{_shown(directory)}: not a directory (give the snapshot folder)"])
    errors: list[str] = []
    files = [read_table_file(table, path, errors, gateway=gateway)
             for table, path in _table_files(directory, tables, errors)]
    if errors:
        raise SnapshotError(errors)
    return files


def _prepare_target(adapter: EngineAdapter, table: RawTable, replace: bool) -> None:
    if not raw_warehouse.table_exists(adapter, table.fqn):
        raw_warehouse.create_table(adapter, table, replace=False)
        return
    missing = set(table.column_names) - raw_warehouse.existing_columns(adapter, table.fqn)
    if missing and not replace:
        raise click.ClickException(
            f"{table.fqn} exists without {', '.join(sorted(missing))}: load with --replace "
            "to recreate it from external_models.yaml")
    if missing:
        raw_warehouse.create_table(adapter, table, replace=True)


def load_snapshot(adapter: EngineAdapter, files: list[TableFile], *, replace: bool) -> None:
    """Stage every file, then publish database by database; landing tables are always dropped."""
    try:
        _stage_and_publish(adapter, files, replace)
    except BaseException as exc:
        for problem in _drop_landings(adapter, files):
            exc.add_note(problem)  # the first failure stays the one reported
        raise
    problems = _drop_landings(adapter, files)
    if problems:
        raise click.ClickException("; ".join(problems))


def _stage_and_publish(adapter: EngineAdapter, files: list[TableFile], replace: bool) -> None:
    for file in files:
        file.landing = raw_warehouse.stage_text(adapter, file.table, file.frame())
    for file in files:
        _prepare_target(adapter, file.table, replace)
    for catalog in sorted({file.table.catalog for file in files}):
        with raw_warehouse.transaction(adapter):
            for file in (f for f in files if f.table.catalog == catalog):
                if replace:
                    target = raw_warehouse.quoted(file.table.fqn).sql(adapter.dialect)
                    adapter.execute(f"DELETE FROM {target}")
                raw_warehouse.insert_from_landing(adapter, file.table, file.landing)


def _drop_landings(adapter: EngineAdapter, files: list[TableFile]) -> list[str]:
    """Drop every landing table, each tried even if another fails; the failures, as text."""
    problems = []
    for file in files:
        try:
            raw_warehouse.drop_landing(adapter, file.table)
        except Exception as exc:  # reported; the next load-raw replaces it
            problems.append(f"could not drop {raw_warehouse.landing_name(file.table)} ({exc}); "
                            "the next load-raw replaces it")
    return problems


def summary_lines(files: list[TableFile], replace: bool) -> list[str]:
    lines = []
    for file in files:
        verb = "replaced with" if replace else "appended"
        line = f"{file.table.fqn}: {verb} {len(file.rows):,} rows from {file.path.name}"
        if file.ignored_keys:
            ignored = sorted(file.ignored_keys.items())
            keys = ", ".join(f"{k if k.isprintable() else json.dumps(k)} ({n})"
                             for k, n in ignored[:MAX_KEYS_SHOWN])
            if len(ignored) > MAX_KEYS_SHOWN:
                keys += f" and {len(ignored) - MAX_KEYS_SHOWN} more"
            line += f"; ignored keys not in the contract: {keys}"
        lines.append(line)
    return lines


def load_raw(settings: Settings, directory: Path, *, replace: bool) -> list[str]:
    files = read_snapshot(directory, raw_tables(settings.project_dir), gateway=settings.gateway)
    with raw_warehouse.open_warehouse(settings) as adapter:
        load_snapshot(adapter, files, replace=replace)
    return summary_lines(files, replace)
