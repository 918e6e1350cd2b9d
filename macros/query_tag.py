"""`@query_tag()`: tag a model's Snowflake statements with the service, the run and the model.

A pre-statement of every model (config.yaml, model_defaults.pre_statements), rendered right
before SQLMesh builds the model, on the connection that builds it; meshctl/query_tags.py says
what the tag holds and why not session_properties. On any other engine, while loading and in
unit tests it does nothing. Metadata-only: adding or changing it never changes a model's data
fingerprint (no backfill).

It sends `ALTER SESSION SET QUERY_TAG = '...'` itself and renders no statement: SQLMesh re-parses
what a macro returns and sends identifiers quoted (`SET "QUERY_TAG" = ...`), which is not the
parameter syntax Snowflake documents; a string sent through the adapter goes out as written.
"""

from __future__ import annotations

from sqlmesh import macro


@macro(metadata_only=True)
def query_tag(evaluator) -> None:
    """Set this model's QUERY_TAG on its Snowflake session; render nothing."""
    if evaluator.runtime_stage not in ("creating", "evaluating"):
        return None
    adapter = evaluator.engine_adapter
    if adapter.dialect != "snowflake":
        return None
    from meshctl import query_tags
    from meshctl.settings import get_settings

    settings = get_settings()
    model = evaluator.this_model_fqn.replace('"', "")
    tag = query_tags.model_tag(settings.deploy_env, model, query_tags.current_run_id(settings))
    adapter.execute(f"ALTER SESSION SET QUERY_TAG = {query_tags.sql_literal(tag)}")
    return None
