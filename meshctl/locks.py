"""One run at a time, across every container, host and engineer: a PostgreSQL advisory lock.

The lock lives on its own connection to the state database and is held for the whole run
(retries included). PostgreSQL releases a session lock when the session ends, so a scheduler
that is killed -- or a host that dies -- never leaves a lock behind.
"""

from __future__ import annotations

import logging

from meshctl.settings import Settings
from meshctl.wait import connect_state_db

log = logging.getLogger("meshctl.locks")


class RunLock:
    """`pg_try_advisory_lock(key)` on a dedicated connection. Use as a context manager after a
    successful `try_acquire()`, or call `release()`."""

    def __init__(self, settings: Settings, key: int | None = None):
        self.settings = settings
        self.key = settings.run_lock_key if key is None else key
        self._conn = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def try_acquire(self) -> bool:
        conn = connect_state_db(self.settings, application_name="meshctl-run-lock")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
            got = bool(cur.fetchone()[0])
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def holder(self) -> str | None:
        """Who holds the lock (application, client address, pid on the server), for log lines."""
        conn = connect_state_db(self.settings, application_name="meshctl-run-lock-probe")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    """
                    SELECT a.application_name, a.client_addr::text, a.pid
                    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                    WHERE l.locktype = 'advisory' AND l.granted
                      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                      AND ((l.classid::bigint << 32) | l.objid::bigint) = %s
                    """,
                    (self.key,),
                )
                row = cur.fetchone()
        finally:
            conn.close()
        return None if row is None else f"{row[0]} from {row[1] or 'local socket'} (backend {row[2]})"

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except Exception as exc:  # the session ending below releases it anyway
            log.warning("advisory unlock failed (%s); closing the session releases the lock", exc)
        finally:
            conn.close()

    def __enter__(self) -> RunLock:
        if not self.held and not self.try_acquire():
            raise RuntimeError("run lock is held elsewhere")
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def current_holder(settings: Settings) -> str | None:
    """Who holds the run lock right now (for the status page), or None when nobody does.

    A stub on top of RunLock.holder(); the lease-table rework reimplements it with this name and
    signature."""
    return RunLock(settings).holder()
