"""Snowflake VARIANT is DuckDB JSON in every statement SQLMesh sends to DuckDB (no macro here).

The models are Snowflake SQL; on DuckDB (the `local` gateway and every gateway's unit-test
connection) a VARIANT value is JSON: the RAW loaders store VARIANT columns as JSON
(meshctl/raw_schema.py), and the JSON paths SQLGlot writes for Snowflake's `col:key` only work on
JSON. SQLGlot's DuckDB dialect writes VARIANT as DuckDB's own VARIANT type instead, which has
neither those paths nor storage in the warehouse files (DuckDB refuses VARIANT columns in files of
storage version v1.0.0, the default it creates).

Needed since sqlmesh 0.236 / sqlglot 30.8: SQLGlot now writes the JSON type as VARIANT in
Snowflake SQL, and SQLMesh keeps upstream column types in the model's dialect, so the JSON
PROPERTIES of staging.stg_goodword_app__events reads back as VARIANT in marts.fct_events. On
DuckDB its merge then stages the run's rows in a table with a VARIANT column, and every
`sqlmesh run` that brings new events fails there ("VARIANT columns are not supported in storage
versions prior to v1.5.0"). SQLMesh imports every file in macros/ whenever it loads the project
(CLI, UI, scheduler, tests), so this applies wherever the models run on DuckDB. Snowflake SQL is
unchanged, and so are the models' fingerprints.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB

DuckDB.Generator.TYPE_MAPPING = {**DuckDB.Generator.TYPE_MAPPING, exp.DType.VARIANT: "JSON"}
