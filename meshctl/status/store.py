"""The status page's tables in the state database, next to run history (schema `meshctl`).

  run_details   per run: what each model did (when the scheduler's console records it, see
                run_details.py), audit warnings, and the run's log (masked, bounded, kept
                MESHCTL_RUN_LOG_KEEP_DAYS), so the UI can show it wherever the scheduler ran
  status_facts  small JSON documents by key; `freshness` is the latest assessment of the marts
  alerts        one row per incident (alerts.py): open until it recovers, never notified twice

Reads never create anything (the status page works, empty, before the first scheduled run).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime

from psycopg2 import errors, sql

from meshctl.service.state_db import state_db_cursor
from meshctl.settings import StateDbSettings

# Serializes this module's DDL between processes (run_history uses ...002; the lock ...001).
_DDL_LOCK_KEY = 7_311_203_145_002_012


class Store:
    def __init__(self, db: StateDbSettings):
        self.db = db
        self.schema = db.run_history_schema

    def table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    @contextlib.contextmanager
    def cursor(self, autocommit: bool = True) -> Iterator:
        with state_db_cursor(self.db, application_name="meshctl-status", autocommit=autocommit) as cur:
            yield cur

    def ensure(self) -> None:
        with self.cursor(autocommit=False) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            cur.execute(sql.SQL(
                """CREATE TABLE IF NOT EXISTS {} (
                       run_id        TEXT PRIMARY KEY,
                       recorded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
                       models        JSONB NOT NULL DEFAULT '[]',
                       warnings      JSONB NOT NULL DEFAULT '[]',
                       log           TEXT,
                       log_bytes     INTEGER,
                       log_truncated BOOLEAN NOT NULL DEFAULT false
                   )"""
            ).format(self.table("run_details")))
            cur.execute(sql.SQL(
                """CREATE TABLE IF NOT EXISTS {} (
                       key        TEXT PRIMARY KEY,
                       value      JSONB NOT NULL,
                       updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
                   )"""
            ).format(self.table("status_facts")))
            cur.execute(sql.SQL(
                """CREATE TABLE IF NOT EXISTS {} (
                       id               BIGSERIAL PRIMARY KEY,
                       key              TEXT NOT NULL,
                       kind             TEXT NOT NULL,
                       title            TEXT NOT NULL,
                       detail           TEXT NOT NULL DEFAULT '',
                       data             JSONB NOT NULL DEFAULT '{{}}',
                       opened_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
                       last_seen_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
                       resolved_at      TIMESTAMPTZ,
                       notified         INTEGER NOT NULL DEFAULT 0,
                       resolve_notified INTEGER NOT NULL DEFAULT 0
                   )"""
            ).format(self.table("alerts")))
            # At most one open incident per key: the insert that wins is the one that notifies.
            cur.execute(sql.SQL(
                "CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open ON {} (key) WHERE resolved_at IS NULL"
            ).format(self.table("alerts")))

    # --- reads that tolerate a database where nothing was created yet ------------------------
    def _read(self, query: sql.Composable, params=()) -> list[dict]:
        try:
            with self.cursor() as cur:
                cur.execute(query, params)
                names = [d.name for d in cur.description]
                return [dict(zip(names, row)) for row in cur.fetchall()]
        except (errors.UndefinedTable, errors.InvalidSchemaName):
            return []

    def runs(self, limit: int, run_id: str | None = None, since: datetime | None = None) -> list[dict]:
        where, params = [], []
        if run_id:
            where.append(sql.SQL("run_id = %s"))
            params.append(run_id)
        if since:
            where.append(sql.SQL("started_at >= %s"))
            params.append(since)
        clause = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
        return self._read(
            sql.SQL(
                "SELECT run_id, trigger, scheduled_for, environment, gateway, host, pid, started_at, ended_at, "
                "status, attempts, models, intervals, waiting, error, error_class FROM {}{} "
                "ORDER BY started_at DESC LIMIT %s"
            ).format(self.table("run_history"), clause),
            (*params, limit),
        )

    def details(self, run_id: str) -> dict | None:
        rows = self._read(sql.SQL("SELECT * FROM {} WHERE run_id = %s").format(self.table("run_details")), (run_id,))
        return rows[0] if rows else None

    def details_for(self, run_ids: list[str]) -> dict[str, dict]:
        if not run_ids:
            return {}
        rows = self._read(
            sql.SQL("SELECT run_id, models, warnings FROM {} WHERE run_id = ANY(%s)").format(self.table("run_details")),
            (run_ids,),
        )
        return {row["run_id"]: row for row in rows}

    def recent_details(self, limit: int) -> list[dict]:
        """The newest runs' recorded warnings and models, newest first (audit baselines)."""
        return self._read(
            sql.SQL(
                "SELECT h.run_id, h.started_at, h.models, d.warnings FROM {} h JOIN {} d USING (run_id) "
                "ORDER BY h.started_at DESC LIMIT %s"
            ).format(self.table("run_history"), self.table("run_details")),
            (limit,),
        )

    def fact(self, key: str) -> tuple[dict | None, datetime | None]:
        rows = self._read(sql.SQL("SELECT value, updated_at FROM {} WHERE key = %s").format(self.table("status_facts")), (key,))
        return (rows[0]["value"], rows[0]["updated_at"]) if rows else (None, None)

    def alerts(self, limit: int = 50) -> list[dict]:
        return self._read(
            sql.SQL("SELECT * FROM {} ORDER BY (resolved_at IS NULL) DESC, opened_at DESC LIMIT %s").format(self.table("alerts")),
            (limit,),
        )

    # --- writes (the scheduler's, after a run) -------------------------------------------------
    def put_fact(self, key: str, value: dict) -> None:
        with self.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (key, value, updated_at) VALUES (%s, %s, now()) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
                ).format(self.table("status_facts")),
                (key, json.dumps(value, default=str)),
            )

    def put_details(self, run_id: str, models: list[dict], warnings: list[dict], log: str | None,
                    log_bytes: int | None, truncated: bool) -> None:
        with self.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (run_id, models, warnings, log, log_bytes, log_truncated) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO UPDATE SET "
                    "models = EXCLUDED.models, warnings = EXCLUDED.warnings, log = EXCLUDED.log, "
                    "log_bytes = EXCLUDED.log_bytes, log_truncated = EXCLUDED.log_truncated, recorded_at = now()"
                ).format(self.table("run_details")),
                (run_id, json.dumps(models), json.dumps(warnings), log, log_bytes, truncated),
            )

    def prune_logs(self, keep_days: float) -> int:
        if keep_days <= 0:
            return 0
        with self.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "UPDATE {} SET log = NULL WHERE log IS NOT NULL AND recorded_at < now() - make_interval(secs => %s)"
                ).format(self.table("run_details")),
                (keep_days * 86400,),
            )
            return cur.rowcount
