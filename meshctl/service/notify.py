"""Failure notifications through SQLMesh's own notification targets (Slack webhook, SMTP).

The targets are built from settings and called by the scheduler once per failed *run*, after
retries, rather than configured in config.yaml: SQLMesh's in-run notifications would fire on
every attempt (including ones that are then retried) and cannot fire at all when the run is
killed at its time limit. A notification that cannot be sent is logged, never raised.
"""

from __future__ import annotations

import logging

from sqlmesh.core.notification_target import (
    BaseNotificationTarget,
    BasicSMTPNotificationTarget,
    NotificationEvent,
    SlackWebhookNotificationTarget,
)

from meshctl.settings import NotifySettings

log = logging.getLogger("meshctl.service.notify")


def targets(notify: NotifySettings) -> list[BaseNotificationTarget]:
    found: list[BaseNotificationTarget] = []
    events = frozenset({NotificationEvent.RUN_FAILURE})
    if notify.slack_webhook_url:
        found.append(
            SlackWebhookNotificationTarget(
                url=notify.slack_webhook_url.get_secret_value(), notify_on=events
            )
        )
    if notify.smtp_host:
        found.append(
            BasicSMTPNotificationTarget(
                host=notify.smtp_host,
                port=notify.smtp_port,
                user=notify.smtp_user,
                password=notify.smtp_password,
                sender=notify.smtp_sender,
                recipients=frozenset(
                    r.strip() for r in (notify.smtp_recipients or "").split(",") if r.strip()
                ),
                subject="SQLMesh scheduled run failed",
                notify_on=events,
            )
        )
    return [t for t in found if t.is_configured]


def run_failed(notify: NotifySettings, summary: str, detail: str) -> int:
    """Send a run-failure notification to every configured target; return how many got it."""
    sent = 0
    for target in targets(notify):
        try:
            target.notify_run_failure(exc=f"{summary}\n\n{detail}")
            sent += 1
        except Exception as exc:  # a broken webhook must not break the scheduler
            log.error("notification via %s failed: %s", target.type_, exc)
    return sent
