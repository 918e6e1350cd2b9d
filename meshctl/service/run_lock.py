"""One writer at a time, across every container, host and engineer: a leased, fenced lock.

Why a lease and not a PostgreSQL session lock. A session (advisory) lock dies with its
connection: when the state database resets connections mid-run, the lock is free while the run
goes on, and a second writer takes it and writes the same intervals. A lease survives a reset:
it is a row in the state database (`<schema>.run_lock`) that names its holder and a *fencing
token* (incremented on every grant) and is valid until `lease_until`. Its holder renews it every
quarter lease on a connection it re-opens as needed; nobody else can take it before it expires.

Fencing: a holder that cannot renew stops writing before the lease can expire. It counts the
lease from its own clock, from *before* the renewal was sent (so its deadline is always earlier
than the database's), less a margin; when that deadline passes, `on_lost` runs: the scheduler
SIGKILLs the run's process group, an in-process writer ends its process. Writers also check the
token and the lease with the database before every model evaluation and every table or view
change (`fence_evaluator`), so a writer that lost the lock never starts another write.

Every grant is recorded in `<schema>.run_lock_grants` (token, holder, acquired, released or
expired, last write check): the writers' windows, as the lock itself saw them.

A holder that dies without releasing blocks others for at most one lease.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from meshctl.errors import ExpectedFailure
from meshctl.service.state_db import connect_state_db
from meshctl.settings import RunLockSettings, StateDbSettings

log = logging.getLogger("meshctl.service.run_lock")

# Serializes the DDL below (CREATE ... IF NOT EXISTS races between two processes).
_DDL_LOCK_KEY = 7_311_203_145_002_003


class LockHeld(ExpectedFailure):
    """The lock stayed held by someone else for the whole wait."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class LockLost(RuntimeError):
    """This writer's lease is gone (expired, or could not be confirmed): it must not write."""


def describe_self(what: str) -> str:
    """The holder text a grant records: what is writing, from where."""
    return f"{what} on {socket.gethostname()} pid {os.getpid()}"


def _tables(db: StateDbSettings) -> tuple[sql.Composable, sql.Composable]:
    schema = sql.Identifier(db.run_history_schema)
    return sql.SQL("{}.run_lock").format(schema), sql.SQL("{}.run_lock_grants").format(schema)


_ensured: set[tuple] = set()


def ensure_tables(db: StateDbSettings) -> None:
    """Create the lock's tables once per process and database."""
    where = (db.host, db.port, db.name, db.run_history_schema)
    if where in _ensured:
        return
    lock, grants = _tables(db)
    conn = connect_state_db(db, application_name="meshctl-run-lock")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(db.run_history_schema)))
            cur.execute(sql.SQL(
                """CREATE TABLE IF NOT EXISTS {} (
                       key         BIGINT PRIMARY KEY,
                       token       BIGINT NOT NULL DEFAULT 0,
                       holder      TEXT,
                       acquired_at TIMESTAMPTZ,
                       lease_until TIMESTAMPTZ)"""
            ).format(lock))
            cur.execute(sql.SQL(
                """CREATE TABLE IF NOT EXISTS {} (
                       key         BIGINT NOT NULL,
                       token       BIGINT NOT NULL,
                       holder      TEXT NOT NULL,
                       acquired_at TIMESTAMPTZ NOT NULL,
                       verified_at TIMESTAMPTZ,
                       released_at TIMESTAMPTZ,
                       ended       TEXT,
                       PRIMARY KEY (key, token))"""
            ).format(grants))
    finally:
        conn.close()
    _ensured.add(where)


@dataclass(frozen=True)
class Holder:
    holder: str
    token: int
    acquired_at: object
    lease_until: object

    def __str__(self) -> str:
        return f"{self.holder} since {self.acquired_at:%Y-%m-%d %H:%M:%S}Z (token {self.token})"


def current_holder(db: StateDbSettings, lock_settings: RunLockSettings) -> Holder | None:
    """Who holds the lock now, or None."""
    ensure_tables(db)
    lock, _ = _tables(db)
    conn = connect_state_db(db, application_name="meshctl-run-lock-probe")
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT holder, token, acquired_at AT TIME ZONE 'UTC', lease_until FROM {} "
                        "WHERE key = %s AND lease_until > now()").format(lock),
                (lock_settings.key,),
            )
            row = cur.fetchone()
    finally:
        conn.close()
    return Holder(*row) if row else None


class RunLock:
    """The lease. `try_acquire()` / `acquire(wait)` / `release()`, or a context manager."""

    def __init__(self, db: StateDbSettings, lock: RunLockSettings, holder: str | None = None,
                 on_lost: Callable[[str], None] | None = None):
        self.db = db
        self.lock_settings = lock
        self.key = lock.key
        self.holder_text = holder or describe_self("meshctl")
        self.on_lost = on_lost
        self.lease = float(lock.lease_seconds)
        # Renew four times per lease; give up a quarter lease before it could expire.
        self.margin = self.lease / 4
        self.token: int | None = None
        self.lost: str | None = None
        self.blocked_by: Holder | None = None  # the holder the last failed try_acquire saw
        self._valid_until = 0.0  # monotonic
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._renew_conn = None

    @property
    def held(self) -> bool:
        return self.token is not None and self.lost is None

    # --- taking it -----------------------------------------------------------------------
    def try_acquire(self) -> bool:
        ensure_tables(self.db)
        lock, grants = _tables(self.db)
        sent = time.monotonic()
        conn = connect_state_db(self.db, application_name="meshctl-run-lock")
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql.SQL("INSERT INTO {} (key) VALUES (%s) ON CONFLICT DO NOTHING").format(lock), (self.key,))
                cur.execute(
                    sql.SQL("SELECT token, lease_until IS NOT NULL AND lease_until > now(), holder, "
                            "acquired_at AT TIME ZONE 'UTC', lease_until FROM {} WHERE key = %s FOR UPDATE").format(lock),
                    (self.key,),
                )
                previous, taken, holder, acquired_at, lease_until = cur.fetchone()
                if taken:
                    # Who has it, read in the same statement: a waiting writer says so for free.
                    self.blocked_by = Holder(holder, previous, acquired_at, lease_until)
                    return False
                cur.execute(
                    sql.SQL("UPDATE {} SET token = token + 1, holder = %s, acquired_at = now(), "
                            "lease_until = now() + make_interval(secs => %s) WHERE key = %s RETURNING token").format(lock),
                    (self.holder_text, self.lease, self.key),
                )
                token = cur.fetchone()[0]
                # The previous grant, if never released, ran out.
                cur.execute(
                    sql.SQL("UPDATE {} SET ended = 'expired' WHERE key = %s AND token = %s AND ended IS NULL").format(grants),
                    (self.key, previous),
                )
                cur.execute(
                    sql.SQL("INSERT INTO {} (key, token, holder, acquired_at) VALUES (%s, %s, %s, now())").format(grants),
                    (self.key, token, self.holder_text),
                )
        finally:
            conn.close()
        self.token, self.lost = token, None
        self._valid_until = sent + self.lease - self.margin
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._renew_loop, name="run-lock-renew", daemon=True),
            threading.Thread(target=self._watch_loop, name="run-lock-watch", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info("run lock taken (token %d, lease %.0fs): %s", token, self.lease, self.holder_text)
        return True

    def acquire(self, wait_seconds: float, say: Callable[[str], None] | None = None) -> None:
        """Take the lock, waiting up to `wait_seconds` and saying who holds it meanwhile."""
        say = say or log.info
        started = time.monotonic()
        next_word = started
        while not self.try_acquire():
            waited = time.monotonic() - started
            holder = self.blocked_by
            if waited >= wait_seconds:
                raise LockHeld(
                    f"the run lock is held by {holder or 'a writer that just released it'}; gave up after "
                    f"{wait_seconds:.0f}s (MESHCTL_RUN_LOCK_WAIT_SECONDS). Try again when it is done: "
                    "`meshctl runs` shows what is running."
                )
            if time.monotonic() >= next_word:
                say(f"waiting for the run lock, held by {holder or 'another writer'} "
                    f"({waited:.0f}s of {wait_seconds:.0f}s)")
                next_word = time.monotonic() + 15
            time.sleep(min(1.0, max(0.05, wait_seconds - waited)))

    # --- keeping it ----------------------------------------------------------------------
    def _renew_loop(self) -> None:
        lock, _ = _tables(self.db)
        statement = sql.SQL("UPDATE {} SET lease_until = now() + make_interval(secs => %s) "
                            "WHERE key = %s AND token = %s AND lease_until > now() RETURNING 1").format(lock)
        while not self._stop.wait(self.lease / 4) and self.lost is None:
            sent = time.monotonic()
            try:
                if self._renew_conn is None or self._renew_conn.closed:
                    left = max(1, int(self._valid_until - sent))
                    self._renew_conn = connect_state_db(
                        self.db, application_name="meshctl-run-lock-lease", connect_timeout=min(5, left)
                    )
                    self._renew_conn.autocommit = True
                with self._renew_conn.cursor() as cur:
                    cur.execute(statement, (self.lease, self.key, self.token))
                    renewed = cur.fetchone() is not None
            except psycopg2.Error as exc:
                # A reset or a blip: the lease still stands; retry on a new connection.
                log.warning("run lock lease not renewed (%s); retrying", str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
                with contextlib.suppress(Exception):
                    self._renew_conn.close()
                self._renew_conn = None
                continue
            if not renewed:
                self._lose("the lease expired before it could be renewed")
                return
            self._valid_until = sent + self.lease - self.margin

    def _watch_loop(self) -> None:
        # Separate from renewing: a renewal can hang on a dead connection; this cannot.
        while not self._stop.wait(0.25):
            if time.monotonic() >= self._valid_until:
                self._lose(f"the lease could not be renewed for {self.lease - self.margin:g}s (state database unreachable)")
                return

    def _lose(self, reason: str) -> None:
        if self.lost is not None or self._stop.is_set():
            return
        self.lost = reason
        log.error("run lock lost (token %s): %s -- stopping all writes", self.token, reason)
        if self.on_lost is not None:
            self.on_lost(reason)

    def verify(self) -> None:
        """Raise LockLost unless this holder's lease is still valid (local deadline and database)."""
        if self.token is None:
            raise LockLost("the run lock is not held")
        if self.lost or time.monotonic() >= self._valid_until:
            raise LockLost(f"the run lock was lost: {self.lost or 'lease deadline passed'}")
        verify_token(self.db, self.lock_settings, self.token)

    # --- giving it back ------------------------------------------------------------------
    def release(self) -> None:
        token, self.token = self.token, None
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        with contextlib.suppress(Exception):
            if self._renew_conn is not None:
                self._renew_conn.close()
        self._renew_conn = None
        if token is None:
            return
        lock, grants = _tables(self.db)
        try:
            conn = connect_state_db(self.db, application_name="meshctl-run-lock", connect_timeout=5)
            try:
                with conn, conn.cursor() as cur:
                    cur.execute(sql.SQL("UPDATE {} SET lease_until = NULL, holder = NULL WHERE key = %s AND token = %s")
                                .format(lock), (self.key, token))
                    cur.execute(sql.SQL("UPDATE {} SET released_at = now(), ended = coalesce(ended, 'released') "
                                        "WHERE key = %s AND token = %s").format(grants), (self.key, token))
            finally:
                conn.close()
        except psycopg2.Error as exc:
            log.warning("run lock release failed (%s); the lease expires within %.0fs", str(exc).strip()[:200], self.lease)

    def __enter__(self) -> RunLock:
        if not self.held and not self.try_acquire():
            raise LockHeld(f"the run lock is held by {current_holder(self.db, self.lock_settings) or 'another writer'}")
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# --- the fence: checked before every write ---------------------------------------------------
_verify_lock = threading.Lock()
_verify_conns: dict[tuple, object] = {}


def verify_token(db: StateDbSettings, lock_settings: RunLockSettings, token: int, *, retry_seconds: float = 5.0) -> None:
    """Raise LockLost unless `token` is the current grant and its lease has not expired, by the
    database's clock. Records the check on the grant (the writer's window, as the lock sees it).
    A connection blip is retried on a new connection for `retry_seconds`; after that the writer
    cannot prove it holds the lock, so it must not write."""
    lock, grants = _tables(db)
    statement = sql.SQL(
        "UPDATE {grants} g SET verified_at = now() FROM {lock} l WHERE l.key = %s AND l.token = %s "
        "AND l.lease_until > now() AND g.key = l.key AND g.token = l.token RETURNING 1"
    ).format(grants=grants, lock=lock)
    where = (db.host, db.port, db.name)
    deadline = time.monotonic() + retry_seconds
    with _verify_lock:
        while True:
            try:
                conn = _verify_conns.get(where)
                if conn is None or conn.closed:
                    conn = connect_state_db(db, application_name="meshctl-run-lock-fence", connect_timeout=3)
                    conn.autocommit = True
                    _verify_conns[where] = conn
                with conn.cursor() as cur:
                    cur.execute(statement, (lock_settings.key, token))
                    if cur.fetchone() is None:
                        raise LockLost(f"the run lock's token {token} is no longer current (lease expired or taken over)")
                return
            except psycopg2.Error as exc:
                with contextlib.suppress(Exception):
                    _verify_conns.pop(where).close()
                if time.monotonic() >= deadline:
                    raise LockLost(f"could not confirm the run lock with the state database: {str(exc).strip()[:200]}") from None
                time.sleep(0.5)


# The SnapshotEvaluator methods that change the warehouse: model evaluations, and creating,
# migrating, promoting, demoting and dropping tables and views during plans and janitor runs.
_WRITES = ("evaluate", "create", "migrate", "promote", "demote", "cleanup")
# SQLMesh writes through a copy of the context's evaluator, made by this method to tag every
# statement with the plan's or run's id (`/* SQLMESH_PLAN: ... */`): every plan apply, and every
# `sqlmesh run` since sqlmesh 0.236 (0.233 ran with the context's own evaluator).
_DERIVE = "set_correlation_id"


@contextlib.contextmanager
def fence_evaluator(evaluator, verify: Callable[[], None]) -> Iterator[None]:
    """Check `verify()` before each warehouse write of this SnapshotEvaluator and of every copy
    SQLMesh derives from it while the fence is up. SQLMesh has no hook that covers every write
    (its run's circuit breaker sees model evaluations only), so the write methods are wrapped on
    these instances, for the duration."""
    fenced_instances = []
    active = True

    def fenced(method):
        def wrapper(*args, **kwargs):
            if active:
                verify()
            return method(*args, **kwargs)

        return wrapper

    def derives_fenced(method):
        def wrapper(*args, **kwargs):
            derived = method(*args, **kwargs)
            if active:
                install(derived)
            return derived

        return wrapper

    def install(target) -> None:
        for name in _WRITES:
            setattr(target, name, fenced(getattr(target, name)))
        if hasattr(target, _DERIVE):
            setattr(target, _DERIVE, derives_fenced(getattr(target, _DERIVE)))
        fenced_instances.append(target)

    install(evaluator)
    try:
        yield
    finally:
        active = False
        for target in fenced_instances:
            for name in (*_WRITES, _DERIVE):
                with contextlib.suppress(AttributeError):
                    delattr(target, name)
