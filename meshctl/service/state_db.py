"""The state database: connect to it, and wait (bounded) for it at service start.

Both long-running roles start before, or together with, the database (compose, a rebooted
host, an Aurora failover), so each first waits for it with exponential backoff and one log line
per attempt, then gives up with a clear error and a non-zero exit instead of crash-looping.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import psycopg2
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from meshctl.errors import ExpectedFailure
from meshctl.settings import StateDbSettings

log = logging.getLogger("meshctl.service.state_db")


class StateDatabaseUnavailable(ExpectedFailure):
    """The state database did not answer within the configured wait."""


class StateDatabaseRefused(StateDatabaseUnavailable):
    """The state database answered and refused us: waiting will not help, a setting must change."""


# What PostgreSQL says when it answers but refuses, and the fix for each. Anything else
# (refused connection, timeout, DNS, a restart in progress) is "not answering" and is waited for.
_REFUSALS = [
    (r"password authentication failed|authentication failed",
     "the password of user {user} was refused: set STATE_DB_PASSWORD (or the password in the "
     "{secret} secret) to the right one"),
    (r'database "[^"]*" does not exist',
     "database {name} does not exist: create it (`createdb -h {host} -p {port} -U {user} {name}`) "
     "or set STATE_DB_NAME. The run lock and run history live there on every gateway, local too"),
    (r'role "[^"]*" does not exist',
     "user {user} does not exist: set STATE_DB_USER (or the username in the {secret} secret)"),
    (r"no pg_hba\.conf entry|pg_hba",
     "this host is not let in (pg_hba.conf, or the database's security group): allow it there"),
    (r"SSL (is )?(required|off)|server does not support SSL",
     "SSL mode {sslmode} was refused: set STATE_DB_SSLMODE to what the server requires"),
]


def refusal(db: StateDbSettings, exc: BaseException) -> str | None:
    """The one-line reason and fix when `exc` is the state database refusing us, else None."""
    import re

    text = str(exc)
    for pattern, fix in _REFUSALS:
        if re.search(pattern, text, re.IGNORECASE):
            return f"state database {state_db_target(db)}: " + fix.format(
                user=db.user, name=db.name, host=db.host,
                port=db.port, sslmode=db.sslmode,
                secret=db.secret_name,
            )
    return None


def state_db_target(db: StateDbSettings) -> str:
    """Where the state database is, for messages (never the password)."""
    return (
        f"{db.user}@{db.host}:{db.port}"
        f"/{db.name}"
    )


def connect_state_db(db: StateDbSettings, *, application_name: str = "meshctl", connect_timeout: int = 10):
    """A new psycopg2 connection to the state database (the STATE_DB_* settings)."""
    password = db.password.get_secret_value() if db.password else None
    return psycopg2.connect(
        host=db.host,
        port=db.port,
        dbname=db.name,
        user=db.user,
        password=password,
        sslmode=db.sslmode,
        connect_timeout=connect_timeout,
        application_name=application_name,
        # Notice a dead server within about a minute instead of the kernel's two hours.
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )


@contextlib.contextmanager
def state_db_cursor(db: StateDbSettings, *, application_name: str, autocommit: bool = True) -> Iterator:
    """A cursor on a short-lived connection (run history, the status page's tables): their
    writes are rare, and a long-lived connection would sit open through every run. Without
    autocommit the work commits when the block ends cleanly."""
    conn = connect_state_db(db, application_name=application_name)
    try:
        conn.autocommit = autocommit
        with conn.cursor() as cur:
            yield cur
        if not autocommit:
            conn.commit()
    finally:
        conn.close()


def wait_for_state_db(db: StateDbSettings, *, max_wait: float | None = None, sleep=time.sleep) -> int:
    """Block until `SELECT 1` succeeds on the state database; return the number of attempts.

    Waits at most `max_wait` seconds (default: db.wait_seconds), doubling the
    pause between attempts from 0.5 s up to 10 s, and never past the bound: each connect
    attempt's timeout and each pause are cut to what is left of it. Raises
    StateDatabaseRefused at once when the server answers and refuses (wrong password, no such
    database or user), and StateDatabaseUnavailable when the wait runs out.
    """
    max_wait = db.wait_seconds if max_wait is None else max_wait
    target = state_db_target(db)
    deadline = time.monotonic() + max_wait
    attempts = 0

    def probe() -> None:
        nonlocal attempts
        attempts += 1
        # libpq's smallest timeout is 2 s: that is how far past its bound the last try can end.
        left = deadline - time.monotonic()
        try:
            conn = connect_state_db(
                db, application_name="meshctl-wait", connect_timeout=max(2, min(10, int(left)))
            )
        except psycopg2.OperationalError as exc:
            reason = refusal(db, exc)
            if reason:
                raise StateDatabaseRefused(reason) from None
            log.warning(
                "state database %s not ready (attempt %d, %.1fs left of %.0fs): %s",
                target, attempts, max(0.0, deadline - time.monotonic()), max_wait, _first_line(exc),
            )
            raise
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        finally:
            conn.close()

    backoff = wait_exponential(multiplier=0.5, min=0.5, max=10)
    retrying = Retrying(
        stop=stop_after_delay(max_wait),
        wait=lambda state: max(0.0, min(backoff(state), deadline - time.monotonic())),
        retry=retry_if_exception_type(psycopg2.OperationalError),
        sleep=sleep,
        reraise=False,
    )
    try:
        retrying(probe)
    except RetryError as exc:
        raise StateDatabaseUnavailable(
            f"state database {target} did not answer within {max_wait:.0f}s ({attempts} attempts); "
            f"last error: {_first_line(exc.last_attempt.exception())}. Is it running, and are "
            "STATE_DB_HOST/STATE_DB_PORT right? (MESHCTL_STATE_DB_WAIT_SECONDS sets the wait)"
        ) from None
    log.info("state database %s is up (attempt %d)", target, attempts)
    return attempts


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__
