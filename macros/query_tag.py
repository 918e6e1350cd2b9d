"""`@query_tag()`: tag a model's Snowflake statements with the service, the run and the model.

A pre-statement of every model (config.yaml, model_defaults.pre_statements), rendered right
before SQLMesh builds the model, on the connection that builds it. On any other engine, while
loading and in unit tests it does nothing. Metadata-only: adding or changing it never changes a
model's data fingerprint (no backfill).

The tag is compact JSON, `{"service":"goodword-sqlmesh","env":"prod","run":"<run id>","model":"..."}`
(meshctl's cost report reads it back: meshctl/project/query_tags.py). The run id and the
deployment come from the environment of the process building the model, `MESHCTL_RUN_ID` and
`DEPLOY_ENV`: the service sets both for every write it makes (the scheduler for its run's child,
an in-process plan for itself), so the project needs nothing of the runtime. A plain `sqlmesh run`
has no run id: its statements are attributed by time.

Why a pre-statement and not `session_properties (query_tag ...)`: SQLMesh's Snowflake adapter
reads only `warehouse` from session_properties (0.233.0, and still 0.236.4). It sends
`ALTER SESSION SET QUERY_TAG` itself and renders no statement: SQLMesh re-parses what a macro
returns and sends identifiers quoted (`SET "QUERY_TAG" = ...`), which is not the parameter syntax
Snowflake documents.
"""

from __future__ import annotations

import json
import os

from sqlmesh import macro

SERVICE = "goodword-sqlmesh"
MAX_TAG_LENGTH = 2000  # Snowflake's limit on QUERY_TAG


def model_tag(env: str, model: str, run_id: str | None) -> str:
    """The JSON tag of one model's statements (keys in a fixed order, no spaces)."""
    tag = {"service": SERVICE, "env": env}
    if run_id:
        tag["run"] = run_id
    tag["model"] = model
    return json.dumps(tag, separators=(",", ":"))[:MAX_TAG_LENGTH]


def sql_literal(text: str) -> str:
    """`text` as a Snowflake single-quoted string literal (backslash and quote escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@macro(metadata_only=True)
def query_tag(evaluator) -> None:
    """Set this model's QUERY_TAG on its Snowflake session; render nothing."""
    if evaluator.runtime_stage not in ("creating", "evaluating"):
        return None
    adapter = evaluator.engine_adapter
    if adapter.dialect != "snowflake":
        return None
    model = evaluator.this_model_fqn.replace('"', "")
    tag = model_tag(os.environ.get("DEPLOY_ENV") or "prod", model, os.environ.get("MESHCTL_RUN_ID") or None)
    adapter.execute(f"ALTER SESSION SET QUERY_TAG = {sql_literal(tag)}")
    return None
