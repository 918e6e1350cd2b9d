"""Run records in the artifacts bucket, for the scheduler (which calls `upload_run_record`).

    <prefix>/runs/date=YYYY-MM-DD/<run_id>.log    the run's log (when given)
    <prefix>/runs/date=YYYY-MM-DD/<run_id>.json   the record, with the log's key added

The date is the run's start (UTC). The log goes first, so a record in the bucket means its log
is there too. Secret values this process holds (passwords, keys; from the environment or Secrets
Manager) are masked in both before upload; anything else the bucket's scan finds (a credential
SQLMesh printed, say) stops both uploads before either is made (see meshctl/artifacts/s3.py).
An upload never raises: S3 errors are retried by botocore's retry mode (see meshctl/artifacts/s3.py),
then logged as one structured warning, and the function returns False; a run's outcome never
depends on the bucket.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

from meshctl.artifacts.s3 import Bucket, error_text
from meshctl.artifacts.secret_scan import redact
from meshctl.settings import Settings

log = logging.getLogger("meshctl.artifacts.run_records")

RUNS_DIR = "runs"
_ID_KEYS = ("run_id", "id")
_START_KEYS = ("started_at", "start", "start_time", "started")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def _run_id(record: dict) -> str:
    for key in _ID_KEYS:
        if record.get(key) not in (None, ""):
            return _UNSAFE.sub("_", str(record[key])).strip("._") or "run"
    raise ValueError(f"the run record has no run id (one of {', '.join(_ID_KEYS)})")


def _run_date(record: dict) -> dt.date:
    for key in _START_KEYS:
        value: Any = record.get(key)
        if value in (None, ""):
            continue
        if isinstance(value, (int, float)):
            value = dt.datetime.fromtimestamp(value, dt.timezone.utc)
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(dt.timezone.utc)
            return value.date()
        if isinstance(value, dt.date):
            return value
    return dt.datetime.now(dt.timezone.utc).date()


def run_record_keys(settings: Settings, record: dict) -> tuple[str, str]:
    """(record key, log key) for `record`."""
    prefix = settings.artifacts.prefix.strip("/")
    base = "/".join(
        p for p in (prefix, RUNS_DIR, f"date={_run_date(record):%Y-%m-%d}", _run_id(record)) if p
    )
    return f"{base}.json", f"{base}.log"


def upload_run_record(
    settings: Settings, record: dict, log_path: Path | None, *, bucket: Bucket | None = None
) -> bool:
    """Upload the run's log (if any) and record. True when everything given was uploaded;
    False (after a structured warning) on any failure. Never raises."""
    context: dict[str, Any] = {"event": "run_record_upload_failed", "run_id": record.get("run_id", record.get("id"))}
    try:
        record_key, log_key = run_record_keys(settings, record)
        context["key"] = record_key
        bucket = bucket or Bucket(settings)
        context["bucket"] = bucket.name
        body = dict(record, log_key=log_key) if log_path is not None else dict(record)
        data = redact(json.dumps(body, indent=2, sort_keys=True, default=str).encode(), bucket.secrets)
        bucket.check_bytes(record_key, data)  # before the log goes up: both or neither
        if log_path is not None:
            log_path = Path(log_path)
            context["log"] = str(log_path)
            with tempfile.TemporaryDirectory(prefix="meshctl-runlog-") as tmp:
                masked = Path(tmp) / "run.log"
                masked.write_bytes(redact(log_path.read_bytes(), bucket.secrets))
                bucket.upload_file(masked, log_key, "text/plain; charset=utf-8", {"run-id": _run_id(record)})
        bucket.put_bytes(
            record_key,
            data,
            "application/json",
            {"run-id": _run_id(record), "status": str(record.get("status", ""))[:64]},
        )
        return True
    except Exception as exc:  # by contract: the bucket never fails a run
        context["error"] = error_text(exc)
        log.warning("run record %s not uploaded: %s", context["run_id"], context["error"], extra=context)
        return False
