"""Run history: one row per scheduled or manual run, in the state database (`meshctl` schema).

Statuses: running, success, nothing_to_do, failed, timeout, interrupted (SIGTERM grace ran
out), skipped (lock held elsewhere, or this cron tick already ran), abandoned (a `running` row
whose scheduler died; found by the next lock holder).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime

from psycopg2 import sql

from meshctl.service.state_db import state_db_cursor
from meshctl.settings import StateDbSettings

# Key for serializing the DDL below (CREATE ... IF NOT EXISTS races between two processes).
_DDL_LOCK_KEY = 7_311_203_145_002_002

FINISHED = ("success", "nothing_to_do", "failed", "timeout", "interrupted")


@dataclass
class RunRecord:
    run_id: str
    trigger: str  # cron | manual
    environment: str
    gateway: str
    host: str
    pid: int
    started_at: datetime
    status: str = "running"
    scheduled_for: datetime | None = None
    ended_at: datetime | None = None
    attempts: int = 0
    models: list[str] = field(default_factory=list)
    intervals: list[dict] = field(default_factory=list)
    waiting: list[dict] = field(default_factory=list)  # intervals a readiness signal held back
    error: str | None = None
    error_class: str | None = None  # transient | permanent | timeout

    def as_json(self) -> dict:
        out = asdict(self)
        for key in ("started_at", "ended_at", "scheduled_for"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


class RunHistory:
    def __init__(self, db: StateDbSettings):
        self.db = db
        self.schema = db.run_history_schema
        self._table = sql.SQL("{}.run_history").format(sql.Identifier(self.schema))

    @contextlib.contextmanager
    def _cursor(self, autocommit: bool = True) -> Iterator:
        with state_db_cursor(self.db, application_name="meshctl-run-history", autocommit=autocommit) as cur:
            yield cur

    def ensure(self) -> None:
        with self._cursor(autocommit=False) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            cur.execute(
                sql.SQL(
                    """
                    CREATE TABLE IF NOT EXISTS {} (
                        run_id        TEXT PRIMARY KEY,
                        trigger       TEXT NOT NULL,
                        scheduled_for TIMESTAMPTZ,
                        environment   TEXT NOT NULL,
                        gateway       TEXT NOT NULL,
                        host          TEXT NOT NULL,
                        pid           INTEGER NOT NULL,
                        started_at    TIMESTAMPTZ NOT NULL,
                        ended_at      TIMESTAMPTZ,
                        status        TEXT NOT NULL,
                        attempts      INTEGER NOT NULL DEFAULT 0,
                        models        JSONB NOT NULL DEFAULT '[]',
                        intervals     JSONB NOT NULL DEFAULT '[]',
                        waiting       JSONB NOT NULL DEFAULT '[]',
                        error         TEXT,
                        error_class   TEXT
                    )
                    """
                ).format(self._table)
            )
            cur.execute(
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS run_history_started_at ON {} (started_at DESC)"
                ).format(self._table)
            )

    def write(self, record: RunRecord) -> None:
        """Insert or update the row for `record.run_id`."""
        values = record.as_json()
        for key in ("models", "intervals", "waiting"):
            values[key] = json.dumps(values[key])
        columns = list(values)
        with self._cursor() as cur:
            cur.execute(
                sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (run_id) DO UPDATE SET {}").format(
                    self._table,
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.SQL(", ").join(sql.Placeholder(c) for c in columns),
                    sql.SQL(", ").join(
                        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                        for c in columns
                        if c != "run_id"
                    ),
                ),
                values,
            )

    def mark_abandoned(self, exclude_run_id: str | None = None) -> int:
        """Called by the lock holder: any other `running` row belongs to a dead run."""
        with self._cursor() as cur:
            cur.execute(
                sql.SQL(
                    "UPDATE {} SET status = 'abandoned', ended_at = now(), "
                    "error = coalesce(error, 'the process running it died (killed, host lost)') "
                    "WHERE status = 'running' AND run_id IS DISTINCT FROM %s"
                ).format(self._table),
                (exclude_run_id,),
            )
            return cur.rowcount

    def tick_done(self, scheduled_for: datetime) -> bool:
        """Has a run for this cron tick already finished (on any host)?"""
        with self._cursor() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT 1 FROM {} WHERE trigger = 'cron' AND scheduled_for = %s "
                    "AND status = ANY(%s) LIMIT 1"
                ).format(self._table),
                (scheduled_for, list(FINISHED)),
            )
            return cur.fetchone() is not None

    def recent(self, limit: int = 20) -> list[dict]:
        with self._cursor() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT run_id, trigger, scheduled_for, started_at, ended_at, status, attempts, "
                    "models, intervals, waiting, error, error_class, host, pid "
                    "FROM {} ORDER BY started_at DESC LIMIT %s"
                ).format(self._table),
                (limit,),
            )
            names = [d.name for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
