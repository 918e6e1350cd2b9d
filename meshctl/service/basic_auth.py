"""HTTP Basic authentication in front of SQLMesh's UI, as ASGI middleware in the same process.

Why in-process middleware rather than a reverse proxy (nginx, Caddy, oauth2-proxy): the UI is
one FastAPI app; wrapping it means one process, one port and no proxy configuration to keep in
step, and there is no path around it -- the UI never listens on a port of its own. Every HTTP
request and websocket must carry the configured credentials, compared in constant time;
`/healthz` alone answers without them, for the container health check.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging

log = logging.getLogger("meshctl.auth")

HEALTH_PATH = "/healthz"


def _escaped(text: str) -> str:
    """`text` with control characters (line breaks included) and backslashes as escapes."""
    return text.encode("unicode_escape").decode("ascii")


class BasicAuthMiddleware:
    def __init__(self, app, username: str | None, password: str | None, realm: str = "Goodword SQLMesh"):
        """`password=None` turns authentication off (only for `--insecure-no-auth`)."""
        self.app = app
        self.enabled = password is not None
        self._user = (username or "").encode()
        self._password = (password or "").encode()
        self._challenge = f'Basic realm="{realm}", charset="UTF-8"'.encode()

    def authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        if not self.enabled:
            return True
        value = next((v for k, v in headers if k.lower() == b"authorization"), b"")
        scheme, _, encoded = value.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        # Compare both parts, always, so the time taken says nothing about which was wrong.
        user_ok = hmac.compare_digest(user, self._user)
        password_ok = hmac.compare_digest(password, self._password)
        return bool(sep) and user_ok and password_ok

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        if kind == "http" and scope.get("path") == HEALTH_PATH:
            await self._respond(send, 200, b'{"status":"ok"}', [(b"content-type", b"application/json")])
            return
        if self.authorized(scope.get("headers") or []):
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("?", 0)
        # The path is the client's, URL-decoded: escaped, a %0a in it cannot start a log line.
        log.warning("401 %s %s from %s", scope.get("method", kind.upper()),
                    _escaped(scope.get("path") or ""), client[0])
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await self._respond(
            send,
            401,
            json.dumps({"detail": "authentication required"}).encode(),
            [(b"content-type", b"application/json"), (b"www-authenticate", self._challenge)],
        )

    @staticmethod
    async def _respond(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")],
            }
        )
        await send({"type": "http.response.body", "body": body})
