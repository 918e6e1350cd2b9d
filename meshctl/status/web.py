"""The status routes, served by the UI process in front of SQLMesh's own app (and so behind the
same login: ui.py wraps both in auth_proxy's middleware).

  /status                 the page (server-rendered: Jinja2 templates, inline SVG, no script)
  /status/runs/<run_id>   one run: each model's results, the signal holds, the error, the log
  /status.json            the page's facts as JSON (status/data.py)
  /status/metrics         a few of them in Prometheus' text format

Every other request goes to SQLMesh's UI unchanged, except that an HTML page (its landing page:
the single-page app's index) gets a "Service status" link to /status.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from meshctl.settings import Settings
from meshctl.status import charts, data

log = logging.getLogger("meshctl.status.web")

TEMPLATES = Path(__file__).parent / "templates"
PREFIXES = ("/status", "/status.json")
LINK_ID = "meshctl-status-link"
LANDING_LINK = (
    f'<a id="{LINK_ID}" href="/status" title="Runs, freshness, alerts and cost of the scheduled service" '
    'style="position:fixed;right:16px;bottom:16px;z-index:2147483647;padding:8px 14px;border-radius:6px;'
    'background:#1f2937;color:#fff;font:600 13px/1.2 system-ui,sans-serif;text-decoration:none;'
    'box-shadow:0 2px 6px rgba(0,0,0,.3)">Service status</a>'
).encode()


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
    env.filters["when"] = _when
    env.filters["secs"] = lambda v: "" if v is None else (f"{v:.1f} s" if v < 120 else f"{v / 60:.1f} min")
    env.globals["charts"] = charts
    return env


def _when(value) -> str:
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


class StatusApp:
    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None):
        """`clock`: the UTC wall clock the page judges freshness by, unless given (a replay on a
        simulated clock gives its own)."""
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.templates = _environment()
        self.app = Starlette(routes=[
            Route("/status", self.page),
            Route("/status/", self.page),
            Route("/status.json", self.json),
            Route("/status/metrics", self.metrics),
            Route("/status/runs/{run_id}.json", self.run_json),
            Route("/status/runs/{run_id}", self.run),
        ], exception_handlers={psycopg2.OperationalError: self.no_state_db})

    def no_state_db(self, request: Request, exc: Exception) -> Response:
        """Run history lives in the state database: without it the page says so in one line
        (503, so a monitor sees the outage), never a traceback."""
        from meshctl.service.state_db import refusal, state_db_target

        reason = refusal(self.settings.state_db, exc) or (
            f"state database {state_db_target(self.settings.state_db)} did not answer: "
            f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0]}"
        )
        line = f"The status page reads run history from the state database. {reason}"
        if request.url.path.endswith(".json"):
            return JSONResponse({"detail": line}, status_code=503)
        if request.url.path.endswith("/metrics"):
            return PlainTextResponse(line + "\n", status_code=503)
        return HTMLResponse(f"<!doctype html><title>Service status</title><p>{html.escape(line)}</p>",
                            status_code=503)

    # Plain functions: Starlette runs them in its thread pool (they wait on PostgreSQL).
    def page(self, request: Request) -> Response:
        facts = data.gather(self.settings, self.clock())
        html = self.templates.get_template("status.html").render(s=facts, settings=self.settings)
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    def json(self, request: Request) -> Response:
        return JSONResponse(json.loads(json.dumps(data.gather(self.settings, self.clock()), default=str)),
                            headers={"cache-control": "no-store"})

    def run(self, request: Request) -> Response:
        facts = data.run_page(self.settings, request.path_params["run_id"])
        if facts is None:
            return HTMLResponse(self.templates.get_template("missing.html").render(run_id=request.path_params["run_id"]),
                                status_code=404)
        html = self.templates.get_template("run.html").render(r=facts, settings=self.settings)
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    def run_json(self, request: Request) -> Response:
        facts = data.run_page(self.settings, request.path_params["run_id"])
        if facts is None:
            return JSONResponse({"detail": "no such run"}, status_code=404)
        return JSONResponse(json.loads(json.dumps(facts, default=str)))

    def metrics(self, request: Request) -> Response:
        return PlainTextResponse(prometheus(data.gather(self.settings, self.clock())),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(facts: dict) -> str:
    lines = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[dict, float]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{text}}} {value}" if text else f"{name} {value}")

    runs = facts["runs"]
    last = runs[0] if runs else None
    last_good = next((r for r in runs if r["status"] in ("success", "nothing_to_do")), None)
    ts = lambda iso: datetime.fromisoformat(iso).timestamp() if iso else 0  # noqa: E731
    metric("meshctl_last_run_failed", "gauge", "1 when the newest run failed, timed out or was interrupted",
           [({}, 1 if last and last["failed"] else 0)])
    metric("meshctl_last_run_duration_seconds", "gauge", "Duration of the newest finished run",
           [({}, (last or {}).get("seconds") or 0)])
    metric("meshctl_last_good_run_timestamp_seconds", "gauge", "Start of the newest run that succeeded",
           [({}, ts(last_good["started_at"]) if last_good else 0)])
    states = ("fresh", "pending", "behind", "unknown")
    metric("meshctl_mart_freshness", "gauge", "1 for the mart's current freshness verdict (marts.md)",
           [({"mart": m["mart"], "status": s}, 1 if m["status"] == s else 0)
            for m in facts["freshness"]["marts"] for s in states])
    metric("meshctl_alerts_open", "gauge", "Open incidents by kind",
           [({"kind": k}, sum(1 for a in facts["alerts"]["open"] if a["kind"] == k))
            for k in ("run_failed", "freshness_behind", "audit_jump")])
    return "\n".join(lines) + "\n"


def mount(app, settings: Settings):
    """`app` (SQLMesh's UI) with the status routes in front and the landing-page link."""
    status = StatusApp(settings)

    async def dispatch(scope, receive, send):
        path = scope.get("path") or ""
        if scope["type"] == "http" and (path in PREFIXES or path.startswith("/status/")):
            await status.app(scope, receive, send)
            return
        if scope["type"] == "http" and scope.get("method") == "GET" and not path.startswith("/api/"):
            await app(scope, receive, _with_link(send))
            return
        await app(scope, receive, send)

    return dispatch


def _with_link(send):
    """An ASGI `send` that adds the status link to an HTML response's body."""
    state: dict = {"start": None, "html": False, "body": []}

    async def wrapped(message):
        kind = message["type"]
        if kind == "http.response.start":
            headers = dict((k.lower(), v) for k, v in message.get("headers", []))
            state["html"] = headers.get(b"content-type", b"").startswith(b"text/html") and message.get("status") == 200
            if not state["html"]:
                await send(message)
            else:
                state["start"] = message
            return
        if kind == "http.response.body" and state["html"]:
            state["body"].append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(state["body"])
            if LINK_ID.encode() not in body:
                body = body.replace(b"</body>", LANDING_LINK + b"</body>", 1) if b"</body>" in body else body + LANDING_LINK
            start = state["start"]
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return wrapped
