"""Log output of every meshctl process: one handler on the `meshctl` logger (and uvicorn's, in
the UI), so a role's log is one stream in one format.

MESHCTL_LOG_FORMAT=json (the container default): one JSON object per event, written by
python-json-logger, with the event's fields at the top level, so CloudWatch Logs Insights can
filter on them (`filter event = "bundle_pulled" and version = "v3"`). Give fields with `extra`:

    log.info("bundle %s pulled", version, extra={"event": "bundle_pulled", "version": version})

`text` (local development): one line per event, fields appended as key=value. In both, nothing
a caller passes can start a new line: JSON escapes it, and the text format writes line breaks
and other control characters as escapes, so a request path cannot forge a log line.
"""

from __future__ import annotations

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

from meshctl.settings import Settings

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def _escape(text: str) -> str:
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = _escape(record.message)
        line = super().formatMessage(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        return line + "".join(f" {k}={_escape(repr(v) if isinstance(v, str) else str(v))}" for k, v in fields.items())


def formatter(settings: Settings) -> logging.Formatter:
    if settings.log_format == "json":
        return JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exc"},
            timestamp="ts",  # ISO 8601, UTC
        )
    return TextFormatter()


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter(settings))
    for name in ("meshctl", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
