"""The replay through the service (test_replay.py's fakesnow replay): each tick is the scheduler's
own `Scheduler.run_once("cron")` -- the run lock, run history, retries, run details, the freshness
assessment and the alerts -- on a simulated clock, and afterwards the status page is read in
Chromium as of that clock.

Two parts stand in for production, each for the simulated clock:
- `SimClock` is the scheduler's wall clock: the tick plus the real seconds since the tick
  began (so durations are real), plus the simulated waits between retries;
- `InProcessRunner` runs the attempt in this process instead of a child process (a child would
  run on the real clock). It does what `attempts.child_main` does -- a fresh Context per attempt,
  the run console, the lock's fence around every write, the run id for the query tags -- and
  calls the same `attempts.run_attempt`, with the tick as execution time.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from unittest import mock

from sqlmesh.core import console as sqlmesh_console

from meshctl.project.gateways import open_context
from meshctl.service.attempts import Attempt, run_attempt
from meshctl.service.run_details import RecordingConsole
from meshctl.service.run_lock import fence_evaluator, verify_token

UTC = timezone.utc


class SimClock:
    def __init__(self) -> None:
        self.tick: datetime | None = None  # naive UTC, as the scenario's ticks
        self._base = datetime(1970, 1, 1, tzinfo=UTC)
        self._since = time.monotonic()

    def at(self, tick: datetime) -> None:
        self.tick = tick
        self._base, self._since = tick.replace(tzinfo=UTC), time.monotonic()

    def __call__(self) -> datetime:
        return self._base + timedelta(seconds=time.monotonic() - self._since)

    def sleep(self, seconds: float) -> None:
        """The scheduler's wait between retries: simulated time passes, real time does not."""
        self._base += timedelta(seconds=seconds)


class InProcessRunner:
    """A `attempts.Runner`: one attempt of `Context.run` at the clock's tick, in this process."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock

    def __call__(self, settings, *, deadline, stop, tick, log_path, lock=None, run_id=None) -> Attempt:
        console = RecordingConsole()
        previous = sqlmesh_console.get_console()
        sqlmesh_console.set_console(console)
        try:
            with open(log_path, "a") as log, contextlib.redirect_stdout(log), \
                    mock.patch.dict(os.environ, {"MESHCTL_RUN_ID": run_id or ""}):
                with open_context(settings) as context:
                    fence = (fence_evaluator(context.snapshot_evaluator, lambda: verify_token(settings.state_db, settings.run_lock, lock.token))
                             if lock is not None else contextlib.nullcontext())
                    with fence:
                        result = run_attempt(context, settings.environment, console, execution_time=self.clock.tick)
        finally:
            sqlmesh_console.set_console(previous)
        return Attempt(**result)


@contextlib.contextmanager
def serving(app):
    """`app` (ASGI) on a loopback port in a thread; yields its base URL."""
    import uvicorn

    from service_helpers import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        end = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < end, "the status app did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
