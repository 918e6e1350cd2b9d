"""Rendered docs in the artifacts bucket: docs/index.html, docs/<version>/index.html."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path

from meshctl.artifacts.bundles import INCLUDE, _check_version, git_info, new_version, utcnow
from meshctl.artifacts.s3 import Bucket
from meshctl.settings import Settings


@dataclass
class DocsResult:
    index_url: str
    versioned_url: str
    size: int


def publish_docs(
    settings: Settings,
    bucket: Bucket | None = None,
    context=None,
    version: str | None = None,
    now: dt.datetime | None = None,
) -> DocsResult:
    """Render the model DAG (SQLMesh's `render_dag`) and upload it as docs/index.html plus a
    versioned copy under docs/<version>/index.html."""
    bucket = bucket or Bucket(settings)
    now = now or utcnow()
    with tempfile.TemporaryDirectory(prefix="meshctl-docs-") as tmp:
        out = Path(tmp) / "index.html"
        if context is None:
            from meshctl.project.gateways import open_context

            with open_context(settings) as ctx:
                ctx.render_dag(str(out))
        else:
            context.render_dag(str(out))
        html = out.read_bytes()
    if version is None:
        git = git_info(settings.project_dir, [f for f in INCLUDE if (settings.project_dir / f).exists()])
        version = new_version(now, git["revision"])
    version = _check_version(version)
    content_type = "text/html; charset=utf-8"
    versioned = bucket.key("docs", version, "index.html")
    index = bucket.key("docs", "index.html")
    bucket.put_bytes(versioned, html, content_type)
    bucket.put_bytes(index, html, content_type, cache_control="no-cache")
    return DocsResult(index_url=bucket.url(index), versioned_url=bucket.url(versioned), size=len(html))
