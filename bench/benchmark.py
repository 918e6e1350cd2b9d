"""Cost of the main job on the `local` (DuckDB) gateway at one year and at 90 days of history.

    python bench/benchmark.py [--days 365 --growth-days 90 --events-per-day 14000 ...]  (make bench)

For each scale, in a fresh LOCAL_DATA_DIR: generate RAW (meshctl demo-data's `generate`: one
replication batch a day, the last landing at midnight T0), then on the scheduler's 15-minute
ticks:

  full build         `plan` prod at T0 + 30 min
  no-op ticks        `run` at T0 + 45 min and T0 + 60 min: nothing landed since T0
  one-day catch-up   `append_day` (the next day's batch), then `run` one day after the last run:
                     96 missing 15-minute intervals at once
  hourly tick        one hour's batch (bench/raw_hour.py) landing at the catch-up's tick, then
                     `run` at the next tick

Every plan or run is measured three ways: seconds of the call; warehouse seconds, i.e. time in
SQLMesh's snapshot evaluator (evaluate + audit: the SQL that builds and checks models; the rest
is SQLMesh's own work on state, signals, the DAG); and the statements sent to the warehouse with
the rows they read (bench/statements.py: watermark probes apart, state statements apart since
production keeps state in PostgreSQL). The targets of issue #9 are checked against the figures.

The SQLMesh project (models, macros, signals, config.yaml, ...) is copied into the work dir
first, so edits made in the checkout meanwhile do not change what is measured (the `meshctl`
package itself is imported from the checkout). Each phase runs in its own spawned child process,
so its peak RSS (getrusage ru_maxrss, DuckDB's native memory included) is its own; every child
pays the Python and SQLMesh imports and the context load, which are outside the timed section.
Figures are reported, not asserted; the exit status is 1 only when a tick did no work it should
have done (its timing would mean nothing) or a plan or run failed.
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
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

FCT_EVENTS = '"GOODWORD_WH"."MARTS"."FCT_EVENTS"'
RAW_EVENTS = '"GOODWORD_WH"."RAW"."EVENTS"'
PROJECT_DIR = Path(__file__).resolve().parent.parent
NOT_PROJECT = (".git", ".venv", "data", "logs", "bench", ".cache", ".pytest_cache", "__pycache__",
               "*.egg-info", "*.duckdb", "*.duckdb.wal")
TICK = timedelta(minutes=15)

# Targets (issue #9): tick cost as a share of the full build, the no-op tick's wall time, and
# "flat" growth from the short to the long history.
TARGETS = {"one-day catch-up": 3.0, "hourly tick": 1.0}
NOOP_SECONDS = 1.5
FLAT_RATIO, FLAT_SLACK_S = 1.25, 0.25


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def settings_for(data_dir: str):
    from meshctl.settings import Settings

    return Settings(_env_file=None, data_dirs={"local": Path(data_dir)}, MESHCTL_GATEWAY="local",
                    MESHCTL_PROJECT_DIR=Path(os.environ["MESHCTL_PROJECT_DIR"]))


def project_version() -> str:
    git = ["git", "--no-optional-locks", "-C", str(PROJECT_DIR)]  # read only: no index refresh
    try:
        head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(git + ["status", "--porcelain", "--", "models", "macros",
                                      "signals", "seeds", "audits", "config.yaml"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes to the project" if dirty else "")


def count(adapter, sql: str) -> int:
    return int(adapter.fetchone(sql)[0] or 0)


def utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


@contextlib.contextmanager
def step_times():
    """Seconds spent per model in SQLMesh's snapshot evaluator (evaluate, audit), to see what
    dominates a plan or run; the rest is SQLMesh's own work (state, signals, tests, lint)."""
    from sqlmesh.core.snapshot.evaluator import SnapshotEvaluator

    times: collections.Counter = collections.Counter()
    times.intervals = {}  # model -> the [start, end) of each evaluation, to see what a tick did

    def timed(method, what):
        def wrapper(self, snapshot, *args, **kwargs):
            began = time.monotonic()
            try:
                return method(self, snapshot, *args, **kwargs)
            finally:
                model = snapshot.name.replace('"', "").split(".", 1)[-1]  # SCHEMA.MODEL
                times[f"{what} {model}"] += time.monotonic() - began
                if what == "evaluate":
                    times.intervals.setdefault(model, []).append(
                        f"{_moment(kwargs.get('start'))}..{_moment(kwargs.get('end'))}")
        return wrapper

    with (mock.patch.object(SnapshotEvaluator, "evaluate", timed(SnapshotEvaluator.evaluate, "evaluate")),
          mock.patch.object(SnapshotEvaluator, "audit", timed(SnapshotEvaluator.audit, "audit"))):
        yield times


def _moment(value) -> str:
    from sqlmesh.utils.date import to_datetime

    try:
        return to_datetime(value).strftime("%Y-%m-%d %H:%M")
    except Exception:  # noqa: BLE001 - only a label
        return str(value)


def per_model(times: collections.Counter) -> list[tuple[str, float]]:
    models: collections.Counter = collections.Counter()
    for key, seconds in times.items():
        models[key.split(" ", 1)[1]] += seconds
    return [(m, round(s, 3)) for m, s in models.most_common()]


@contextlib.contextmanager
def measured(context):
    """Time, evaluator seconds and warehouse statements of the plan or run inside the block."""
    from statements import counted, summarize

    figures: dict = {}
    with step_times() as times, counted(context.engine_adapter) as log:
        began = time.monotonic()
        yield figures
        figures["seconds"] = time.monotonic() - began
    if os.environ.get("BENCH_STATEMENTS_DIR"):  # --statements: every statement, for a closer look
        name = f"{os.environ['MODEL_START']}-{figures.get('label', 'phase')}.tsv"
        with open(Path(os.environ["BENCH_STATEMENTS_DIR"]) / name, "w") as out:
            out.write("kind\trows\tseconds\tsql\n")
            for s in log:
                out.write(f"{s.kind}\t{s.rows}\t{s.seconds:.4f}\t{' '.join(s.sql.split())}\n")
    figures["warehouse_s"] = sum(times.values())
    figures["models"] = per_model(times)
    figures["steps"] = [(k, round(v, 3)) for k, v in times.most_common(6)]
    figures["intervals"] = {m: ", ".join(v) for m, v in times.intervals.items()}
    figures.update(summarize(log))


def report(figures: dict) -> None:
    say(f"  {figures['seconds']:.2f}s, evaluate+audit {figures['warehouse_s']:.2f}s; "
        f"warehouse statements {figures['warehouse_statements']} ({figures['probes']} probes, "
        f"{figures['probe_rows']:,} rows scanned by them on DuckDB), others read "
        f"{figures['rows_read']:,} rows; {figures['state_statements']} state statements")
    if figures["models"]:
        say("  slowest models: " + "; ".join(f"{m} {s:.2f}s" for m, s in figures["models"][:5]))
    if figures["tables"]:
        say("  most rows read: " + "; ".join(f"{t} {n:,}" for t, n in figures["tables"][:5]))
    say("  statements by kind (count, rows read, seconds): " + "; ".join(
        f"{k} {n} / {r:,} / {s:.2f}s" for k, (n, r, s) in figures["by_kind"].items()))
    for sql in figures["probe_sql"][:1]:
        say(f"  a probe: {sql}")
    if figures["intervals"] and len(figures["intervals"]) <= 30:
        say("  evaluated: " + "; ".join(f"{m} [{v}]" for m, v in figures["intervals"].items()))


# --- phases: each runs in a child process and returns a dict ----------------------------------


def phase_generate(data_dir: str, params) -> dict:
    from meshctl.demo.generator import EVENTS, generate
    from meshctl.raw import warehouse as raw_warehouse
    from meshctl.raw.schema import raw_tables

    settings = settings_for(data_dir)
    with raw_warehouse.open_warehouse(settings) as adapter:
        began = time.monotonic()
        counts = generate(adapter, raw_tables(settings.project_dir), params, lambda s: say("  " + s))
        seconds = time.monotonic() - began
    return {"seconds": seconds, "rows": sum(counts.values()),
            "note": f"{counts[EVENTS]:,} EVENTS rows, all RAW tables {sum(counts.values()):,}"}


def phase_build(data_dir: str, execution_time: datetime) -> dict:
    from meshctl.project.gateways import open_context

    began = time.monotonic()
    with open_context(settings_for(data_dir)) as context:
        loaded = time.monotonic() - began
        adapter = context.engine_adapter
        landed = count(adapter, f'SELECT COUNT(DISTINCT "ID") FROM {RAW_EVENTS} '
                                f"WHERE \"_REPLICATED_AT\" < TIMESTAMP '{execution_time}'")
        say(f"  context loaded in {loaded:.1f}s; plan prod at {utc(execution_time)} ...")
        with measured(context) as figures:
            figures["label"] = "build"
            context.plan("prod", auto_apply=True, no_prompts=True, execution_time=execution_time)
        report(figures)
        rows = count(adapter, f"SELECT COUNT(*) FROM {FCT_EVENTS}")
    figures.update(rows=rows, note=f"FCT_EVENTS rows (distinct RAW event IDs landed: {landed:,})")
    if rows != landed:
        figures["warning"] = f"FCT_EVENTS holds {rows:,} rows, RAW {landed:,} distinct event IDs"
    return figures


def phase_ticks(data_dir: str, ticks: list[datetime], new_event_ids: int) -> list[dict]:
    """`run` prod at each tick; FCT_EVENTS should gain `new_event_ids` rows over them."""
    from meshctl.project.gateways import open_context

    began = time.monotonic()
    results = []
    with open_context(settings_for(data_dir)) as context:
        say(f"  context loaded in {time.monotonic() - began:.1f}s")
        adapter = context.engine_adapter
        for at in ticks:
            before = count(adapter, f"SELECT COUNT(*) FROM {FCT_EVENTS}")
            say(f"  run prod at {utc(at)} ...")
            with measured(context) as figures:
                figures["label"] = f"run-{at:%m%d-%H%M}"
                status = context.run("prod", execution_time=at)
            report(figures)
            after = count(adapter, f"SELECT COUNT(*) FROM {FCT_EVENTS}")
            say(f"  status {status.name}; FCT_EVENTS {before:,} -> {after:,}")
            figures.update(rows=after - before, status=status.name, at=utc(at),
                           note=f"run at {utc(at)}: status {status.name}, FCT_EVENTS +{after - before:,}")
            if status.is_failure:
                figures["error"] = f"run at {utc(at)} failed"
            results.append(figures)
    gained = sum(r["rows"] for r in results)
    if new_event_ids and gained == 0:
        results[-1]["error"] = (f"FCT_EVENTS gained nothing from {new_event_ids:,} new event IDs: "
                                "the run did no real work, its timing would mean nothing")
    elif gained != new_event_ids:
        results[-1]["warning"] = (f"FCT_EVENTS gained {gained:,} rows for {new_event_ids:,} new "
                                  "distinct event IDs in RAW")
    return results


def phase_append_day(data_dir: str, seed: int, events_per_day: int) -> dict:
    from meshctl.demo.generator import append_day
    from meshctl.raw import warehouse as raw_warehouse
    from meshctl.raw.schema import raw_tables

    settings = settings_for(data_dir)
    with raw_warehouse.open_warehouse(settings) as adapter:
        ids = f'SELECT COUNT(DISTINCT "ID") FROM {RAW_EVENTS}'
        rows = f"SELECT COUNT(*) FROM {RAW_EVENTS}"
        before, rows_before = count(adapter, ids), count(adapter, rows)
        began = time.monotonic()
        day = append_day(adapter, raw_tables(settings.project_dir), seed, events_per_day,
                         lambda s: say("  " + s))
        seconds = time.monotonic() - began
        new_ids, added = count(adapter, ids) - before, count(adapter, rows) - rows_before
    return {"seconds": seconds, "rows": added, "new_event_ids": new_ids,
            "note": f"EVENTS rows for {day} (+ late ones), {new_ids:,} new event IDs"}


def phase_append_hour(data_dir: str, seed: int, events_per_day: int) -> dict:
    from raw_hour import append_hour

    from meshctl.raw import warehouse as raw_warehouse
    from meshctl.raw.schema import raw_tables

    settings = settings_for(data_dir)
    with raw_warehouse.open_warehouse(settings) as adapter:
        began = time.monotonic()
        batch = append_hour(adapter, raw_tables(settings.project_dir), seed, events_per_day,
                            lambda s: say("  " + s))
        seconds = time.monotonic() - began
    at = datetime.fromtimestamp(batch["batch_at_us"] / 1e6, tz=timezone.utc).replace(tzinfo=None)
    return {"seconds": seconds, "rows": batch["events"], "new_event_ids": batch["new_event_ids"],
            "batch_at": at,
            "note": f"EVENTS rows landed at {utc(at)} ({batch['late']} late), "
                    f"{batch['users']} USERS versions, ORGANIZATIONS reloaded"}


def _measured(phase, *args):
    """In the child: the phase's result and the child's own peak RSS (KiB on Linux)."""
    result = phase(*args)
    return result, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def in_child(phase, *args):
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited memory
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(_measured, phase, *args).result()


# --- one scale -------------------------------------------------------------------------------


def bench_scale(args, days: int, root: Path) -> dict:
    from meshctl.demo.generator import DemoParams

    params = DemoParams(organizations=args.organizations, users=args.users, days=days,
                        events_per_day=args.events_per_day, seed=args.seed, end_date=args.end_date)
    first_day = args.end_date - timedelta(days=days - 1)
    data_dir = root / f"local-{days}d"
    if data_dir.exists():
        raise SystemExit(f"{data_dir} exists: the benchmark needs a fresh LOCAL_DATA_DIR")
    # config.yaml and the readiness signals read these from the environment (children inherit it).
    os.environ["LOCAL_DATA_DIR"] = str(data_dir)
    os.environ["MODEL_START"] = first_day.isoformat()

    midnight = datetime.combine(args.end_date + timedelta(days=1), datetime.min.time())
    build_at = midnight + 2 * TICK  # 00:30: the last daily batch landed at 00:00
    noop_ticks = [build_at + TICK, build_at + 2 * TICK]  # 45 and 60 minutes after it
    catch_up_at = noop_ticks[-1] + timedelta(days=1)
    hourly_at = catch_up_at + TICK
    say(f"=== {days} days {first_day}..{args.end_date}: LOCAL_DATA_DIR={data_dir} "
        f"MODEL_START={first_day}")

    out: dict = {"days": days, "first_day": first_day}

    def phase(name, fn, *fn_args):
        say(f"{name} ...")
        result, rss_kib = in_child(fn, *fn_args)
        load1 = os.getloadavg()[0]
        for r in result if isinstance(result, list) else [result]:
            r.update(rss_mib=rss_kib / 1024, load1=load1)
        first = result[0] if isinstance(result, list) else result
        say(f"{name}: {first['seconds']:.2f}s, peak RSS {rss_kib / 1024:,.0f} MiB, load {load1:.2f}")
        return result

    out["generate"] = phase("generate RAW", phase_generate, str(data_dir), params)
    out["build"] = phase("full build (plan prod)", phase_build, str(data_dir), build_at)
    out["noop"] = phase("no-op ticks (run)", phase_ticks, str(data_dir), noop_ticks, 0)
    out["append_day"] = phase("append one day (RAW)", phase_append_day, str(data_dir), args.seed,
                              args.events_per_day)
    out["catch_up"] = phase("one-day catch-up (run)", phase_ticks, str(data_dir), [catch_up_at],
                            out["append_day"]["new_event_ids"])[0]
    out["append_hour"] = phase("append one hour (RAW)", phase_append_hour, str(data_dir),
                               args.seed, args.events_per_day)
    if out["append_hour"]["batch_at"] != catch_up_at:
        raise SystemExit(f"the hour's batch landed at {out['append_hour']['batch_at']}, "
                         f"expected {catch_up_at} (the catch-up's tick)")
    out["hourly"] = phase("hourly tick (run)", phase_ticks, str(data_dir), [hourly_at],
                          out["append_hour"]["new_event_ids"])[0]
    # The slower no-op tick stands for both in the table (they should be alike).
    out["noop_all"] = out["noop"]
    out["noop"] = max(out["noop"], key=lambda r: r["seconds"])
    out["mib"] = sum(f.stat().st_size for f in data_dir.glob("*.duckdb")) / 1024**2
    out["ticks"] = {"build": build_at, "noop": noop_ticks, "catch_up": catch_up_at,
                    "hourly": hourly_at}
    return out


# --- the machine and the table -------------------------------------------------------------


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


def pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else float("nan")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def judge(scale: dict) -> dict[str, str]:
    """The target and PASS/MISS for each tick of one scale."""
    build = scale["build"]
    out = {}
    for noop in scale["noop_all"]:
        out[f"no-op tick {noop['at'][-5:]}"] = (
            f"<= {NOOP_SECONDS} s, 0 rows: "
            + verdict(noop["seconds"] <= NOOP_SECONDS and noop["rows_read"] == 0))
    out["no-op tick"] = f"<= {NOOP_SECONDS} s, 0 rows: " + verdict(
        all(v.endswith("PASS") for v in out.values()))
    for name, key in (("hourly tick", "hourly"), ("one-day catch-up", "catch_up")):
        tick, target = scale[key], TARGETS[name]
        shares = (pct(tick["warehouse_s"], build["warehouse_s"]), pct(tick["seconds"], build["seconds"]),
                  pct(tick["rows_read"], build["rows_read"]))
        out[name] = f"<= {target:g} %: " + ", ".join(
            f"{what} {verdict(share <= target)}" for what, share in zip(("wh", "run", "rows"), shares))
    return out


def flat(long: dict, short: dict) -> tuple[bool, str]:
    def close(a: float, b: float, slack: float) -> bool:
        return a <= b * FLAT_RATIO or a - b <= slack

    ratio = lambda a, b: f"x{a / b:.2f}" if b else "x-"  # noqa: E731
    ok = (close(long["warehouse_s"], short["warehouse_s"], FLAT_SLACK_S)
          and close(long["seconds"], short["seconds"], FLAT_SLACK_S)
          and close(long["rows_read"], short["rows_read"], 0))
    text = (f"warehouse {long['warehouse_s']:.2f}s vs {short['warehouse_s']:.2f}s "
            f"({ratio(long['warehouse_s'], short['warehouse_s'])}), run {long['seconds']:.2f}s vs "
            f"{short['seconds']:.2f}s ({ratio(long['seconds'], short['seconds'])}), rows read "
            f"{long['rows_read']:,} vs {short['rows_read']:,} ({ratio(long['rows_read'], short['rows_read'])})")
    return ok, text


def print_table(scales: list[dict]) -> None:
    head = (f"{'days':>4} {'phase':<22} {'run s':>7} {'wh s':>7} {'% of build':>14} "
            f"{'statements':>10} {'rows read':>11} {'RSS MiB':>7} {'load':>5}  target")
    print(head)
    print("-" * len(head))
    for scale in scales:
        build = scale["build"]
        verdicts = judge(scale)
        rows = [("generate RAW", scale["generate"]), ("full build (plan)", build)]
        rows += [(f"no-op tick {r['at'][-5:]}", r) for r in scale["noop_all"]]
        rows += [("append one day (RAW)", scale["append_day"]), ("one-day catch-up", scale["catch_up"]),
                 ("append one hour (RAW)", scale["append_hour"]), ("hourly tick", scale["hourly"])]
        for name, r in rows:
            key = "build" if r is build else name
            if "warehouse_s" in r:
                share = (f"{pct(r['warehouse_s'], build['warehouse_s']):.1f}/"
                         f"{pct(r['seconds'], build['seconds']):.1f}/"
                         f"{pct(r['rows_read'], build['rows_read']):.1f}" if key != "build" else "100")
                stmts = f"{r['warehouse_statements']} ({r['probes']}p)"
                print(f"{scale['days']:>4} {name:<22} {r['seconds']:>7.2f} {r['warehouse_s']:>7.2f} "
                      f"{share:>14} {stmts:>10} {r['rows_read']:>11,} {r['rss_mib']:>7,.0f} "
                      f"{r['load1']:>5.2f}  {verdicts.get(name, '')}")
            else:
                print(f"{scale['days']:>4} {name:<22} {r['seconds']:>7.2f} {'':>7} {'':>14} "
                      f"{'':>10} {'':>11} {r['rss_mib']:>7,.0f} {r['load1']:>5.2f}  {r['note']}")
    print("\nrun s: the plan/run call; wh s: SQLMesh's snapshot evaluator (evaluate + audit);"
          " % of build: wh s / run s / rows read as a share of the full build's; statements: sent to the"
          " warehouse, state excluded, (Np) of them watermark probes; rows read: DuckDB's rows"
          " scanned by the statements other than probes.")


def print_details(scales: list[dict]) -> list[str]:
    problems = []
    for scale in scales:
        print(f"\n{scale['days']} days ({scale['first_day']}..): {scale['generate']['note']}; "
              f"DuckDB files {scale['mib']:,.0f} MiB; ticks: build {utc(scale['ticks']['build'])}, "
              f"no-op {', '.join(utc(t) for t in scale['ticks']['noop'])}, catch-up "
              f"{utc(scale['ticks']['catch_up'])}, hourly {utc(scale['ticks']['hourly'])}")
        runs = [("full build", scale["build"])]
        runs += [("no-op tick", r) for r in scale["noop_all"]]
        runs += [("one-day catch-up", scale["catch_up"]), ("hourly tick", scale["hourly"])]
        for name, r in runs:
            models = ", ".join(f"{m} {s:.2f}s" for m, s in r["models"][:4]) or "none"
            tables = ", ".join(f"{t} {n:,}" for t, n in r["tables"][:4]) or "none"
            kinds = "; ".join(f"{k} {n} ({rows:,} rows, {sec:.2f}s)"
                              for k, (n, rows, sec) in r["by_kind"].items()) or "none"
            print(f"  {name}: {r['seconds']:.2f}s, evaluate+audit {r['warehouse_s']:.2f}s; "
                  f"{r['note']}; {len(r['models'])} models evaluated")
            print(f"    top models (evaluate+audit): {models}")
            print(f"    statements by kind: {kinds}")
            print(f"    rows read by table (non-probe): {tables}")
            for rows, seconds, gist in r["heaviest"]:
                print(f"    heavy: {rows:,} rows, {seconds:.2f}s: {gist}")
            if 0 < r["statements"] <= 3:
                for sql in r["examples"]:
                    print(f"    statement: {' '.join(sql.split())[:150]}")
            for level in ("warning", "error"):
                if r.get(level):
                    print(f"    {level.upper()}: {r[level]}")
                    if level == "error":
                        problems.append(f"{scale['days']} days, {name}: {r[level]}")
    return problems


# --- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--organizations", type=int, default=400)
    parser.add_argument("--users", type=int, default=8000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--growth-days", type=int, default=90,
                        help="a second, shorter history at the same daily rates, to see whether "
                             "tick costs grow with history (0: skip)")
    parser.add_argument("--events-per-day", type=int, default=14000)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--end-date", type=date.fromisoformat, default=date(2025, 12, 31),
                        help="last complete day of the window (default 2025-12-31)")
    parser.add_argument("--statements", type=Path, default=None,
                        help="write every statement of each plan/run (kind, rows read, seconds, "
                             "SQL) as TSV files into this directory")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where local-<N>d/ (LOCAL_DATA_DIR) and project/ (the project's "
                             "copy) go, kept afterwards; default: a fresh temporary directory, "
                             "removed")
    args = parser.parse_args()

    work_dir = (args.work_dir or Path(tempfile.mkdtemp(prefix="goodword-bench-"))).resolve()
    project = work_dir / "project"
    if project.exists():
        parser.error(f"{work_dir} already holds project/: the benchmark needs a fresh one")
    work_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(PROJECT_DIR, project, ignore=shutil.ignore_patterns(*NOT_PROJECT))
    os.environ["MESHCTL_PROJECT_DIR"] = str(project)
    os.environ["MESHCTL_GATEWAY"] = "local"
    if args.statements:
        args.statements.mkdir(parents=True, exist_ok=True)
        os.environ["BENCH_STATEMENTS_DIR"] = str(args.statements.resolve())
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # statements, raw_hour (children too)

    for line in machine():
        say(line)
    say(f"Scale: {args.events_per_day:,} events/day, {args.organizations:,} organizations, "
        f"{args.users:,} users, seed {args.seed}, last day {args.end_date}; histories of "
        f"{args.days} and {args.growth_days} days")
    say(f"Project {PROJECT_DIR} at {project_version()}, copied to {project}")

    began = time.monotonic()
    scales = []
    try:
        # The short history first: a broken model fails in a minute, not after the long one.
        for days in sorted({args.days, args.growth_days} - {0}):
            scales.append(bench_scale(args, days, work_dir))
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    scales.sort(key=lambda s: -s["days"])

    print()
    print_table(scales)
    problems = print_details(scales)
    if len(scales) == 2:
        long, short = scales
        print(f"\nGrowth {short['days']} -> {long['days']} days (flat: the longer history's figure"
              f" <= {FLAT_RATIO}x the shorter's, seconds also within {FLAT_SLACK_S} s):")
        for name, key in (("no-op tick (the slower)", "noop"), ("hourly tick", "hourly"),
                          ("one-day catch-up", "catch_up")):
            ok, text = flat(long[key], short[key])
            print(f"  {name}: {verdict(ok)}: {text}")
        ok, text = flat(long["build"], short["build"])
        print(f"  (full build, expected to grow: {text})")
    print(f"\nTotal wall time {time.monotonic() - began:.0f}s (child start-up, imports and context "
          f"loads included); this process's own peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB.")
    print("load average (1/5/15 min) at end: %.2f %.2f %.2f" % os.getloadavg())
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
