"""`meshctl cost`: Snowflake credits per model, per run and per day, from the query tags.

Source: Snowflake's QUERY_HISTORY (SNOWFLAKE.ACCOUNT_USAGE, read through the view that
admin/snowflake_setup.sql creates: the service user's own rows, no query text;
MESHCTL_COST_QUERY_HISTORY names it). One query groups the service's statements by tag, day,
run window and warehouse size; Python does the rest:

  * model and run come from the tag (meshctl/project/query_tags.py). A statement with only the session
    tag (signal probes, catalog lookups) or a model tag without a run is given to the run whose
    start and end (run history) enclose it: one writer at a time, under the run lock; else none;
  * credits are an estimate: execution time x the warehouse size's credits per hour, plus the
    cloud-services credits QUERY_HISTORY reports. Concurrent statements on one warehouse each
    count in full, and idle time before auto-suspend (60 s) is nobody's, so the sum is not the
    bill; WAREHOUSE_METERING_HISTORY is. ACCOUNT_USAGE lags up to 45 minutes.

On the emulated gateway (`fakesnow`) there is no Snowflake to ask: the command says so and runs
the same query over the statements the emulation recorded with their tags (gateways.py), in
DuckDB, so the tags and the grouping are real and the seconds are the emulator's.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import date, datetime, timezone
from pathlib import Path

from meshctl.project import query_tags
from meshctl.settings import Settings

log = logging.getLogger("meshctl.status.cost")


# Credits per hour of a standard warehouse, by QUERY_HISTORY's WAREHOUSE_SIZE.
CREDITS_PER_HOUR = {
    "X-SMALL": 1, "SMALL": 2, "MEDIUM": 4, "LARGE": 8, "X-LARGE": 16, "2X-LARGE": 32,
    "3X-LARGE": 64, "4X-LARGE": 128, "5X-LARGE": 256, "6X-LARGE": 512,
}


NO_MODEL = "(no model: probes, catalog, DDL)"


NO_RUN = "(no run)"


REPORT_SQL = """
WITH runs AS (
  SELECT RUN_ID, CAST(STARTED AS TIMESTAMP_TZ) AS STARTED, CAST(ENDED AS TIMESTAMP_TZ) AS ENDED
  FROM (VALUES {runs}) AS r (RUN_ID, STARTED, ENDED)
)
SELECT
  q.QUERY_TAG,
  CAST(q.START_TIME AS DATE) AS DAY,
  runs.RUN_ID AS WINDOW_RUN,
  q.WAREHOUSE_SIZE,
  COUNT(*) AS STATEMENTS,
  SUM(q.EXECUTION_TIME) AS EXECUTION_MS,
  SUM(COALESCE(q.CREDITS_USED_CLOUD_SERVICES, 0)) AS CLOUD_CREDITS
FROM {source} AS q
LEFT JOIN runs ON q.START_TIME >= runs.STARTED AND q.START_TIME <= runs.ENDED
WHERE q.START_TIME >= DATEADD(DAY, -{days}, CURRENT_TIMESTAMP())
  AND q.QUERY_TAG LIKE '%{service}%'
GROUP BY q.QUERY_TAG, CAST(q.START_TIME AS DATE), runs.RUN_ID, q.WAREHOUSE_SIZE
"""


def report_sql(source: str, days: int, runs: list[tuple[str, datetime, datetime | None]] = ()) -> str:
    """The one query: the service's statements of the last `days` days grouped by tag, day, the
    run whose time window holds them (`runs`: one writer at a time, under the run lock), and
    warehouse size. The windows travel as a VALUES list (run history is in PostgreSQL)."""
    now = datetime.now(timezone.utc)

    def ts(moment: datetime) -> str:
        return "'" + _utc(moment).isoformat() + "'"

    values = ", ".join(
        f"('{str(run_id).replace(chr(39), chr(39) * 2)}', {ts(started)}, {ts(ended or now)})"
        for run_id, started, ended in runs
    ) or "(NULL, NULL, NULL)"
    return REPORT_SQL.format(source=source, days=int(days), service=query_tags.SERVICE, runs=values)


@dataclasses.dataclass
class Line:
    key: str
    statements: int = 0
    seconds: float = 0.0
    credits: float = 0.0

    def add(self, statements: int, seconds: float, credits: float) -> None:
        self.statements += statements
        self.seconds += seconds
        self.credits += credits


@dataclasses.dataclass
class CostReport:
    source: str  # "snowflake" | "emulated" | "none"
    days: int
    explanation: str = ""
    by_model: list[Line] = dataclasses.field(default_factory=list)
    by_run: list[Line] = dataclasses.field(default_factory=list)
    by_day: list[Line] = dataclasses.field(default_factory=list)
    tags: list[Line] = dataclasses.field(default_factory=list)
    error: str | None = None
    generated_at: datetime = dataclasses.field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def total(self) -> Line:
        line = Line("total")
        for item in self.by_day:
            line.add(item.statements, item.seconds, item.credits)
        return line

    def run(self, run_id: str) -> Line | None:
        return next((line for line in self.by_run if line.key == run_id), None)

    def as_json(self) -> dict:
        lines = lambda items: [dataclasses.asdict(i) for i in items]  # noqa: E731
        return {
            "source": self.source, "days": self.days, "explanation": self.explanation,
            "error": self.error, "generated_at": self.generated_at.isoformat(),
            "total": dataclasses.asdict(self.total), "by_model": lines(self.by_model),
            "by_run": lines(self.by_run), "by_day": lines(self.by_day), "tags": lines(self.tags),
        }


def _utc(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def build(rows, *, source: str, days: int, explanation: str = "") -> CostReport:
    """Aggregate REPORT_SQL's rows (QUERY_TAG, DAY, WINDOW_RUN, WAREHOUSE_SIZE, STATEMENTS,
    EXECUTION_MS, CLOUD_CREDITS): the run is the tag's, else the window's, else none."""
    models: dict[str, Line] = {}
    by_run: dict[str, Line] = {}
    by_day: dict[str, Line] = {}
    tags: dict[str, Line] = {}
    for tag, day, window_run, size, statements, execution_ms, cloud in rows:
        parsed = query_tags.parse(tag)
        if parsed is None:
            continue
        seconds = float(execution_ms or 0) / 1000
        rate = CREDITS_PER_HOUR.get(str(size or "").upper().replace("XSMALL", "X-SMALL"), 0)
        credits = seconds / 3600 * rate + float(cloud or 0)
        run = parsed["run"] or window_run or NO_RUN
        day = day.isoformat() if hasattr(day, "isoformat") else str(day)[:10]
        for table, key in ((models, parsed["model"] or NO_MODEL), (by_run, run), (by_day, day), (tags, tag)):
            table.setdefault(key, Line(key)).add(int(statements), seconds, credits)
    order = lambda d: sorted(d.values(), key=lambda line: (-line.credits, -line.seconds, line.key))  # noqa: E731
    return CostReport(
        source=source, days=days, explanation=explanation, by_model=order(models),
        by_run=order(by_run), by_day=sorted(by_day.values(), key=lambda line: line.key),
        tags=sorted(tags.values(), key=lambda line: (-line.statements, line.key)),
    )


def recent_runs(settings: Settings, days: int) -> list[tuple[str, datetime, datetime | None]]:
    """(run_id, started_at, ended_at) of the runs of the last `days` days, [] without history."""
    try:
        from psycopg2 import sql

        from meshctl.service.state_db import connect_state_db

        conn = connect_state_db(settings.state_db, application_name="meshctl-cost", connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    sql.SQL(
                        "SELECT run_id, started_at, ended_at FROM {}.run_history "
                        "WHERE started_at >= now() - make_interval(days => %s) AND status <> 'skipped'"
                    ).format(sql.Identifier(settings.state_db.run_history_schema)),
                    (int(days) + 1,),
                )
                return list(cur.fetchall())
        finally:
            conn.close()
    except Exception as exc:
        log.warning("run history unavailable, statements without a run tag stay unattributed: %s", exc)
        return []


def emulated_history_path(settings: Settings) -> Path:
    from meshctl.project.gateways import QUERY_HISTORY_FILE

    return settings.resolve(settings.data_dirs.fakesnow) / QUERY_HISTORY_FILE


def emulated_rows(path: Path, days: int, runs: list = ()) -> list[tuple]:
    """REPORT_SQL over the emulation's recorded statements, in DuckDB: the same grouping."""
    import duckdb
    import sqlglot

    with duckdb.connect() as con:
        con.execute("ATTACH ':memory:' AS SNOWFLAKE")
        con.execute("CREATE SCHEMA SNOWFLAKE.ACCOUNT_USAGE")
        con.execute(
            "CREATE TABLE SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY (QUERY_ID VARCHAR, QUERY_TAG VARCHAR, "
            "START_TIME TIMESTAMPTZ, END_TIME TIMESTAMPTZ, EXECUTION_TIME BIGINT, WAREHOUSE_SIZE VARCHAR, "
            "CREDITS_USED_CLOUD_SERVICES DOUBLE)"
        )
        if path.exists() and path.stat().st_size:
            con.execute(
                "INSERT INTO SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY SELECT QUERY_ID, QUERY_TAG, "
                "START_TIME::TIMESTAMPTZ, END_TIME::TIMESTAMPTZ, EXECUTION_TIME, WAREHOUSE_SIZE, "
                "CREDITS_USED_CLOUD_SERVICES FROM read_json(?, format = 'newline_delimited', "
                "columns = {QUERY_ID: 'VARCHAR', QUERY_TAG: 'VARCHAR', START_TIME: 'VARCHAR', "
                "END_TIME: 'VARCHAR', EXECUTION_TIME: 'BIGINT', WAREHOUSE_SIZE: 'VARCHAR', "
                "CREDITS_USED_CLOUD_SERVICES: 'DOUBLE'})",
                [str(path)],
            )
        query = sqlglot.transpile(report_sql("SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY", days, runs),
                                  read="snowflake", write="duckdb")[0]
        return con.execute(query).fetchall()


def snowflake_rows(settings: Settings, days: int, runs: list = ()) -> list[tuple]:
    from sqlmesh import Context

    from meshctl import secrets
    from meshctl.project.gateways import close_context

    settings = secrets.resolve(settings)
    with secrets.exported(settings):
        context = Context(paths=[settings.project_dir], gateway=settings.gateway, load=False)
        try:
            return list(context.engine_adapter.fetchall(report_sql(settings.cost.query_history, days, runs)))
        finally:
            close_context(context)


def gather(settings: Settings, days: int | None = None) -> CostReport:
    """The cost report for `settings.gateway`: Snowflake's history, the emulation's, or none (DuckDB)."""
    days = days or settings.cost.days
    gateway = settings.gateway
    from meshctl.project.gateways import EMULATED_GATEWAY

    try:
        if gateway == EMULATED_GATEWAY:
            path = emulated_history_path(settings)
            rows = emulated_rows(path, days, recent_runs(settings, days))
            explanation = (
                "Cost comes from Snowflake's QUERY_HISTORY (SNOWFLAKE.ACCOUNT_USAGE), which the "
                "emulated gateway does not have. Below: the same report over the statements the "
                f"emulation recorded with their query tags ({path}); seconds are fakesnow's, and "
                "credits are what X-Small would charge for that time."
            )
            return build(rows, source="emulated", days=days, explanation=explanation)
        if gateway == "local" or _engine_type(settings) != "snowflake":
            return CostReport(
                source="none", days=days,
                explanation=f"Gateway {gateway} is not Snowflake: there is no query history or credit to "
                            "report. The cost report reads Snowflake's QUERY_HISTORY (gateway snowflake).",
            )
        rows = snowflake_rows(settings, days, recent_runs(settings, days))
        return build(rows, source="snowflake", days=days,
                     explanation=f"From {settings.cost.query_history} (Snowflake ACCOUNT_USAGE, up to 45 min behind); "
                                 "credits estimated from execution time and warehouse size.")
    except Exception as exc:  # the status page shows why, never a traceback
        log.warning("cost report failed: %s", exc)
        return CostReport(source="error", days=days, error=f"{type(exc).__name__}: {exc}".splitlines()[0])


def _engine_type(settings: Settings) -> str | None:
    from sqlmesh import Context

    context = Context(paths=[settings.project_dir], gateway=settings.gateway, load=False)
    try:
        return context.config.get_connection(settings.gateway).type_
    finally:
        context.close()
