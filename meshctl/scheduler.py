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

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
from croniter import croniter
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt, stop_any

from meshctl import heartbeat
from meshctl.logs import configure_logging
from meshctl.locks import LockHeld, RunLock, describe_self, fence_evaluator, verify_token
from meshctl.run_history import RunHistory, RunRecord
from meshctl.settings import Settings, settings_for_child, settings_from_parent

log = logging.getLogger("meshctl.scheduler")

TRANSIENT = "transient"
PERMANENT = "permanent"

# --- failure classification --------------------------------------------------------------
# Checked in this order: a permanent sign wins over a transient one (a refused login is also a
# psycopg2/Snowflake OperationalError-ish class), and anything unrecognized is permanent: a
# retry costs warehouse time and hides the error for minutes, so only known-transient retries.
_PERMANENT_MESSAGES = [
    r"incorrect username or password",
    r"password authentication failed",
    r"authentication failed",
    r"role \S+ does not exist",
    r"no pg_hba\.conf entry",
    r"jwt token is invalid",
    r"private key",
    r"permission denied",
    r"insufficient privileges",
    r"not authorized",
    r"sql compilation error",
    r"syntax error",
    r"parser error",
    r"binder error",
    r"catalog error",
    r"audit",
]
_PERMANENT_TYPES = {
    "ConfigError",
    "AuditError",
    "NodeAuditsErrors",
    "ProgrammingError",
    "ParserException",
    "BinderException",
    "CatalogException",
    "ConversionException",
    "ConstraintException",
    "SecretError",
    "LockLost",  # never retried: the lock is gone, so is the right to write
}
_TRANSIENT_MESSAGES = [
    r"timed? ?out",
    r"timeout",
    r"connection (reset|refused|aborted)",
    r"could not connect",
    r"could not translate host name",
    r"server closed the connection",
    r"connection to server .* failed",
    r"temporarily unavailable",
    r"too many connections",
    r"remaining connection slots",
    r"warehouse .*(busy|suspended|resuming|queued)",
    r"statement .* queued",
    r"could not set lock on file",
    r"conflicting lock",
    r"service unavailable",
    r"\b(429|502|503|504)\b",
    r"rate limit",
    r"network is unreachable",
    r"run process died",
    r"could not connect to snowflake backend",
]
_TRANSIENT_TYPES = {
    "TimeoutError",
    "ConnectionError",
    "ConnectionResetError",
    "ConnectionRefusedError",
    "BrokenPipeError",
    "OperationalError",
    "InterfaceError",
    "ReadTimeout",
    "ConnectTimeout",
    "ReadTimeoutError",
    "ConnectTimeoutError",
    "EndpointConnectionError",
    "TransactionConflictError",
}


def classify(error_types: list[str], message: str) -> str:
    """`transient` or `permanent`, from the exception class names (with bases, whole cause
    chain) and the messages of a failed run."""
    text = (message or "").lower()
    short = {name.rsplit(".", 1)[-1] for name in error_types}
    if short & _PERMANENT_TYPES or any(re.search(p, text) for p in _PERMANENT_MESSAGES):
        return PERMANENT
    if short & _TRANSIENT_TYPES or any(re.search(p, text) for p in _TRANSIENT_MESSAGES):
        return TRANSIENT
    return PERMANENT


def describe_exception(exc: BaseException) -> tuple[list[str], str, str]:
    """(class names incl. bases along the cause chain, joined messages, formatted traceback)."""
    types: list[str] = []
    messages: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for klass in type(current).__mro__:
            if klass in (object, BaseException, Exception):
                continue
            name = f"{klass.__module__}.{klass.__qualname__}"
            if name not in types:
                types.append(name)
        text = str(current).strip()
        if text and text not in messages:
            messages.append(text)
        current = current.__cause__ or current.__context__
    tb = "".join(traceback.format_exception(exc))
    # Root cause first: "Incorrect username or password" says more than "signal failed".
    return types, "\n".join(reversed(messages)) or type(exc).__name__, tb


# --- one attempt: a child process running Context.run ---------------------------------------
@dataclass
class Attempt:
    status: str  # success | nothing_to_do | failed | timeout | interrupted
    models: list[str] = field(default_factory=list)
    intervals: list[dict] = field(default_factory=list)
    waiting: list[dict] = field(default_factory=list)
    error: str | None = None
    error_types: list[str] = field(default_factory=list)
    traceback: str | None = None

    @property
    def error_class(self) -> str | None:
        if self.status == "failed":
            return classify(self.error_types, self.error or "")
        if self.status in ("timeout", "interrupted"):
            return self.status
        return None


Runner = Callable[..., Attempt]


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


def _subtract(checked: list, ready: list) -> list[tuple[int, int]]:
    """Parts of the `checked` intervals not covered by `ready` (both lists of (start, end))."""
    out: list[tuple[int, int]] = []
    for start, end in checked:
        pieces = [(start, end)]
        for r_start, r_end in ready:
            nxt = []
            for s, e in pieces:
                if r_end <= s or r_start >= e:
                    nxt.append((s, e))
                    continue
                if s < r_start:
                    nxt.append((s, r_start))
                if r_end < e:
                    nxt.append((r_end, e))
            pieces = nxt
        out.extend(pieces)
    return out


def _recording_console():
    """SQLMesh's plain-line console (readable in container logs) that also keeps what ran."""
    from sqlmesh.core.console import DebuggerTerminalConsole

    class RecordingConsole(DebuggerTerminalConsole):
        def __init__(self) -> None:
            super().__init__(None)
            self.evaluated: list[dict] = []
            self.waiting: list[dict] = []
            self.failures: list = []

        def update_snapshot_evaluation_progress(self, snapshot, interval, batch_idx, duration_ms, *args, **kwargs):
            if duration_ms is not None and not kwargs.get("audit_only"):
                self.evaluated.append(
                    {"model": snapshot.name.replace('"', ""), "start": _utc(interval[0]), "end": _utc(interval[1])}
                )
            super().update_snapshot_evaluation_progress(snapshot, interval, batch_idx, duration_ms, *args, **kwargs)

        def update_signal_progress(self, snapshot, signal_name, signal_idx, total_signals, ready_intervals, check_intervals, duration):
            for start, end in _subtract(check_intervals, ready_intervals):
                self.waiting.append(
                    {"model": snapshot.name.replace('"', ""), "signal": signal_name, "start": _utc(start), "end": _utc(end)}
                )
            self._write(
                f"Signal {signal_name} for {snapshot.name}: {len(ready_intervals)} of "
                f"{len(check_intervals)} interval range(s) ready"
            )

        def log_failed_models(self, errors) -> None:
            self.failures.extend(errors)
            super().log_failed_models(errors)

    return RecordingConsole()


def _project_dir(settings: Settings) -> Path:
    """The project to run: a pulled bundle when MESHCTL_BUNDLE is set, else the checkout."""
    from meshctl import artifacts

    return Path(artifacts.ensure_project(settings))


def _die_with_parent_only(parent_pid: int) -> None:
    """PR_SET_PDEATHSIG, for a child that forks nothing (see _die_with_parent for one that does)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(70)


def _die_with_parent(parent_pid: int, parent_pipe: int) -> None:
    """Nothing of a run outlives the scheduler: not this process, not what it forks.

    PR_SET_PDEATHSIG kills this process when the scheduler dies, but the kernel clears it in
    forked children (SQLMesh's loader pool, say), which would live on as orphans. So, before
    anything else, fork a keeper into this process group (the child starts its own session): it
    blocks reading a pipe whose only write end the scheduler holds, and when that end closes --
    the scheduler died, or reaped us -- it SIGKILLs the whole group, itself included."""
    _die_with_parent_only(parent_pid)
    if os.fork() == 0:  # the keeper
        try:
            # Hold nothing of the run open: our stdout is the scheduler's log pipe, read to EOF.
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.closerange(3, parent_pipe)
            os.closerange(parent_pipe + 1, 1 << 16)
            while os.read(parent_pipe, 1):
                pass
        finally:
            os.killpg(0, signal.SIGKILL)
            os._exit(0)
    os.close(parent_pipe)


def backup_main(due: str, parent_pid: int) -> int:
    """Entry of the backup process: one scheduled state backup (plus retention) for slot `due`,
    unless another scheduler already took it. Settings arrive on stdin."""
    _die_with_parent_only(parent_pid)
    from meshctl import state_backup
    from meshctl.s3 import Bucket

    settings = settings_from_parent(sys.stdin.read())
    configure_logging(settings)
    slot = datetime.fromisoformat(due)
    try:
        if any(b.taken_at >= slot for b in state_backup.list_backups(Bucket(settings))):
            log.info("state backup for %s already taken by another scheduler", due)
        elif (result := state_backup.run_scheduled_backup(settings)) is not None:
            log.info("state backup %s (%d bytes)", result.url, result.size)
    except Exception as exc:  # the next slot tries again
        log.error("state backup for %s failed: %s", due, exc)
        return 1
    return 0


def child_main(result_path: str, parent_pid: int, parent_pipe: int, lock_token: int | None) -> int:
    """Entry of the run process: one `Context.run`, its outcome as JSON in `result_path`."""
    _die_with_parent(parent_pid, parent_pipe)
    from sqlmesh.core.console import set_console
    from sqlmesh.utils import CompletionStatus

    from meshctl.gateways import open_context

    from meshctl import run_details

    settings = settings_from_parent(sys.stdin.read())
    console = run_details.recording_console()  # + per-model timings and audit results
    set_console(console)
    result: dict = {"status": "failed"}
    try:
        settings = settings.model_copy(update={"project_dir": _project_dir(settings)})
        with open_context(settings) as context:
            # Every write checks that the scheduler's grant is still the lock's current one.
            fence = (fence_evaluator(context.snapshot_evaluator, lambda: verify_token(settings, lock_token))
                     if lock_token is not None else contextlib.nullcontext())
            with fence:
                status = context.run(environment=settings.environment)
        result["status"] = {
            CompletionStatus.SUCCESS: "success",
            CompletionStatus.NOTHING_TO_DO: "nothing_to_do",
            CompletionStatus.FAILURE: "failed",
        }[status]
        if status == CompletionStatus.FAILURE:
            types, messages, tbs = [], [], []
            for failure in console.failures or []:
                t, m, tb = describe_exception(failure)
                types += [x for x in t if x not in types]
                messages.append(m)
                tbs.append(tb)
            result.update(
                error_types=types,
                error="\n".join(messages) or "run failed (see the log)",
                traceback="\n".join(tbs) or None,
            )
    except BaseException as exc:  # noqa: BLE001 -- everything is reported to the parent
        types, message, tb = describe_exception(exc)
        result.update(status="failed", error_types=types, error=message, traceback=tb)
        traceback.print_exc()
    result["intervals"] = console.evaluated
    result["models"] = sorted({i["model"] for i in console.evaluated})
    result["waiting"] = console.waiting
    Path(result_path).write_text(json.dumps(result))
    return 0


class ChildRunner:
    """Runs one attempt in `python -m meshctl.scheduler --child`, enforcing the deadline."""

    poll_seconds = 0.5

    def __call__(
        self,
        settings: Settings,
        *,
        deadline: float,
        stop: threading.Event,
        tick: Callable[[], None],
        log_path: Path,
        lock: RunLock | None = None,
    ) -> Attempt:
        if time.monotonic() >= deadline:
            return Attempt("timeout", error="time limit reached before the attempt could start")
        result_path = log_path.with_suffix(f".{uuid.uuid4().hex[:6]}.result.json")
        # The child's settings (secrets resolved here, once) go to it on stdin, never in its
        # environment; the environment is only the process's own (PATH, locale, ...).
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # SQLMesh forks a pool to load the project on every Context; for one run in a fresh child
        # that is ~2 s of forking for nothing (and a fork a long-lived process can fail).
        env.setdefault("MAX_FORK_WORKERS", "1")
        keeper_read, keeper_write = os.pipe()  # see _die_with_parent
        argv = [sys.executable, "-m", "meshctl.scheduler", "--child", str(result_path),
                "--parent", str(os.getpid()), "--parent-pipe", str(keeper_read)]
        if lock is not None:
            argv += ["--lock-token", str(lock.token)]
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE,
                pass_fds=(keeper_read,),
                start_new_session=True,  # a SIGTERM/SIGINT meant for us does not cut the run short
            )
        finally:
            os.close(keeper_read)
        with contextlib.suppress(BrokenPipeError):  # a child that died at once is reported below
            proc.stdin.write(settings_for_child(settings).encode())
            proc.stdin.close()
        try:
            return self._supervise(proc, settings, deadline=deadline, stop=stop, tick=tick,
                                   log_path=log_path, result_path=result_path, lock=lock)
        finally:
            os.close(keeper_write)  # the keeper SIGKILLs whatever of the run is still alive

    def _supervise(self, proc, settings, *, deadline, stop, tick, log_path, result_path, lock) -> Attempt:
        pump = threading.Thread(target=self._pump, args=(proc, log_path), daemon=True)
        pump.start()
        grace_deadline: float | None = None
        outcome: str | None = None
        while proc.poll() is None:
            tick()
            now = time.monotonic()
            if stop.is_set() and grace_deadline is None:
                grace_deadline = now + settings.shutdown_grace_seconds
                log.info("shutdown requested: letting the current run finish (up to %.0fs)", settings.shutdown_grace_seconds)
            if lock is not None and lock.lost:
                outcome = "lock_lost"
            elif now >= deadline:
                outcome = "timeout"
            elif grace_deadline is not None and now >= grace_deadline:
                outcome = "interrupted"
            if outcome:
                self._kill(proc)
                break
            try:
                proc.wait(timeout=self.poll_seconds)
            except subprocess.TimeoutExpired:
                pass
        pump.join(timeout=5)
        result = self._read(result_path)
        # A child killed at the deadline may already have written its result (it was exiting):
        # the outcome of the kill wins over the status it wrote; what it built is kept.
        if outcome == "timeout":
            limit = settings.run_time_limit_seconds
            return Attempt(**{**result, "status": "timeout",
                              "error": f"run exceeded its time limit of {limit:.0f}s and was killed"})
        if outcome == "interrupted":
            return Attempt(**{**result, "status": "interrupted",
                              "error": "shutdown grace period ran out; run killed"})
        if outcome == "lock_lost":
            return Attempt(**{**result, "status": "failed", "error_types": ["meshctl.locks.LockLost"],
                              "error": f"lost the run lock ({lock.lost}); run killed before its lease could expire"})
        if "status" not in result:
            rc = proc.returncode
            how = f"killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
            return Attempt(
                "failed",
                error=f"run process died ({how}) before reporting a result",
                error_types=["ChildProcessError"] if rc >= 0 else [],
            )
        return Attempt(**result)

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        finally:
            path.unlink(missing_ok=True)
        keep = {"status", "models", "intervals", "waiting", "error", "error_types", "traceback"}
        return {k: v for k, v in data.items() if k in keep}

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    @staticmethod
    def _pump(proc: subprocess.Popen, log_path: Path) -> None:
        """Child output to our stdout (container logs) and to the run's log file."""
        with open(log_path, "ab") as logfile:
            for line in iter(proc.stdout.readline, b""):
                logfile.write(line)
                logfile.flush()
                sys.stdout.buffer.write(line)
                sys.stdout.buffer.flush()


# --- the scheduler -------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(timezone.utc)


def _upload(settings: Settings, record: RunRecord, log_path: Path) -> None:
    if not settings.artifacts_bucket:
        return  # no bucket configured: the database row is the record
    from meshctl import run_records

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
    ):
        self.settings = settings
        self.runner = runner or ChildRunner()
        self.stop = threading.Event()
        self._sleep_fn = sleep
        self._beat_enabled = beat
        self._last_beat = 0.0
        self._beat_state: dict = {"state": "starting"}
        self.history = RunHistory(settings)

    # heartbeat ---------------------------------------------------------------------------
    def beat(self, force: bool = False, **state) -> None:
        if state:
            self._beat_state.update(state)
        if not self._beat_enabled:
            return
        now = time.monotonic()
        if force or now - self._last_beat >= min(5.0, self.settings.heartbeat_interval_seconds):
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
            started_at=_now(),
            scheduled_for=scheduled_for,
        )
        self.history.ensure()
        lock = RunLock(settings, holder=describe_self(f"scheduler {trigger} run {record.run_id[:8]}"))
        try:
            # A cron tick does not wait (the next tick catches up); a manual run does, bounded.
            lock.acquire(0 if trigger == "cron" else settings.run_lock_wait_seconds,
                         say=lambda line: log.info("%s", line))
        except LockHeld as exc:
            record.status, record.ended_at = "skipped", _now()
            record.error = f"locked: {exc}"
            self.history.write(record)
            log.info("skipped: %s", record.error)
            return record
        log_dir = settings.resolve(settings.run_log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{record.started_at:%Y%m%dT%H%M%S}-{record.run_id}.log"
        try:
            abandoned = self.history.mark_abandoned(exclude_run_id=record.run_id)
            if abandoned:
                log.warning("marked %d earlier run(s) abandoned (their process died)", abandoned)
            if scheduled_for is not None and self.history.tick_done(scheduled_for):
                record.status, record.ended_at = "skipped", _now()
                record.error = f"tick {scheduled_for.isoformat()} already ran on another scheduler"
                self.history.write(record)
                log.info("skipped: %s", record.error)
                return record
            self.history.write(record)
            log.info("run %s started (%s, environment %s, gateway %s)", record.run_id, trigger, record.environment, record.gateway)
            self.beat(force=True, state="running", run_id=record.run_id)
            attempt = self._attempts(record, deadline=time.monotonic() + settings.run_time_limit_seconds,
                                     log_path=log_path, lock=lock)
            record.status = attempt.status
            record.models, record.intervals, record.waiting = attempt.models, attempt.intervals, attempt.waiting
            record.error, record.error_class = attempt.error, attempt.error_class
            record.ended_at = _now()
            self.history.write(record)
            # One notification per incident (a failure streak, marts behind, audit warnings
            # jumping) and its recovery, not one per failed run; also the run's details and the
            # marts' freshness for the status page (meshctl/alerts.py). Never raises. Under the
            # lock: its freshness queries must not meet the next writer on a DuckDB file.
            from meshctl import alerts

            alerts.after_run(settings, record, log_path)
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
                                 lock=lock)
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
            stop=stop_any(stop_after_attempt(max(1, settings.run_max_attempts)), out_of_time),
            wait=wait_exponential(multiplier=settings.run_retry_initial_seconds, max=settings.run_retry_max_seconds),
            sleep=self._sleep,
            before_sleep=before_sleep,
            retry_error_callback=lambda state: state.outcome.result(),
        )
        return retrying(attempt)

    # the loop ----------------------------------------------------------------------------
    def serve(self, max_ticks: int | None = None) -> int:
        settings = self.settings
        if not croniter.is_valid(settings.schedule_cron):
            raise click.UsageError(f"MESHCTL_SCHEDULE_CRON is not a valid cron expression: {settings.schedule_cron!r}")
        self.history.ensure()
        ticks = 0
        log.info("scheduler started: cron %r, environment %s, gateway %s", settings.schedule_cron, settings.environment, settings.gateway)
        backup_due = self._next_backup(_now())
        while not self.stop.is_set():
            next_tick = croniter(settings.schedule_cron, _now()).get_next(datetime)
            self.beat(force=True, state="idle", next_tick=next_tick.isoformat(), run_id=None)
            while not self.stop.is_set() and (left := (next_tick - _now()).total_seconds()) > 0:
                if backup_due is not None and _now() >= backup_due:
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
        if not self.settings.artifacts_bucket:
            return None  # nowhere to keep a backup
        from meshctl import state_backup

        return state_backup.next_backup_at(self.settings, after)

    def _backup(self, due: datetime) -> datetime | None:
        """Take the backup due at `due` under the run lock, so no `sqlmesh run` writes state
        during the export; returns when the next one is due. Locked by a run: try again in a
        minute. The backup runs in a child process with a time limit (a hung export or upload
        must not stop the heartbeat and every run after it); its settings, secrets included,
        go to it on stdin, never through the environment."""
        settings = self.settings
        lock = RunLock(settings, holder=describe_self("scheduler state backup"))
        if not lock.try_acquire():
            return _now() + timedelta(minutes=1)
        try:
            self.beat(force=True, state="backing up")
            proc = subprocess.Popen(
                [sys.executable, "-m", "meshctl.scheduler", "--backup", due.isoformat(), "--parent", str(os.getpid())],
                stdin=subprocess.PIPE, start_new_session=True,
            )
            proc.stdin.write(settings_for_child(settings).encode())
            proc.stdin.close()
            limit = time.monotonic() + settings.state_backup_time_limit_seconds
            while proc.poll() is None:
                self.beat()
                if time.monotonic() >= limit or lock.lost:
                    ChildRunner._kill(proc)
                    log.error("state backup for %s %s; killed", due.isoformat(),
                              f"lost the run lock ({lock.lost})" if lock.lost else
                              f"exceeded its time limit of {settings.state_backup_time_limit_seconds:g}s")
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


# --- CLI ---------------------------------------------------------------------------------


def _prepare(settings: Settings) -> Settings:
    from meshctl import secrets

    configure_logging(settings)
    return secrets.resolve(settings)


@click.command("scheduler")
@click.option("--max-ticks", type=int, default=None, help="Exit after this many cron ticks (tests, one-off hosts).")
@click.pass_obj
def scheduler_command(settings: Settings, max_ticks: int | None) -> None:
    """Run `sqlmesh run` for the environment on MESHCTL_SCHEDULE_CRON, one run at a time."""
    from meshctl.wait import StateDatabaseUnavailable, wait_for_state_db

    settings = _prepare(settings)
    scheduler = Scheduler(settings, beat=True)
    scheduler.install_signal_handlers()
    scheduler.beat(force=True, state="waiting for the state database")
    try:
        wait_for_state_db(settings)
    except StateDatabaseUnavailable as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None
    raise SystemExit(scheduler.serve(max_ticks=max_ticks))


@click.command("run-once")
@click.pass_obj
def run_once_command(settings: Settings) -> None:
    """One locked, recorded `sqlmesh run` now. Exit 0 ok, 1 failed/timeout, 75 skipped (locked)."""
    from meshctl.wait import wait_for_state_db

    settings = _prepare(settings)
    wait_for_state_db(settings)  # the run lock and its history live there
    scheduler = Scheduler(settings)
    scheduler.install_signal_handlers()
    record = scheduler.run_once("manual")
    click.echo(f"{record.status}: run {record.run_id}" + (f" -- {record.error.splitlines()[0]}" if record.error else ""))
    raise SystemExit({"success": 0, "nothing_to_do": 0, "skipped": 75}.get(record.status, 1))


@click.command("runs")
@click.option("--limit", "-n", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def runs_command(settings: Settings, limit: int, as_json: bool) -> None:
    """Recent runs from the run history, newest first."""
    from meshctl.wait import wait_for_state_db

    settings = _prepare(settings)
    wait_for_state_db(settings)
    history = RunHistory(settings)
    history.ensure()
    rows = history.recent(limit)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=str))
        return
    header = f"{'started (UTC)':<20} {'trigger':<7} {'status':<13} {'try':>3} {'secs':>7} {'ivals':>5} {'wait':>4}  error"
    click.echo(header)
    click.echo("-" * len(header))
    for row in rows:
        secs = (row["ended_at"] - row["started_at"]).total_seconds() if row["ended_at"] else None
        error = (row["error"] or "").splitlines()[0][:80] if row["error"] else ""
        click.echo(
            f"{row['started_at'].astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}  {row['trigger']:<7} {row['status']:<13} "
            f"{row['attempts']:>3} {secs if secs is None else round(secs, 1)!s:>7} {len(row['intervals']):>5} "
            f"{len(row['waiting']):>4}  {error}"
        )
    if not rows:
        click.echo("(no runs recorded yet)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="internal: the scheduler's child processes")
    parser.add_argument("--child", help="one run attempt; its result goes to this file")
    parser.add_argument("--backup", help="one scheduled state backup for this slot (ISO time)")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--parent-pipe", type=int)
    parser.add_argument("--lock-token", type=int, default=None)
    args = parser.parse_args()
    if args.backup:
        sys.exit(backup_main(args.backup, args.parent))
    sys.exit(child_main(args.child, args.parent, args.parent_pipe, args.lock_token))
