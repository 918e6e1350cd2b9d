"""Helpers for the RAW tests (demo-data, load-raw, marts): isolated warehouses and plain reads."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from meshctl.raw import warehouse as raw_warehouse
from meshctl.raw.schema import raw_tables
from meshctl.settings import Settings


def isolated_settings(root: Path, monkeypatch: pytest.MonkeyPatch, gateway: str = "local",
                      **overrides) -> Settings:
    """Settings on `gateway` whose local and emulated warehouses live under `root`. config.yaml
    reads LOCAL_DATA_DIR itself, so the environment must say the same as the object."""
    local, fake = root / "local", root / "fakesnow"
    monkeypatch.setenv("LOCAL_DATA_DIR", str(local))
    monkeypatch.setenv("FAKESNOW_DATA_DIR", str(fake))
    return Settings(gateway=gateway, data_dirs={"local": local, "fakesnow": fake}, **overrides)


def plain(value):
    """A fetched value as the same Python value on every engine."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc)
    return value


def fetch(adapter, sql: str) -> list[dict]:
    adapter.execute(sql)
    names = [d[0].upper() for d in adapter.cursor.description]
    return [dict(zip(names, map(plain, row))) for row in adapter.cursor.fetchall()]


def read_raw(settings: Settings) -> dict[str, list[dict]]:
    """Every existing RAW table's declared columns, VARIANT parsed, rows in a stable order
    (on `settings.gateway`)."""
    tables = raw_tables(settings.project_dir)
    out = {}
    with raw_warehouse.open_warehouse(settings) as adapter:
        for fqn, table in tables.items():
            if not raw_warehouse.table_exists(adapter, fqn):
                continue
            cols = ", ".join(f'"{c}"' for c in table.column_names)
            rows = fetch(adapter, f"SELECT {cols} FROM {raw_warehouse.quoted(fqn).sql(adapter.dialect)}")
            for row in rows:
                for column in table.columns:
                    if column.kind == "variant" and row[column.name] is not None:
                        row[column.name] = json.loads(row[column.name])
            out[fqn] = sorted(rows, key=lambda r: json.dumps(r, default=str, sort_keys=True))
    return out


def dump_snapshot(raw: dict[str, list[dict]], directory: Path) -> None:
    """Rows as read by `read_raw`, written in the RAW snapshot format `load-raw` reads."""
    directory.mkdir(parents=True, exist_ok=True)
    for fqn, rows in raw.items():
        with (directory / f"{fqn}.jsonl").open("w") as out:
            for row in rows:
                out.write(json.dumps({k: _json_value(v) for k, v in row.items()}) + "\n")


def _json_value(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def invoke(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str):
    """`meshctl *args` in-process with `settings` (the CLI would otherwise build its own)."""
    from click.testing import CliRunner

    from meshctl import cli

    monkeypatch.setattr(cli, "get_settings", lambda: settings.model_copy())
    return CliRunner().invoke(cli.main, list(args))
