"""Log output of the long-running roles (UI, scheduler): one handler on the `meshctl` logger,
JSON lines when MESHCTL_LOG_FORMAT=json (the container default), so CloudWatch can search them."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

from meshctl.settings import Settings


def configure_logging(settings: Settings) -> None:
    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            out = {
                "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(),
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": record.getMessage(),
            }
            if record.exc_info:
                out["exc"] = self.formatException(record.exc_info)
            return json.dumps(out)

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter()
        if settings.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger("meshctl")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
