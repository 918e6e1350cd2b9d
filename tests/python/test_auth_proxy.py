"""The UI's authentication middleware on its own: what a refused request writes to the log."""

from __future__ import annotations

import asyncio
import logging

from meshctl.service.basic_auth import BasicAuthMiddleware


async def _never_called(scope, receive, send):  # the UI behind the middleware
    raise AssertionError("an unauthenticated request reached the UI")


def test_a_refused_path_cannot_forge_a_log_line(caplog):
    sent = []

    async def send(message):
        sent.append(message)

    middleware = BasicAuthMiddleware(_never_called, "admin", "secret")
    forged = "/api/x\n2026-12-01 10:00:00 INFO meshctl.auth: 200 GET / from 10.0.0.1 \u2028\\"
    scope = {"type": "http", "method": "GET", "path": forged, "headers": [], "client": ("10.1.2.3", 5)}
    with caplog.at_level(logging.WARNING, logger="meshctl.auth"):
        asyncio.run(middleware(scope, None, send))
    assert sent[0]["status"] == 401
    (record,) = caplog.records
    line = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s").format(record)
    assert "\n" not in line and "\u2028" not in line
    assert line.endswith("401 GET /api/x\\n2026-12-01 10:00:00 INFO meshctl.auth: 200 GET / from 10.0.0.1 "
                         "\\u2028\\\\ from 10.1.2.3")
