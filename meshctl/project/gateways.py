"""Opening a SQLMesh Context on a named gateway.

`local` and `snowflake` need nothing beyond config.yaml. `fakesnow` is SQLMesh's real Snowflake
adapter over an emulated Snowflake, which only works in-process: the connector is patched for
as long as the context is open.

Each patch below covers a gap that fakesnow 0.11.10 (with sqlmesh 0.236.4) still has, checked by
removing it: the fakesnow-gateway tests fail without any one of them (test_parity; for the views,
test_replay's fakesnow run). fakesnow 0.11.10 still does not implement ALTER SESSION SET
QUERY_TAG, which every model's @query_tag() pre-statement sends (macros/query_tag.py).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

from sqlmesh import Context

from meshctl import secrets
from meshctl.settings import Settings

EMULATED_GATEWAY = "fakesnow"

# fakesnow accepts any password. The emulated account has this one, and a wrong one is refused
# with the error Snowflake's login returns, so bad-credential handling is exercised for real.
EMULATED_PASSWORD = "fakesnow"

# Statements fakesnow does not implement and that change nothing an emulated run can observe.
# (QUERY_TAG is also recorded: see _recording_query_tags.)
_FAKESNOW_NOOPS = [r"\s*(?:/\*.*?\*/\s*)*ALTER\s+SESSION\s+SET\s+QUERY_TAG\b"]

# Every statement the emulated account runs, with the session's QUERY_TAG, as JSON lines in
# QUERY_HISTORY's column names (meshctl/status/cost.py reads it like Snowflake's ACCOUNT_USAGE view).
QUERY_HISTORY_FILE = "query_history.jsonl"
# ALTER SESSION SET QUERY_TAG = '...', maybe after SQLMesh's `/* SQLMESH_PLAN: <id> */`.
_QUERY_TAG_SET = re.compile(
    r"\s*(?:/\*.*?\*/\s*)*ALTER\s+SESSION\s+SET\s+QUERY_TAG\s*=\s*'((?:[^'\\]|\\.)*)'\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def _temporary_as_regular_table(create_table):
    """SQLMesh stages DataFrames (seeds, `load-raw`) in schema-qualified TEMPORARY tables; on
    fakesnow's DuckDB temporary tables live in their own catalog ("TEMPORARY table names can
    *only* use the "temp" catalog", still in fakesnow 0.11.10). A regular table behaves the same
    here, and SQLMesh drops it after the load."""

    def wrapper(self, table_name, *args, **kwargs):
        if kwargs.get("table_kind") == "TEMPORARY TABLE":
            kwargs["table_kind"] = "TABLE"
        return create_table(self, table_name, *args, **kwargs)

    return wrapper


def _honour_overwrite(write_pandas):
    """fakesnow's write_pandas appends even when asked to overwrite (still in 0.11.10). SQLMesh
    builds its staging query twice and relies on `overwrite=True`, so without this every seed row
    lands twice (the seed's unique_values audit fails the first plan)."""

    def wrapper(conn, df, table_name, database=None, schema=None, *args, **kwargs):
        if kwargs.get("overwrite"):
            name = ".".join(f'"{part}"' for part in (database, schema, table_name) if part)
            conn.cursor().execute(f"DELETE FROM {name}")
        return write_pandas(conn, df, table_name, database, schema, *args, **kwargs)

    return wrapper


def _views_listed(get_data_objects):
    """fakesnow's INFORMATION_SCHEMA.TABLES lists no views (Snowflake's lists them with TABLE_TYPE
    'VIEW'; still so in fakesnow 0.11.10), so SQLMesh would think a view model's physical view is
    missing and fail on the next run with "View ... already exists". Add the views from
    INFORMATION_SCHEMA.VIEWS, which fakesnow fills."""
    from sqlglot import exp
    from sqlmesh.core.dialect import to_schema
    from sqlmesh.core.engine_adapter.shared import DataObject, DataObjectType

    def wrapper(self, schema_name, object_names=None):
        found = get_data_objects(self, schema_name, object_names)
        schema = to_schema(schema_name)
        db, catalog = schema.db, schema.catalog or self.get_current_catalog()
        query = (exp.select("TABLE_NAME")
                 .from_(exp.table_("VIEWS", db="INFORMATION_SCHEMA", catalog=catalog))
                 .where(exp.column("TABLE_SCHEMA").eq(db)))
        if object_names:
            query = query.where(exp.column("TABLE_NAME").isin(*object_names))
        known = {obj.name for obj in found}
        for (name,) in self.fetchall(query, quote_identifiers=True):
            if name not in known:
                found.append(DataObject(catalog=catalog, schema=db, name=name, type=DataObjectType.VIEW))
        return found

    return wrapper


class QueryHistoryRecorder:
    """Appends one QUERY_HISTORY-shaped JSON line per statement to `path` (threads of one
    process share the lock; processes append whole lines)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def record(self, tag: str | None, started: float, ended: float, command: str, ok: bool) -> None:
        words = command.lstrip(" (\n\t").split(None, 1)
        row = {
            "QUERY_ID": uuid.uuid4().hex,
            "QUERY_TAG": tag or "",
            "QUERY_TYPE": words[0].upper() if words else "",
            "USER_NAME": "FAKESNOW",
            "WAREHOUSE_NAME": "FAKESNOW",
            "WAREHOUSE_SIZE": "X-Small",
            "EXECUTION_STATUS": "SUCCESS" if ok else "FAIL",
            "START_TIME": datetime.fromtimestamp(started, timezone.utc).isoformat(),
            "END_TIME": datetime.fromtimestamp(ended, timezone.utc).isoformat(),
            "TOTAL_ELAPSED_TIME": round((ended - started) * 1000),
            "EXECUTION_TIME": round((ended - started) * 1000),
            "CREDITS_USED_CLOUD_SERVICES": 0.0,
        }
        line = json.dumps(row) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(line)


def _unescape(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal)


def _recording_query_tags(execute, recorder: QueryHistoryRecorder):
    """fakesnow ignores QUERY_TAG (the connect-time session parameter and `ALTER SESSION SET
    QUERY_TAG`). Keep it on the connection, as Snowflake keeps it on the session, and record
    every other statement with the tag in force: what QUERY_HISTORY would show."""

    def wrapper(self, command, *args, **kwargs):
        conn = self._conn
        if isinstance(command, str) and (match := _QUERY_TAG_SET.match(command)):
            conn._meshctl_query_tag = _unescape(match.group(1))
            return execute(self, command, *args, **kwargs)  # a no-op (_FAKESNOW_NOOPS)
        started, ok = time.time(), False
        try:
            result = execute(self, command, *args, **kwargs)
            ok = True
            return result
        finally:
            try:
                recorder.record(getattr(conn, "_meshctl_query_tag", None), started, time.time(), str(command), ok)
            except OSError:
                pass  # a history that cannot be written never fails a statement

    return wrapper


def _emulated_connect(connect, data_dir: Path):
    """Refuse a wrong password, and attach every database an earlier process created: fakesnow
    (0.11.10 too) attaches only the connection's own database, so AIRBYTE_DB would look empty to a
    new process connecting to GOODWORD_WH ('Catalog "AIRBYTE_DB" does not exist'). Like
    Snowflake, a session given only a database starts in its PUBLIC schema: fakesnow 0.11.10 gives
    it no current schema, and its MERGE (every FCT_EVENTS run) then fails an assertion (0.11.5
    also took a query's CTE names for unqualified tables; 0.11.10 no longer does)."""

    def wrapper(*args, **kwargs):
        if kwargs.get("password") != EMULATED_PASSWORD:
            from snowflake.connector.errors import DatabaseError

            raise DatabaseError(
                msg="Incorrect username or password was specified.", errno=390100, sqlstate="08004"
            )
        if kwargs.get("database") and not kwargs.get("schema"):
            kwargs["schema"] = "PUBLIC"
        conn = connect(*args, **kwargs)
        conn._meshctl_query_tag = (kwargs.get("session_parameters") or {}).get("QUERY_TAG")
        with conn.cursor() as cur:
            for db_file in sorted(data_dir.glob("*.db")):
                cur.execute(f'CREATE DATABASE IF NOT EXISTS "{db_file.stem}"')
        return conn

    return wrapper


@contextlib.contextmanager
def emulation(settings: Settings) -> Iterator[None]:
    """Patch the Snowflake connector onto fakesnow when `settings.gateway` is the emulated one."""
    if settings.gateway != EMULATED_GATEWAY:
        yield
        return
    import fakesnow  # dev dependency: only the emulated gateway needs it
    from sqlmesh.core.engine_adapter.snowflake import SnowflakeEngineAdapter

    data_dir = settings.resolve(settings.data_dirs.fakesnow)
    data_dir.mkdir(parents=True, exist_ok=True)
    create_table = _temporary_as_regular_table(SnowflakeEngineAdapter.create_table)
    recorder = QueryHistoryRecorder(data_dir / QUERY_HISTORY_FILE)
    with fakesnow.patch(db_path=data_dir, nop_regexes=_FAKESNOW_NOOPS):
        import snowflake.connector
        from fakesnow.cursor import FakeSnowflakeCursor
        from snowflake.connector import pandas_tools  # now fakesnow's

        with (
            mock.patch.object(
                snowflake.connector,
                "connect",
                _emulated_connect(snowflake.connector.connect, data_dir),
            ),
            mock.patch.object(SnowflakeEngineAdapter, "create_table", create_table),
            mock.patch.object(SnowflakeEngineAdapter, "_get_data_objects",
                              _views_listed(SnowflakeEngineAdapter._get_data_objects)),
            mock.patch.object(
                pandas_tools, "write_pandas", _honour_overwrite(pandas_tools.write_pandas)
            ),
            mock.patch.object(FakeSnowflakeCursor, "execute",
                              _recording_query_tags(FakeSnowflakeCursor.execute, recorder)),
        ):
            yield


def close_context(context: Context) -> None:
    """Release everything a Context holds. SQLMesh's close() closes the snapshot evaluator's and
    the state sync's connections only, not the default engine adapter when it was used directly
    (`context.engine_adapter`, as the freshness check and the demo summary do): on DuckDB that
    kept the warehouse file locked for the life of the process, so the next run's child could not
    open it."""
    context.close()
    adapter = getattr(context, "_engine_adapter", None)
    if adapter is not None:
        adapter.close()


@contextlib.contextmanager
def open_context(settings: Settings, **kwargs) -> Iterator[Context]:
    """A Context on `settings.gateway` (kwargs go to Context), closed on exit."""
    if settings.gateway == "local":
        settings.resolve(settings.data_dirs.local).mkdir(parents=True, exist_ok=True)
    with secrets.exported(settings), emulation(settings):
        context = Context(paths=[settings.project_dir], gateway=settings.gateway, **kwargs)
        try:
            yield context
        finally:
            close_context(context)
