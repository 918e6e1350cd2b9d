"""The RAW tables as declared in external_models.yaml, the one place their columns are listed.

`meshctl demo-data` and `meshctl load-raw` create RAW tables from this, so a column added to the
contract reaches every writer without touching Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from sqlglot import exp

# The Snowflake types the contract uses, by the kind of value a writer must supply.
KINDS = {
    exp.DataType.Type.DECIMAL: "number",
    exp.DataType.Type.BIGINT: "number",
    exp.DataType.Type.INT: "number",
    exp.DataType.Type.VARCHAR: "string",
    exp.DataType.Type.TEXT: "string",
    exp.DataType.Type.BOOLEAN: "boolean",
    exp.DataType.Type.TIMESTAMPNTZ: "timestamp_ntz",
    exp.DataType.Type.TIMESTAMP: "timestamp_ntz",
    exp.DataType.Type.TIMESTAMPTZ: "timestamp_tz",
    exp.DataType.Type.VARIANT: "variant",
}


@lru_cache(maxsize=None)
def _parse_type(type_sql: str) -> exp.DataType:
    return exp.DataType.build(type_sql, dialect="snowflake")


@dataclass(frozen=True)
class RawColumn:
    name: str
    type_sql: str  # as written in external_models.yaml (Snowflake dialect)

    @property
    def data_type(self) -> exp.DataType:
        return _parse_type(self.type_sql).copy()

    @property
    def kind(self) -> str:
        try:
            return KINDS[_parse_type(self.type_sql).this]
        except KeyError:
            raise ValueError(f"column {self.name}: type {self.type_sql} has no RAW writer") from None

    def engine_type(self, dialect: str) -> exp.DataType:
        # DuckDB has a VARIANT type, but JSON paths (`->`, which SQLGlot emits for Snowflake's
        # `col:key`) only work on JSON, so Snowflake VARIANT lands as DuckDB JSON.
        if self.kind == "variant" and dialect == "duckdb":
            return exp.DataType.build("JSON")
        return self.data_type


@dataclass(frozen=True)
class RawTable:
    catalog: str
    schema: str
    name: str
    columns: tuple[RawColumn, ...]

    @property
    def fqn(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str) -> RawColumn:
        return next(column for column in self.columns if column.name == name)

    def columns_to_types(self, dialect: str) -> dict[str, exp.DataType]:
        return {column.name: column.engine_type(dialect) for column in self.columns}


@lru_cache(maxsize=4)
def raw_tables(project_dir: Path) -> dict[str, RawTable]:
    """Every RAW table keyed by its upper-case `DATABASE.SCHEMA.TABLE` name."""
    declared = yaml.safe_load((project_dir / "external_models.yaml").read_text())
    tables = {}
    for entry in declared:
        catalog, schema, name = (part.upper() for part in entry["name"].split("."))
        columns = tuple(RawColumn(col.upper(), typ) for col, typ in entry["columns"].items())
        table = RawTable(catalog, schema, name, columns)
        tables[table.fqn] = table
    return tables
