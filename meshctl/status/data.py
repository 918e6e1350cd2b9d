"""Everything the status page shows, as plain data: the page renders it, /status.json serializes it.

Sources: run history and run details (state database), the latest freshness assessment (stored by
the scheduler after each run, judged again here against the current time), open and recent
incidents, the run lock's holder, the next cron tick, and the cost report (cached, refreshed in
the background: Snowflake's ACCOUNT_USAGE is slow, lags by up to 45 minutes, and needs a
warehouse, so a page view never waits for it or pays for it).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from croniter import croniter

from meshctl.settings import Settings
from meshctl.status.store import Store

log = logging.getLogger("meshctl.status.data")

FAILED = ("failed", "timeout", "interrupted", "abandoned")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _seconds(run: dict) -> float | None:
    if run.get("ended_at") and run.get("started_at"):
        return round((run["ended_at"] - run["started_at"]).total_seconds(), 1)
    return None


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:300] if (text or "").strip() else ""


# --- cost, cached ----------------------------------------------------------------------------
class CostCache:
    """One cost report per (gateway, days), refreshed in a background thread when older than
    MESHCTL_COST_CACHE_SECONDS. The first view after start shows "being fetched"."""

    def __init__(self):
        self._lock = threading.Lock()
        self._reports: dict[tuple, tuple[float, object]] = {}
        self._refreshing: set[tuple] = set()

    def get(self, settings: Settings, wait: bool = False):
        key = (settings.gateway, settings.cost.days, str(settings.project_dir))
        with self._lock:
            fetched, report = self._reports.get(key, (0.0, None))
            stale = time.monotonic() - fetched > settings.cost.cache_seconds or report is None
            start = stale and key not in self._refreshing
            if start:
                self._refreshing.add(key)
        if start:
            thread = threading.Thread(target=self._refresh, args=(settings, key), daemon=True, name="cost-refresh")
            thread.start()
            if wait or report is None and settings.gateway != "snowflake":
                thread.join(timeout=30)  # cheap sources (emulated, none): show them at once
                with self._lock:
                    report = self._reports.get(key, (0.0, report))[1]
        return report

    def _refresh(self, settings: Settings, key: tuple) -> None:
        from meshctl.status import cost

        try:
            report = cost.gather(settings)
            with self._lock:
                self._reports[key] = (time.monotonic(), report)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def clear(self) -> None:
        with self._lock:
            self._reports.clear()


COST = CostCache()


# --- the page's data -------------------------------------------------------------------------
def run_summary(run: dict, details: dict | None = None, cost_line=None) -> dict:
    models = details.get("models") if details else None
    return {
        "run_id": run["run_id"],
        "trigger": run["trigger"],
        "status": run["status"],
        "failed": run["status"] in FAILED,
        "scheduled_for": _iso(run.get("scheduled_for")),
        "started_at": _iso(run["started_at"]),
        "ended_at": _iso(run.get("ended_at")),
        "seconds": _seconds(run),
        "attempts": run.get("attempts"),
        "models": len(run.get("models") or []),
        "intervals": len(run.get("intervals") or []),
        "waiting": len(run.get("waiting") or []),
        # Known only when the detail console recorded the run's models (run_details.py).
        "audit_warnings": len(details.get("warnings") or []) if details and details.get("models") else None,
        "audits_failed": sum(m.get("audits_failed") or 0 for m in models) if models else None,
        "error": first_line(run.get("error")),
        "error_class": run.get("error_class"),
        "host": run.get("host"),
        "credits": round(cost_line.credits, 6) if cost_line else None,
    }


def lock_holder(settings: Settings) -> tuple[str | None, str | None]:
    from meshctl.service import run_lock as locks

    try:
        holder = locks.current_holder(settings.state_db, settings.run_lock)
        return (str(holder) if holder else None), None
    except Exception as exc:
        return None, first_line(str(exc)) or type(exc).__name__


def next_tick(settings: Settings, now: datetime) -> str | None:
    try:
        return _iso(croniter(settings.scheduler.cron, now).get_next(datetime))
    except Exception:
        return None


def freshness_section(settings: Settings, store: Store, now: datetime, run_in_flight: bool) -> dict:
    from meshctl.service import alerts
    from meshctl.status import freshness

    document, updated = store.fact("freshness")
    document = document or {}
    marts = []
    verdicts = dict(alerts.verdicts(settings, document, now, run_in_flight))
    for data in document.get("marts", []):
        facts = freshness.MartFacts.from_json(data)
        verdict = verdicts.get(facts.short_name)
        newest = facts.newest_landed
        marts.append({
            "mart": facts.short_name,
            "name": facts.name,
            "status": verdict.status,
            "reason": verdict.reason,
            "due": _iso(verdict.due),
            "behind_since": _iso(verdict.behind_since),
            "date_column": facts.date_column,
            "published": facts.published.isoformat() if facts.published else None,
            "whole_days": facts.whole_days,
            "processed_through": _iso(facts.processed_through),
            "newest_landed": {"table": newest.table, "at": _iso(newest.newest)} if newest else None,
            "sources": [{"table": s.table, "newest": _iso(s.newest)} for s in facts.sources],
        })
    assessed = document.get("assessed_at")
    stale = None
    if assessed:
        age = now - datetime.fromisoformat(assessed)
        interval = _cron_interval(settings.scheduler.cron, now)
        if interval and age > 3 * interval:
            stale = f"assessed {int(age.total_seconds() // 60)} min ago: no run has assessed it since"
    return {
        "assessed_at": assessed,
        "attempted_at": document.get("attempted_at"),
        "run_id": document.get("run_id"),
        "environment": document.get("environment"),
        "error": document.get("error"),
        "stale": stale,
        "marts": marts,
        "counts": {s: sum(1 for m in marts if m["status"] == s) for s in ("fresh", "pending", "behind", "unknown")},
    }


def _cron_interval(cron: str, now: datetime) -> timedelta | None:
    try:
        it = croniter(cron, now)
        a = it.get_next(datetime)
        return it.get_next(datetime) - a
    except Exception:
        return None


def charts_data(runs: list[dict], report, now: datetime, days: int) -> dict:
    since = now - timedelta(days=days)
    durations = [
        {"started_at": _iso(r["started_at"]), "seconds": _seconds(r), "status": r["status"], "run_id": r["run_id"]}
        for r in runs
        if r["started_at"] >= since and r["status"] != "skipped" and _seconds(r) is not None
    ]
    run_seconds: dict[str, float] = {}
    for r in durations:
        day = r["started_at"][:10]
        run_seconds[day] = run_seconds.get(day, 0.0) + r["seconds"]
    warehouse = None
    if report is not None and report.source in ("snowflake", "emulated"):
        warehouse = [{"day": line.key, "seconds": round(line.seconds, 1), "credits": round(line.credits, 6)}
                     for line in report.by_day if line.key >= since.date().isoformat()]
    return {
        "days": days,
        "since": since.date().isoformat(),
        "until": now.date().isoformat(),
        "durations": durations,
        "run_seconds_per_day": [{"day": d, "seconds": round(s, 1)} for d, s in sorted(run_seconds.items())],
        "warehouse_seconds_per_day": warehouse,
        "warehouse_source": report.source if report is not None else "pending",
    }


def cost_section(report) -> dict:
    if report is None:
        return {"source": "pending", "explanation": "The cost report is being fetched; reload in a minute."}
    data = report.as_json()
    data["by_model"] = data["by_model"][:25]
    data["by_run"] = data["by_run"][:25]
    data["tags"] = data["tags"][:40]
    return data


def gather(settings: Settings, now: datetime | None = None) -> dict:
    """The status page's data."""
    now = now or _now()
    store = Store(settings.state_db)
    days = settings.cost.days
    recent = store.runs(limit=settings.status.runs_limit)
    chart_runs = store.runs(limit=20_000, since=now - timedelta(days=days))
    details = store.details_for([r["run_id"] for r in recent])
    report = COST.get(settings)
    run_in_flight = any(r["status"] == "running" for r in recent)
    holder, holder_error = lock_holder(settings)
    alert_rows = store.alerts(limit=30)
    return {
        "generated_at": now.isoformat(),
        "environment": settings.environment,
        "gateway": settings.gateway,
        "scheduler": {
            "cron": settings.scheduler.cron,
            "next_tick": next_tick(settings, now),
            "lock_holder": holder,
            "lock_error": holder_error,
            "run_in_flight": run_in_flight,
            "last_run": run_summary(recent[0]) if recent else None,
        },
        "runs": [run_summary(r, details.get(r["run_id"]), report.run(r["run_id"]) if report else None) for r in recent],
        "freshness": freshness_section(settings, store, now, run_in_flight),
        "alerts": {
            "open": [_alert(a) for a in alert_rows if a["resolved_at"] is None],
            "recent": [_alert(a) for a in alert_rows if a["resolved_at"] is not None][:10],
        },
        "charts": charts_data(chart_runs, report, now, days),
        "cost": cost_section(report),
    }


def _alert(row: dict) -> dict:
    return {
        "key": row["key"], "kind": row["kind"], "title": row["title"], "detail": row["detail"],
        "opened_at": _iso(row["opened_at"]), "last_seen_at": _iso(row["last_seen_at"]),
        "resolved_at": _iso(row["resolved_at"]), "data": row.get("data") or {},
        "notified": row.get("notified"), "resolve_notified": row.get("resolve_notified"),
    }


def run_page(settings: Settings, run_id: str) -> dict | None:
    """One run: its row, what each model did, the signal holds, the error, the log."""
    store = Store(settings.state_db)
    rows = store.runs(limit=1, run_id=run_id)
    if not rows:
        return None
    run = rows[0]
    details = store.details(run_id) or {}
    report = COST.get(settings)
    summary = run_summary(run, details, report.run(run_id) if report else None)
    by_model: dict[str, dict] = {}
    for interval in run.get("intervals") or []:
        item = by_model.setdefault(interval["model"], {"model": interval["model"], "intervals": 0,
                                                        "start": interval["start"], "end": interval["end"]})
        item["intervals"] += 1
        item["start"] = min(item["start"], interval["start"])
        item["end"] = max(item["end"], interval["end"])
    detail_models = {m["model"]: m for m in details.get("models") or []}
    warnings = details.get("warnings") or []
    models = []
    for name in sorted(set(by_model) | set(detail_models)):
        base, extra = by_model.get(name, {"model": name, "intervals": 0}), detail_models.get(name)
        model_warnings = [w for w in warnings if _same(w.get("model"), name)]
        models.append({
            **base,
            "duration_ms": extra.get("duration_ms") if extra else None,
            "audits_passed": extra.get("audits_passed") if extra else None,
            "audits_failed": extra.get("audits_failed") if extra else None,
            "rows": extra.get("rows") if extra else None,
            "warnings": model_warnings,
        })
    log_text, log_note = details.get("log"), None
    if log_text is None:
        log_text, log_note = _local_log(settings, run_id)
    elif details.get("log_truncated"):
        log_note = f"the last {settings.scheduler.run_log_max_bytes // 1024} KiB of {details.get('log_bytes')} bytes"
    return {
        "run": summary,
        "error": run.get("error"),
        "environment": run.get("environment"),
        "gateway": run.get("gateway"),
        "pid": run.get("pid"),
        "models": models,
        "has_details": bool(details.get("models")),
        "waiting": run.get("waiting") or [],
        "warnings": warnings,
        "log": log_text,
        "log_note": log_note,
        "cost": report.run(run_id).__dict__ if report and report.run(run_id) else None,
        "cost_source": report.source if report else "pending",
    }


def _same(a: str | None, b: str) -> bool:
    a, b = (a or "").replace('"', "").upper(), b.replace('"', "").upper()
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def _local_log(settings: Settings, run_id: str) -> tuple[str | None, str | None]:
    """A run recorded before run details existed: its log file, when this host has it."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", run_id):
        return None, "no log recorded for this run"
    directory = settings.resolve(settings.scheduler.run_log_dir)
    for path in sorted(Path(directory).glob(f"*-{run_id}.log")) if Path(directory).is_dir() else []:
        from meshctl.service import run_details

        text, size, truncated = run_details.read_log(settings, path)
        return text, f"from {path}" + (" (tail)" if truncated else "")
    return None, "no log recorded for this run (it ran before run details were kept, or on another host)"
