"""Writing RAW tables through a gateway's engine adapter (DuckDB locally, Snowflake or fakesnow).

Only the gateway's connection is opened, not a SQLMesh Context: writing RAW must not depend on
the models loading, nor on the state database being up.

Two write paths:
- typed frames (`append_frame`): pandas columns already hold the column's type; used for the
  large app tables, which have no VARIANT column.
- text rows (`stage_text` + `insert_from_landing`): every value as text in a landing table, then
  one INSERT ... SELECT that casts and parses. Snowflake's CAST(text AS VARIANT) gives a string,
  not the parsed JSON, so VARIANT columns must go through PARSE_JSON in SQL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pandas as pd
from sqlglot import exp, parse_one
from sqlmesh.core.config import Config
from sqlmesh.core.config.loader import load_configs
from sqlmesh.core.engine_adapter import EngineAdapter

from meshctl import secrets
from meshctl.project import gateways
from meshctl.raw.schema import RawTable, raw_tables
from meshctl.settings import Settings

LANDING_PREFIX = "_LANDING_"

_CASTS = {
    "number": "CAST({c} AS NUMBER(38, 0))",
    "string": "{c}",
    "boolean": "CAST({c} AS BOOLEAN)",
    "timestamp_ntz": "CAST({c} AS TIMESTAMP_NTZ)",
    "timestamp_tz": "CAST({c} AS TIMESTAMP_TZ)",
    "variant": "PARSE_JSON({c})",
}


@contextlib.contextmanager
def open_warehouse(settings: Settings) -> Iterator[EngineAdapter]:
    """The engine adapter of `settings.gateway`'s connection, closed on exit."""
    if settings.gateway == "local":
        settings.resolve(settings.data_dirs.local).mkdir(parents=True, exist_ok=True)
    with secrets.exported(settings), gateways.emulation(settings):
        config = next(iter(load_configs(None, Config, [settings.project_dir]).values()))
        adapter = config.get_gateway(settings.gateway).connection.create_engine_adapter()
        if settings.gateway == gateways.EMULATED_GATEWAY:
            # fakesnow attaches a database file of an earlier process only when told to create it.
            for catalog in sorted({t.catalog for t in raw_tables(settings.project_dir).values()}):
                adapter.execute(f'CREATE DATABASE IF NOT EXISTS "{catalog}"')
        try:
            yield adapter
        finally:
            adapter.close()


@contextlib.contextmanager
def transaction(adapter: EngineAdapter) -> Iterator[None]:
    """One transaction on the adapter's connection. SQLMesh's DuckDB adapter declares no
    transaction support (its `transaction()` does nothing), although DuckDB has them."""
    if adapter.SUPPORTS_TRANSACTIONS:
        with adapter.transaction():
            yield
        return
    adapter.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        adapter.execute("ROLLBACK")
        raise
    adapter.execute("COMMIT")


def quoted(fqn: str) -> exp.Table:
    return exp.to_table(fqn, dialect="snowflake").transform(
        lambda node: exp.to_identifier(node.name, quoted=True)
        if isinstance(node, exp.Identifier)
        else node
    )


def landing_name(table: RawTable) -> str:
    return f"{table.catalog}.{table.schema}.{LANDING_PREFIX}{table.name}"


def ensure_schema(adapter: EngineAdapter, table: RawTable) -> None:
    if adapter.dialect == "snowflake":
        # DuckDB catalogs are the files config.yaml attaches; Snowflake databases must exist.
        adapter.execute(f'CREATE DATABASE IF NOT EXISTS "{table.catalog}"')
    adapter.create_schema(quoted(f"{table.catalog}.{table.schema}"))


def create_table(adapter: EngineAdapter, table: RawTable, *, replace: bool) -> None:
    ensure_schema(adapter, table)
    columns = table.columns_to_types(adapter.dialect)
    if replace:
        adapter.drop_table(quoted(table.fqn))
    adapter.create_table(quoted(table.fqn), columns, exists=True)


def table_exists(adapter: EngineAdapter, fqn: str) -> bool:
    return adapter.table_exists(quoted(fqn))


def existing_columns(adapter: EngineAdapter, fqn: str) -> set[str]:
    return {name.upper() for name in adapter.columns(quoted(fqn))}


def append_frame(adapter: EngineAdapter, table: RawTable, frame: pd.DataFrame) -> None:
    if frame.empty:
        return  # SQLMesh refuses an empty DataFrame, and there is nothing to write
    types = table.columns_to_types(adapter.dialect)
    adapter.insert_append(
        quoted(table.fqn),
        frame,
        target_columns_to_types={name: types[name] for name in frame.columns},
        track_rows_processed=False,
    )


def stage_text(adapter: EngineAdapter, table: RawTable, frame: pd.DataFrame) -> str:
    """(Re)create the landing table of `table` holding `frame` (all text); returns its name."""
    name = landing_name(table)
    ensure_schema(adapter, table)
    text = exp.DataType.build("VARCHAR")
    columns = {column: text for column in table.column_names}
    adapter.drop_table(quoted(name))
    adapter.create_table(quoted(name), columns)
    if len(frame):
        frame = frame.reindex(columns=table.column_names).astype(object)
        frame = frame.where(frame.notna(), None)
        adapter.insert_append(quoted(name), frame, target_columns_to_types=columns)
    return name


def insert_from_landing(adapter: EngineAdapter, table: RawTable, landing: str) -> None:
    names = table.column_names
    selects = ", ".join(_CASTS[table.column(n).kind].format(c=f'"{n}"') for n in names)
    target = quoted(table.fqn).sql("snowflake")
    insert = parse_one(
        f"INSERT INTO {target} ({', '.join(f'{chr(34)}{n}{chr(34)}' for n in names)}) "
        f"SELECT {selects} FROM {quoted(landing).sql('snowflake')}",
        read="snowflake",
    )
    adapter.execute(insert)


def drop_landing(adapter: EngineAdapter, table: RawTable) -> None:
    adapter.drop_table(quoted(landing_name(table)))
