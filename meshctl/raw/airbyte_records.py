"""Airbyte records (`{"stream", "data", "emitted_at"}` lines) as a RAW snapshot for `load-raw`.

This is what Airbyte's Snowflake destination does to a record, minus the typing: upper-case the
`data` keys, add the `_AIRBYTE_*` columns, and keep one row per ID (Append + Deduped: the latest
emitted). Streams the contract has no table for are skipped and counted.

    python -m meshctl.raw.airbyte_records SOURCE_DIR TARGET_DIR
"""

from __future__ import annotations

import json
import sys
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

# Airbyte's stream prefix for the Stripe connection is `STRIPE_`.
TABLES = {
    "customers": "AIRBYTE_DB.RAW.STRIPE_CUSTOMERS",
    "subscriptions": "AIRBYTE_DB.RAW.STRIPE_SUBSCRIPTIONS",
    "invoices": "AIRBYTE_DB.RAW.STRIPE_INVOICES",
}
_RAW_ID_NAMESPACE = uuid.UUID("6f1c2a4e-2b0d-4d7e-9a51-0c8e1f7d3b21")


def to_row(record: dict, *, sync_id: int, generation_id: int) -> dict:
    data = record["data"]
    emitted = datetime.fromtimestamp(record["emitted_at"] / 1000, tz=timezone.utc)
    row = {key.upper(): value for key, value in data.items()}
    row.update(
        _AIRBYTE_RAW_ID=str(uuid.uuid5(_RAW_ID_NAMESPACE, f"{record['stream']}:{data.get('id')}:"
                                                          f"{record['emitted_at']}")),
        _AIRBYTE_EXTRACTED_AT=emitted.isoformat(timespec="milliseconds"),
        _AIRBYTE_META={"sync_id": sync_id, "changes": []},
        _AIRBYTE_GENERATION_ID=generation_id,
    )
    return row


def convert(source: Path, target: Path, *, sync_id: int = 1, generation_id: int = 0) -> dict:
    """Write TARGET/<table>.jsonl for every stream in SOURCE/*.jsonl that RAW has a table for;
    returns rows written per table and records skipped per stream."""
    latest: dict[str, dict[str, dict]] = {table: {} for table in TABLES.values()}
    skipped: Counter = Counter()
    for path in sorted(source.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            table = TABLES.get(record["stream"])
            if table is None:
                skipped[record["stream"]] += 1
                continue
            rows = latest[table]
            key = record["data"]["id"]
            if key not in rows or rows[key]["emitted_at"] <= record["emitted_at"]:
                rows[key] = record
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    for table, records in latest.items():
        lines = [json.dumps(to_row(r, sync_id=sync_id, generation_id=generation_id))
                 for r in records.values()]
        (target / f"{table}.jsonl").write_text("".join(f"{line}\n" for line in lines),
                                               encoding="utf-8")
        written[table] = len(lines)
    return {"written": written, "skipped": dict(skipped)}


if __name__ == "__main__":
    result = convert(Path(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps(result, indent=2))
