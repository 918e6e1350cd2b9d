"""The daily job on a simulated clock: every scheduled tick, what cron runs, then every mart
against the oracle.

replay_sim.py builds days of timed RAW batches (replication at least hourly, Airbyte every 6
hours, late, repeated, quiet and future rows; Stripe upserts that rewrite the past). The history
before T0 lands first and one `plan` builds it; then, for each 15-minute tick, the batches
stamped since the previous tick land (atomically, strictly between ticks), `Context.run` runs
with the tick as execution time, and every mart must equal the oracle over the RAW that had
landed before the tick (oracle.marts with D* from oracle.latest_complete_date), with no duplicate
grain key. On `local` one context stays open across ticks and runs `Context.run`; on fakesnow each
tick is the scheduler's own cron run (replay_service.py), a fresh context per run as in production,
and the status page is read after the day.

The replay also proves it exercised what it claims: the coverage checks fail if the scenario
stops producing a case (a late event changing a past DAU, a published quiet day, a retried batch,
a re-priced past MRR day, jpy and kwd amounts, D* held back by the whole-days rule and released).

`local`: three simulated days (288 runs). `fakesnow` (the Snowflake adapter over fakesnow, state
in PostgreSQL): one day (96 runs). Each replay prints where its time went (pytest -s).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import resource
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from unittest import mock

import mart_checks
import oracle
import pytest
import replay_service
import replay_sim
from raw_helpers import isolated_settings
from service_helpers import webhook_receiver
from sqlmesh.core import constants as sqlmesh_constants
from sqlmesh.core.scheduler import Scheduler

from meshctl.project.gateways import open_context
from meshctl.raw import warehouse as raw_warehouse
from meshctl.raw.schema import raw_tables
from meshctl.service.run_history import RunRecord
from meshctl.service.scheduler import Scheduler as ServiceScheduler

T0 = datetime(2026, 3, 13, 0, 30)
# Simulated days of ticks (96 runs a day). The defaults are the replay's specification; the
# variables exist to try a model change quickly, not to shorten `make test`.
LOCAL_DAYS = int(os.environ.get("REPLAY_LOCAL_DAYS", "3"))
FAKESNOW_DAYS = int(os.environ.get("REPLAY_FAKESNOW_DAYS", "1"))
MODEL_START = (T0.date() - timedelta(days=replay_sim.HISTORY_DAYS)).isoformat()
ONE = timedelta(days=1)


@dataclasses.dataclass
class Replay:
    gateway: str
    scenario: replay_sim.Scenario
    ticks: int = 0
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    # per run: (models evaluated, seconds)
    runs: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    # per tick: (tick, D*, Stripe watermark, the oracle's marts)
    observed: list[tuple[datetime, date | None, datetime | None, dict]] = dataclasses.field(
        default_factory=list)
    final_raw: dict | None = None
    final_marts: dict | None = None
    mirror: replay_sim.RawMirror | None = None
    failures: list[tuple[datetime, list[str]]] = dataclasses.field(default_factory=list)
    first_failure: str | None = None
    records: list[RunRecord] = dataclasses.field(default_factory=list)  # the scheduler's, if it ran them
    settings: object = None
    received: list[dict] = dataclasses.field(default_factory=list)  # webhook messages, if it ran them

    @property
    def failure(self) -> str | None:
        if not self.failures:
            return None
        ticks = ", ".join(f"{tick:%m-%d %H:%M} {'/'.join(marts)}"
                          for tick, marts in self.failures[:12])
        return (f"{len(self.failures)} of {len(self.observed)} ticks differ from the oracle "
                f"({ticks}{', ...' if len(self.failures) > 12 else ''}).\n"
                f"The first: {self.first_failure}")

    def summary(self) -> str:
        work = [s for n, s in self.runs if n]
        idle = [s for n, s in self.runs if not n]
        evaluated = sum(n for n, _ in self.runs)
        avg = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
        parts = ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        return (f"replay on {self.gateway}: {self.ticks} runs (peak RSS {peak} MiB so far); "
                f"{parts}; runs that evaluated "
                f"models {avg(work):.2f}s x {len(work)} ({evaluated} evaluations, "
                f"{sum(work) / max(evaluated, 1):.2f}s each), runs that evaluated nothing "
                f"{avg(idle):.2f}s x {len(idle)}")


def stripe_watermark(raw: dict) -> datetime | None:
    marks = [row["_AIRBYTE_EXTRACTED_AT"] for fqn in replay_sim.STRIPE_TABLES for row in raw[fqn]]
    marks = [m.astimezone(timezone.utc).replace(tzinfo=None) if m.tzinfo else m
             for m in marks if m is not None]
    return max(marks, default=None)


def describe(batches: list[replay_sim.Batch]) -> str:
    return "; ".join(
        f"{b.source} {b.at:%m-%d %H:%M:%S} {sorted(b.notes)} "
        f"(+{len(b.events)} events, +{len(b.users)} users, "
        f"{ {t.split('.')[-1]: len(r) for t, r in b.stripe.items()} })" for b in batches) or "none"


def replay(settings, scenario: replay_sim.Scenario, service: bool = False,
           offline: frozenset[datetime] = frozenset()) -> Replay:
    """The replay: `Context.run` at every tick on one open Context.

    With `service`, each tick is the scheduler's `run_once("cron")` on a simulated clock
    (replay_service.py), which opens a fresh Context per run as the scheduler's child does. At
    the `offline` ticks, RAW ORGANIZATIONS is renamed away for the run (replication maintenance):
    that run must fail, and the next one must catch up."""
    result = Replay(settings.gateway, scenario)
    tables = raw_tables(settings.project_dir)
    began = time.monotonic()
    with raw_warehouse.open_warehouse(settings) as adapter:
        replay_sim.create_raw(adapter, tables)
        replay_sim.land_history(adapter, tables, scenario.history())
    result.seconds["history landed"] = time.monotonic() - began
    result.mirror = replay_sim.RawMirror(tables)
    for batch in scenario.history():
        result.mirror.apply(batch)
    history = oracle.PlanHistory()
    timers = dict.fromkeys(("land", "run", "read marts", "oracle and compare"), 0.0)
    evaluated: list[str] = []  # models the current run evaluated (for the timings only)
    evaluate = Scheduler.evaluate

    def counted(self, snapshot, *args, **kwargs):
        evaluated.append(snapshot.name)
        return evaluate(self, snapshot, *args, **kwargs)

    clock = replay_service.SimClock()
    scheduler = (ServiceScheduler(settings, runner=replay_service.InProcessRunner(clock), sleep=clock.sleep,
                                  clock=clock) if service else None)
    orgs = '"GOODWORD_WH"."RAW"."ORGANIZATIONS"'

    # SQLMesh loads its cached optimized queries in a pool of forked processes on every run:
    # about 2 s a run here, and in a process that has run for a while (fakesnow's DuckDB reserves
    # ever more address space) the fork fails with ENOMEM. In-process loading does the same work.
    with mock.patch.object(sqlmesh_constants, "MAX_FORK_WORKERS", 1), \
            mock.patch.object(Scheduler, "evaluate", counted), contextlib.ExitStack() as stack:
        context = stack.enter_context(open_context(settings))
        adapter = context.engine_adapter
        began = time.monotonic()
        # Unit tests and lint are `make test`'s job; this checks what the runs produce.
        context.plan(auto_apply=True, no_prompts=True, execution_time=scenario.t0,
                     skip_tests=True, skip_linter=True)
        result.seconds["first plan"] = time.monotonic() - began
        raw = replay_sim.read_raw(adapter, tables)
        if service:  # the runs open their own Context; the replay reads through a warehouse
            stack.close()
            adapter = stack.enter_context(raw_warehouse.open_warehouse(settings))
        previous = scenario.t0
        for tick in [scenario.t0, *scenario.ticks]:
            landed = scenario.between(previous, tick) if tick != scenario.t0 else []
            built = True
            if tick != scenario.t0:
                began = time.monotonic()
                for batch in landed:
                    replay_sim.land(adapter, tables, batch)
                    result.mirror.apply(batch)
                if landed:
                    raw = replay_sim.read_raw(adapter, tables)
                timers["land"] += time.monotonic() - began
                began, evaluated[:] = time.monotonic(), []
                if service:
                    if tick in offline:
                        adapter.execute(f"ALTER TABLE {orgs} RENAME TO {orgs[:-1]}_OFFLINE\"")
                    stack.close()  # fakesnow: one emulation at a time in a process
                    clock.at(tick)
                    record = scheduler.run_once("cron", scheduled_for=tick.replace(tzinfo=timezone.utc))
                    result.records.append(record)
                    adapter = stack.enter_context(raw_warehouse.open_warehouse(settings))
                    if tick in offline:
                        adapter.execute(f"ALTER TABLE {orgs[:-1]}_OFFLINE\" RENAME TO {orgs}")
                    built = record.status in ("success", "nothing_to_do")
                    assert built != (tick in offline), (
                        f"{settings.gateway}: the scheduled run at {tick}: {record.status} {record.error}")
                else:
                    status = context.run(execution_time=tick)
                    assert status.is_success, f"{settings.gateway}: sqlmesh run at {tick}: {status}"
                spent = time.monotonic() - began
                timers["run"] += spent
                result.runs.append((len(evaluated), spent))
                result.ticks += 1
            began = time.monotonic()
            marts = mart_checks.read_marts(adapter)
            timers["read marts"] += time.monotonic() - began
            began = time.monotonic()
            if built:  # a failed run observed nothing (DIM_ORGANIZATIONS_HISTORY's builds)
                history.observe(tick, raw)
            d_star = oracle.latest_complete_date(raw, tick)
            expected = oracle.marts(raw, d_star, history)
            # After a failed run the marts may lag (the contract is kept from the next run on).
            problems = mart_checks.all_differences(marts, expected) if built else {}
            timers["oracle and compare"] += time.monotonic() - began
            result.observed.append((tick, d_star, stripe_watermark(raw), expected))
            if problems:
                # Go on: later ticks are checked on their own, and the count says how far a
                # difference spreads (or whether the next run repairs it).
                result.failures.append((tick, list(problems)))
                if result.first_failure is None:
                    result.first_failure = (
                        f"{settings.gateway}: after the run at {tick} (D* {d_star}; landed since "
                        f"{previous}: {describe(landed)}), MARTS " + "\n".join(
                            f"{mart}:\n{text}" for mart, text in problems.items()))
            previous = tick
        result.final_raw, result.final_marts = raw, marts
    result.seconds.update(timers)
    print(result.summary())
    return result


def oracle_replay(scenario: replay_sim.Scenario, tables) -> Replay:
    """The replay without a warehouse: RAW as the batches say (RawMirror), the oracle at every
    tick. Seconds instead of minutes, to check a scenario's coverage while editing it."""
    result = Replay("memory", scenario)
    result.mirror = replay_sim.RawMirror(tables)
    for batch in scenario.history():
        result.mirror.apply(batch)
    history = oracle.PlanHistory()
    previous = scenario.t0
    for tick in [scenario.t0, *scenario.ticks]:
        for batch in scenario.between(previous, tick) if tick != scenario.t0 else []:
            result.mirror.apply(batch)
        raw = result.mirror.raw()
        history.observe(tick, raw)
        d_star = oracle.latest_complete_date(raw, tick)
        result.observed.append((tick, d_star, stripe_watermark(raw),
                                oracle.marts(raw, d_star, history)))
        previous = tick
    result.final_raw = raw
    return result


# --- the replays -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_replay(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MODEL_START", MODEL_START)
        settings = isolated_settings(tmp_path_factory.mktemp("replay-local"), monkeypatch, "local")
        return replay(settings, replay_sim.build_scenario(T0, days=LOCAL_DAYS))


# The two ticks of the replayed day whose runs find RAW ORGANIZATIONS gone (replay(offline=...)).
OFFLINE = frozenset({datetime(2026, 3, 13, 11, 0), datetime(2026, 3, 13, 11, 15)})
STATUS_USER, STATUS_PASSWORD = "admin", "replay-status"
STATUS_BASE = "http://status.replay.test:8000"  # what the alerts link to


@pytest.fixture(scope="module")
def fakesnow_replay(tmp_path_factory, module_pg_database_factory, pg_server):
    """The Snowflake path's replay, each tick a scheduled run of the service (run history, run
    details, freshness and alerts in PostgreSQL, the state too), alerts to a loopback webhook."""
    state_db = module_pg_database_factory("replay")
    root = tmp_path_factory.mktemp("replay-fakesnow")
    with pytest.MonkeyPatch.context() as monkeypatch, \
            webhook_receiver("/services/T0/B0/REPLAY") as (hook_url, received):
        monkeypatch.setenv("MODEL_START", MODEL_START)
        pg_server.use_for_state(monkeypatch, state_db)
        for key, value in {"MESHCTL_SLACK_WEBHOOK_URL": hook_url,
                           "MESHCTL_STATUS_BASE_URL": STATUS_BASE, "MESHCTL_STATUS_RUNS": "500",
                           "MESHCTL_RUN_LOG_DIR": str(root / "logs"),
                           "MESHCTL_UI_USERNAME": STATUS_USER, "MESHCTL_UI_PASSWORD": STATUS_PASSWORD}.items():
            monkeypatch.setenv(key, value)
        settings = isolated_settings(root, monkeypatch, "fakesnow")
        result = replay(settings, replay_sim.build_scenario(T0, days=FAKESNOW_DAYS),
                        service=True, offline=OFFLINE)
        result.settings, result.received = settings, list(received)
        return result


def test_local_every_tick_matches_the_oracle(local_replay):
    if local_replay.failure:
        pytest.fail(local_replay.failure, pytrace=False)
    assert local_replay.ticks == LOCAL_DAYS * 96


def test_fakesnow_every_tick_matches_the_oracle(fakesnow_replay):
    if fakesnow_replay.failure:
        pytest.fail(fakesnow_replay.failure, pytrace=False)
    assert fakesnow_replay.ticks == FAKESNOW_DAYS * 96


def assert_raw_as_scheduled(result: Replay) -> None:
    """What the replay read back from RAW (and fed the oracle) is what its batches wrote."""
    expected = result.mirror.raw()
    for fqn, rows in result.final_raw.items():
        got, want = replay_sim.canonical_rows(rows), replay_sim.canonical_rows(expected[fqn])
        assert got == want, (f"{result.gateway} {fqn}: {len(got)} rows read back, {len(want)} "
                             f"written; first difference: "
                             f"{next((g, w) for g, w in zip(got + [''], want + ['']) if g != w)}")


def test_local_raw_landed_as_scheduled(local_replay):
    assert_raw_as_scheduled(local_replay)


def test_fakesnow_raw_landed_as_scheduled(fakesnow_replay):
    assert_raw_as_scheduled(fakesnow_replay)


# --- the scenario exercised what it claims ---------------------------------------------------


def by_date(rows: list[dict], column: str) -> dict:
    return {row["DATE"]: row[column] for row in rows}


def late_event_changed_a_past_dau(result: Replay, days_back: int = 4) -> list[tuple]:
    found = []
    for (_, _, _, before), (tick, _, _, after) in zip(result.observed, result.observed[1:]):
        old, new = by_date(before["METRICS_DAILY"], "DAU"), by_date(after["METRICS_DAILY"], "DAU")
        found += [(tick, day, old[day], new[day]) for day in old
                  if day in new and day <= tick.date() - timedelta(days=days_back)
                  and old[day] != new[day]]
    return found


def past_mrr_changes(result: Replay) -> list[tuple]:
    """(tick, date) where an already published FCT_MRR_DAILY date changed (value, organization,
    a row appearing or going)."""
    found = []
    for (_, d_before, _, before), (tick, _, _, after) in zip(result.observed, result.observed[1:]):
        if d_before is None:
            continue
        key = lambda r: (r["DATE"], r["STRIPE_CUSTOMER_ID"], r["CURRENCY"])  # noqa: E731
        old = {key(r): (r["MRR"], r["ORGANIZATION_ID"]) for r in before["FCT_MRR_DAILY"]
               if r["DATE"] < d_before}
        new = {key(r): (r["MRR"], r["ORGANIZATION_ID"]) for r in after["FCT_MRR_DAILY"]
               if r["DATE"] < d_before}
        found += sorted({(tick, k[0]) for k in set(old) | set(new) if old.get(k) != new.get(k)})
    return found


def held_and_released(result: Replay) -> list[tuple]:
    """(held at tick, date, released at tick): the day before a tick was not yet published
    there (the whole-days rule), and a later tick published it."""
    found = []
    for n, (tick, d_star, _, _) in enumerate(result.observed):
        wanted = tick.date() - ONE
        if d_star is not None and d_star < wanted:
            released = next((later for later, d, _, _ in result.observed[n + 1:]
                             if d is not None and d >= wanted), None)
            found.append((tick, wanted, released))
    return found


def released_by_the_clock(result: Replay) -> list[tuple]:
    """Ticks at which D* moved on although no Stripe row had landed since the previous tick:
    a quiet Stripe released by `airbyte_max_sync_gap_hours`."""
    return [(tick, d) for (_, d0, w0, _), (tick, d, w, _) in zip(result.observed,
                                                                 result.observed[1:])
            if d0 is not None and d is not None and d > d0 and w == w0]


def coverage(result: Replay) -> dict[str, object]:
    # From the oracle's marts: this is about the scenario; whether the models matched them at
    # every tick is the other test's.
    scenario, raw, marts = result.scenario, result.final_raw, result.observed[-1][3]
    cases = scenario.cases
    events, users = raw[oracle.EVENTS], raw[oracle.USERS]
    copies: dict[int, set] = {}
    for row in events:
        copies.setdefault(row["ID"], set()).add(row["_REPLICATED_AT"])
    retried = [i for i, stamps in copies.items()
               if len(stamps) > 1 and max(stamps) - min(stamps) >= 2 * ONE]
    user_copies: dict[tuple, set] = {}
    for row in users:
        user_copies.setdefault((row["ID"], row["UPDATED_AT"]), set()).add(row["_REPLICATED_AT"])
    last_d_star = result.observed[-1][1]
    invoices = {r["CURRENCY"]: r for r in marts["FCT_INVOICES"]}
    mrr_currencies = {r["CURRENCY"] for r in marts["FCT_MRR_DAILY"]}
    history = [r for r in result.observed[-1][3]["DIM_ORGANIZATIONS_HISTORY"]
               if r["VALID_FROM"] > scenario.t0]
    out = {
        "late event >= 4 days changed a past DAU": late_event_changed_a_past_dau(result)[:3],
        "retried batch landed again >= 2 days later (events)": retried[:3],
        "retried batch landed again (user versions)": [
            k for k, stamps in user_copies.items() if len(stamps) > 1][:3],
        "an already published MRR day changed": past_mrr_changes(result)[:3],
        "jpy and kwd invoices in FCT_INVOICES": (
            invoices.get("jpy", {}).get("AMOUNT_DUE") == 120000
            and invoices.get("kwd", {}).get("AMOUNT_DUE") == Decimal("4.125")),
        "jpy and kwd MRR in FCT_MRR_DAILY": {"jpy", "kwd"} <= mrr_currencies,
        "D* held back by the whole-days rule, then released": [
            h for h in held_and_released(result) if h[2] is not None][:3],
        "an event dated after D* in FCT_EVENTS": sorted(
            {r["EVENT_DATE"] for r in marts["FCT_EVENTS"]
             if last_d_star is not None and r["EVENT_DATE"] > last_d_star}),
        "a plan change opened a history period at a tick": [
            (r["ORGANIZATION_ID"], r["PLAN"], r["VALID_FROM"]) for r in history][:3],
        "quiet replication runs (ORGANIZATIONS only)": sum(
            1 for b in scenario.batches if b.at >= scenario.t0 and "quiet" in b.notes),
        "Airbyte syncs that landed nothing": cases["empty_syncs"][:3],
    }
    quiet_day = cases["quiet_day"]
    if quiet_day is not None:
        out["quiet day published with DAU 0"] = [
            tick for tick, _, _, expected in result.observed
            if by_date(expected["METRICS_DAILY"], "DAU").get(quiet_day) == 0][:1]
        out["nothing landed in USERS or EVENTS on the quiet day"] = not any(
            row["_REPLICATED_AT"].date() == quiet_day for row in events + users)
        out["D* released by the clock while Stripe was quiet"] = released_by_the_clock(result)[:3]
    if "older_than_first_event" in cases:
        first_date = min(r["DATE"] for r in marts["METRICS_DAILY"])
        out["an event 40 days before the first one moved METRICS_DAILY's first date"] = (
            first_date == cases["older_than_first_event"])
    if "deleted_customer" in cases:
        out["deleted customer lost its organization on past MRR days"] = sorted({
            r["DATE"] for r in marts["FCT_MRR_DAILY"]
            if r["STRIPE_CUSTOMER_ID"] == cases["deleted_customer"]
            and r["ORGANIZATION_ID"] is None})[:3]
    return out


def assert_covered(result: Replay) -> None:
    missing = [case for case, evidence in coverage(result).items() if not evidence]
    assert not missing, f"the {result.gateway} replay did not exercise: {missing}"


@pytest.mark.parametrize("days", [3, 1])
def test_scenario_exercises_every_case_by_the_oracle_alone(days):
    """The scenarios of both replays, without SQLMesh: a quick guard for edits to replay_sim."""
    from meshctl.settings import PROJECT_DIR

    assert_covered(oracle_replay(replay_sim.build_scenario(T0, days=days),
                                 raw_tables(PROJECT_DIR)))


def test_local_replay_exercised_every_case(local_replay):
    assert_covered(local_replay)


def test_fakesnow_replay_exercised_its_cases(fakesnow_replay):
    assert_covered(fakesnow_replay)


# --- the status page after the replayed day (issue 12) ---------------------------------------

WHOLE_DAYS = {"METRICS_DAILY", "FCT_MRR_DAILY"}  # published only once a date is complete
RED, RED_BG = (0xC6, 0x28, 0x28), (0xFD, 0xEC, 0xEA)


def _as_date(value) -> date:
    return value.date() if isinstance(value, datetime) else value


def _newest_landed(raw: dict, table: str) -> datetime | None:
    stamps = [row.get("_REPLICATED_AT") or row.get("_AIRBYTE_EXTRACTED_AT") for row in raw.get(table, [])]
    stamps = [s.replace(tzinfo=None) if s.tzinfo else s for s in stamps if s is not None]
    return max(stamps, default=None)


def test_the_status_page_shows_the_replayed_day_as_run_history_and_the_marts_say(fakesnow_replay, tmp_path):
    """In Chromium, five minutes after the replay's last tick: every run of the day as run history
    has it, the two failed runs red with their error, each mart's published date as the mart
    holds it and its verdict by the contract, the RAW it was judged against as RAW holds it, the
    one failure incident and its recovery (as the webhook got them), cost per model and per run
    from the query tags the emulation recorded."""
    from png_pixels import share
    from service_helpers import assert_runs_match_history, chromium_page

    from meshctl.service.basic_auth import BasicAuthMiddleware
    from meshctl.service.run_history import RunHistory
    from meshctl.status import data as status_data
    from meshctl.status.web import StatusApp

    result = fakesnow_replay
    settings, scenario = result.settings, result.scenario
    now = (scenario.ticks[-1] + timedelta(minutes=5)).replace(tzinfo=timezone.utc)
    rows = RunHistory(settings.state_db).recent(limit=1000)
    # Run history holds what the scheduler returned: one cron run per tick, the offline two failed.
    assert sorted(r["run_id"] for r in rows) == sorted(r.run_id for r in result.records)
    assert len(rows) == len(scenario.ticks) and {r["trigger"] for r in rows} == {"cron"}
    failed = sorted((r for r in rows if r["status"] == "failed"), key=lambda r: r["started_at"])
    assert [r["scheduled_for"].replace(tzinfo=None) for r in failed] == sorted(OFFLINE)
    for row in failed:  # the run found RAW ORGANIZATIONS gone: the error says so
        assert "ORGANIZATIONS" in row["error"].upper(), row["error"]

    status_data.COST.clear()
    app = BasicAuthMiddleware(StatusApp(settings, clock=lambda: now).app, STATUS_USER, STATUS_PASSWORD)
    with replay_service.serving(app) as base, chromium_page((STATUS_USER, STATUS_PASSWORD)) as page:
        assert page.goto(base + "/status").status == 200
        facts = page.context.request.get(base + "/status.json").json()
        page.screenshot(path=str(tmp_path / "status-after-the-day.png"), full_page=True)

        # Every run, as run history has it; the failed ones red, with their error.
        assert_runs_match_history(page, facts, rows)
        for row in failed:
            shown = page.locator(f'tr.run[data-run="{row["run_id"]}"]')
            assert shown.locator("td.error").inner_text() == row["error"].strip().splitlines()[0][:300]
            assert share(shown.locator(".badge").screenshot(), RED) > 0.3
            assert share(shown.screenshot(), RED_BG) > 0.5
        assert page.locator("#chart-durations circle.run-dot").count() == len(rows)

        # Freshness, as the marts and RAW say. Nothing landed after the last run, so every
        # mart is fresh, except that the whole-days marts wait while the oracle's latest
        # complete date is not yet yesterday.
        d_star = result.observed[-1][1]
        yesterday = now.date() - timedelta(days=1)
        verdicts = {m["mart"]: m for m in facts["freshness"]["marts"]}
        assert set(verdicts) == set(result.final_marts)
        for mart, verdict in verdicts.items():
            want = "pending" if mart in WHOLE_DAYS and d_star != yesterday else "fresh"
            assert verdict["status"] == want, (mart, verdict)
            if verdict["date_column"]:
                published = max(_as_date(r[verdict["date_column"]]) for r in result.final_marts[mart])
                assert verdict["published"] == published.isoformat(), mart
            for source in verdict["sources"]:
                landed = _newest_landed(result.final_raw, source["table"])
                assert datetime.fromisoformat(source["newest"]).replace(tzinfo=None) == landed, (mart, source)
            badge = page.locator(f'tr.mart[data-mart="{mart}"] .badge')
            assert badge.inner_text() == want
        if d_star == yesterday - timedelta(days=1):
            assert all(verdicts[m]["reason"] for m in WHOLE_DAYS)

        # One incident for the two failed runs, one recovery; each alert sent once.
        texts = [json.dumps(m) for m in result.received]
        opened = [t for t in texts if "SQLMesh run failed" in t]
        assert len(opened) == 1 and f"{STATUS_BASE}/status/runs/{failed[0]['run_id']}" in opened[0], texts
        recovered = [t for t in texts if "SQLMesh runs succeed again" in t]
        assert len(recovered) == 1 and "after 2 failed run(s)" in recovered[0], texts
        alerts = facts["alerts"]["open"] + facts["alerts"]["recent"]
        assert len(texts) == len(alerts) + len(facts["alerts"]["recent"]), (texts, alerts)
        assert page.locator("#alerts .alert.resolved").filter(has_text="SQLMesh run failed").count() == 1

        # Cost from the recorded tags: every model the day built, and each run that built one.
        assert facts["cost"]["source"] == "emulated"
        costed = {line["key"].replace('"', "").upper() for line in facts["cost"]["by_model"]}
        built = {m.replace('"', "").upper() for r in rows for m in r["models"]}
        assert built and built <= costed, built - costed
        assert page.locator("#cost-by-model tbody tr").count() == min(25, len(facts["cost"]["by_model"]))
        busy = max(rows, key=lambda r: len(r["models"]))
        run = page.context.request.get(f"{base}/status/runs/{busy['run_id']}.json").json()
        assert run["cost"] and run["cost"]["statements"] > 0, run["cost"]

        # A run's page: each model it built, from run history; a failed run's page, its error.
        page.goto(f"{base}/status/runs/{busy['run_id']}")
        models = page.locator("#models tbody tr[data-model]")
        assert {models.nth(i).get_attribute("data-model") for i in range(models.count())} == set(busy["models"])
        page.goto(f"{base}/status/runs/{failed[0]['run_id']}")
        assert page.locator("#run-error").inner_text() == failed[0]["error"].strip()
        assert share(page.locator("#run .badge").screenshot(), RED) > 0.3
