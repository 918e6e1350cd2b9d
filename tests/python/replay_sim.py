"""A simulated clock for the replay test (test_replay.py): days of timed RAW batches, as the
replication service and Airbyte land them, between the scheduler's 15-minute ticks.

The scenario is deterministic (one seeded `random.Random`) and small: about ten organizations,
forty users and a few events an hour. It covers every arrival pattern sources.md allows:

- replication at least hourly (at :05 plus jitter, sometimes again at :35), each run reloading
  ORGANIZATIONS in one transaction with _REPLICATED_AT = the run's time; USERS append new
  versions (one correction re-replicated with the same UPDATED_AT); EVENTS append, most within
  the hour, some 1-72 hours late, some 3-10 days late (an offline client delivers a week of one
  user's events at once), a few stamped up to 5 minutes after the batch (one crossing midnight);
- quiet runs (ORGANIZATIONS only), and a quiet day on which no USERS or EVENTS row lands at all;
- a batch retried two days later: its EVENTS and USERS rows appended again, new _REPLICATED_AT;
- Airbyte every 6 hours (00:40, 06:40, 12:40, 18:40 plus jitter) upserting, per ID, the Stripe
  records changed since the last sync, with _AIRBYTE_EXTRACTED_AT = the sync's time; syncs with
  nothing to land (so Stripe's watermark stands still); a quantity change and a price change that
  re-price every past MRR day, a cancellation backdated by a week, a cancellation today, a deleted
  customer (whose metadata was the only link to its organization), jpy and kwd subscriptions and
  invoices, an invoice paid in a later sync;
- organizations changing plan (free -> pro with a new Stripe customer, pro -> team, team ->
  enterprise), renamed, soft-deleted, created during the replay.

The timeline starts `HISTORY_DAYS` before the replay, so 10-day-late events have dates to land on;
everything stamped before the first tick T0 lands in bulk before the first `plan`.
"""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone

from oracle import CUSTOMERS, EVENTS, INVOICES, ORGS, SUBSCRIPTIONS, USERS

from meshctl.demo.generator import stripe_table, write_stripe
from meshctl.raw import warehouse as raw_warehouse
from meshctl.raw.schema import RawTable
from meshctl.raw.values import text_frame

STRIPE_TABLES = {CUSTOMERS: "STRIPE_CUSTOMERS", SUBSCRIPTIONS: "STRIPE_SUBSCRIPTIONS",
                 INVOICES: "STRIPE_INVOICES"}

TICK = timedelta(minutes=15)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
HISTORY_DAYS = 12
SYNC_HOURS = (0, 6, 12, 18)  # Airbyte's schedule, at :40 past these hours plus jitter

EVENT_TYPES = ["session_started", "document_created", "document_shared", "comment_added",
               "invite_sent", "ai_summary_generated"]
# Users whose versions the scenario writes by hand (no random logins in between).
SCRIPTED_USERS = {12, 16, 18}
BAD_PROPERTIES = [None, "", '{"document_id": 12', "[1, 2, 3]", "42", '"web"', "null"]


def unix(at: datetime) -> int:
    return int(at.replace(tzinfo=timezone.utc).timestamp())


@dataclasses.dataclass
class Batch:
    """One load into RAW, atomic between two ticks. `at` is its (last) stamp."""

    at: datetime
    source: str  # "replication" or "airbyte"
    orgs: list[dict] | None = None  # a full reload of ORGANIZATIONS
    users: list[dict] = dataclasses.field(default_factory=list)
    events: list[dict] = dataclasses.field(default_factory=list)
    stripe: dict[str, list[dict]] = dataclasses.field(default_factory=dict)  # fqn -> upserts
    notes: set[str] = dataclasses.field(default_factory=set)

    @property
    def empty(self) -> bool:
        return (self.orgs is None and not self.users and not self.events
                and not any(self.stripe.values()))


# --- the app and Stripe, as state that changes at given moments ----------------------------


class Timeline:
    """Moments at which app or Stripe records change: (time, key, new full record)."""

    def __init__(self) -> None:
        self.changes: list[tuple[datetime, tuple, dict]] = []

    def set(self, at: datetime, key: tuple, record: dict) -> dict:
        self.changes.append((at, key, dict(record)))
        return record

    def sorted(self) -> list[tuple[datetime, tuple, dict]]:
        return sorted(self.changes, key=lambda change: change[0])


@dataclasses.dataclass
class Scenario:
    t0: datetime  # the first plan's execution time; the replay ticks after it
    days: int  # days of ticks
    seed: int
    batches: list[Batch]  # everything, history included, in landing order
    quiet_day: date | None
    cases: dict[str, object]  # what the scenario scheduled, for the coverage checks

    @property
    def ticks(self) -> list[datetime]:
        return [self.t0 + TICK * k for k in range(1, self.days * 96 + 1)]

    def history(self) -> list[Batch]:
        return [b for b in self.batches if b.at < self.t0]

    def between(self, after: datetime, before: datetime) -> list[Batch]:
        return [b for b in self.batches if after <= b.at < before and b.at >= self.t0]


def build_scenario(t0: datetime = datetime(2026, 3, 13, 0, 30), days: int = 3,
                   seed: int = 20260313) -> Scenario:
    """The whole timeline, from HISTORY_DAYS before t0's day to the end of the replay."""
    assert t0.minute % 15 == 0 and t0.second == 0, "t0 is a tick"
    rnd = random.Random(seed)
    day0 = datetime.combine(t0.date(), datetime.min.time())
    start = day0 - HISTORY_DAYS * DAY
    end = t0 + days * DAY
    quiet_day = (day0 + DAY).date() if days >= 3 else None
    cases: dict[str, object] = {"quiet_day": quiet_day}

    def in_replay(at: datetime) -> bool:
        return at < end

    def quiet(at: datetime) -> bool:
        return quiet_day is not None and at.date() == quiet_day

    # --- organizations ---------------------------------------------------------------------
    app = Timeline()
    orgs: dict[int, dict] = {}

    def org_change(at: datetime, org_id: int, **fields) -> None:
        if not in_replay(at):
            return
        row = dict(orgs[org_id], **fields, UPDATED_AT=at)
        orgs[org_id] = row
        app.set(at, ("org", org_id), row)

    specs = [  # id, plan, customer, created, country, industry
        (1, "pro", "cus_Acme0001", datetime(2025, 11, 3, 9), "us", "software"),
        (2, "free", None, datetime(2025, 12, 14, 16), "GB", None),
        (3, "team", "cus_Glob0003", datetime(2026, 1, 8, 11), "De", "finance"),
        (4, "pro", "cus_Init0004", datetime(2026, 1, 20, 8), "FR", "education"),
        (5, "enterprise", "cus_Umbr0005", datetime(2025, 10, 1, 7), "US", "healthcare"),
        (6, "pro", "cus_Hool0006", datetime(2026, 2, 2, 13), "kw", "media"),
        (7, "free", None, datetime(2026, 2, 10, 10), None, "retail"),
        (8, "pro", None, datetime(2026, 1, 30, 15), "ca", "software"),  # linked by metadata only
        (9, "free", None, day0 - 9 * DAY + 10 * HOUR, "SE", "nonprofit"),
        (10, "enterprise", "cus_Tyre0010", day0 - 5 * DAY + 14 * HOUR, "jp", "software"),
    ]
    names = ["Acme Labs", "Northwind Inc", "Globex Group", "Initech Co", "Umbrella Works",
             "Hooli Studio", "Vandelay Partners", "Stark Collective", "Wayne Labs", "Tyrell Inc"]
    for (org_id, plan, customer, created, country, industry), name in zip(specs, names):
        orgs[org_id] = app.set(created, ("org", org_id), {
            "ID": org_id, "NAME": name, "PLAN": plan, "INDUSTRY": industry,
            "COUNTRY_CODE": country, "STRIPE_CUSTOMER_ID": customer, "CREATED_AT": created,
            "UPDATED_AT": created, "DELETED_AT": None})
    deleted_at = start + DAY + 7 * HOUR
    org_change(deleted_at, 7, DELETED_AT=deleted_at)
    org_change(start + 5 * DAY + 9 * HOUR, 6, NAME="Hooli")

    # --- users -----------------------------------------------------------------------------
    users: dict[int, dict] = {}
    first = ["ada", "grace", "alan", "edsger", "barbara", "donald", "margaret", "ken", "radia",
             "linus"]

    def messy(address: str) -> str:
        style = rnd.random()
        if style < 0.4:
            address = address.title()
        elif style < 0.5:
            address = address.upper()
        return f"  {address} " if rnd.random() < 0.15 else address

    def user_version(at: datetime, user_id: int, deliver_at: datetime | None = None,
                     **fields) -> None:
        if not in_replay(at) or quiet(at):
            return
        row = dict(users[user_id], **fields, UPDATED_AT=at)
        users[user_id] = row
        app.set(deliver_at or at, ("user", user_id), row)

    org_of = {}
    for user_id in range(1, 41):
        org_id = (user_id - 1) % 10 + 1
        if user_id == 37:
            org_id = 11  # an organization not replicated yet (it is created during the replay)
        if user_id == 38:
            org_id = 99  # an organization that never exists
        org_of[user_id] = org_id
        if user_id == 39:
            created = start + DAY
        elif user_id <= 30:
            created = datetime(2026, 2, 1) + timedelta(minutes=rnd.randrange(0, 24 * 60 * 25))
        else:  # created during the history window: NEW_USERS on those days
            created = start + timedelta(minutes=rnd.randrange(0, 24 * 60 * HISTORY_DAYS - 120))
        base = f"{first[user_id % 10]}.{user_id}@example.com"
        users[user_id] = {
            "ID": user_id, "ORGANIZATION_ID": org_id, "EMAIL": messy(base),
            "FULL_NAME": None if user_id % 9 == 0 else f"User {user_id}",
            "ROLE": "owner" if user_id <= 10 else ("admin" if user_id % 7 == 0 else "member"),
            "STATUS": "invited", "CREATED_AT": created, "UPDATED_AT": created,
            "LAST_LOGIN_AT": None, "DELETED_AT": None}
        app.set(created, ("user", user_id), users[user_id])
        user_version(created + timedelta(minutes=rnd.randrange(5, 600)), user_id,
                     STATUS="active", EMAIL=messy(base))
    offline_user = 39  # delivers a week of events at once, days late
    cases["offline_user"] = offline_user

    # --- events ----------------------------------------------------------------------------
    # (occurred_at, deliver_not_before, row without ID and _REPLICATED_AT)
    pending: list[tuple[datetime, datetime, dict]] = []

    def event(at: datetime, user_id: int | None, deliver_at: datetime | None = None,
              kind: str | None = None) -> None:
        if user_id is None:
            org_id = rnd.choice([None, rnd.randrange(1, 11)])
        else:
            org_id = None if rnd.random() < 0.05 else org_of[user_id]
        if rnd.random() < 0.18:
            props = rnd.choice(BAD_PROPERTIES)
        else:
            props = json.dumps({"source": rnd.choice(["web", "ios", "api"]),
                                "n": rnd.randrange(1, 50)})
        pending.append((at, deliver_at or at, {
            "USER_ID": user_id, "ORGANIZATION_ID": org_id,
            "EVENT_TYPE": kind or rnd.choices(EVENT_TYPES, [30, 20, 10, 25, 8, 3])[0],
            "PROPERTIES": props, "OCCURRED_AT": at}))

    hour = start
    while hour < end:
        if not quiet(hour):
            busy = 8 <= hour.hour <= 20
            for _ in range(rnd.choice([1, 2, 3, 4, 5, 6] if busy else [0, 0, 1, 2])):
                at = hour + timedelta(seconds=rnd.randrange(0, 3600))
                alive = [u for u, row in users.items() if row["CREATED_AT"] <= at
                         and u != offline_user]
                user_id = None if rnd.random() < 0.08 else rnd.choice(alive)
                delay = rnd.random()
                if delay < 0.86:
                    deliver = at
                elif delay < 0.95:
                    deliver = at + timedelta(minutes=rnd.randrange(60, 72 * 60))
                else:
                    deliver = at + timedelta(minutes=rnd.randrange(3 * 24 * 60, 10 * 24 * 60))
                event(at, user_id, deliver)
            # Logins: new user versions.
            for user_id, row in list(users.items()):
                if (row["CREATED_AT"] < hour and user_id not in SCRIPTED_USERS
                        and rnd.random() < 0.02):
                    at = hour + timedelta(seconds=rnd.randrange(0, 3600))
                    user_version(at, user_id, LAST_LOGIN_AT=at)
        hour += HOUR

    # The offline client: user 39's events on four days of the history, all delivered at once
    # on the first replay day, 5 to 8 days late. User 39 has no other events, so each of those
    # days gains a daily active user when they land.
    offline_delivery = day0 + 10 * HOUR
    for k in range(4):
        for minute in (600, 640, 700):
            event(start + (4 + k) * DAY + timedelta(minutes=minute), offline_user, offline_delivery)
    # Ten days late, to the minute.
    ten_days = day0 + 12 * HOUR + timedelta(minutes=5) - 10 * DAY
    event(ten_days, 21, ten_days + 10 * DAY)
    cases["ten_day_late"] = ten_days

    # The batch to be retried: force activity in the hour before it.
    # (After 04:43, so an extra run at :35 cannot take them; the 05:05 run carries them.)
    retried_hour = day0 - 2 * DAY + 4 * HOUR
    for minute in (48, 49, 55):
        event(retried_hour + timedelta(minutes=minute), 14)
    user_version(retried_hour + timedelta(minutes=50), 10, LAST_LOGIN_AT=retried_hour)
    user_version(retried_hour + timedelta(minutes=52), 12, ROLE="admin")

    # Replay-time app changes (each only if the replay reaches it).
    d = lambda n, h, m=0: day0 + n * DAY + timedelta(hours=h, minutes=m)  # noqa: E731
    org_change(d(0, 9, 20), 2, PLAN="pro", STRIPE_CUSTOMER_ID="cus_Nort0002")
    org_change(d(0, 11, 10), 6, NAME="Hooli XYZ", COUNTRY_CODE="KW")
    org_change(d(0, 15, 30), 4, PLAN="team")
    user_version(d(0, 8, 45), 16, DELETED_AT=d(0, 8, 45), STATUS="deactivated")
    # A correction re-replicated with the same UPDATED_AT (the later _REPLICATED_AT wins).
    same = d(0, 13, 50)
    user_version(same, 18, STATUS="deactivated")
    user_version(same, 18, deliver_at=d(0, 15, 20), STATUS="active", ROLE="admin")
    if in_replay(d(0, 14)):
        users[41] = {"ID": 41, "ORGANIZATION_ID": 2, "EMAIL": " New.User41@Example.com",
                     "FULL_NAME": "User 41", "ROLE": "member", "STATUS": "invited",
                     "CREATED_AT": d(0, 14), "UPDATED_AT": d(0, 14), "LAST_LOGIN_AT": None,
                     "DELETED_AT": None}
        org_of[41] = 2
        app.set(d(0, 14), ("user", 41), users[41])
    if days >= 3:
        new_org = {"ID": 11, "NAME": "Cyberdyne Co", "PLAN": "free", "INDUSTRY": None,
                   "COUNTRY_CODE": "br", "STRIPE_CUSTOMER_ID": None, "CREATED_AT": d(2, 8),
                   "UPDATED_AT": d(2, 8), "DELETED_AT": None}
        orgs[11] = app.set(d(2, 8), ("org", 11), new_org)
        org_change(d(2, 14), 3, PLAN="enterprise")
        org_change(d(2, 21), 9, DELETED_AT=d(2, 21))
        users[42] = {"ID": 42, "ORGANIZATION_ID": 11, "EMAIL": "sarah.42@EXAMPLE.com ",
                     "FULL_NAME": None, "ROLE": "owner", "STATUS": "active",
                     "CREATED_AT": d(2, 9), "UPDATED_AT": d(2, 9), "LAST_LOGIN_AT": d(2, 9),
                     "DELETED_AT": None}
        org_of[42] = 11
        app.set(d(2, 9), ("user", 42), users[42])
        for minute in (5, 30, 75):
            event(d(2, 9) + timedelta(minutes=minute), 42)
        # A client offline for seven weeks: its event predates every event landed so far by 40
        # days, so METRICS_DAILY must now start 40 days earlier, every date in between included
        # ("late events of any age", sources.md: no bound).
        ancient = start - 40 * DAY + 11 * HOUR
        event(ancient, 3, d(2, 15))
        cases["older_than_first_event"] = ancient.date()

    # --- replication runs --------------------------------------------------------------------
    runs: list[tuple[datetime, str]] = []  # (time, kind)
    hour = start
    while hour < end:
        runs.append((hour + timedelta(minutes=5, seconds=rnd.randrange(60, 480)), "hourly"))
        # (Only the hourly runs on the quiet day: at 07:00 the day before it is released by the
        # clock alone, half an hour after the last landing.)
        if rnd.random() < 0.25 and not quiet(hour):
            runs.append((hour + timedelta(minutes=35, seconds=rnd.randrange(60, 420)), "extra"))
        hour += HOUR
    # A run just before midnight on the last replay day, whose future event crosses into the
    # next day (FCT_EVENTS holds it; the daily marts do not reach its date).
    late_evening = day0 + (days - 1) * DAY + timedelta(hours=23, minutes=57)
    runs.append((late_evening, "before-midnight"))
    runs.sort()
    retried_run = next(at for at, _ in runs if at > retried_hour + HOUR)
    assert not any(retried_hour + timedelta(minutes=55) <= at < retried_run for at, _ in runs)
    retry_at = next(at for at, _ in runs if at > retried_run + 2 * DAY)
    cases.update(retried_run=retried_run, retry_at=retry_at)

    app_changes = app.sorted()
    batches: list[Batch] = []
    next_event_id = 1
    org_state: dict[int, dict] = {}
    change_index = 0
    delivered_users: dict[datetime, list[dict]] = {}
    delivered_events: dict[datetime, list[dict]] = {}
    pending.sort(key=lambda p: (p[1], p[0]))
    waiting_users: list[dict] = []
    previous_run = start - HOUR
    for at, kind in runs:
        while change_index < len(app_changes) and app_changes[change_index][0] <= at:
            _, (what, key), record = app_changes[change_index]
            if what == "org":
                org_state[key] = record
            else:
                waiting_users.append(record)
            change_index += 1
        batch = Batch(at + timedelta(seconds=30), "replication", notes={kind})
        stamp_events, stamp_users = at, at + timedelta(seconds=15)
        batch.orgs = [dict(row, _REPLICATED_AT=at + timedelta(seconds=30))
                      for _, row in sorted(org_state.items())]
        quiet_run = (kind == "hourly" and at != retried_run and at != retry_at
                     and rnd.random() < 0.15)
        if quiet(at) or quiet_run:
            batch.notes.add("quiet")
        else:
            batch.users = [dict(row, _REPLICATED_AT=stamp_users) for row in waiting_users]
            waiting_users = []
            ready = [p for p in pending if p[1] <= at]
            pending = [p for p in pending if p[1] > at]
            for occurred, _, row in sorted(ready, key=lambda p: p[0]):
                batch.events.append(dict(row, ID=next_event_id, _REPLICATED_AT=stamp_events))
                next_event_id += 1
            # Now and then a client clock a little ahead: stamped up to 5 minutes after the batch.
            ahead = 280 if kind == "before-midnight" else rnd.randrange(10, 299)
            if kind == "before-midnight" or rnd.random() < 0.06:
                alive = [u for u, row in users.items() if row["CREATED_AT"] <= at
                         and u != offline_user]
                event(at + timedelta(seconds=ahead), rnd.choice(alive))
                _, _, row = pending.pop()
                batch.events.append(dict(row, ID=next_event_id, _REPLICATED_AT=stamp_events))
                batch.notes.add("future")
                next_event_id += 1
            if at == retry_at:
                retried = next(b for b in batches if b.at == retried_run + timedelta(seconds=30))
                assert retried.events and retried.users, "the retried batch carries rows"
                batch.events += [dict(r, _REPLICATED_AT=stamp_events) for r in retried.events]
                batch.users += [dict(r, _REPLICATED_AT=stamp_users) for r in retried.users]
                batch.notes.add("retry")
        delivered_users[at] = batch.users
        delivered_events[at] = batch.events
        batches.append(batch)
        previous_run = at
    del previous_run

    # --- Stripe --------------------------------------------------------------------------------
    stripe = Timeline()
    build_stripe(stripe, start, day0, end, days, cases)
    stripe_changes = stripe.sorted()
    syncs = []
    day = start
    while day < end + DAY:
        for h in SYNC_HOURS:
            at = day + timedelta(hours=h, minutes=40, seconds=rnd.randrange(0, 240))
            if at < end:
                syncs.append(at)
        day += DAY
    sync_id = 7000
    index = 0
    empty_syncs = []
    for at in syncs:
        latest: dict[tuple, dict] = {}
        while index < len(stripe_changes) and stripe_changes[index][0] <= at:
            _, key, record = stripe_changes[index]
            latest[key] = record
            index += 1
        sync_id += 1
        batch = Batch(at, "airbyte", notes={"sync"})
        for (fqn, _), record in sorted(latest.items()):
            raw_id = uuid.UUID(int=rnd.getrandbits(128), version=4)
            batch.stripe.setdefault(fqn, []).append(dict(
                record, _AIRBYTE_RAW_ID=str(raw_id),
                _AIRBYTE_EXTRACTED_AT=at.replace(tzinfo=timezone.utc),
                _AIRBYTE_META={"sync_id": sync_id, "changes": []},
                _AIRBYTE_GENERATION_ID=1))
        if not latest:
            batch.notes.add("empty")
            empty_syncs.append(at)
        batches.append(batch)
    cases["empty_syncs"] = [at for at in empty_syncs if at >= t0]
    batches.sort(key=lambda b: b.at)
    for b in batches:
        assert b.at.minute % 15 != 0 or b.at.second != 0 or b.at.microsecond, "not on a tick"
    return Scenario(t0=t0, days=days, seed=seed, batches=batches, quiet_day=quiet_day,
                    cases=cases)


def build_stripe(stripe: Timeline, start: datetime, day0: datetime, end: datetime, days: int,
                 cases: dict) -> None:
    """Stripe's records and their changes; each record is set again in full when it changes."""
    d = lambda n, h, m=0: day0 + n * DAY + timedelta(hours=h, minutes=m)  # noqa: E731

    def at_(when: datetime, fqn: str, record: dict) -> dict:
        if when < end:
            stripe.set(when, (fqn, record["ID"]), record)
        return record

    def customer(when, cid, name, org, currency, *, metadata=True):
        return at_(when, CUSTOMERS, {
            "ID": cid, "EMAIL": f"billing+{cid[4:].lower()}@example.com", "NAME": name,
            "CREATED": unix(when), "CURRENCY": currency, "DELINQUENT": False,
            "DELETED": None if org % 2 else False, "LIVEMODE": True,
            "METADATA": {"organization_id": str(org)} if metadata and org else {},
            "UPDATED": unix(when)})

    def price(key, amount, currency, interval, count=1):
        recurring = None if interval is None else {"interval": interval, "interval_count": count,
                                                   "usage_type": "licensed"}
        return {"id": f"price_{key}_{currency}", "object": "price", "currency": currency,
                "unit_amount": amount, "recurring": recurring,
                "type": "one_time" if interval is None else "recurring"}

    def item(sid, n, quantity, *, price_=None, plan=None):
        row = {"id": f"si_{sid[4:]}{n}", "object": "subscription_item"}
        if quantity is not None:
            row["quantity"] = quantity
        if plan is not None:
            row["plan"] = plan
        else:
            row["price"] = price_
        return row

    def subscription(when, sid, cid, status, started, items, *, trial_end=None, ended=None,
                     org=None):
        return at_(when, SUBSCRIPTIONS, {
            "ID": sid, "CUSTOMER": cid, "STATUS": status, "CREATED": unix(started) - 60,
            "START_DATE": unix(started), "CURRENT_PERIOD_START": unix(started),
            "CURRENT_PERIOD_END": unix(started + 30 * DAY),
            "TRIAL_START": unix(started) if trial_end else None,
            "TRIAL_END": unix(trial_end) if trial_end else None,
            "CANCEL_AT_PERIOD_END": False,
            "CANCELED_AT": unix(ended) if ended else None,
            "ENDED_AT": unix(ended) if ended else None,
            "QUANTITY": items[0].get("quantity") if len(items) == 1 else None,
            "METADATA": {"organization_id": str(org)} if org else {},
            "ITEMS": {"object": "list", "data": items, "has_more": False,
                      "total_count": len(items)},
            "UPDATED": unix(when)})

    def invoice(when, iid, cid, sid, currency, amount, status, *, paid=None):
        # registered when it last changed: a paid invoice at its payment
        return at_(paid or when, INVOICES, {
            "ID": iid, "CUSTOMER": cid, "SUBSCRIPTION": sid, "STATUS": status,
            "CURRENCY": currency.upper() if iid.endswith("U") else currency,
            "AMOUNT_DUE": amount, "AMOUNT_PAID": amount if status == "paid" else 0,
            "AMOUNT_REMAINING": 0 if status == "paid" else amount, "SUBTOTAL": amount,
            "TOTAL": amount, "CREATED": unix(when), "PERIOD_START": unix(when),
            "PERIOD_END": unix(when + 30 * DAY), "PAID": status == "paid",
            "STATUS_TRANSITIONS": {"finalized_at": unix(when) + 60,
                                   "paid_at": unix(paid) if paid else None, "voided_at": None},
            "UPDATED": unix(paid or when)})

    # Customers and subscriptions from before the window (synced in the first sync).
    old = start - 40 * DAY
    customer(old, "cus_Acme0001", "Acme Labs", 1, "usd")
    customer(old, "cus_Glob0003", "Globex", 3, "usd")
    customer(old, "cus_Init0004", "Initech", 4, "usd")
    customer(old, "cus_Umbr0005", "Umbrella", 5, "eur")
    customer(old, "cus_Hool0006", "Hooli", 6, "kwd")
    cus8 = customer(old, "cus_Star0008", "Stark", 8, "usd")
    customer(old, "cus_Manual001", "Manual invoice customer", 0, None, metadata=False)
    customer(old, "cus_Dangle999", "Dangling org customer", 999, "usd")
    customer(start + 4 * DAY, "cus_Tyre0010", "Tyrell", 10, "jpy")

    s1 = subscription(old, "sub_Acme0001", "cus_Acme0001", "active", datetime(2026, 1, 20, 10), [
        item("sub_Acme0001", 1, 3, price_=price("pro_monthly", 1200, "usd", "month")),
        item("sub_Acme0001", 2, None, plan={"id": "legacy_pro", "object": "plan", "amount": 900,
                                            "currency": "usd", "interval": "month",
                                            "interval_count": 1})], org=1)
    subscription(old, "sub_Acme0000", "cus_Acme0001", "canceled", datetime(2025, 12, 1, 9), [
        item("sub_Acme0000", 1, 2, price_=price("pro_monthly", 1200, "usd", "month"))],
        ended=datetime(2026, 1, 20, 10), org=1)
    s3 = subscription(old, "sub_Glob0003", "cus_Glob0003", "active", datetime(2026, 2, 1, 12), [
        item("sub_Glob0003", 1, 2, price_=price("team_yearly", 24000, "usd", "year")),
        item("sub_Glob0003", 2, None, price_=price("api_metered", None, "usd", "month"))], org=3)
    subscription(old, "sub_Glob0003i", "cus_Glob0003", "incomplete", datetime(2026, 2, 3), [
        item("sub_Glob0003i", 1, 1, price_=price("team_monthly", 2400, "usd", "month"))], org=3)
    s4 = subscription(old, "sub_Init0004", "cus_Init0004", "active", datetime(2026, 2, 10, 8), [
        item("sub_Init0004", 1, None, price_=price("pro_weekly", 300, "usd", "week"))],
        trial_end=datetime(2026, 2, 24, 8), org=4)
    s5 = subscription(old, "sub_Umbr0005", "cus_Umbr0005", "active", datetime(2026, 1, 15, 7), [
        item("sub_Umbr0005", 1, 1, price_=price("enterprise_quarterly", 27000, "eur", "month", 3)),
        item("sub_Umbr0005", 2, 1, price_=price("onboarding_once", 5000, "eur", None))], org=5)
    subscription(old, "sub_Hool0006", "cus_Hool0006", "active", datetime(2026, 2, 20, 13), [
        item("sub_Hool0006", 1, 1, price_=price("kwd_monthly", 4125, "kwd", "month"))], org=6)
    s8 = subscription(old, "sub_Star0008", "cus_Star0008", "active", datetime(2026, 2, 5, 15), [
        item("sub_Star0008", 1, 2, price_=price("pro_monthly", 1200, "usd", "month"))], org=8)
    sm = subscription(old, "sub_Manual01", "cus_Manual001", "active", datetime(2026, 2, 25), [
        item("sub_Manual01", 1, 5, price_=price("storage_daily", 12, "usd", "day"))])
    subscription(old, "sub_Dangle99", "cus_Dangle999", "active", datetime(2026, 2, 26, 6), [
        item("sub_Dangle99", 1, 1, price_=price("team_monthly", 2400, "usd", "month"))], org=999)
    s10 = start + 4 * DAY + 15 * HOUR
    subscription(s10, "sub_Tyre0010", "cus_Tyre0010", "active", s10, [
        item("sub_Tyre0010", 1, 1, price_=price("enterprise_yearly", 120000, "jpy", "year"))],
        org=10)
    # Invoices in the history window, one per subscription period, paid a few hours later.
    for n, (cid, sid, currency, amount) in enumerate([
            ("cus_Acme0001", "sub_Acme0001", "usd", 4500),
            ("cus_Glob0003", "sub_Glob0003", "usd", 48000),
            ("cus_Umbr0005", "sub_Umbr0005", "eur", 27000),
            ("cus_Hool0006", "sub_Hool0006", "kwd", 4125),
            ("cus_Star0008", "sub_Star0008", "usd", 2400),
            ("cus_Manual001", None, "usd", 5000)]):
        when = start + (n + 1) * DAY + 9 * HOUR
        invoice(when, f"in_H{n:03d}" + ("U" if n == 2 else ""), cid, sid, currency, amount,
                "paid", paid=when + 3 * HOUR)
    invoice(s10, "in_Tyre0001", "cus_Tyre0010", "sub_Tyre0010", "jpy", 120000, "paid",
            paid=s10 + HOUR)
    # The last history sync lands something: at T0, Stripe's watermark is 18:40 the day before.
    inv = invoice(day0 - DAY + 16 * HOUR, "in_Init0001", "cus_Init0004", "sub_Init0004", "usd",
                  300, "open")
    invoice(day0 - DAY + 16 * HOUR, "in_Init0001", "cus_Init0004", "sub_Init0004", "usd", 300,
            "paid", paid=day0 - DAY + 17 * HOUR)
    del inv

    # --- the replay ------------------------------------------------------------------------
    # Day 0, before the 00:40 sync: a renewal invoice, a quantity change (re-prices every past
    # day of sub_Acme0001), and a cancellation backdated to a week ago (MRR days disappear).
    invoice(d(0, 0, 10), "in_Glob0002", "cus_Glob0003", "sub_Glob0003", "usd", 48000, "open")
    s1 = dict(s1, ITEMS=json.loads(json.dumps(s1["ITEMS"])), UPDATED=unix(d(0, 0, 20)))
    s1["ITEMS"]["data"][0]["quantity"] = 4
    at_(d(0, 0, 20), SUBSCRIPTIONS, s1)
    backdated = d(0, 0, 30) - 8 * DAY
    at_(d(0, 0, 30), SUBSCRIPTIONS, dict(sm, STATUS="canceled", CANCELED_AT=unix(d(0, 0, 30)),
                                         ENDED_AT=unix(backdated), UPDATED=unix(d(0, 0, 30))))
    cases["backdated_end"] = backdated.date()
    # Nothing changes between 00:40 and 06:40: the 06:40 sync is empty.
    # Org 2 starts paying (the app links it at 09:20; Stripe has it from 09:15).
    customer(d(0, 9, 15), "cus_Nort0002", "Northwind", 2, "usd")
    subscription(d(0, 9, 16), "sub_Nort0002", "cus_Nort0002", "active", d(0, 9, 16), [
        item("sub_Nort0002", 1, 1, price_=price("pro_monthly", 1200, "usd", "month"))], org=2)
    invoice(d(0, 9, 17), "in_Nort0001", "cus_Nort0002", "sub_Nort0002", "usd", 1200, "paid",
            paid=d(0, 9, 18))
    # A kwd invoice (three decimals: 4.125), open at 11:00, paid in the next sync.
    invoice(d(0, 11), "in_Hool0002", "cus_Hool0006", "sub_Hool0006", "kwd", 4125, "open")
    invoice(d(0, 11), "in_Hool0002", "cus_Hool0006", "sub_Hool0006", "kwd", 4125, "paid",
            paid=d(0, 16))
    # Org 4 moves to team: the item's price changes, which re-prices every past day.
    s4 = dict(s4, ITEMS=json.loads(json.dumps(s4["ITEMS"])), UPDATED=unix(d(0, 15, 31)))
    s4["ITEMS"]["data"][0] = item("sub_Init0004", 1, 1,
                                  price_=price("team_monthly", 2400, "usd", "month"))
    at_(d(0, 15, 31), SUBSCRIPTIONS, s4)
    # Org 5 cancels today.
    at_(d(0, 17), SUBSCRIPTIONS, dict(s5, STATUS="canceled", CANCELED_AT=unix(d(0, 17)),
                                      ENDED_AT=unix(d(0, 17)), UPDATED=unix(d(0, 17))))
    if days >= 2:
        # Day 1: the 00:40 and 06:40 syncs are empty; the day before is released by the clock
        # (7 hours after midnight). Stark's customer is deleted: Stripe keeps only the ID and the
        # flag, so its metadata -- the only link to organization 8 -- is gone, and Stripe ends
        # its subscription.
        at_(d(1, 10), CUSTOMERS, {"ID": cus8["ID"], "DELETED": True, "UPDATED": unix(d(1, 10))})
        at_(d(1, 10), SUBSCRIPTIONS, dict(s8, STATUS="canceled", CANCELED_AT=unix(d(1, 10)),
                                          ENDED_AT=unix(d(1, 10)), UPDATED=unix(d(1, 10))))
        invoice(d(1, 13), "in_Tyre0002", "cus_Tyre0010", "sub_Tyre0010", "jpy", 120000, "paid",
                paid=d(1, 13, 30))
        cases["deleted_customer"] = cus8["ID"]
    if days >= 3:
        invoice(d(2, 0, 5), "in_Acme0002", "cus_Acme0001", "sub_Acme0001", "usd", 5700, "paid",
                paid=d(2, 0, 6))
        s3 = dict(s3, ITEMS=json.loads(json.dumps(s3["ITEMS"])), UPDATED=unix(d(2, 14, 5)))
        s3["ITEMS"]["data"][0] = item("sub_Glob0003", 1, 2, price_=price(
            "enterprise_quarterly", 27000, "usd", "month", 3))
        at_(d(2, 14, 5), SUBSCRIPTIONS, s3)


# --- landing batches in a warehouse ----------------------------------------------------------


def create_raw(adapter, tables: dict[str, RawTable]) -> None:
    for fqn, table in tables.items():
        if fqn in STRIPE_TABLES:
            table = stripe_table(tables, table.name)
        raw_warehouse.create_table(adapter, table, replace=True)


def _append(adapter, table: RawTable, rows: list[dict]) -> None:
    if not rows:
        return
    landing = raw_warehouse.stage_text(adapter, table, text_frame(table, rows))
    try:
        raw_warehouse.insert_from_landing(adapter, table, landing)
    finally:
        raw_warehouse.drop_landing(adapter, table)


def _reload(adapter, table: RawTable, rows: list[dict]) -> None:
    """Full refresh in one transaction: readers never see ORGANIZATIONS empty."""
    landing = raw_warehouse.stage_text(adapter, table, text_frame(table, rows))
    try:
        with raw_warehouse.transaction(adapter):
            adapter.execute(f"DELETE FROM {raw_warehouse.quoted(table.fqn).sql(adapter.dialect)}")
            raw_warehouse.insert_from_landing(adapter, table, landing)
    finally:
        raw_warehouse.drop_landing(adapter, table)


def land(adapter, tables: dict[str, RawTable], batch: Batch) -> None:
    """One batch into RAW, as its loader writes it."""
    if batch.source == "replication":
        _append(adapter, tables[EVENTS], batch.events)
        _append(adapter, tables[USERS], batch.users)
        _reload(adapter, tables[ORGS], batch.orgs or [])
    elif any(batch.stripe.values()):
        write_stripe(adapter, tables, {STRIPE_TABLES[fqn]: rows
                                       for fqn, rows in batch.stripe.items()}, upsert=True)


def merged_history(batches: list[Batch]) -> Batch:
    """The batches before T0 as one load: all appended rows, the last ORGANIZATIONS reload, the
    latest version of every Stripe record (with the sync that landed it)."""
    merged = Batch(batches[-1].at, "history")
    stripe: dict[str, dict[str, dict]] = defaultdict(dict)
    for batch in batches:
        merged.events += batch.events
        merged.users += batch.users
        if batch.orgs is not None:
            merged.orgs = batch.orgs
        for fqn, rows in batch.stripe.items():
            for row in rows:
                stripe[fqn][row["ID"]] = row
    merged.stripe = {fqn: list(rows.values()) for fqn, rows in stripe.items()}
    return merged


def land_history(adapter, tables: dict[str, RawTable], batches: list[Batch]) -> None:
    merged = merged_history(batches)
    _append(adapter, tables[EVENTS], merged.events)
    _append(adapter, tables[USERS], merged.users)
    _reload(adapter, tables[ORGS], merged.orgs or [])
    write_stripe(adapter, tables, {STRIPE_TABLES[fqn]: rows for fqn, rows in merged.stripe.items()})


class RawMirror:
    """RAW as the batches say it should be, in Python (what `read_raw` should read back)."""

    def __init__(self, tables: dict[str, RawTable]) -> None:
        self.tables = tables
        self.rows: dict[str, list[dict]] = {fqn: [] for fqn in tables}

    def apply(self, batch: Batch) -> None:
        self.rows[EVENTS] += batch.events
        self.rows[USERS] += batch.users
        if batch.orgs is not None:
            self.rows[ORGS] = list(batch.orgs)
        for fqn, rows in batch.stripe.items():
            ids = {row["ID"] for row in rows}
            self.rows[fqn] = [row for row in self.rows[fqn] if row["ID"] not in ids] + rows

    def raw(self) -> dict[str, list[dict]]:
        """Every table's declared columns (a missing key is NULL)."""
        return {fqn: [{c: row.get(c) for c in self.tables[fqn].column_names} for row in rows]
                for fqn, rows in self.rows.items()}


def canonical_rows(rows: list[dict]) -> list[str]:
    def value(v):
        if isinstance(v, datetime) and v.tzinfo is not None:
            v = v.astimezone(timezone.utc).replace(tzinfo=None)
        return v
    return sorted(json.dumps({k: value(v) for k, v in row.items()}, default=str, sort_keys=True)
                  for row in rows)


# --- reading RAW back -------------------------------------------------------------------------


def read_raw(adapter, tables: dict[str, RawTable]) -> dict[str, list[dict]]:
    """Every RAW table's declared columns, VARIANT parsed (as raw_helpers.read_raw, through an
    open adapter: the replay reads RAW after every batch and keeps one connection)."""
    from raw_helpers import fetch

    out = {}
    for fqn, table in tables.items():
        cols = ", ".join(f'"{c}"' for c in table.column_names)
        table_sql = raw_warehouse.quoted(fqn).sql(adapter.dialect)
        rows = fetch(adapter, f"SELECT {cols} FROM {table_sql}")
        for row in rows:
            for column in table.columns:
                if column.kind == "variant" and row[column.name] is not None:
                    value = row[column.name]
                    row[column.name] = json.loads(value) if isinstance(value, str) else value
        out[fqn] = rows
    return out
