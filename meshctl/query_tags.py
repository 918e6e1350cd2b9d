"""Snowflake query tags: which service, run and model sent a statement (cost attribution).

Two tags reach QUERY_HISTORY:
  * the session's, set at connect time in config.yaml (`goodword-sqlmesh:<DEPLOY_ENV>`): every
    statement of the service carries at least that (signal probes, catalog lookups, DDL);
  * a model's, set by the `@query_tag()` pre-statement (macros/query_tag.py, on every model via
    config.yaml's model_defaults) before SQLMesh builds the model, as compact JSON
    `{"service":"goodword-sqlmesh","env":"prod","run":"<run_id>","model":"GOODWORD_WH.MARTS.FCT_EVENTS"}`.
    The session keeps it until the next model sets its own, so the model's audits (run right
    after it on the same connection) carry it too.

Why a pre-statement and not `session_properties (query_tag ...)`: SQLMesh 0.233's Snowflake
adapter reads only `warehouse` from session_properties and ignores the rest. The macro is
metadata-only, so adding it changes no model's data fingerprint (no backfill).

The run: the scheduler runs SQLMesh in a child process and records the run, with its pid and
host, in `meshctl.run_history` before the child starts; the child finds "the running row of my
parent" there. A plan or run inside a process that records itself (trigger `plan`) is found by
its own pid. Nothing found (a plain `sqlmesh run`): the tag has no run, and `meshctl cost`
attributes the statement by time (one writer at a time, under the run lock).
"""

from __future__ import annotations

import json
import logging
import os
import socket

from meshctl.settings import Settings

log = logging.getLogger("meshctl.query_tags")

SERVICE = "goodword-sqlmesh"
# Snowflake's limit on QUERY_TAG.
MAX_TAG_LENGTH = 2000


def model_tag(env: str, model: str, run_id: str | None = None) -> str:
    """The JSON tag of one model's statements (keys in a fixed order, no spaces)."""
    tag = {"service": SERVICE, "env": env}
    if run_id:
        tag["run"] = run_id
    tag["model"] = model
    return json.dumps(tag, separators=(",", ":"))[:MAX_TAG_LENGTH]


def parse(tag: str | None) -> dict | None:
    """{"service", "env", "run", "model"} from a tag this service wrote (None for anyone else's).
    The session tag `goodword-sqlmesh:<env>` has no run and no model."""
    if not tag:
        return None
    text = tag.strip()
    if text.startswith(f"{SERVICE}:"):
        return {"service": SERVICE, "env": text.split(":", 1)[1] or None, "run": None, "model": None}
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("service") != SERVICE:
        return None
    return {"service": SERVICE, "env": value.get("env"), "run": value.get("run"), "model": value.get("model")}


def sql_literal(text: str) -> str:
    """`text` as a Snowflake single-quoted string literal (backslash and quote escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# The scheduler's child runs one run and exits: once its parent's row is found, it stays the answer.
_PARENTS_RUN: dict[tuple[int, int], str] = {}


def current_run_id(settings: Settings) -> str | None:
    """The run this process belongs to, from run history: a `running` row on this host whose
    process is our parent (the scheduler's child) or ourselves (an in-process plan, asked again
    each time: a long-lived UI applies many). Never raises: a tag without a run is better than
    a failed model."""
    key = (os.getpid(), os.getppid())
    if key in _PARENTS_RUN:
        return _PARENTS_RUN[key]
    try:
        from psycopg2 import sql

        from meshctl.wait import connect_state_db

        conn = connect_state_db(settings, application_name="meshctl-query-tag", connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    sql.SQL(
                        "SELECT run_id, pid FROM {}.run_history WHERE status = 'running' AND host = %s "
                        "AND pid = ANY(%s) ORDER BY started_at DESC LIMIT 1"
                    ).format(sql.Identifier(settings.run_history_schema)),
                    (socket.gethostname(), [os.getppid(), os.getpid()]),
                )
                row = cur.fetchone()
        finally:
            conn.close()
    except Exception as exc:  # no run history (plain sqlmesh, no state database): no run in the tag
        log.debug("no run id for the query tag: %s", exc)
        return None
    if row is None:
        return None
    if row[1] == os.getppid():
        _PARENTS_RUN[key] = row[0]
    return row[0]
