"""Alerts people keep on: one notification per incident, a recovery message when it ends, a link
to the status page in both.

Incidents (one open row per key in `meshctl.alerts`, see status/store.py):
  run_failed:<env>        a run failed, timed out or was interrupted, after its retries. Later
                          failures are counted, not sent; the first run that succeeds (or has
                          nothing to do) recovers it.
  freshness_behind:<env>  some mart has been `behind` its freshness target (status/freshness.py)
                          for MESHCTL_ALERT_BEHIND_AFTER_SECONDS; recovers when none is.
  audit_jump:<env>        a non-blocking audit's warning count jumped: at least FACTOR x its median
                          over the last BASELINE_RUNS runs that built the model, and MIN_ROWS more
                          (a new warning counts from 0). Recovers once the models involved are built
                          again without those audits above their threshold.

Sent through SQLMesh's notification targets (Slack webhook, SMTP) built from the same settings
as before (notify.py). The open incident is the dedup: the insert that creates it is the one that
notifies (a unique index on open keys), so two processes evaluating at once send one message.

`after_run` is the scheduler's hook after every run, where it used to send one failure
notification per failed run: it records the run's details (run_details.py), assesses the marts'
freshness and evaluates the incidents. It never raises: alerting must not break a run.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from psycopg2 import sql

from meshctl.settings import Settings

log = logging.getLogger("meshctl.service.alerts")

FAILED = ("failed", "timeout", "interrupted")
GOOD = ("success", "nothing_to_do")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def status_url(settings: Settings, run_id: str | None = None) -> str:
    base = (settings.status.base_url or "").rstrip("/")
    path = f"/status/runs/{run_id}" if run_id else "/status"
    return f"{base}{path}" if base else f"{path} on the SQLMesh UI (set MESHCTL_STATUS_BASE_URL for a link)"


# --- sending --------------------------------------------------------------------------------
def send(settings: Settings, status: str, subject: str, message: str, detail: str | None = None) -> int:
    """One message to every configured target; how many took it. Never raises."""
    from sqlmesh.core.notification_target import BasicSMTPNotificationTarget, NotificationStatus

    from meshctl.service import notify

    sent = 0
    for target in notify.targets(settings.notify):
        try:
            if isinstance(target, BasicSMTPNotificationTarget):
                target = target.model_copy(update={"subject": subject})
            target.send(NotificationStatus(status), message, exc=detail)
            sent += 1
        except Exception as exc:  # a broken webhook must not break the scheduler
            log.error("alert via %s failed: %s", target.type_, exc)
    return sent


# --- incidents ------------------------------------------------------------------------------
class Incidents:
    """The open incidents. Their times come from `clock` (the scheduler's), not the database's."""

    def __init__(self, settings: Settings, store, clock: Callable[[], datetime] = _now):
        self.settings = settings
        self.store = store
        self.clock = clock
        self.table = store.table("alerts")

    def current(self, key: str) -> dict | None:
        with self.store.cursor() as cur:
            cur.execute(sql.SQL("SELECT * FROM {} WHERE key = %s AND resolved_at IS NULL").format(self.table), (key,))
            row = cur.fetchone()
            return dict(zip([d.name for d in cur.description], row)) if row else None

    def open(self, key: str, kind: str, title: str, detail: str, data: dict) -> bool:
        """Open the incident unless it is open; True when this call opened it (and must notify)."""
        now = self.clock()
        with self.store.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (key, kind, title, detail, data, opened_at, last_seen_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (key) WHERE resolved_at IS NULL DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at "
                    "RETURNING (xmax = 0) AS inserted"
                ).format(self.table),
                (key, kind, title, detail, json.dumps(data, default=str), now, now),
            )
            return bool(cur.fetchone()[0])

    def update(self, key: str, data: dict) -> None:
        with self.store.cursor() as cur:
            cur.execute(
                sql.SQL("UPDATE {} SET data = %s, last_seen_at = %s WHERE key = %s AND resolved_at IS NULL").format(self.table),
                (json.dumps(data, default=str), self.clock(), key),
            )

    def resolve(self, key: str) -> dict | None:
        """Close the open incident; the row when this call closed it (and must notify)."""
        with self.store.cursor() as cur:
            cur.execute(
                sql.SQL("UPDATE {} SET resolved_at = %s WHERE key = %s AND resolved_at IS NULL RETURNING *").format(self.table),
                (self.clock(), key),
            )
            row = cur.fetchone()
            return dict(zip([d.name for d in cur.description], row)) if row else None

    def mark(self, key: str, column: str, sent: int) -> None:
        with self.store.cursor() as cur:
            cur.execute(
                sql.SQL("UPDATE {} SET {} = %s WHERE id = (SELECT max(id) FROM {} WHERE key = %s)").format(
                    self.table, sql.Identifier(column), self.table),
                (sent, key),
            )


def _ago(since: datetime, now: datetime) -> str:
    minutes = max(0, int((now - since).total_seconds() // 60))
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def evaluate_run(settings: Settings, incidents: Incidents, record) -> None:
    key = f"run_failed:{record.environment}"
    if record.status in FAILED:
        first_line = (record.error or "").splitlines()[0][:300] if record.error else "(no error text)"
        summary = (f"meshctl run {record.run_id} {record.status} ({record.error_class}) on {record.host}, "
                   f"environment {record.environment}, after {record.attempts} attempt(s)")
        data = {"first_run": record.run_id, "last_run": record.run_id, "failures": 1, "error": first_line}
        if incidents.open(key, "run_failed", "SQLMesh run failed", summary, data):
            sent = send(settings, "failure", "SQLMesh scheduled run failed",
                        f"SQLMesh run failed: {summary}. Status: {status_url(settings, record.run_id)}",
                        record.error or "")
            incidents.mark(key, "notified", sent)
            log.info("run failure alert sent to %d target(s)", sent)
        else:
            current = incidents.current(key) or {}
            data = {**(current.get("data") or {}), "last_run": record.run_id, "error": first_line}
            data["failures"] = int(data.get("failures") or 1) + 1
            incidents.update(key, data)
            log.info("run %s failed again: incident already open since %s, not notified again",
                     record.run_id, current.get("opened_at"))
    elif record.status in GOOD:
        closed = incidents.resolve(key)
        if closed:
            failures = (closed.get("data") or {}).get("failures", 1)
            message = (f"Recovered: SQLMesh runs succeed again in environment {record.environment} "
                       f"(run {record.run_id} {record.status}) after {failures} failed run(s) over "
                       f"{_ago(closed['opened_at'], incidents.clock())}. Status: {status_url(settings)}")
            incidents.mark(key, "resolve_notified", send(settings, "success", "SQLMesh runs recovered", message))


def evaluate_freshness(settings: Settings, incidents: Incidents, verdicts: list[tuple[str, object]],
                       environment: str, now: datetime) -> None:
    """`verdicts`: (mart, freshness.Verdict). Unknown verdicts neither open nor close anything."""
    key = f"freshness_behind:{environment}"
    threshold = timedelta(seconds=settings.alerts.behind_after_seconds)
    behind = [(m, v) for m, v in verdicts if v.status == "behind" and (v.behind_since or now) + threshold <= now]
    if behind:
        lines = [f"{m}: {v.reason}" for m, v in behind]
        title = f"{len(behind)} mart(s) behind their freshness target"
        if incidents.open(key, "freshness_behind", title, "\n".join(lines), {"marts": [m for m, _ in behind]}):
            message = (f"Marts behind their freshness target (marts.md) for more than "
                       f"{_ago(now - threshold, now)}: {', '.join(m for m, _ in behind)}. Status: {status_url(settings)}")
            incidents.mark(key, "notified", send(settings, "warning", "SQLMesh marts behind", message, "\n".join(lines)))
        else:
            current = incidents.current(key) or {}
            marts = sorted({*(current.get("data") or {}).get("marts", []), *(m for m, _ in behind)})
            incidents.update(key, {"marts": marts})
    elif verdicts and not any(v.status == "unknown" for _, v in verdicts) and not any(v.status == "behind" for _, v in verdicts):
        closed = incidents.resolve(key)
        if closed:
            marts = (closed.get("data") or {}).get("marts", [])
            message = (f"Recovered: every mart meets its freshness target again ({', '.join(marts)} were behind, "
                       f"for {_ago(closed['opened_at'], now)}). Status: {status_url(settings)}")
            incidents.mark(key, "resolve_notified", send(settings, "success", "SQLMesh marts fresh again", message))


def audit_jumps(settings: Settings, warnings: list[dict], history: list[dict], models_built: set[str]) -> list[dict]:
    """The warnings of this run that jumped against the previous runs that built their model.
    `history`: earlier runs' {"models": [...], "warnings": [...]}, newest first."""
    factor, minimum = settings.alerts.audit_jump_factor, settings.alerts.audit_jump_min_rows
    out = []
    for warning in warnings:
        model, audit, count = warning["model"], warning["audit"], int(warning["count"] or 0)
        previous = []
        for run in history:
            built = {str(m).upper() for m in (run.get("models") or [])}
            if not any(_same_model(model, b) for b in built):
                continue
            found = [int(w.get("count") or 0) for w in run.get("warnings") or []
                     if w.get("audit") == audit and _same_model(model, w.get("model") or "")]
            previous.append(max(found, default=0))
            if len(previous) >= settings.alerts.audit_baseline_runs:
                break
        if not previous:
            continue  # no earlier run built it: nothing to compare with
        baseline = statistics.median(previous)  # a past jump does not raise the bar for long
        threshold = max(baseline * factor, baseline + minimum)
        if count >= threshold:
            out.append({"model": model, "audit": audit, "count": count, "baseline": baseline, "threshold": threshold})
    return out


def _same_model(a: str, b: str) -> bool:
    """Display names (MARTS.FCT_EVENTS) and full names (GOODWORD_WH.MARTS.FCT_EVENTS) match."""
    a, b = a.replace('"', "").upper(), b.replace('"', "").upper()
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def evaluate_audits(settings: Settings, incidents: Incidents, record, warnings: list[dict], history: list[dict]) -> None:
    key = f"audit_jump:{record.environment}"
    built = {str(m) for m in record.models or []}
    jumps = audit_jumps(settings, warnings, history, built)
    if jumps:
        lines = [f"{j['model']}: '{j['audit']}' {j['count']} rows (most in recent runs: {j['baseline']})" for j in jumps]
        if incidents.open(key, "audit_jump", "Audit warnings jumped", "\n".join(lines), {"jumps": jumps, "run": record.run_id}):
            message = (f"Audit warnings jumped in run {record.run_id}: " + "; ".join(lines)
                       + f". Status: {status_url(settings, record.run_id)}")
            incidents.mark(key, "notified", send(settings, "warning", "SQLMesh audit warnings jumped", message))
        return
    current = incidents.current(key)
    if not current or record.status not in GOOD:
        return
    open_jumps = (current.get("data") or {}).get("jumps", [])
    still = []
    for jump in open_jumps:
        if not any(_same_model(jump["model"], b) for b in built):
            still.append(jump)  # not built in this run: no news about it
            continue
        now_count = max([int(w["count"] or 0) for w in warnings
                         if w["audit"] == jump["audit"] and _same_model(jump["model"], w["model"])], default=0)
        if now_count >= jump["threshold"]:
            still.append(jump)
    if not still:
        incidents.resolve(key)
        message = ("Recovered: the audit warnings that jumped ("
                   + ", ".join(f"{j['model']} '{j['audit']}'" for j in open_jumps)
                   + f") are back under their threshold in run {record.run_id}. Status: {status_url(settings)}")
        incidents.mark(key, "resolve_notified", send(settings, "success", "SQLMesh audit warnings recovered", message))


# --- the freshness assessment and the hook -----------------------------------------------------
def assess_freshness(settings: Settings, store, run_id: str | None, now: datetime | None = None) -> dict:
    """Gather the marts' freshness facts and store them (status_facts `freshness`)."""
    from sqlmesh import Context

    from meshctl import secrets
    from meshctl.project.gateways import close_context, emulation
    from meshctl.status import freshness

    now = now or _now()
    began = time.monotonic()
    document = {"assessed_at": now.isoformat(), "run_id": run_id, "environment": settings.environment,
                "marts": [], "error": None}
    try:
        project = settings.project_dir
        if settings.artifacts.bundle:
            from meshctl.artifacts.bundles import ensure_project

            project = Path(ensure_project(settings))
        with secrets.exported(settings), emulation(settings):
            context = Context(paths=[project], gateway=settings.gateway, load=False)
            try:
                gap = int((context.config.variables or {}).get("airbyte_max_sync_gap_hours", 7))
                facts = freshness.gather(context, settings.environment, now, sync_gap_hours=gap)
            finally:
                close_context(context)
        document["marts"] = [f.as_json() for f in facts]
    except Exception as exc:
        log.warning("freshness could not be assessed: %s", exc)
        previous, _ = store.fact("freshness")
        document["marts"] = (previous or {}).get("marts", [])
        document["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        document["assessed_at"] = (previous or {}).get("assessed_at") or document["assessed_at"]
        document["attempted_at"] = now.isoformat()
    document["seconds"] = round(time.monotonic() - began, 2)
    store.put_fact("freshness", document)
    return document


def verdicts(settings: Settings, document: dict | None, now: datetime, run_in_flight: bool = False) -> list[tuple[str, object]]:
    from meshctl.status import freshness

    out = []
    for data in (document or {}).get("marts", []):
        facts = freshness.MartFacts.from_json(data)
        out.append((facts.short_name, freshness.judge(facts, now, settings.scheduler.cron, run_in_flight)))
    return out


def after_run(settings: Settings, record, log_path: Path | None = None,
              clock: Callable[[], datetime] = _now) -> None:
    """The scheduler's hook after a run (see the module docstring), on the scheduler's clock.
    Never raises."""
    if record.status == "skipped":
        return  # another process ran (or runs) this tick and evaluates it
    from meshctl.status.store import Store

    try:
        store = Store(settings.state_db)
        store.ensure()
        incidents = Incidents(settings, store, clock)
        from meshctl.service import run_details

        _, warnings = run_details.record(settings, store, record.run_id, log_path)
        try:
            evaluate_run(settings, incidents, record)
        except Exception:
            log.exception("run alert evaluation failed")
        if warnings:
            try:
                history = [row for row in store.recent_details(settings.alerts.audit_baseline_runs * 5 + 1)
                           if row["run_id"] != record.run_id]
                evaluate_audits(settings, incidents, record, warnings, history)
            except Exception:
                log.exception("audit alert evaluation failed")
        elif record.status in GOOD:
            evaluate_audits(settings, incidents, record, [], [])
        if settings.alerts.freshness_check:
            document = assess_freshness(settings, store, record.run_id, clock())
            if not document.get("error"):
                now = clock()
                evaluate_freshness(settings, incidents, verdicts(settings, document, now), record.environment, now)
    except Exception:
        log.exception("after-run status and alerts failed for run %s", record.run_id)
