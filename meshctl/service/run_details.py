"""Per-model detail of a run (execution and audit results) and the run's log, for the status page.

What each model did is known only inside the run's process, to SQLMesh's console. The run's
`RecordingConsole` (attempts.run_attempt) keeps which intervals ran and which a readiness signal
held back, for the run history row, and also writes one line per evaluated batch and per audit
warning into the run's output, as `MESHCTL_DETAIL {json}`, which the scheduler copies into the
run's log. After the run, `record(...)` reads those lines back out of the log and stores them,
with the log itself (secrets masked, at most MESHCTL_RUN_LOG_MAX_BYTES, its tail), in
`meshctl.run_details`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from sqlmesh.core.console import DebuggerTerminalConsole

from meshctl.settings import Settings

log = logging.getLogger("meshctl.service.run_details")

MARKER = "MESHCTL_DETAIL "
# How the scheduler reports a non-blocking audit that found rows (sqlmesh.core.scheduler):
# "\n<model>: '<audit>' audit error: <n> rows failed."
_AUDIT_WARNING = re.compile(r"^\s*(?P<model>\S+): '(?P<audit>[^']+)' audit error: (?P<count>\d+) rows? failed")


def _utc_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


def _subtract(checked: list, ready: list) -> list[tuple[int, int]]:
    """Parts of the `checked` intervals not covered by `ready` (both lists of (start, end))."""
    out: list[tuple[int, int]] = []
    for start, end in checked:
        pieces = [(start, end)]
        for r_start, r_end in ready:
            nxt = []
            for s, e in pieces:
                if r_end <= s or r_start >= e:
                    nxt.append((s, e))
                    continue
                if s < r_start:
                    nxt.append((s, r_start))
                if r_end < e:
                    nxt.append((r_end, e))
            pieces = nxt
        out.extend(pieces)
    return out


class RecordingConsole(DebuggerTerminalConsole):
    """SQLMesh's plain-line console (readable in container logs) that keeps what the run did --
    the intervals evaluated, the intervals a readiness signal held back, the failures -- for the
    run history row, and writes a MESHCTL_DETAIL line per evaluated batch and per audit warning
    into the run's output (the module docstring)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.evaluated: list[dict] = []
        self.waiting: list[dict] = []
        self.failures: list = []

    def _detail(self, **event) -> None:
        try:
            sys.stdout.write(MARKER + json.dumps(event, default=str) + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass

    def update_snapshot_evaluation_progress(self, snapshot, interval, batch_idx, duration_ms,
                                            num_audits_passed=0, num_audits_failed=0, audit_only=False,
                                            execution_stats=None, *args, **kwargs):
        if duration_ms is not None:
            model = snapshot.name.replace('"', "")
            if not audit_only:
                self.evaluated.append({"model": model, "start": _utc_ms(interval[0]), "end": _utc_ms(interval[1])})
            self._detail(
                event="audited" if audit_only else "evaluated",
                model=model, start=_utc_ms(interval[0]), end=_utc_ms(interval[1]), batch=batch_idx,
                duration_ms=duration_ms, audits_passed=num_audits_passed, audits_failed=num_audits_failed,
                rows=getattr(execution_stats, "total_rows_processed", None),
                bytes=getattr(execution_stats, "total_bytes_processed", None),
            )
        return super().update_snapshot_evaluation_progress(
            snapshot, interval, batch_idx, duration_ms, num_audits_passed, num_audits_failed,
            audit_only, execution_stats, *args, **kwargs)

    def update_signal_progress(self, snapshot, signal_name, signal_idx, total_signals, ready_intervals,
                               check_intervals, duration):
        for start, end in _subtract(check_intervals, ready_intervals):
            self.waiting.append({"model": snapshot.name.replace('"', ""), "signal": signal_name,
                                 "start": _utc_ms(start), "end": _utc_ms(end)})
        self._write(f"Signal {signal_name} for {snapshot.name}: {len(ready_intervals)} of "
                    f"{len(check_intervals)} interval range(s) ready")

    def log_warning(self, short_message, long_message=None, *args, **kwargs):
        match = _AUDIT_WARNING.match(short_message or "")
        if match:
            self._detail(event="audit_warning", model=match["model"], audit=match["audit"], count=int(match["count"]))
        return super().log_warning(short_message, long_message, *args, **kwargs)

    def log_failed_models(self, errors) -> None:
        self.failures.extend(errors)
        super().log_failed_models(errors)


def parse(text: str) -> tuple[list[dict], list[dict]]:
    """(per-model results, audit warnings) from the MESHCTL_DETAIL lines of a run's log."""
    models: dict[str, dict] = {}
    warnings: list[dict] = []
    for line in text.splitlines():
        if not line.startswith(MARKER):
            continue
        try:
            event = json.loads(line[len(MARKER):])
        except ValueError:
            continue
        if event.get("event") == "audit_warning":
            warnings.append({k: event.get(k) for k in ("model", "audit", "count")})
            continue
        if event.get("event") not in ("evaluated", "audited"):
            continue
        name = event.get("model") or "?"
        item = models.setdefault(name, {"model": name, "batches": 0, "duration_ms": 0, "audits_passed": 0,
                                        "audits_failed": 0, "rows": None, "start": event.get("start"),
                                        "end": event.get("end"), "audit_only": True})
        item["batches"] += 1
        item["duration_ms"] += int(event.get("duration_ms") or 0)
        item["audits_passed"] += int(event.get("audits_passed") or 0)
        item["audits_failed"] += int(event.get("audits_failed") or 0)
        item["audit_only"] = item["audit_only"] and event.get("event") == "audited"
        if event.get("rows") is not None:
            item["rows"] = (item["rows"] or 0) + int(event["rows"])
        item["start"] = min(filter(None, [item["start"], event.get("start")]), default=None)
        item["end"] = max(filter(None, [item["end"], event.get("end")]), default=None)
    return sorted(models.values(), key=lambda m: m["model"]), warnings


def read_log(settings: Settings, log_path: Path | None) -> tuple[str | None, int | None, bool]:
    """(masked text of the log's tail, size in bytes, truncated?) or (None, None, False)."""
    if log_path is None or not Path(log_path).exists():
        return None, None, False
    from meshctl import secrets
    from meshctl.artifacts.secret_scan import known_secrets, redact

    data = Path(log_path).read_bytes()
    size = len(data)
    limit = settings.scheduler.run_log_max_bytes
    truncated = size > limit
    if truncated:
        data = data[-limit:]
        data = data[data.find(b"\n") + 1:] if b"\n" in data else data
    # The settings' secret values, whatever their source (resolve returns resolved settings as
    # they are, so this fetches nothing in the scheduler, which resolved them at start).
    data = redact(data, known_secrets(secrets.resolve(settings)))
    return data.decode("utf-8", errors="replace"), size, truncated


def record(settings: Settings, store, run_id: str, log_path: Path | None) -> tuple[list[dict], list[dict]]:
    """Store the run's details and log; return (models, warnings). Never raises."""
    try:
        text, size, truncated = read_log(settings, log_path)
        models, warnings = parse(text or "")
        shown = "\n".join(line for line in (text or "").splitlines() if not line.startswith(MARKER)) if text else None
        store.put_details(run_id, models, warnings, shown, size, truncated)
        store.prune_logs(settings.scheduler.run_log_keep_days)
        return models, warnings
    except Exception as exc:
        log.warning("run details of %s not recorded: %s", run_id, exc)
        return [], []
