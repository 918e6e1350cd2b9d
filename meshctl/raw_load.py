"""`meshctl load-raw DIR`: load a RAW snapshot (JSON Lines, one file per table) into a gateway.

Every file is read and checked in full before anything is written; one bad line anywhere means
nothing is loaded. Rows are then staged in landing tables and published one database at a time,
all tables of a database in one transaction (DuckDB, and fakesnow on top of it, cannot write two
attached databases in one transaction), so a reader sees a database either before or after.
The file format is documented in the README, section "RAW snapshot files".
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import click
import pandas as pd
from sqlmesh.core.engine_adapter import EngineAdapter

from meshctl import raw_warehouse
from meshctl.raw_schema import RawTable, raw_tables
from meshctl.raw_values import to_text
from meshctl.settings import Settings

SUFFIX = ".jsonl"
MAX_ERRORS_SHOWN = 50
MAX_KEYS_SHOWN = 12


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

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=self.table.column_names, dtype=object)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def read_table_file(table: RawTable, path: Path, errors: list[str]) -> TableFile:
    result = TableFile(table, path)
    columns = {column.name: column for column in table.columns}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line, parse_constant=_reject_constant)
            except ValueError as exc:
                errors.append(f"{where}: not valid JSON ({exc})")
                continue
            if not isinstance(record, dict):
                errors.append(f"{where}: expected a JSON object, got {type(record).__name__}")
                continue
            values: dict[str, object] = {}
            for key, value in record.items():
                name = key.upper()
                if name in values:
                    errors.append(f"{where}: column {name} given twice (keys are case-insensitive)")
                elif name in columns:
                    values[name] = value
                else:
                    result.ignored_keys[name] += 1
            row, ok = [], True
            for column in table.columns:
                try:
                    row.append(to_text(column, values.get(column.name)))
                except ValueError as exc:
                    errors.append(f"{where}: {exc}")
                    ok = False
            if ok:
                result.rows.append(row)
    return result


def read_snapshot(directory: Path, tables: dict[str, RawTable]) -> list[TableFile]:
    """Every table file of `directory`, checked; raises SnapshotError listing every problem."""
    if not directory.is_dir():
        raise SnapshotError([f"{directory}: not a directory"])
    paths = sorted(p for p in directory.iterdir() if p.name.lower().endswith(SUFFIX))
    errors: list[str] = []
    if not paths:
        errors.append(f"{directory}: no *{SUFFIX} files")
    files = []
    for path in paths:
        name = path.name[: -len(SUFFIX)].upper()
        table = tables.get(name)
        if table is None:
            errors.append(f"{path}: no RAW table {name} (file names are DATABASE.SCHEMA.TABLE"
                          f"{SUFFIX}; known: {', '.join(sorted(tables))})")
            continue
        files.append(read_table_file(table, path, errors))
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
    finally:
        for file in files:
            raw_warehouse.drop_landing(adapter, file.table)


def summary_lines(files: list[TableFile], replace: bool) -> list[str]:
    lines = []
    for file in files:
        verb = "replaced with" if replace else "appended"
        line = f"{file.table.fqn}: {verb} {len(file.rows):,} rows from {file.path.name}"
        if file.ignored_keys:
            ignored = sorted(file.ignored_keys.items())
            keys = ", ".join(f"{k} ({n})" for k, n in ignored[:MAX_KEYS_SHOWN])
            if len(ignored) > MAX_KEYS_SHOWN:
                keys += f" and {len(ignored) - MAX_KEYS_SHOWN} more"
            line += f"; ignored keys not in the contract: {keys}"
        lines.append(line)
    return lines


def load_raw(settings: Settings, directory: Path, *, replace: bool,
             gateway: str | None = None) -> list[str]:
    files = read_snapshot(directory, raw_tables(settings.project_dir))
    with raw_warehouse.open_warehouse(settings, gateway) as adapter:
        load_snapshot(adapter, files, replace=replace)
    return summary_lines(files, replace)


@click.command("load-raw")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--replace", is_flag=True,
              help="Replace the rows of every table that has a file (default: append).")
@click.pass_obj
def load_raw_command(settings: Settings, directory: Path, replace: bool) -> None:
    """Load a RAW snapshot: DIRECTORY/<DATABASE>.<SCHEMA>.<TABLE>.jsonl, one JSON object a line."""
    began = time.monotonic()
    for line in load_raw(settings, directory, replace=replace):
        click.echo(line)
    click.echo(f"Loaded into gateway {settings.gateway} in {time.monotonic() - began:.1f}s.")
