"""Log lines as an operator's log search sees them: in JSON, one object per event with its fields
at the top level (not JSON inside a JSON string); in text, one line per event whatever a caller
passes. Through the real `meshctl` process, as a role writes them."""

from __future__ import annotations

import json
import logging

from meshctl.logs import configure_logging
from meshctl.settings import Settings


def _emit(settings, capsys) -> list[str]:
    configure_logging(settings)
    log = logging.getLogger("meshctl.test")
    log.info("bundle %s pulled", "v3", extra={"event": "bundle_pulled", "version": "v3", "files": 12})
    log.warning("refused %s", "/api\n2026-12-01 00:00:00 INFO meshctl.service.ui: forged")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("run failed")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /healthz HTTP/1.1" 200')
    return capsys.readouterr().out.splitlines()


def test_json_events_carry_their_fields_at_the_top_level(capsys):
    lines = _emit(Settings(_env_file=None, log_format="json"), capsys)
    events = [json.loads(line) for line in lines]  # every line is one whole object
    assert len(events) == 4
    pulled, refused, failed, access = events
    assert pulled["event"] == "bundle_pulled" and pulled["version"] == "v3" and pulled["files"] == 12
    assert pulled["message"] == "bundle v3 pulled" and pulled["level"] == "INFO"
    assert pulled["logger"] == "meshctl.test" and pulled["ts"].endswith("+00:00")
    # The line break stays inside the event's string: no second line, nothing forged.
    assert refused["message"] == "refused /api\n2026-12-01 00:00:00 INFO meshctl.service.ui: forged"
    assert "ValueError: boom" in failed["exc"]
    assert access["logger"] == "uvicorn.access", "the UI's access log is in the same stream and format"


def test_text_lines_cannot_be_forged_and_show_the_fields(capsys):
    lines = _emit(Settings(_env_file=None, log_format="text"), capsys)
    assert "bundle v3 pulled event='bundle_pulled' version='v3' files=12" in lines[0]
    assert lines[1].endswith("refused /api\\n2026-12-01 00:00:00 INFO meshctl.service.ui: forged")
    assert not any(line.startswith("2026-12-01 00:00:00") for line in lines)
    assert any("ValueError: boom" in line for line in lines)  # the traceback follows its event
