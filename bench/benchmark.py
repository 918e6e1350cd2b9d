"""Benchmark of the main job on the `local` (DuckDB) gateway, at a configurable scale.

    python bench/benchmark.py [--days 365 --events-per-day 14000 ...]      (or `make bench`)

In a fresh LOCAL_DATA_DIR: generate RAW (meshctl demo-data's `generate`), a full build (`plan` on
prod), one more day of RAW (`append_day`) and the incremental `run` of the next day, then a
`plan` with nothing to do. The SQLMesh project (models, macros, signals, config.yaml, ...) is
copied into the work dir first, so edits made in the checkout meanwhile do not change what is
measured (the `meshctl` package itself is imported from the installed checkout). Each phase
runs in its own child process (spawned, one after the other), so its peak RSS (getrusage
ru_maxrss, which includes DuckDB's native memory) is its own; every child pays the Python and
SQLMesh imports, which are outside the timed section. Figures only: nothing asserts a duration.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from unittest import mock

FCT_EVENTS = '"GOODWORD_WH"."MARTS"."FCT_EVENTS"'
PROJECT_DIR = Path(__file__).resolve().parent.parent
NOT_PROJECT = (".git", ".venv", "data", "logs", "bench", ".cache", ".pytest_cache", "__pycache__",
               "*.egg-info", "*.duckdb", "*.duckdb.wal")


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def settings_for(data_dir: str):
    from meshctl.settings import Settings

    return Settings(_env_file=None, LOCAL_DATA_DIR=Path(data_dir), MESHCTL_GATEWAY="local",
                    MESHCTL_PROJECT_DIR=Path(os.environ["MESHCTL_PROJECT_DIR"]))


def project_version() -> str:
    git = ["git", "--no-optional-locks", "-C", str(PROJECT_DIR)]  # read only: no index refresh
    try:
        head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(git + ["status", "--porcelain"], capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def count(adapter, sql: str) -> int:
    return int(adapter.fetchone(sql)[0])


@contextlib.contextmanager
def step_times():
    """Seconds spent per model in SQLMesh's snapshot evaluator (evaluate, audit), to see what
    dominates a plan or run; the rest is SQLMesh's own work (state, signals, tests, lint)."""
    from sqlmesh.core.snapshot.evaluator import SnapshotEvaluator

    times: collections.Counter = collections.Counter()

    def timed(method, what):
        def wrapper(self, snapshot, *args, **kwargs):
            began = time.monotonic()
            try:
                return method(self, snapshot, *args, **kwargs)
            finally:
                model = snapshot.name.replace('"', "").split(".", 1)[-1]  # SCHEMA.MODEL
                times[f"{what} {model}"] += time.monotonic() - began
        return wrapper

    with (mock.patch.object(SnapshotEvaluator, "evaluate", timed(SnapshotEvaluator.evaluate, "evaluate")),
          mock.patch.object(SnapshotEvaluator, "audit", timed(SnapshotEvaluator.audit, "audit"))):
        yield times


def report_steps(times: collections.Counter, seconds: float) -> None:
    say(f"  slowest steps: " + "; ".join(f"{k} {v:.1f}s" for k, v in times.most_common(6)))
    say(f"  evaluate+audit {sum(times.values()):.1f}s of {seconds:.1f}s")


# --- phases: each runs in a child process and returns (seconds, rows, note) --------------------


def phase_generate(data_dir: str, params) -> tuple[float, int, str]:
    from meshctl import raw_warehouse
    from meshctl.demo_data import EVENTS, generate
    from meshctl.raw_schema import raw_tables

    settings = settings_for(data_dir)
    with raw_warehouse.open_warehouse(settings, "local") as adapter:
        began = time.monotonic()
        counts = generate(adapter, raw_tables(settings.project_dir), params, lambda s: say("  " + s))
        seconds = time.monotonic() - began
    return seconds, sum(counts.values()), f"{counts[EVENTS]:,} EVENTS rows"


def phase_build(data_dir: str, execution_time: datetime) -> tuple[float, int, str]:
    from meshctl.gateways import open_context

    began = time.monotonic()
    with open_context(settings_for(data_dir), "local") as context:
        loaded = time.monotonic() - began
        say(f"  context loaded in {loaded:.1f}s; plan prod at {execution_time} ...")
        with step_times() as times:
            began = time.monotonic()
            context.plan("prod", auto_apply=True, no_prompts=True, execution_time=execution_time)
            seconds = time.monotonic() - began
        report_steps(times, seconds)
        rows = count(context.engine_adapter, f"SELECT COUNT(*) FROM {FCT_EVENTS}")
    return seconds, rows, f"FCT_EVENTS rows; context load {loaded:.1f}s not included"


def phase_append(data_dir: str, seed: int, events_per_day: int) -> tuple[float, int, str]:
    from meshctl import raw_warehouse
    from meshctl.demo_data import EVENTS, append_day
    from meshctl.raw_schema import raw_tables

    settings = settings_for(data_dir)
    with raw_warehouse.open_warehouse(settings, "local") as adapter:
        events = raw_warehouse.quoted(EVENTS).sql(adapter.dialect)
        before = count(adapter, f"SELECT COUNT(*) FROM {events}")
        began = time.monotonic()
        day = append_day(adapter, raw_tables(settings.project_dir), seed, events_per_day,
                         lambda s: say("  " + s))
        seconds = time.monotonic() - began
        added = count(adapter, f"SELECT COUNT(*) FROM {events}") - before
    return seconds, added, f"EVENTS rows added for {day} (+ late ones)"


def phase_run(data_dir: str, execution_time: datetime, new_day: date) -> tuple[float, int, str]:
    from meshctl.gateways import open_context

    day_rows = f"SELECT COUNT(*) FROM {FCT_EVENTS} WHERE EVENT_DATE = DATE '{new_day}'"
    began = time.monotonic()
    with open_context(settings_for(data_dir), "local") as context:
        loaded = time.monotonic() - began
        before = count(context.engine_adapter, day_rows)
        total_before = count(context.engine_adapter, f"SELECT COUNT(*) FROM {FCT_EVENTS}")
        say(f"  context loaded in {loaded:.1f}s; run prod at {execution_time} ...")
        with step_times() as times:
            began = time.monotonic()
            status = context.run("prod", execution_time=execution_time)
            seconds = time.monotonic() - began
        report_steps(times, seconds)
        after = count(context.engine_adapter, day_rows)
        total_after = count(context.engine_adapter, f"SELECT COUNT(*) FROM {FCT_EVENTS}")
    say(f"  run status {status.name}; FCT_EVENTS rows dated {new_day}: {before:,} -> {after:,}; "
        f"FCT_EVENTS total {total_before:,} -> {total_after:,}")
    if not status.is_success or after <= before:
        raise SystemExit(f"the run did no real work (status {status.name}, {new_day} rows "
                         f"{before} -> {after}): its timing would mean nothing")
    return seconds, after, f"FCT_EVENTS rows for {new_day} (was {before}); total {total_after:,}"


def phase_noop_plan(data_dir: str, execution_time: datetime) -> tuple[float, int, str]:
    from meshctl.gateways import open_context

    began = time.monotonic()
    with open_context(settings_for(data_dir), "local") as context:
        loaded = time.monotonic() - began
        say(f"  context loaded in {loaded:.1f}s; plan prod at {execution_time} ...")
        began = time.monotonic()
        plan = context.plan("prod", auto_apply=True, no_prompts=True, execution_time=execution_time)
        seconds = time.monotonic() - began
    note = f"has_changes={plan.has_changes}, requires_backfill={plan.requires_backfill}"
    say(f"  {note}, missing intervals: {len(plan.missing_intervals)}")
    return seconds, 0, note


def _measured(phase, *args):
    """In the child: the phase's result and the child's own peak RSS (KiB on Linux)."""
    result = phase(*args)
    return result, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def in_child(phase, *args):
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited memory
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(_measured, phase, *args).result()


# --- the machine ---------------------------------------------------------------------------


def machine() -> list[str]:
    import duckdb
    import sqlmesh

    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    mem_kib = first("/proc/meminfo", "MemTotal").split()[0]
    mem = f"{int(mem_kib) / 1024**2:.1f} GiB" if mem_kib.isdigit() else "?"
    return [
        f"CPU: {first('/proc/cpuinfo', 'model name')}, nproc {os.cpu_count()}, memory {mem}",
        f"Python {platform.python_version()}, sqlmesh {sqlmesh.__version__}, "
        f"duckdb {duckdb.__version__}, {platform.system()} {platform.release()}",
        "load average (1/5/15 min) at start: %.2f %.2f %.2f" % os.getloadavg(),
    ]


# --- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--organizations", type=int, default=400)
    parser.add_argument("--users", type=int, default=8000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--events-per-day", type=int, default=14000)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--end-date", type=date.fromisoformat, default=date(2025, 12, 31),
                        help="last complete day of the window (default 2025-12-31)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where local/ (LOCAL_DATA_DIR) and project/ (the project's copy) "
                             "go, kept afterwards; default: a fresh temporary directory, removed")
    args = parser.parse_args()

    from meshctl.demo_data import DemoParams

    params = DemoParams(organizations=args.organizations, users=args.users, days=args.days,
                        events_per_day=args.events_per_day, seed=args.seed, end_date=args.end_date)
    first_day = args.end_date - timedelta(days=args.days - 1)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="goodword-bench-"))
    data_dir, project = (work_dir / "local").resolve(), (work_dir / "project").resolve()
    if data_dir.exists() or project.exists():
        parser.error(f"{work_dir} already holds local/ or project/: the benchmark needs fresh ones")
    shutil.copytree(PROJECT_DIR, project, ignore=shutil.ignore_patterns(*NOT_PROJECT))
    # config.yaml and the readiness signals read these from the environment (children inherit it).
    os.environ["MESHCTL_PROJECT_DIR"] = str(project)
    os.environ["LOCAL_DATA_DIR"] = str(data_dir)
    os.environ["MODEL_START"] = first_day.isoformat()
    os.environ["MESHCTL_GATEWAY"] = "local"

    # Shortly after midnight, as the scheduler would: the day before is the latest complete one.
    build_at = datetime.combine(args.end_date + timedelta(days=1), datetime.min.time()) + timedelta(minutes=30)
    run_at = build_at + timedelta(days=1)
    new_day = args.end_date + timedelta(days=1)

    for line in machine():
        say(line)
    say(f"Scale: {args.days} days {first_day}..{args.end_date}, {args.events_per_day:,} events/day, "
        f"{args.organizations:,} organizations, {args.users:,} users, seed {args.seed}")
    say(f"Project {PROJECT_DIR} at {project_version()}, copied to {project}")
    say(f"LOCAL_DATA_DIR={data_dir}  MODEL_START={first_day}")

    phases = [
        ("generate RAW", phase_generate, (str(data_dir), params)),
        ("full build (plan prod)", phase_build, (str(data_dir), build_at)),
        ("append one day (RAW)", phase_append, (str(data_dir), args.seed, args.events_per_day)),
        ("incremental run (next day)", phase_run, (str(data_dir), run_at, new_day)),
        ("no-op plan", phase_noop_plan, (str(data_dir), run_at)),
    ]
    results = []
    began = time.monotonic()
    try:
        for name, phase, phase_args in phases:
            say(f"{name} ...")
            (seconds, rows, note), rss_kib = in_child(phase, *phase_args)
            say(f"{name}: {seconds:.1f}s, {rows:,} rows, peak RSS {rss_kib / 1024:,.0f} MiB")
            results.append((name, seconds, rows, rss_kib / 1024, note))
        size = sum(f.stat().st_size for f in data_dir.glob("*.duckdb"))
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)

    print()
    print(f"{'phase':<28} {'seconds':>9} {'rows':>12} {'peak RSS MiB':>13}  note")
    for name, seconds, rows, rss_mib, note in results:
        print(f"{name:<28} {seconds:>9.1f} {rows:>12,} {rss_mib:>13,.0f}  {note}")
    print(f"\nTotal wall time {time.monotonic() - began:.0f}s (child start-up and imports "
          f"included); DuckDB files {size / 1024**2:,.0f} MiB; "
          f"this process's own peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB.")
    print("load average (1/5/15 min) at end: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
