"""One run attempt, in a child process the scheduler can kill: `Context.run` with a recording
console, its outcome as JSON for the parent, the whole process group dying with the scheduler
(the keeper), settings handed over on stdin. Also the child that takes a scheduled state backup."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from meshctl.logs import configure_logging
from meshctl.service.failures import classify, describe_exception
from meshctl.service.run_lock import RunLock, fence_evaluator, verify_token
from meshctl.settings import Settings, settings_for_child, settings_from_parent

log = logging.getLogger("meshctl.service.attempts")


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


def _project_dir(settings: Settings) -> Path:
    """The project to run: a pulled bundle when MESHCTL_BUNDLE is set, else the checkout."""
    from meshctl.artifacts import bundles as artifacts

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
    from meshctl.artifacts import state_backups as state_backup
    from meshctl.artifacts.s3 import Bucket

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


def run_attempt(context, environment: str, console, execution_time: datetime | None = None) -> dict:
    """One `Context.run` of `environment`, its outcome as the JSON the parent reads (the fields
    of `Attempt`). `console` is the run's run_details.RecordingConsole, already SQLMesh's console;
    `execution_time` is now unless given (a replay on a simulated clock gives it)."""
    from sqlmesh.utils import CompletionStatus

    result: dict = {"status": "failed"}
    try:
        status = context.run(environment=environment, execution_time=execution_time)
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
    except Exception as exc:  # noqa: BLE001 -- everything is reported to the parent
        types, message, tb = describe_exception(exc)
        result.update(status="failed", error_types=types, error=message, traceback=tb)
        traceback.print_exc()
    result["intervals"] = console.evaluated
    result["models"] = sorted({i["model"] for i in console.evaluated})
    result["waiting"] = console.waiting
    return result


def child_main(result_path: str, parent_pid: int, parent_pipe: int, lock_token: int | None) -> int:
    """Entry of the run process: one `Context.run`, its outcome as JSON in `result_path`."""
    _die_with_parent(parent_pid, parent_pipe)
    from sqlmesh.core.console import set_console

    from meshctl.project.gateways import open_context
    from meshctl.service.run_details import RecordingConsole

    settings = settings_from_parent(sys.stdin.read())
    console = RecordingConsole()
    set_console(console)
    result: dict = {"status": "failed"}
    try:
        settings = settings.updated(project_dir=_project_dir(settings))
        with open_context(settings) as context:
            # Every write checks that the scheduler's grant is still the lock's current one.
            fence = (fence_evaluator(context.snapshot_evaluator, lambda: verify_token(settings.state_db, settings.run_lock, lock_token))
                     if lock_token is not None else contextlib.nullcontext())
            with fence:
                result = run_attempt(context, settings.environment, console)
    except BaseException as exc:  # noqa: BLE001 -- opening the project failed: reported too
        types, message, tb = describe_exception(exc)
        result.update(status="failed", error_types=types, error=message, traceback=tb,
                      intervals=console.evaluated, models=sorted({i["model"] for i in console.evaluated}),
                      waiting=console.waiting)
        traceback.print_exc()
    Path(result_path).write_text(json.dumps(result))
    return 0


class ChildRunner:
    """Runs one attempt in `python -m meshctl.service.scheduler --child`, enforcing the deadline."""

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
        run_id: str | None = None,
    ) -> Attempt:
        if time.monotonic() >= deadline:
            return Attempt("timeout", error="time limit reached before the attempt could start")
        result_path = log_path.with_suffix(f".{uuid.uuid4().hex[:6]}.result.json")
        # The child's settings (secrets resolved here, once) go to it on stdin, never in its
        # environment; the environment is only the process's own (PATH, locale, ...).
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if run_id:  # what the project's @query_tag() names the run's statements by
            env["MESHCTL_RUN_ID"] = run_id
        # SQLMesh forks a pool to load the project on every Context; for one run in a fresh child
        # that is ~2 s of forking for nothing (and a fork a long-lived process can fail).
        env.setdefault("MAX_FORK_WORKERS", "1")
        keeper_read, keeper_write = os.pipe()  # see _die_with_parent
        argv = [sys.executable, "-m", "meshctl.service.attempts", "--child", str(result_path),
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
                grace_deadline = now + settings.scheduler.shutdown_grace_seconds
                log.info("shutdown requested: letting the current run finish (up to %.0fs)", settings.scheduler.shutdown_grace_seconds)
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
            limit = settings.scheduler.run_time_limit_seconds
            return Attempt(**{**result, "status": "timeout",
                              "error": f"run exceeded its time limit of {limit:.0f}s and was killed"})
        if outcome == "interrupted":
            return Attempt(**{**result, "status": "interrupted",
                              "error": "shutdown grace period ran out; run killed"})
        if outcome == "lock_lost":
            return Attempt(**{**result, "status": "failed", "error_types": ["meshctl.service.run_lock.LockLost"],
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
