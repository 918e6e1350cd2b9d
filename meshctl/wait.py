"""The state database: connect to it, and wait (bounded) for it at service start.

Both long-running roles start before, or together with, the database (compose, a rebooted
host, an Aurora failover), so each first waits for it with exponential backoff and one log line
per attempt, then gives up with a clear error and a non-zero exit instead of crash-looping.
"""

from __future__ import annotations

import logging
import time

import psycopg2
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from meshctl.settings import Settings

log = logging.getLogger("meshctl.wait")


class StateDatabaseUnavailable(RuntimeError):
    """The state database did not answer within the configured wait."""


def state_db_target(settings: Settings) -> str:
    """Where the state database is, for messages (never the password)."""
    return (
        f"{settings.state_db_user}@{settings.state_db_host}:{settings.state_db_port}"
        f"/{settings.state_db_name}"
    )


def connect_state_db(settings: Settings, *, application_name: str = "meshctl", connect_timeout: int = 10):
    """A new psycopg2 connection to the state database (the STATE_DB_* settings)."""
    password = settings.state_db_password.get_secret_value() if settings.state_db_password else None
    return psycopg2.connect(
        host=settings.state_db_host,
        port=settings.state_db_port,
        dbname=settings.state_db_name,
        user=settings.state_db_user,
        password=password,
        sslmode=settings.state_db_sslmode,
        connect_timeout=connect_timeout,
        application_name=application_name,
        # Notice a dead server within about a minute instead of the kernel's two hours.
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )


def wait_for_state_db(settings: Settings, *, max_wait: float | None = None, sleep=time.sleep) -> int:
    """Block until `SELECT 1` succeeds on the state database; return the number of attempts.

    Waits at most `max_wait` seconds (default: settings.state_db_wait_seconds), doubling the
    pause between attempts from 0.5 s up to 10 s. Raises StateDatabaseUnavailable after that.
    """
    max_wait = settings.state_db_wait_seconds if max_wait is None else max_wait
    target = state_db_target(settings)
    started = time.monotonic()
    attempts = 0

    def probe() -> None:
        nonlocal attempts
        attempts += 1
        remaining = max(1, int(max_wait - (time.monotonic() - started)))
        try:
            conn = connect_state_db(
                settings, application_name="meshctl-wait", connect_timeout=min(10, remaining)
            )
        except psycopg2.OperationalError as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.warning(
                "state database %s not ready (attempt %d, %.1fs elapsed of %.0fs): %s",
                target, attempts, time.monotonic() - started, max_wait, reason,
            )
            raise
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        finally:
            conn.close()

    retrying = Retrying(
        stop=stop_after_delay(max_wait),
        wait=wait_exponential(multiplier=0.5, min=0.5, max=10),
        retry=retry_if_exception_type(psycopg2.OperationalError),
        sleep=sleep,
        reraise=False,
    )
    try:
        retrying(probe)
    except RetryError as exc:
        last = exc.last_attempt.exception()
        reason = (str(last).strip().splitlines() or [type(last).__name__])[0]
        raise StateDatabaseUnavailable(
            f"state database {target} did not answer within {max_wait:.0f}s "
            f"({attempts} attempts); last error: {reason}"
        ) from None
    log.info("state database %s is up (attempt %d)", target, attempts)
    return attempts
