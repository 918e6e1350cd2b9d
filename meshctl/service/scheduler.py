"""The scheduler: `sqlmesh run prod` on a cron schedule, one run at a time, recorded.

Per tick (and per `meshctl run-once`):
  1. take the run lock (locks.RunLock, a fenced lease) -- a cron tick that finds it held records
     `skipped` and stops there; `run-once` waits for it (bounded). A cron tick that another
     scheduler already ran is skipped too, so two schedulers on one schedule give one run per tick;
  2. run `Context.run(environment)` in a child process (its own process group, killed with the
     parent), so the time limit is a real SIGKILL and a hung warehouse call cannot hang us; the
     child checks the lock before every write, and is killed at once if the lease is lost;
  3. retry transient failures with exponential backoff (tenacity), never permanent ones;
  4. record the run in `meshctl.run_history`, raise or recover incidents (alerts.py), unlock,
     upload the record.
The main loop rewrites the heartbeat file; SIGTERM stops new work, lets the current run finish
(for at most MESHCTL_SHUTDOWN_GRACE_SECONDS), releases the lock and exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
from croniter import croniter
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt, stop_any

from meshctl.service import heartbeat
from meshctl.service.attempts import Attempt, ChildRunner, Runner
from meshctl.service.failures import TRANSIENT
from meshctl.service.run_history import RunHistory, RunRecord
from meshctl.service.run_lock import LockHeld, RunLock, describe_self
from meshctl.settings import Settings, settings_for_child

log = logging.getLogger("meshctl.service.scheduler")


# --- the scheduler -------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(timezone.utc)


def _upload(settings: Settings, record: RunRecord, log_path: Path) -> None:
    if not settings.artifacts.bucket:
        return  # no bucket configured: the database row is the record
    from meshctl.artifacts import run_records

    # upload_run_record never raises and logs its own failures; a failed upload never fails a run.
    if not run_records.upload_run_record(settings, record.as_json(), log_path if log_path.exists() else None):
        log.warning("run record %s was not uploaded", record.run_id)


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        *,
        runner: Runner | None = None,
        sleep: Callable[[float], None] | None = None,
        beat: bool = False,
        clock: Callable[[], datetime] = _now,
    ):
        """`runner`, `sleep` and `clock` are the child-process runner, the interruptible sleep and
        the UTC wall clock unless given (a replay on a simulated clock gives all three)."""
        self.settings = settings
        self.clock = clock
        self.runner = runner or ChildRunner()
        self.stop = threading.Event()
        self._sleep_fn = sleep
        self._beat_enabled = beat
        self._last_beat = 0.0
        self._beat_state: dict = {"state": "starting"}
        self.history = RunHistory(settings.state_db)

    # heartbeat ---------------------------------------------------------------------------
    def beat(self, force: bool = False, **state) -> None:
        if state:
            self._beat_state.update(state)
        if not self._beat_enabled:
            return
        now = time.monotonic()
        if force or now - self._last_beat >= min(5.0, self.settings.heartbeat.interval_seconds):
            heartbeat.write(self.settings, "scheduler", **self._beat_state)
            self._last_beat = now

    def _sleep(self, seconds: float) -> None:
        if self._sleep_fn is not None:
            self._sleep_fn(seconds)
            return
        end = time.monotonic() + seconds
        while not self.stop.is_set() and (left := end - time.monotonic()) > 0:
            self.stop.wait(min(left, 1.0))
            self.beat()

    # one run -----------------------------------------------------------------------------
    def run_once(self, trigger: str = "manual", scheduled_for: datetime | None = None) -> RunRecord:
        settings = self.settings
        record = RunRecord(
            run_id=uuid.uuid4().hex,
            trigger=trigger,
            environment=settings.environment,
            gateway=settings.gateway,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.clock(),
            scheduled_for=scheduled_for,
        )
        self.history.ensure()
        lock = RunLock(settings.state_db, settings.run_lock, holder=describe_self(f"scheduler {trigger} run {record.run_id[:8]}"))
        try:
            # A cron tick does not wait (the next tick catches up); a manual run does, bounded.
            lock.acquire(0 if trigger == "cron" else settings.run_lock.wait_seconds,
                         say=lambda line: log.info("%s", line))
        except LockHeld as exc:
            record.status, record.ended_at = "skipped", self.clock()
            record.error = f"locked: {exc}"
            self.history.write(record)
            log.info("skipped: %s", record.error)
            return record
        log_dir = settings.resolve(settings.scheduler.run_log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{record.started_at:%Y%m%dT%H%M%S}-{record.run_id}.log"
        try:
            abandoned = self.history.mark_abandoned(exclude_run_id=record.run_id)
            if abandoned:
                log.warning("marked %d earlier run(s) abandoned (their process died)", abandoned)
            if scheduled_for is not None and self.history.tick_done(scheduled_for):
                record.status, record.ended_at = "skipped", self.clock()
                record.error = f"tick {scheduled_for.isoformat()} already ran on another scheduler"
                self.history.write(record)
                log.info("skipped: %s", record.error)
                return record
            self.history.write(record)
            log.info("run %s started (%s, environment %s, gateway %s)", record.run_id, trigger, record.environment, record.gateway)
            self.beat(force=True, state="running", run_id=record.run_id)
            attempt = self._attempts(record, deadline=time.monotonic() + settings.scheduler.run_time_limit_seconds,
                                     log_path=log_path, lock=lock)
            record.status = attempt.status
            record.models, record.intervals, record.waiting = attempt.models, attempt.intervals, attempt.waiting
            record.error, record.error_class = attempt.error, attempt.error_class
            record.ended_at = self.clock()
            self.history.write(record)
            # One notification per incident (a failure streak, marts behind, audit warnings
            # jumping) and its recovery, not one per failed run; also the run's details and the
            # marts' freshness for the status page (meshctl/service/alerts.py). Never raises. Under the
            # lock: its freshness queries must not meet the next writer on a DuckDB file.
            from meshctl.service import alerts

            alerts.after_run(settings, record, log_path, clock=self.clock)
        finally:
            lock.release()
        seconds = (record.ended_at - record.started_at).total_seconds()
        log.info(
            "run %s %s after %d attempt(s) in %.1fs: %d interval(s) of %d model(s)%s%s",
            record.run_id, record.status, record.attempts, seconds, len(record.intervals), len(record.models),
            f", {len(record.waiting)} waiting on readiness signals" if record.waiting else "",
            f"; {record.error_class} error: {(record.error or '').splitlines()[0][:300]}" if record.error else "",
        )
        _upload(settings, record, log_path)
        return record

    def _attempts(self, record: RunRecord, *, deadline: float, log_path: Path, lock: RunLock | None = None) -> Attempt:
        settings = self.settings
        last: list[Attempt] = []

        def attempt() -> Attempt:
            if self.stop.is_set() and last:
                prev = last[-1]
                return Attempt("interrupted", error=f"shutdown before retry; last error: {prev.error}", error_types=prev.error_types)
            record.attempts += 1
            if record.attempts > 1:
                self.history.write(record)
            result = self.runner(settings, deadline=deadline, stop=self.stop, tick=self.beat, log_path=log_path,
                                 lock=lock, run_id=record.run_id)
            last.append(result)
            return result

        def out_of_time(state: RetryCallState) -> bool:
            return self.stop.is_set() or time.monotonic() + (state.upcoming_sleep or 0) >= deadline

        def before_sleep(state: RetryCallState) -> None:
            failed: Attempt = state.outcome.result()
            log.warning(
                "attempt %d failed with a transient error; retrying in %.1fs: %s",
                state.attempt_number, state.upcoming_sleep, (failed.error or "").splitlines()[0][:300],
            )

        from tenacity import wait_exponential

        retrying = Retrying(
            retry=retry_if_result(lambda a: a.status == "failed" and a.error_class == TRANSIENT),
            stop=stop_any(stop_after_attempt(max(1, settings.scheduler.run_max_attempts)), out_of_time),
            wait=wait_exponential(multiplier=settings.scheduler.run_retry_initial_seconds, max=settings.scheduler.run_retry_max_seconds),
            sleep=self._sleep,
            before_sleep=before_sleep,
            retry_error_callback=lambda state: state.outcome.result(),
        )
        return retrying(attempt)

    # the loop ----------------------------------------------------------------------------
    def serve(self, max_ticks: int | None = None) -> int:
        settings = self.settings
        if not croniter.is_valid(settings.scheduler.cron):
            raise click.UsageError(f"MESHCTL_SCHEDULE_CRON is not a valid cron expression: {settings.scheduler.cron!r}")
        self.history.ensure()
        ticks = 0
        log.info("scheduler started: cron %r, environment %s, gateway %s", settings.scheduler.cron, settings.environment, settings.gateway)
        backup_due = self._next_backup(self.clock())
        while not self.stop.is_set():
            next_tick = croniter(settings.scheduler.cron, self.clock()).get_next(datetime)
            self.beat(force=True, state="idle", next_tick=next_tick.isoformat(), run_id=None)
            while not self.stop.is_set() and (left := (next_tick - self.clock()).total_seconds()) > 0:
                if backup_due is not None and self.clock() >= backup_due:
                    backup_due = self._backup(backup_due)
                self.stop.wait(min(left, 1.0))
                self.beat()
            if self.stop.is_set():
                break
            ticks += 1
            try:
                self.run_once("cron", scheduled_for=next_tick)
            except Exception:  # e.g. the state database went away mid-tick: log, keep serving
                log.exception("tick %s could not be run", next_tick.isoformat())
            if max_ticks is not None and ticks >= max_ticks:
                break
        self.beat(force=True, state="stopped")
        log.info("scheduler stopped after %d tick(s)", ticks)
        return 0

    # scheduled state backups ---------------------------------------------------------------
    def _next_backup(self, after: datetime) -> datetime | None:
        if not self.settings.artifacts.bucket:
            return None  # nowhere to keep a backup
        from meshctl.artifacts import state_backups as state_backup

        return state_backup.next_backup_at(self.settings, after)

    def _backup(self, due: datetime) -> datetime | None:
        """Take the backup due at `due` under the run lock, so no `sqlmesh run` writes state
        during the export; returns when the next one is due. Locked by a run: try again in a
        minute. The backup runs in a child process with a time limit (a hung export or upload
        must not stop the heartbeat and every run after it); its settings, secrets included,
        go to it on stdin, never through the environment."""
        settings = self.settings
        lock = RunLock(settings.state_db, settings.run_lock, holder=describe_self("scheduler state backup"))
        if not lock.try_acquire():
            return self.clock() + timedelta(minutes=1)
        try:
            self.beat(force=True, state="backing up")
            proc = subprocess.Popen(
                [sys.executable, "-m", "meshctl.service.attempts", "--backup", due.isoformat(), "--parent", str(os.getpid())],
                stdin=subprocess.PIPE, start_new_session=True,
            )
            proc.stdin.write(settings_for_child(settings).encode())
            proc.stdin.close()
            limit = time.monotonic() + settings.state_backup.time_limit_seconds
            while proc.poll() is None:
                self.beat()
                if time.monotonic() >= limit or lock.lost:
                    ChildRunner._kill(proc)
                    log.error("state backup for %s %s; killed", due.isoformat(),
                              f"lost the run lock ({lock.lost})" if lock.lost else
                              f"exceeded its time limit of {settings.state_backup.time_limit_seconds:g}s")
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.5)
        finally:
            lock.release()
        return self._next_backup(due)

    def install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            log.info("received %s: finishing the current run, taking no new work", signal.Signals(signum).name)
            self.stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
