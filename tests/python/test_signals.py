"""Readiness signals (signals/raw_landed.py): the interval arithmetic, the watermark query on a
real engine adapter, the tolerance from settings, and SQLMesh loading them from `signals/`.
The end-to-end behaviour (an interval waits, then builds once its day lands) is in
test_scheduler_processes.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from sqlmesh.core.config import DuckDBConnectionConfig

from project_files import project_module

REPO = Path(__file__).resolve().parents[2]


raw_landed = project_module("signals.raw_landed")
UTC = timezone.utc


def _days(*starts: int) -> list[tuple[datetime, datetime]]:
    base = datetime(2026, 3, 1, tzinfo=UTC)
    return [(base + timedelta(days=d), base + timedelta(days=d + 1)) for d in starts]


def test_ready_intervals_cut_at_the_watermark():
    batch = _days(0, 1, 2)
    watermark = datetime(2026, 3, 3, 0, 30, tzinfo=UTC)  # days 0 and 1 fully landed
    assert raw_landed.ready_intervals(batch, watermark, timedelta(0)) == batch[:2]
    assert raw_landed.ready_intervals(batch, datetime(2026, 3, 9, tzinfo=UTC), timedelta(0)) is True
    assert raw_landed.ready_intervals(batch, datetime(2026, 3, 1, 12, tzinfo=UTC), timedelta(0)) is False
    assert raw_landed.ready_intervals(batch, None, timedelta(0)) is False  # empty table: nothing landed


def test_tolerance_accepts_a_watermark_just_short_of_the_end():
    batch = _days(0)
    watermark = datetime(2026, 3, 1, 23, 50, tzinfo=UTC)
    assert raw_landed.ready_intervals(batch, watermark, timedelta(0)) is False
    assert raw_landed.ready_intervals(batch, watermark, timedelta(minutes=10)) is True
    assert raw_landed.ready_intervals(batch, watermark, timedelta(minutes=9)) is False


def test_timestamps_are_compared_in_utc():
    # TIMESTAMP_NTZ (naive, stored in UTC) and TIMESTAMP_TZ in another zone.
    assert raw_landed.as_utc(datetime(2026, 3, 2, 1, 0)) == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    plus2 = timezone(timedelta(hours=2))
    assert raw_landed.as_utc(datetime(2026, 3, 2, 1, 0, tzinfo=plus2)) == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    assert raw_landed.as_utc("2026-03-02 01:00:00") == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    assert raw_landed.as_utc(None) is None


@pytest.fixture
def adapter(tmp_path):
    path = tmp_path / "goodword_wh.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.users (id INT, _replicated_at TIMESTAMP)")
        con.execute("INSERT INTO raw.users VALUES (1, '2026-03-02 00:10:00'), (2, '2026-03-01 09:00:00')")
        con.execute("CREATE TABLE raw.stripe_invoices (id VARCHAR, _airbyte_extracted_at TIMESTAMPTZ)")
        con.execute("CREATE TABLE raw.empty_table (id INT, _replicated_at TIMESTAMP)")
        con.execute("INSERT INTO raw.stripe_invoices VALUES ('in_1', '2026-03-03 02:00:00+02')")
    config = DuckDBConnectionConfig(catalogs={"GOODWORD_WH": str(path)})
    engine = config.create_engine_adapter()
    yield engine
    engine.close()


def test_signals_read_the_newest_load_timestamp(adapter, monkeypatch):
    context = SimpleNamespace(engine_adapter=adapter)
    batch = _days(0, 1, 2)
    # GOODWORD_WH.RAW: newest _REPLICATED_AT 2026-03-02 00:10 -> only day 0 ([03-01, 03-02)) is ready.
    assert raw_landed.goodword_raw_landed(batch, context, "GOODWORD_WH.RAW.USERS") == batch[:1]
    # Airbyte: 2026-03-03 02:00+02 is 03-03 00:00 UTC -> days 0 and 1.
    assert raw_landed.airbyte_raw_landed(batch, context, "GOODWORD_WH.RAW.STRIPE_INVOICES") == batch[:2]
    assert raw_landed.raw_landed(batch, context, "GOODWORD_WH.RAW.EMPTY_TABLE", "_REPLICATED_AT") is False
    # A tolerance (the signal's argument) lets an interval in a day before the watermark.
    assert raw_landed.goodword_raw_landed(batch, context, "GOODWORD_WH.RAW.USERS", tolerance_seconds=24 * 3600) == batch[:2]


def test_sqlmesh_loads_the_signals_and_a_model_can_reference_them(tmp_path):
    from sqlmesh import Context
    from sqlmesh.core.config import Config, GatewayConfig, ModelDefaultsConfig

    import shutil

    shutil.copytree(REPO / "signals", tmp_path / "signals", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.sql").write_text(
        "MODEL (name s.m, kind INCREMENTAL_BY_TIME_RANGE (time_column ts), start '2026-03-01', cron '@daily',\n"
        "  signals [goodword_raw_landed(table := 'GOODWORD_WH.RAW.EVENTS'),\n"
        "           airbyte_raw_landed(table := 'AIRBYTE_DB.RAW.STRIPE_INVOICES', tolerance_seconds := 60)]);\n"
        "SELECT 1 AS id, CAST('2026-03-01' AS TIMESTAMP) AS ts"
    )
    config = Config(
        gateways={"g": GatewayConfig(connection=DuckDBConnectionConfig(database=str(tmp_path / "w.duckdb")))},
        default_gateway="g",
        model_defaults=ModelDefaultsConfig(dialect="snowflake"),
    )
    context = Context(paths=[tmp_path], config=config)
    model = context.get_model("s.m")
    calls = model.render_signal_calls()
    assert set(calls.signals_to_kwargs) == {"goodword_raw_landed", "airbyte_raw_landed"}
    assert calls.signals_to_kwargs["goodword_raw_landed"]["table"].this == "GOODWORD_WH.RAW.EVENTS"
    assert calls.signals_to_kwargs["airbyte_raw_landed"]["tolerance_seconds"].sql() == "60"
    context.close()
