"""`meshctl demo`: the main job on the embedded local gateway, from nothing to a summary.

Fresh demo RAW data, every model built with `plan` on `prod`, then rows per mart and a few
headline metrics. No credentials: DuckDB files under LOCAL_DATA_DIR.

LOCAL_DATA_DIR may be a mount point (a container volume), so a reset empties the warehouse files
in it and never removes the directory itself; files that are not the warehouse's stay.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

MARTS = (
    "DIM_ORGANIZATIONS",
    "DIM_ORGANIZATIONS_HISTORY",
    "DIM_USERS",
    "FCT_EVENTS",
    "FCT_INVOICES",
    "FCT_MRR_DAILY",
    "METRICS_DAILY",
)


# Written last, once every model is built: `--if-missing` keeps only a warehouse that has it.
COMPLETE_MARKER = ".demo-complete"


# The local gateway's DuckDB files (config.yaml attaches every catalog in LOCAL_DATA_DIR), with
# their write-ahead logs; the embedded SQLMesh state is in the first catalog.
WAREHOUSE_PATTERNS = ("*.duckdb", "*.duckdb.wal")


def warehouse_files(data_dir: Path) -> list[Path]:
    files = {p for pattern in WAREHOUSE_PATTERNS for p in data_dir.glob(pattern) if p.is_file()}
    marker = data_dir / COMPLETE_MARKER
    return sorted(files | ({marker} if marker.exists() else set()))


def reset_warehouse(data_dir: Path) -> list[Path]:
    """Remove the local warehouse (and its marker) from data_dir, keeping the directory."""
    removed = warehouse_files(data_dir)
    for path in removed:
        path.unlink()
    return removed


def ensure_writable(data_dir: Path) -> None:
    """One clear line instead of a traceback when LOCAL_DATA_DIR cannot be written (in a
    container: a bind mount the service user does not own)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        writable = os.access(data_dir, os.W_OK | os.X_OK)
    except OSError as exc:
        writable, why = False, exc.strerror
    else:
        why = "permission denied"
    if not writable:
        raise click.ClickException(
            f"cannot write the local warehouse in {data_dir} ({why}) as uid {os.getuid()}: set "
            "LOCAL_DATA_DIR to a writable directory, or mount a volume the service user owns"
        )


def is_complete(data_dir: Path) -> bool:
    return (data_dir / COMPLETE_MARKER).is_file()


def summary(context) -> list[str]:
    lines = ["", "Marts (GOODWORD_WH.MARTS, environment prod):"]
    for mart in MARTS:
        count = context.engine_adapter.fetchone(f"SELECT COUNT(*) FROM MARTS.{mart}")[0]
        lines.append(f"  {mart:<27} {count:>10,} rows")
    latest = context.engine_adapter.fetchone(
        "SELECT DATE, DAU, WAU, MAU, NEW_USERS, MRR_USD, PAYING_ORGANIZATIONS "
        "FROM MARTS.METRICS_DAILY ORDER BY DATE DESC LIMIT 1"
    )
    if latest:
        day, dau, wau, mau, new_users, mrr_usd, paying = latest
        lines += [
            f"Latest complete day {day}:",
            f"  DAU {dau:,}   WAU {wau:,}   MAU {mau:,}   new users {new_users:,}",
            f"  MRR (USD) ${mrr_usd:,.2f}   paying organizations {paying:,}",
        ]
    return lines
