"""`meshctl ui`: SQLMesh's web UI on :8000, behind HTTP Basic authentication.

Start-up, in order: resolve secrets; refuse to start without UI credentials (unless
`--insecure-no-auth`); wait, bounded, for the PostgreSQL state database; refuse to start when
the state was written by another SQLMesh/SQLGlot version (a person runs `meshctl sqlmesh
migrate` deliberately -- never two processes at once); then serve SQLMesh's own FastAPI app
(what `sqlmesh ui` runs through uvicorn) in this process, wrapped in auth_proxy's middleware.
Running in-process also lets the emulated `fakesnow` gateway work in the UI.
"""

from __future__ import annotations

import logging
import os

import click

from meshctl.project import state_version
from meshctl.service.basic_auth import BasicAuthMiddleware
from meshctl.settings import Settings

log = logging.getLogger("meshctl.service.ui")


class StartupRefused(click.ClickException):
    exit_code = 3


def build_app(settings: Settings, *, insecure_no_auth: bool = False):
    """SQLMesh's UI app for this project and gateway, wrapped in Basic authentication."""
    # SQLMesh's web server reads its project, gateway and mode from these variables (that is how
    # `sqlmesh ui` configures it); set them before the app and its cached settings are built.
    os.environ["PROJECT_PATH"] = str(settings.project_dir)
    os.environ["GATEWAY"] = settings.gateway
    os.environ["UI_MODE"] = settings.ui.mode
    from web.server import settings as web_settings
    from web.server.main import create_app

    web_settings.get_settings.cache_clear()
    web_settings.invalidate_context_cache()
    from meshctl.status.web import mount

    password = None if insecure_no_auth else settings.ui.password.get_secret_value()
    # /status, /status.json and the landing page's link to them, behind the same login.
    return BasicAuthMiddleware(mount(create_app(), settings), settings.ui.username, password)


def preflight(settings: Settings) -> None:
    """Wait for the state database and check its versions. Raises StartupRefused."""
    from sqlmesh import Context

    from meshctl.project.gateways import close_context
    from meshctl.service.state_db import StateDatabaseUnavailable, wait_for_state_db

    context = Context(paths=[settings.project_dir], gateway=settings.gateway, load=False)
    try:
        state_connection = context.config.get_state_connection(settings.gateway)
        if state_connection is not None and state_connection.type_ == "postgres":
            try:
                wait_for_state_db(settings.state_db)
            except StateDatabaseUnavailable as exc:
                raise StartupRefused(str(exc)) from None
        status = state_version.check_context(context)
    finally:
        close_context(context)
    if not status.compatible:
        raise StartupRefused(
            f"state version mismatch: {status.detail} -- refusing to start. Upgrade or pin this "
            "image to the SQLMesh version the state was written with, or have one person run "
            "`meshctl sqlmesh migrate` once (back the state up first)."
        )
    log.info("state database ok: %s", status.detail)
