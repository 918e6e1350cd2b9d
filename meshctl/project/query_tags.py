"""Reading the Snowflake query tags back: which service, run and model sent a statement.

Two tags reach QUERY_HISTORY:
  * the session's, set at connect time in config.yaml (`goodword-sqlmesh:<DEPLOY_ENV>`): every
    statement of the service carries at least that (signal probes, catalog lookups, DDL);
  * a model's, set by the project's `@query_tag()` pre-statement (macros/query_tag.py, which
    defines the format) before SQLMesh builds the model, from `MESHCTL_RUN_ID` and `DEPLOY_ENV`
    in the building process's environment. The session keeps it until the next model sets its
    own, so the model's audits (run right after it on the same connection) carry it too.

The service sets `MESHCTL_RUN_ID` for every write it makes: the scheduler in its run's child
(service/attempts.py), an in-process writer while it holds the run lock (service/writers.py).
"""

from __future__ import annotations

import json

SERVICE = "goodword-sqlmesh"


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
