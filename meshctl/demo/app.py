"""Generated app tables (ORGANIZATIONS, USERS, EVENTS) with every messy case of sources.md.

Replication is modelled as one batch per day, loaded at the midnight that ends the day: a batch
carries the user versions and events that reached the app before it, so `_REPLICATED_AT` never
passes the end of the last generated day. Everything is numpy over whole days (the benchmark
generates millions of events); randomness comes from `rng(seed, stream, day)`, so a day's batch
is the same whichever way it is produced (initial generation or `--append-day`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

US = 1_000_000
MINUTE = 60 * US
HOUR = 60 * MINUTE
DAY = 24 * HOUR
NULL_TS = np.iinfo(np.int64).min  # numpy's NaT: int64 microseconds viewed as datetime64[us]

PLANS = ["free", "pro", "team", "enterprise"]
INDUSTRIES = ["software", "education", "healthcare", "finance", "media", "retail", "nonprofit"]
COUNTRIES = ["US", "GB", "DE", "FR", "CA", "BR", "IN", "JP", "AU", "NL", "SE", "ES"]
NAME_WORDS = ["Acme", "Northwind", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark",
              "Wayne", "Tyrell", "Cyberdyne", "Soylent", "Wonka", "Aperture", "Gringotts", "Monarch"]
NAME_SUFFIXES = ["Labs", "Inc", "Studio", "Group", "Co", "Collective", "Partners", "Works"]
FIRST_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Radia",
               "Linus", "Frances", "John", "Katherine", "Dennis", "Hedy", "Tim"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton",
              "Thompson", "Perlman", "Torvalds", "Allen", "Backus", "Johnson", "Ritchie", "Lamarr"]
EVENT_TYPES = ["session_started", "document_created", "document_shared", "comment_added",
               "invite_sent"]
EVENT_TYPE_P = [0.36, 0.2, 0.1, 0.26, 0.08]
# Types the app started sending without notice; staging must pass them through.
NEW_EVENT_TYPES = ["ai_summary_generated", "template_applied"]
# PROPERTIES text that is NULL, empty, not JSON, or JSON that is not an object.
# (Only text every JSON parser rejects or accepts alike: engines differ on lenient inputs such
# as single quotes, and the marts must not depend on which engine parsed it.)
BAD_PROPERTIES = [None, "", '{"document_id": 12', "[1, 2, 3]", "42", '"web"', "true", "null",
                  "[]"]

STREAM_ORGS, STREAM_USERS, STREAM_EVENTS, STREAM_STRIPE, STREAM_APPEND = 1, 2, 3, 4, 5


def rng(seed: int, stream: int, day_ordinal: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, stream, day_ordinal])


def day_ordinal(day_start_us: int) -> int:
    return int(day_start_us // DAY)


def uniform_ts(gen: np.random.Generator, low, high, size=None) -> np.ndarray:
    return gen.integers(low, np.maximum(np.asarray(high), np.asarray(low) + 1), size=size)


def as_datetime(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).view("datetime64[us]")


def nullable_int(values: np.ndarray, null: np.ndarray | None = None) -> pd.arrays.IntegerArray:
    values = np.asarray(values, dtype=np.int64)
    mask = np.zeros(len(values), dtype=bool) if null is None else np.asarray(null, dtype=bool)
    return pd.arrays.IntegerArray(values, mask)


def activity(seed: int, ids: np.ndarray) -> np.ndarray:
    """A per-user activity weight that depends only on (seed, id), heavy-tailed like real usage."""
    # splitmix64 on array operands only: numpy wraps array overflow silently (scalars warn).
    ids = np.asarray(ids, dtype=np.uint64)
    x = ids + np.full(len(ids), seed % 2**32, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    u = (x >> np.uint64(11)).astype(np.float64) / float(2**53)
    return 1.0 / (0.02 + u) ** 1.3


def messy_email(gen: np.random.Generator, base: list[str]) -> list[str]:
    """Emails as people type them: mixed case, sometimes shouted, sometimes padded with spaces."""
    style = gen.random(len(base))
    pad = gen.random(len(base))
    out = []
    for address, s, p in zip(base, style, pad):
        if s < 0.5:
            address = address.title()
        elif s < 0.6:
            address = address.upper()
        if p < 0.1:
            address = f"  {address} "
        elif p < 0.15:
            address = f"{address} "
        out.append(address)
    return out


# --- organizations -------------------------------------------------------------------------


def customer_id(gen: np.random.Generator) -> str:
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
    return "cus_" + "".join(gen.choice(alphabet, 14))


def new_organizations(
    gen: np.random.Generator, first_id: int, created: np.ndarray, until_us: int
) -> pd.DataFrame:
    """Organizations with the given creation times (ascending); times are int64 microseconds."""
    n = len(created)
    plan = gen.choice(PLANS, n, p=[0.4, 0.3, 0.2, 0.1])
    country = gen.choice(COUNTRIES, n).astype(object)
    lower, missing = gen.random(n), gen.random(n)
    country = np.where(lower < 0.2, np.char.lower(country.astype(str)).astype(object), country)
    country = np.where(missing < 0.08, None, country)
    industry = np.where(gen.random(n) < 0.2, None, gen.choice(INDUSTRIES, n).astype(object))
    names = [f"{a} {b}" for a, b in zip(gen.choice(NAME_WORDS, n), gen.choice(NAME_SUFFIXES, n))]
    # Paying organizations have a Stripe customer; a few lost the link in the app (the customer
    # still names them in its metadata).
    unlinked = gen.random(n) < 0.1
    gone = gen.random(n) < 0.07
    # However small the sample, some paying organization lost its link and one was deleted.
    paying = np.flatnonzero(plan != "free")
    if len(paying) >= 4:
        unlinked[paying[1]], gone[paying[2]] = True, True
    customers = [
        customer_id(gen) if p != "free" and not u else None for p, u in zip(plan, unlinked)
    ]
    updated = uniform_ts(gen, created, until_us)
    deleted = np.full(n, NULL_TS)
    deleted[gone] = uniform_ts(gen, created[gone], until_us)
    updated = np.where(gone, np.maximum(updated, deleted), updated)
    return pd.DataFrame(
        {
            "ID": np.arange(first_id, first_id + n, dtype=np.int64),
            "NAME": names,
            "PLAN": plan.astype(object),
            "INDUSTRY": industry,
            "COUNTRY_CODE": country,
            "STRIPE_CUSTOMER_ID": customers,
            "CREATED_AT": created,
            "UPDATED_AT": updated,
            "DELETED_AT": deleted,
        }
    )


def generate_organizations(seed: int, count: int, start_us: int, end_us: int) -> pd.DataFrame:
    gen = rng(seed, STREAM_ORGS)
    before = gen.random(count) < 0.6
    created = np.where(
        before,
        start_us - gen.integers(DAY, 400 * DAY, count),
        uniform_ts(gen, start_us, end_us - HOUR, count),
    )
    return new_organizations(gen, 1, np.sort(created), end_us)


def organizations_frame(orgs: pd.DataFrame, replicated_at: int) -> pd.DataFrame:
    """ORGANIZATIONS as the full-refresh replication leaves it: one row per ID, all one batch."""
    frame = orgs.copy()
    for column in ("CREATED_AT", "UPDATED_AT", "DELETED_AT"):
        frame[column] = as_datetime(frame[column].to_numpy(dtype=np.int64))
    frame["ID"] = frame["ID"].astype("Int64")
    frame["_REPLICATED_AT"] = as_datetime(np.full(len(frame), replicated_at))
    return frame


# --- users ---------------------------------------------------------------------------------


@dataclass
class Users:
    """The app's current user rows (one per ID) and which of them replication has seen."""

    id: np.ndarray
    org: np.ndarray
    email_base: np.ndarray  # the address without mess; versions re-mess it
    email: np.ndarray
    full_name: np.ndarray
    role: np.ndarray
    status: np.ndarray
    created: np.ndarray
    updated: np.ndarray
    last_login: np.ndarray
    deleted: np.ndarray
    replicated: np.ndarray
    last_batch: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def extend(self, other: Users) -> None:
        for name in ("id", "org", "email_base", "email", "full_name", "role", "status", "created",
                     "updated", "last_login", "deleted", "replicated"):
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))

    def rows(self, index: np.ndarray, replicated_at: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "ID": nullable_int(self.id[index]),
                "ORGANIZATION_ID": nullable_int(self.org[index]),
                "EMAIL": self.email[index],
                "FULL_NAME": self.full_name[index],
                "ROLE": self.role[index],
                "STATUS": self.status[index],
                "CREATED_AT": as_datetime(self.created[index]),
                "UPDATED_AT": as_datetime(self.updated[index]),
                "LAST_LOGIN_AT": as_datetime(self.last_login[index]),
                "DELETED_AT": as_datetime(self.deleted[index]),
                "_REPLICATED_AT": as_datetime(np.full(len(index), replicated_at)),
            }
        )


def new_users(
    gen: np.random.Generator,
    first_id: int,
    created: np.ndarray,
    orgs: pd.DataFrame,
    not_yet_replicated_org: int,
    window_start_us: int,
) -> Users:
    n = len(created)
    org_ids = orgs["ID"].to_numpy()
    # A few organizations hold most users.
    weight = 1.0 / np.arange(1, len(org_ids) + 1) ** 0.7
    org = gen.choice(gen.permutation(org_ids), n, p=weight / weight.sum())
    org = np.where(gen.random(n) < 0.015, not_yet_replicated_org, org)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    first = gen.choice(FIRST_NAMES, n)
    last = gen.choice(LAST_NAMES, n)
    base = np.array([f"{f}.{l}{i}@example.com".lower() for f, l, i in zip(first, last, ids)],
                    dtype=object)
    full_name = np.array([f"{f} {l}" for f, l in zip(first, last)], dtype=object)
    full_name[gen.random(n) < 0.05] = None
    role = gen.choice(["owner", "admin", "member"], n, p=[0.06, 0.14, 0.8]).astype(object)
    # Users who joined before the window are mostly active already; new ones start invited.
    old = created < window_start_us
    status = np.where(
        old,
        gen.choice(["active", "deactivated", "invited"], n, p=[0.85, 0.1, 0.05]),
        gen.choice(["invited", "active"], n, p=[0.6, 0.4]),
    ).astype(object)
    last_login = np.where(
        status == "invited", NULL_TS,
        np.where(old, uniform_ts(gen, created, window_start_us), created),
    )
    updated = np.where(old, np.maximum(last_login, created) + gen.integers(0, HOUR, n), created)
    updated = np.where(old, np.minimum(updated, window_start_us - US), updated)
    deleted = np.where(old & (gen.random(n) < 0.02), updated, NULL_TS)
    return Users(
        id=ids, org=org.astype(np.int64), email_base=base,
        email=np.array(messy_email(gen, list(base)), dtype=object), full_name=full_name,
        role=role, status=status, created=created.astype(np.int64), updated=updated,
        last_login=last_login.astype(np.int64), deleted=deleted.astype(np.int64),
        replicated=np.zeros(n, dtype=bool),
    )


def generate_users(
    seed: int, count: int, orgs: pd.DataFrame, start_us: int, end_us: int
) -> Users:
    gen = rng(seed, STREAM_USERS)
    before = gen.random(count) < 0.45
    created = np.where(
        before,
        start_us - gen.integers(HOUR, 500 * DAY, count),
        uniform_ts(gen, start_us, end_us - HOUR, count),
    )
    return new_users(gen, 1, np.sort(created), orgs, int(orgs["ID"].max()) + 1, start_us)


def users_batch(users: Users, seed: int, day_start: int) -> pd.DataFrame:
    """The USERS rows the batch at the end of `day_start`'s day appends; updates `users`."""
    batch_at = day_start + DAY
    gen = rng(seed, STREAM_USERS, day_ordinal(day_start))
    new = np.flatnonzero(~users.replicated & (users.created < batch_at))
    seen = np.flatnonzero(users.replicated & (users.deleted == NULL_TS))
    users.replicated[new] = True

    changed = np.zeros(0, dtype=np.int64)
    if len(seen):
        changed = np.sort(gen.choice(seen, max(1, round(0.03 * len(seen))), replace=False))
        at = np.maximum(uniform_ts(gen, day_start, batch_at, len(changed)),
                        users.updated[changed] + US)
        kind = gen.random(len(changed))
        login = kind < 0.55
        users.last_login[changed[login]] = at[login]
        users.status[changed[login & (users.status[changed] == "invited")]] = "active"
        flip = (kind >= 0.55) & (kind < 0.7)
        users.role[changed[flip]] = np.where(users.role[changed[flip]] == "admin", "member", "admin")
        remess = (kind >= 0.7) & (kind < 0.85)
        users.email[changed[remess]] = messy_email(gen, list(users.email_base[changed[remess]]))
        users.status[changed[(kind >= 0.85) & (kind < 0.96)]] = "deactivated"
        users.deleted[changed[kind >= 0.96]] = at[kind >= 0.96]
        users.updated[changed] = at

    # The app sometimes writes a row without bumping UPDATED_AT: the next batch carries a second,
    # different version with the same UPDATED_AT, and only _REPLICATED_AT tells which is newer.
    ties = np.zeros(0, dtype=np.int64)
    previous = np.setdiff1d(users.last_batch, changed)
    previous = previous[users.deleted[previous] == NULL_TS]
    if len(previous) and day_ordinal(day_start) % 3 == 1:
        ties = np.sort(gen.choice(previous, min(2, len(previous)), replace=False))
        users.role[ties] = np.where(users.role[ties] == "admin", "member", "admin")
        users.full_name[ties] = [f"{name or 'Anonymous'} (edited)" for name in users.full_name[ties]]

    index = np.unique(np.concatenate([new, changed, ties]))
    users.last_batch = index
    # A retried batch appends some of its rows a second time, identical.
    if day_ordinal(day_start) % 5 == 2 and len(index):
        index = np.concatenate([index, gen.choice(index, max(1, len(index) // 20), replace=False)])
    return users.rows(index, batch_at)


# --- events --------------------------------------------------------------------------------


def _properties(gen: np.random.Generator, event_type: np.ndarray) -> np.ndarray:
    n = len(event_type)
    doc = gen.integers(1, 50_000, n)
    source = gen.choice(["web", "desktop", "ios", "android", "api"], n)
    shape = gen.random(n)
    text = np.empty(n, dtype=object)
    for i, (kind, d, s, r) in enumerate(zip(event_type, doc, source, shape)):
        if r < 0.1:
            text[i] = f'{{"source": "{s}", "meta": {{"ab": ["v{d % 3}"], "retry": false}}}}'
        elif kind == "session_started":
            text[i] = f'{{"source": "{s}", "duration_seconds": {d % 3600}}}'
        elif kind == "invite_sent":
            text[i] = f'{{"invitee_role": "member", "source": "{s}"}}'
        else:
            text[i] = f'{{"document_id": {d}, "source": "{s}"}}'
    bad = gen.random(n) < 0.08
    text[bad] = gen.choice(np.array(BAD_PROPERTIES, dtype=object), int(bad.sum()))
    return text


def events_batch(
    users: Users,
    seed: int,
    day_start: int,
    next_id: int,
    per_day: int,
    floor_us: int,
) -> pd.DataFrame:
    """The EVENTS rows of the batch loaded at the end of `day_start`'s day: that day's events,
    late ones from up to 72 hours back (never before `floor_us`), one a few minutes ahead of the
    app's clock, and on some days a retried chunk appended twice."""
    batch_at = day_start + DAY
    gen = rng(seed, STREAM_EVENTS, day_ordinal(day_start))
    on_time = np.sort(uniform_ts(gen, day_start, batch_at, per_day))
    late = np.zeros(0, dtype=np.int64)
    if day_start > floor_us:
        lateness = gen.integers(DAY + US, 72 * HOUR + 1, max(1, per_day * 3 // 100))
        lateness[0] = 72 * HOUR  # the contract's limit, exactly
        late = np.sort(batch_at - lateness)
        late = late[late >= floor_us]
    future = batch_at + gen.integers(US, 5 * MINUTE + 1, max(1, per_day // 5000))
    occurred = np.concatenate([on_time, late, future])
    n = len(occurred)

    eligible = np.flatnonzero(
        (users.created < day_start) & (users.deleted == NULL_TS) & (users.status != "deactivated")
    )
    anonymous = gen.random(n) < 0.03
    if len(eligible):
        weight = activity(seed, users.id[eligible])
        who = gen.choice(eligible, n, p=weight / weight.sum())
        user_id, org_id = users.id[who], users.org[who]
    else:
        anonymous[:] = True
        user_id = org_id = np.zeros(n, dtype=np.int64)
    known_orgs = np.unique(users.org) if len(users.org) else np.array([1])
    org_id = np.where(anonymous, gen.choice(known_orgs, n), org_id)
    org_null = anonymous & (gen.random(n) < 0.7)

    event_type = gen.choice(EVENT_TYPES, n, p=EVENT_TYPE_P).astype(object)
    new_type = gen.random(n) < 0.015
    event_type[new_type] = gen.choice(NEW_EVENT_TYPES, int(new_type.sum()))

    frame = pd.DataFrame(
        {
            "ID": nullable_int(np.arange(next_id, next_id + n, dtype=np.int64)),
            "USER_ID": nullable_int(user_id, anonymous),
            "ORGANIZATION_ID": nullable_int(org_id, org_null),
            "EVENT_TYPE": event_type,
            "PROPERTIES": _properties(gen, event_type),
            "OCCURRED_AT": as_datetime(occurred),
            "_REPLICATED_AT": as_datetime(np.full(n, batch_at)),
        }
    )
    if day_ordinal(day_start) % 4 == 1:
        retried = gen.choice(n, max(1, n // 60), replace=False)
        frame = pd.concat([frame, frame.iloc[np.sort(retried)]], ignore_index=True)
    return frame
