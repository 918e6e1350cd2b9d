"""Every path that writes to an environment runs under the run lock, fenced and recorded.

The scheduler's runs take the lock in the scheduler (their writes happen in a child process it
can kill). Everything else writes in the process that asked -- `meshctl sqlmesh plan|run|
migrate|janitor|...`, a plan applied from the UI, a state restore -- and goes through
`exclusive()`: wait (bounded) for the lock, saying who holds it; record the write in run history
(trigger `plan`, `run`, `migrate`, ...); check the lock before each warehouse write; give it back.
An in-process writer that loses the lock has no child to kill, so it ends its own process: a
writer that cannot prove it holds the lock must not go on writing (compose restarts the UI).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

from meshctl.service.run_history import RunHistory, RunRecord
from meshctl.service.run_lock import RunLock, describe_self, fence_evaluator
from meshctl.settings import Settings

log = logging.getLogger("meshctl.service.writers")

# One grant per thread: a write nested in another (a plan's janitor, say) shares it; two UI
# requests in two threads are two writers and take turns like any others.
_local = threading.local()

# SQLMesh Context methods that write to an environment or to state, with the run-history
# trigger each is recorded under. `plan --restate-model` is an `apply`.
GUARDED = {
    "apply": "plan",
    "run": "run",
    "migrate": "migrate",
    "run_janitor": "janitor",
    "invalidate_environment": "invalidate",
    "rollback": "rollback",
    "destroy": "destroy",
}


def _end_process(reason: str) -> None:
    message = f"meshctl: lost the run lock ({reason}); stopping this process before anyone else can write"
    log.critical(message)
    print(message, file=sys.stderr, flush=True)
    os._exit(75)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@contextlib.contextmanager
def exclusive(settings: Settings, trigger: str, environment: str, *, what: str | None = None,
              evaluator=None, on_lost=None) -> Iterator[RunRecord]:
    """Hold the run lock for one write; yields its run-history record (the caller may fill in
    status, models). Raises locks.LockHeld when the wait runs out."""
    if getattr(_local, "lock", None) is not None:
        with fence_evaluator(evaluator, _local.lock.verify) if evaluator is not None else contextlib.nullcontext():
            yield _local.record
        return
    history = RunHistory(settings.state_db)
    history.ensure()
    record = RunRecord(run_id=uuid.uuid4().hex, trigger=trigger, environment=environment, gateway=settings.gateway,
                       host=socket.gethostname(), pid=os.getpid(), started_at=_now())
    lock = RunLock(settings.state_db, settings.run_lock, holder=describe_self(f"{what or trigger} ({record.run_id[:8]})"),
                   on_lost=on_lost or _end_process)
    lock.acquire(settings.run_lock.wait_seconds, say=lambda line: print(line, file=sys.stderr, flush=True))
    previous_run_id = os.environ.get("MESHCTL_RUN_ID")
    try:
        if abandoned := history.mark_abandoned(exclude_run_id=record.run_id):
            log.warning("marked %d earlier run(s) abandoned (their process died)", abandoned)
        record.started_at = _now()
        history.write(record)
        _local.lock, _local.record = lock, record
        # The project's @query_tag() names this write's statements by it (one writer at a time).
        os.environ["MESHCTL_RUN_ID"] = record.run_id
        try:
            with fence_evaluator(evaluator, lock.verify) if evaluator is not None else contextlib.nullcontext():
                yield record
        except BaseException as exc:
            record.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            record.error = (str(exc).strip() or type(exc).__name__).splitlines()[0][:1000]
            raise
        else:
            if record.status == "running":
                record.status = "success"
        finally:
            record.ended_at = _now()
            try:
                history.write(record)
            except Exception as exc:  # the write itself is done; its record is best effort
                log.warning("run history not updated for %s: %s", record.run_id, exc)
    finally:
        if previous_run_id is None:
            os.environ.pop("MESHCTL_RUN_ID", None)
        else:
            os.environ["MESHCTL_RUN_ID"] = previous_run_id
        _local.lock = _local.record = None
        lock.release()


def _environment(trigger: str, context, args, kwargs) -> str:
    if trigger == "plan":
        plan = args[0] if args else kwargs["plan"]
        return plan.environment_naming_info.name
    if trigger == "run":
        return kwargs.get("environment") or (args[0] if args else None) or context.config.default_target_environment
    if trigger == "invalidate":
        return kwargs.get("name") or args[0]
    return "*"


def state_in_postgres(context) -> bool:
    """Is this context's SQLMesh state in PostgreSQL (the shared state the lock guards)? The
    embedded default (`local`, state in the DuckDB warehouse file) needs no run lock: DuckDB
    admits one writing process per file, and that file is this machine's alone."""
    state = context.config.get_state_connection(context.selected_gateway)
    return state is not None and state.type_ == "postgres"


def gateway_needs_lock(settings: Settings) -> bool:
    """`state_in_postgres` for the configured gateway, from config.yaml alone (nothing loaded)."""
    from sqlmesh import Context

    context = Context(paths=[settings.project_dir], gateway=settings.gateway, load=False)
    try:
        return state_in_postgres(context)
    finally:
        context.close()


def install_context_guards(settings: Settings) -> None:
    """Make every Context in this process take the run lock for its writing methods. The UI and
    the sqlmesh CLI build their own contexts, so the guard goes on the class."""
    from sqlmesh.core.context import GenericContext
    from sqlmesh.utils import CompletionStatus

    for name, trigger in GUARDED.items():
        original = getattr(GenericContext, name)
        if getattr(original, "_meshctl_guarded", False):
            continue

        @functools.wraps(original)
        def guarded(self, *args, __original=original, __trigger=trigger, **kwargs):
            if not state_in_postgres(self):
                return __original(self, *args, **kwargs)
            environment = _environment(__trigger, self, args, kwargs)
            with exclusive(settings, __trigger, environment, what=f"sqlmesh {__trigger}",
                           evaluator=self.snapshot_evaluator) as record:
                result = __original(self, *args, **kwargs)
                if __trigger == "plan":
                    plan = args[0] if args else kwargs["plan"]
                    record.models = sorted(s.name.replace('"', "") for s in plan.new_snapshots)
                if result is CompletionStatus.FAILURE:
                    record.status, record.error = "failed", f"sqlmesh {__trigger} failed (see its output)"
                elif result is CompletionStatus.NOTHING_TO_DO:
                    record.status = "nothing_to_do"
                return result

        guarded._meshctl_guarded = True
        setattr(GenericContext, name, guarded)
