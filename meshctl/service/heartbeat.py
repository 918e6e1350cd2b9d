"""The container health check: `meshctl health`.

The scheduler rewrites a small JSON heartbeat from its main loop (so a hung loop goes stale);
the UI writes a marker naming its port, and health then asks the UI's `/healthz`. Exit 0 when
healthy, 1 otherwise, with one line saying why.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from meshctl.settings import Settings


def heartbeat_file(settings: Settings) -> Path:
    return settings.resolve(settings.heartbeat.path)


def write(settings: Settings, role: str, **fields) -> None:
    """Atomically replace the heartbeat file (readers never see half a file)."""
    path = heartbeat_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"role": role, "pid": os.getpid(), "host": socket.gethostname(), "ts": time.time(), **fields}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, default=str))
    os.replace(tmp, path)


def read(settings: Settings) -> dict | None:
    try:
        return json.loads(heartbeat_file(settings).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def check(settings: Settings, *, now: float | None = None, timeout: float = 3.0) -> tuple[bool, str]:
    beat = read(settings)
    if beat is None:
        return False, f"no heartbeat at {heartbeat_file(settings)} (service not started yet?)"
    role = beat.get("role")
    if role == "ui":
        url = f"http://127.0.0.1:{beat.get('port', settings.ui.port)}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status == 200, f"ui {url}: HTTP {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            return False, f"ui {url}: {exc}"
    age = (now or time.time()) - float(beat.get("ts", 0))
    if age > settings.heartbeat.max_age_seconds:
        return False, (
            f"{role} heartbeat is {age:.0f}s old (limit {settings.heartbeat.max_age_seconds:.0f}s): "
            "the main loop is stuck or the process is gone"
        )
    return True, f"{role} heartbeat {age:.0f}s old, state {beat.get('state', '?')}"
