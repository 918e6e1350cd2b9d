"""The same models on DuckDB (`local`) and on SQLMesh's Snowflake adapter over fakesnow with state
in PostgreSQL (`fakesnow`): identical marts, row for row, after a full build and after a
`sqlmesh run` that adds a day; state really in PostgreSQL; a second plan does nothing."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import oracle
import pytest
from raw_helpers import fetch, isolated_settings, read_raw

from meshctl.demo.generator import DemoParams, append_day, generate
from meshctl.project.gateways import open_context
from meshctl.raw import warehouse as raw_warehouse
from meshctl.raw.schema import raw_tables

END = date(2026, 3, 10)
PARAMS = DemoParams(organizations=30, users=200, days=14, events_per_day=150, seed=11, end_date=END)
MODEL_START = "2026-02-25"  # the first generated day
EXECUTION_1 = datetime(2026, 3, 11, 0, 30)
EXECUTION_2 = datetime(2026, 3, 12, 0, 30)
GATEWAYS = ("local", "fakesnow")
MARTS = sorted(oracle.KEYS)


def canonical(value):
    """One Python value per SQL value, whichever engine returned it."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.dumps(json.loads(value), sort_keys=True)  # VARIANT: layout may differ
        except ValueError:
            return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    return value


def read_marts(context) -> dict[str, list[tuple]]:
    out = {}
    for mart in MARTS:
        rows = fetch(context.engine_adapter, f'SELECT * FROM "GOODWORD_WH"."MARTS"."{mart}"')
        columns = sorted(rows[0]) if rows else []
        out[mart] = (columns, sorted((tuple(canonical(r[c]) for c in columns) for r in rows), key=repr))
    return out


def assert_same_marts(local: dict, emulated: dict) -> None:
    problems = []
    for mart in MARTS:
        (cols_l, rows_l), (cols_e, rows_e) = local[mart], emulated[mart]
        if cols_l != cols_e:
            problems.append(f"{mart}: columns differ: {cols_l} vs {cols_e}")
            continue
        if not rows_l:
            problems.append(f"{mart}: empty on both engines, nothing was compared")
        only_l = [r for r in rows_l if r not in set(rows_e)]
        only_e = [r for r in rows_e if r not in set(rows_l)]
        if only_l or only_e or len(rows_l) != len(rows_e):
            problems.append(
                f"{mart}: {len(rows_l)} rows on DuckDB, {len(rows_e)} on fakesnow; "
                f"only DuckDB (first 3): {only_l[:3]}; only fakesnow (first 3): {only_e[:3]}"
            )
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def builds(tmp_path_factory, module_pg_database_factory, pg_server):
    state_db = module_pg_database_factory("parity")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MODEL_START", MODEL_START)
        pg_server.use_for_state(monkeypatch, state_db)
        settings = isolated_settings(tmp_path_factory.mktemp("parity"), monkeypatch)
        tables = raw_tables(settings.project_dir)
        result = {"state_db": state_db, "settings": settings}
        for gateway in GATEWAYS:
            on = settings.updated(gateway=gateway)
            with raw_warehouse.open_warehouse(on) as adapter:
                generate(adapter, tables, PARAMS, lambda _: None)
            result[gateway, "raw1"] = read_raw(on)
            with open_context(on) as context:
                context.plan(auto_apply=True, no_prompts=True, execution_time=EXECUTION_1,
                             skip_tests=True, skip_linter=True)
                result[gateway, 1] = read_marts(context)
                again = context.plan_builder("prod", execution_time=EXECUTION_1).build()
                result[gateway, "replan"] = again
            with raw_warehouse.open_warehouse(on) as adapter:
                append_day(adapter, tables, PARAMS.seed, PARAMS.events_per_day, lambda _: None)
            result[gateway, "raw2"] = read_raw(on)
            with open_context(on) as context:
                status = context.run(execution_time=EXECUTION_2)
                assert status.is_success, f"{gateway}: sqlmesh run at {EXECUTION_2}: {status}"
                result[gateway, 2] = read_marts(context)
        yield result


def test_both_engines_received_the_same_raw(builds):
    for stage in ("raw1", "raw2"):
        local, emulated = builds["local", stage], builds["fakesnow", stage]
        for table in local:
            key = lambda row: repr(sorted((k, canonical(v)) for k, v in row.items()))  # noqa: E731
            assert sorted(map(key, local[table])) == sorted(map(key, emulated[table])), table


def test_full_build_gives_identical_marts(builds):
    assert_same_marts(builds["local", 1], builds["fakesnow", 1])


def test_run_after_a_new_day_updates_both_identically(builds):
    assert_same_marts(builds["local", 2], builds["fakesnow", 2])
    # The run really added the day on both: METRICS_DAILY now reaches the new latest complete
    # date, and FCT_EVENTS (which has no date cut) holds that day's events.
    for gateway in GATEWAYS:
        columns, rows = builds[gateway, 2]["METRICS_DAILY"]
        assert max(row[columns.index("DATE")] for row in rows) == date(2026, 3, 11), gateway
        columns, rows = builds[gateway, 2]["FCT_EVENTS"]
        assert date(2026, 3, 11) in {row[columns.index("EVENT_DATE")] for row in rows}, gateway
        assert builds[gateway, 2]["FCT_EVENTS"] != builds[gateway, 1]["FCT_EVENTS"]


def test_second_plan_without_changes_does_nothing(builds):
    for gateway in GATEWAYS:
        plan = builds[gateway, "replan"]
        assert not plan.has_changes, gateway
        assert not plan.requires_backfill, f"{gateway}: {plan.missing_intervals}"


def test_state_lives_in_postgresql(builds, pg_server):
    settings = builds["settings"]
    with pg_server.connect(builds["state_db"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (settings.state_db.state_schema,),
        )
        tables = {row[0] for row in cur.fetchall()}
        assert {"_snapshots", "_environments", "_intervals", "_versions"} <= tables
        cur.execute(f'SELECT name FROM "{settings.state_db.state_schema}"._environments')
        assert ("prod",) in cur.fetchall()
        cur.execute(f'SELECT COUNT(*) FROM "{settings.state_db.state_schema}"._intervals')
        assert cur.fetchone()[0] > 0
    # ... and not in the warehouse, where SQLMesh would otherwise keep its state tables.
    with raw_warehouse.open_warehouse(settings.updated(gateway="fakesnow")) as adapter:
        for table in ("_snapshots", "_environments", "_versions"):
            assert not adapter.table_exists(f'"GOODWORD_WH"."{settings.state_db.state_schema}"."{table}"')
        assert adapter.table_exists('"GOODWORD_WH"."MARTS"."METRICS_DAILY"')
