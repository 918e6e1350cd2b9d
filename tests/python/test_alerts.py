"""Alerts against a real webhook receiver on loopback and incident state in PostgreSQL: a failure
streak, marts behind their freshness target and a jump in audit warnings each notify once, stay
quiet while they last, and send one recovery message, with a link to the status page."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import SecretStr
from service_helpers import webhook_receiver

from meshctl.service import alerts
from meshctl.service.run_history import RunHistory, RunRecord
from meshctl.settings import Settings
from meshctl.status.freshness import Verdict
from meshctl.status.store import Store

UTC = timezone.utc
BASE_URL = "http://status.example:8000"


@pytest.fixture
def webhook():
    with webhook_receiver("/services/T0/B0/X") as hook:
        yield hook


@pytest.fixture
def settings(pg_server, pg_database, webhook, tmp_path):
    url, _ = webhook
    base = Settings(MESHCTL_PROJECT_DIR=str(tmp_path)).updated(
        state_db={"host": pg_server.host, "port": pg_server.port, "user": pg_server.user,
                  "password": SecretStr(pg_server.password) if pg_server.password else None,
                  "name": pg_database, "sslmode": "disable"},
        notify={"slack_webhook_url": SecretStr(url), "smtp_host": None}, status={"base_url": BASE_URL},
        alerts={"behind_after_seconds": 1800},
    )
    RunHistory(base.state_db).ensure()
    Store(base.state_db).ensure()
    return base


def run(settings: Settings, status: str, error: str | None = None, models: list[str] | None = None) -> RunRecord:
    now = datetime.now(UTC)
    record = RunRecord(run_id=uuid.uuid4().hex, trigger="cron", environment="prod", gateway="local",
                       host=socket.gethostname(), pid=1, started_at=now, ended_at=now + timedelta(seconds=3),
                       status=status, attempts=3 if error else 1, models=models or [],
                       error=error, error_class="transient" if error else None)
    RunHistory(settings.state_db).write(record)
    return record


def texts(received: list) -> list[str]:
    return [json.dumps(payload) for payload in received]


def test_a_failure_streak_notifies_once_and_recovers_once(settings, webhook):
    _, received = webhook
    store = Store(settings.state_db)
    incidents = alerts.Incidents(settings, store)
    first = run(settings, "failed", "could not connect to server: Connection refused\nmore lines")
    alerts.evaluate_run(settings, incidents, first)
    for _ in range(3):  # the next ticks fail too: counted, not sent
        alerts.evaluate_run(settings, incidents, run(settings, "timeout", "run exceeded its time limit of 60s"))
    assert len(received) == 1, texts(received)
    text = texts(received)[0]
    assert "SQLMesh run failed" in text and first.run_id in text and "Connection refused" in text
    assert f"{BASE_URL}/status/runs/{first.run_id}" in text
    open_row = incidents.current("run_failed:prod")
    assert open_row["data"]["failures"] == 4 and open_row["notified"] == 1

    alerts.evaluate_run(settings, incidents, run(settings, "skipped"))  # says nothing either way
    ok = run(settings, "nothing_to_do")
    alerts.evaluate_run(settings, incidents, ok)
    alerts.evaluate_run(settings, incidents, run(settings, "success"))
    assert len(received) == 2, texts(received)
    recovery = texts(received)[1]
    assert "Recovered" in recovery and "after 4 failed run(s)" in recovery and f"{BASE_URL}/status" in recovery
    assert incidents.current("run_failed:prod") is None
    # A new failure later is a new incident: notified again.
    alerts.evaluate_run(settings, incidents, run(settings, "failed", "boom"))
    assert len(received) == 3
    rows = store.alerts()
    assert [(r["kind"], r["resolved_at"] is None) for r in rows] == [("run_failed", True), ("run_failed", False)]


def test_marts_behind_longer_than_the_threshold_notify_once_then_recover(settings, webhook):
    _, received = webhook
    incidents = alerts.Incidents(settings, Store(settings.state_db))
    now = datetime.now(UTC)
    fresh = Verdict("fresh", "built through now")
    recent = Verdict("behind", "EVENTS rows landed ... are not in the mart", behind_since=now - timedelta(minutes=10))
    old = Verdict("behind", "EVENTS rows landed at 08:03 are not in the mart", behind_since=now - timedelta(hours=2))
    alerts.evaluate_freshness(settings, incidents, [("FCT_EVENTS", recent), ("DIM_USERS", fresh)], "prod", now)
    assert received == []  # behind for 10 minutes: under the 30-minute threshold
    alerts.evaluate_freshness(settings, incidents, [("FCT_EVENTS", old), ("DIM_USERS", fresh)], "prod", now)
    alerts.evaluate_freshness(settings, incidents, [("FCT_EVENTS", old), ("METRICS_DAILY", old)], "prod", now)
    assert len(received) == 1, texts(received)
    assert "FCT_EVENTS" in texts(received)[0] and f"{BASE_URL}/status" in texts(received)[0]
    assert incidents.current("freshness_behind:prod")["data"]["marts"] == ["FCT_EVENTS", "METRICS_DAILY"]
    # An assessment that could not judge a mart neither closes nor reopens anything.
    alerts.evaluate_freshness(settings, incidents, [("FCT_EVENTS", Verdict("unknown", "x"))], "prod", now)
    assert len(received) == 1 and incidents.current("freshness_behind:prod") is not None
    # Pending is within the contract: recovered.
    alerts.evaluate_freshness(settings, incidents, [("FCT_EVENTS", fresh), ("METRICS_DAILY", Verdict("pending", "waiting"))], "prod", now)
    assert len(received) == 2 and "every mart meets its freshness target again" in texts(received)[1]
    assert "FCT_EVENTS, METRICS_DAILY" in texts(received)[1]


def test_an_audit_warning_count_that_jumps_notifies_once_and_recovers(settings, webhook):
    _, received = webhook
    store = Store(settings.state_db)
    incidents = alerts.Incidents(settings, store)
    model = "GOODWORD_WH.MARTS.FCT_EVENTS"

    def audited(count: int, other: int = 3, new: int | None = None) -> RunRecord:
        record = run(settings, "success", models=[model, "GOODWORD_WH.MARTS.DIM_USERS"])
        warnings = [{"model": "MARTS.DIM_USERS", "audit": "not_null", "count": other},
                    {"model": "MARTS.FCT_EVENTS", "audit": "accepted_values", "count": count}]
        if new is not None:
            warnings.append({"model": "MARTS.FCT_EVENTS", "audit": "unique_values", "count": new})
        store.put_details(record.run_id, [], warnings, None, None, False)
        history = [r for r in store.recent_details(50) if r["run_id"] != record.run_id]
        alerts.evaluate_audits(settings, incidents, record, warnings, history)
        return record

    for count in (4, 6, 5):  # the planted bad rows: a steady few
        audited(count)
    assert received == []
    jump = audited(40)  # 40 >= max(2 x 5, 5 + 10), 5 the median
    assert len(received) == 1, texts(received)
    assert "accepted_values" in texts(received)[0] and "40 rows" in texts(received)[0] and jump.run_id in texts(received)[0]
    audited(45)  # still high: the same incident
    audited(44, other=4)
    assert len(received) == 1
    audited(5)  # back to the usual few
    assert len(received) == 2 and "Recovered" in texts(received)[1]
    assert incidents.current("audit_jump:prod") is None
    # The jump left the median where it was: a second jump is noticed as the first was.
    audited(6)
    audited(41)
    assert len(received) == 3 and "41 rows" in texts(received)[2]
    audited(5)
    assert len(received) == 4
    # A warning that appears from nothing counts from 0: 12 rows >= 0 + 10; 9 rows would not.
    audited(5, new=9)
    assert len(received) == 4
    audited(5, new=12)
    assert len(received) == 5 and "unique_values" in texts(received)[4]


def test_after_run_records_the_run_and_never_raises(settings, webhook, tmp_path):
    _, received = webhook
    log = tmp_path / "run.log"
    log.write_text("line one\nMESHCTL_DETAIL {\"event\": \"audit_warning\", \"model\": \"M.X\", \"audit\": \"a\", \"count\": 2}\nline two\n")
    record = run(settings, "failed", "SQL compilation error: boom")
    # The freshness assessment finds no project here: logged and stored as an error, not raised.
    alerts.after_run(settings.updated(gateway="nope"), record, log)
    details = Store(settings.state_db).details(record.run_id)
    assert details["log"] == "line one\nline two" and details["warnings"] == [{"model": "M.X", "audit": "a", "count": 2}]
    assert len(received) == 1
    document, _ = Store(settings.state_db).fact("freshness")
    assert document["error"] and document["run_id"] == record.run_id
    alerts.after_run(settings, run(settings, "skipped"), None)  # a skipped tick records nothing
    assert len(received) == 1
