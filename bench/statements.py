"""Counting the SQL statements a plan or run sends to the warehouse, and the rows they read.

`counted(adapter)` wraps `EngineAdapter._execute`, the one place SQLMesh's adapters hand SQL to
the DB-API cursor, for the adapters on that adapter's connection pool only (the evaluator's and
the signals' copies of it; not the in-memory unit-test adapter a plan uses). Each statement is classified:

- state: reads or writes SQLMesh's state tables (schema `sqlmesh`, its temporary tables too). On `local` the state lives in
  the DuckDB warehouse file; in production it is in PostgreSQL, so these are not warehouse work.
- probe: a watermark probe -- only MAX/MIN of `_REPLICATED_AT` / `_AIRBYTE_EXTRACTED_AT` over
  RAW tables, with no WHERE, JOIN or GROUP BY. Snowflake answers these from micro-partition
  metadata without a running warehouse; their rows are reported apart all the same.
- catalog: SET/PRAGMA/USE/DESCRIBE/SHOW and information_schema or duckdb_* lookups.
- ddl: CREATE/DROP/ALTER that moves no data (schemas, views, empty tables).
- data: everything else (SELECT, INSERT, MERGE, DELETE, UPDATE, CREATE TABLE ... AS SELECT).

Rows read come from DuckDB's profiler (`enable_profiling = 'no_output'` on each cursor): the sum
of `operator_rows_scanned` of the statement's TABLE_SCAN operators, i.e. rows of the row groups
the scans did not skip by zone map -- the analogue of Snowflake's partitions scanned. A cursor's profile
is read just before its next statement (or at the end), once SQLMesh has fetched the result: a
SELECT is only profiled in full once its result is consumed. A statement whose profile was not
final then (a result fetched with fetchone and left open) is counted in `streamed`: its rows
are a lower bound. DuckDB answers MAX/MIN/COUNT(*) of a whole table from column statistics
(no TABLE_SCAN), so a probe reads 0 rows here as on Snowflake. SQL that SQLMesh runs beside
`_execute` (DuckDB's registration of a pandas frame for seeds) is not seen.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import re
import time
from unittest import mock

from sqlglot import exp, parse_one

WATERMARKS = {"_REPLICATED_AT", "_AIRBYTE_EXTRACTED_AT"}
# Any table in the state schema `sqlmesh` (not the physical schemas `sqlmesh__MARTS` ...).
STATE = re.compile(r'\bsqlmesh"?\s*\.', re.I)
CATALOG_WORDS = {"SET", "RESET", "PRAGMA", "USE", "ATTACH", "DETACH", "DESCRIBE", "SHOW",
                 "BEGIN", "COMMIT", "ROLLBACK", "CHECKPOINT", "INSTALL", "LOAD", "SUMMARIZE"}
LEADING_COMMENT = re.compile(r"^\s*(/\*.*?\*/\s*|--[^\n]*\n\s*)*", re.S)


@dataclasses.dataclass
class Statement:
    sql: str
    seconds: float = 0.0
    scans: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    finished: bool = True  # False: DuckDB's profile was not final (a streamed SELECT)
    kind: str = ""

    @property
    def rows(self) -> int:
        return sum(n for _, n in self.scans)


def classify(sql: str) -> str:
    if STATE.search(sql):
        return "state"
    body = LEADING_COMMENT.sub("", sql, count=1)
    first = body.split(None, 1)[0].upper() if body.strip() else ""
    lowered = body.lower()
    if first in CATALOG_WORDS or "information_schema" in lowered or re.search(r"\bduckdb_\w+\(", lowered):
        return "catalog"
    try:
        tree = parse_one(body, read="duckdb")
    except Exception:  # noqa: BLE001 - unparsable text is still a statement; count it as work
        return "data"
    if isinstance(tree, (exp.Drop, exp.Alter)) or (
        isinstance(tree, exp.Create) and not isinstance(tree.expression, exp.Query)
    ) or (isinstance(tree, exp.Create) and tree.kind == "VIEW"):
        return "ddl"
    if isinstance(tree, exp.Query) and is_probe(tree):
        return "probe"
    return "data"


def is_probe(tree: exp.Expression) -> bool:
    tables = list(tree.find_all(exp.Table))
    columns = list(tree.find_all(exp.Column))
    return bool(
        tables
        and all(t.db.upper() == "RAW" for t in tables)
        and columns
        and all(c.name.upper() in WATERMARKS for c in columns)
        and list(tree.find_all(exp.Max, exp.Min))
        and not list(tree.find_all(exp.Where, exp.Join, exp.Group, exp.Window))
    )


def _scans(node: dict, out: list[tuple[str, int]]) -> list[tuple[str, int]]:
    if node.get("operator_type") == "TABLE_SCAN":
        table = str(node.get("extra_info", {}).get("Table", "?"))
        out.append((short_table(table), int(node.get("operator_rows_scanned") or 0)))
    for child in node.get("children", ()):
        _scans(child, out)
    return out


def short_table(name: str) -> str:
    """`goodword_wh.sqlmesh__marts.marts__fct_events__123` -> `MARTS__FCT_EVENTS`."""
    last = name.split(".")[-1]
    last = re.sub(r"__\d+(__dev|_[a-z0-9]{8})?$", "", last, flags=re.I)
    last = re.sub(r"^__temp_", "temp ", last, flags=re.I)
    return last.upper()


@contextlib.contextmanager
def counted(adapter):
    """Yield the list of `Statement`s sent through `adapter`'s connection pool inside the block."""
    from sqlmesh.core.engine_adapter.base import EngineAdapter

    log: list[Statement] = []
    profiled: dict[int, object] = {}  # cursors with profiling on (kept alive: ids stay unique)
    pending: dict[int, Statement] = {}  # per cursor, the statement whose profile is still to read
    original = EngineAdapter._execute
    # The evaluator and signals use copies of the adapter (`with_settings`) on the same pool.
    pool = adapter._connection_pool

    def collect(key: int) -> None:
        """Read the profile of the cursor's last statement, whose result SQLMesh has consumed by
        now (the DuckDB adapter runs no COMMIT between, which would replace the profile)."""
        entry = pending.pop(key, None)
        if entry is None:
            return
        try:
            profile = json.loads(profiled[key].get_profiling_information(format="json"))
            entry.scans = _scans(profile, [])
            entry.finished = bool(profile.get("query_name"))
        except Exception:  # noqa: BLE001 - no profile (e.g. the statement failed)
            entry.finished = False

    def execute(self, sql, *args, **kwargs):
        if getattr(self, "_connection_pool", None) is not pool:
            return original(self, sql, *args, **kwargs)
        cursor = self.cursor
        key = id(cursor)
        collect(key)
        if key not in profiled and hasattr(cursor, "get_profiling_information"):
            cursor.execute("SET enable_profiling = 'no_output'")
            profiled[key] = cursor
        entry = Statement(sql)
        log.append(entry)
        began = time.monotonic()
        try:
            return original(self, sql, *args, **kwargs)
        finally:
            entry.seconds = time.monotonic() - began
            if key in profiled:
                pending[key] = entry

    with mock.patch.object(EngineAdapter, "_execute", execute):
        try:
            yield log
        finally:
            for key in list(pending):
                collect(key)
            for cursor in profiled.values():
                with contextlib.suppress(Exception):
                    cursor.execute("PRAGMA disable_profiling")
    for entry in log:
        entry.kind = classify(entry.sql)


def summarize(log: list[Statement]) -> dict:
    """Counts and rows per kind; `statements` and `rows_read` leave out state and probes."""
    kinds = collections.Counter(s.kind for s in log)
    rows = collections.Counter()
    seconds = collections.Counter()
    tables = collections.Counter()
    for s in log:
        rows[s.kind] += s.rows
        seconds[s.kind] += s.seconds
        if s.kind not in ("state", "probe"):
            for table, n in s.scans:
                tables[table] += n
    work = [s for s in log if s.kind not in ("state", "probe")]
    return {
        "warehouse_statements": sum(n for k, n in kinds.items() if k != "state"),
        "probes": kinds["probe"],
        "statements": len(work),
        "rows_read": sum(s.rows for s in work),
        "probe_rows": rows["probe"],
        "state_statements": kinds["state"],
        "by_kind": {k: (kinds[k], rows[k], round(seconds[k], 3)) for k in sorted(kinds)},
        "tables": tables.most_common(6),
        "streamed": sum(1 for s in work if not s.finished and s.scans),
        "heaviest": [(s.rows, round(s.seconds, 3), _gist(s.sql))
                     for s in sorted(work, key=lambda s: -s.rows)[:3] if s.rows],
        "examples": [LEADING_COMMENT.sub("", s.sql, count=1)[:160] for s in work[:8]],
        "probe_sql": [LEADING_COMMENT.sub("", s.sql, count=1)[:200] for s in log if s.kind == "probe"][:2],
    }


def _gist(sql: str) -> str:
    """What a statement does, in a line: its verb and target, and the tables it reads."""
    body = " ".join(LEADING_COMMENT.sub("", sql, count=1).split())
    head = re.match(r"^(CREATE OR REPLACE TABLE|CREATE TABLE|INSERT INTO|DELETE FROM|MERGE INTO|"
                    r"UPDATE)\s+(\S+)", body, re.I)
    if head:
        verb = f"{head.group(1).upper()} {short_table(head.group(2).replace(chr(34), ''))}"
    elif re.match(r"^SELECT COUNT\(\*\) FROM \(", body, re.I):
        verb = "audit"
    else:
        verb = body.split(" ", 1)[0].upper()
    read = sorted({short_table(m.replace('"', "")) for m in re.findall(
        r'FROM\s+("[^"]+"\."[^"]+"\."[^"]+"|"[^"]+"\."[^"]+")', body)})
    return f"{verb} reading {', '.join(read) or '-'}"
