"""`meshctl demo-data`: a seeded, scalable RAW dataset with every messy case of sources.md.

The dataset is a window of `--days` days ending with `--end-date` (the last complete day). The
replication service loads one batch per day, at the midnight that closes it, so the newest
`_REPLICATED_AT` is exactly the end of the window and the window's last day is complete.
`--append-day` adds the batch of the next day to what RAW already holds (see `append_day`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import click
import numpy as np
import pandas as pd
from sqlmesh.core.engine_adapter import EngineAdapter

from meshctl.demo import app as demo_app
from meshctl.demo import stripe as demo_stripe
from meshctl.demo.app import DAY, NULL_TS, US
from meshctl.raw import warehouse as raw_warehouse
from meshctl.raw.schema import RawColumn, RawTable
from meshctl.raw.values import text_frame

ORGS, USERS, EVENTS = "GOODWORD_WH.RAW.ORGANIZATIONS", "GOODWORD_WH.RAW.USERS", "GOODWORD_WH.RAW.EVENTS"


STRIPE = "AIRBYTE_DB.RAW."


# A Stripe field Airbyte added as a column that the contract does not declare.
EXTRA_COLUMNS = {"STRIPE_CUSTOMERS": (RawColumn("INVOICE_PREFIX", "VARCHAR"),)}


Echo = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class DemoParams:
    organizations: int
    users: int
    days: int
    events_per_day: int
    seed: int
    end_date: date

    @property
    def start_us(self) -> int:
        return _epoch_us(self.end_date - timedelta(days=self.days - 1))

    @property
    def end_us(self) -> int:
        return _epoch_us(self.end_date + timedelta(days=1))


def _epoch_us(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()) * US


def yesterday_utc() -> date:
    return datetime.now(timezone.utc).date() - timedelta(days=1)


def stripe_table(tables: dict[str, RawTable], name: str) -> RawTable:
    table = tables[STRIPE + name]
    return dataclasses.replace(table, columns=table.columns + EXTRA_COLUMNS.get(name, ()))


def write_stripe(adapter: EngineAdapter, tables: dict[str, RawTable], rows: dict[str, list],
                 *, upsert: bool = False) -> None:
    """Insert the rows; with `upsert`, first delete the rows with the same IDs, in the same
    transaction (Airbyte's Append + Deduped keeps only the latest version of a record)."""
    staged = {name: stripe_table(tables, name) for name, table_rows in rows.items() if table_rows}
    landings = {name: raw_warehouse.stage_text(adapter, table, text_frame(table, rows[name]))
                for name, table in staged.items()}
    try:
        with raw_warehouse.transaction(adapter):
            for name, table in staged.items():
                if upsert:
                    ids = ", ".join("'" + row["ID"].replace("'", "''") + "'" for row in rows[name])
                    fqn = raw_warehouse.quoted(table.fqn).sql(adapter.dialect)
                    adapter.execute(f'DELETE FROM {fqn} WHERE "ID" IN ({ids})')
                raw_warehouse.insert_from_landing(adapter, table, landings[name])
    finally:
        for table in staged.values():
            raw_warehouse.drop_landing(adapter, table)


def generate(adapter: EngineAdapter, tables: dict[str, RawTable], p: DemoParams, echo: Echo) -> dict:
    """Replace every RAW table with a freshly generated window; returns row counts per table."""
    began = time.monotonic()
    for fqn, table in tables.items():
        if fqn.startswith(STRIPE):
            table = stripe_table(tables, table.name)
        raw_warehouse.create_table(adapter, table, replace=True)
    orgs = demo_app.generate_organizations(p.seed, p.organizations, p.start_us, p.end_us)
    users = demo_app.generate_users(p.seed, p.users, orgs, p.start_us, p.end_us)
    counts = {USERS: 0, EVENTS: 0}
    next_event_id = 1
    for day in range(p.days):
        day_start = p.start_us + day * DAY
        user_rows = demo_app.users_batch(users, p.seed, day_start)
        event_rows = demo_app.events_batch(users, p.seed, day_start, next_event_id,
                                           p.events_per_day, p.start_us)
        next_event_id = int(event_rows["ID"].max()) + 1
        raw_warehouse.append_frame(adapter, tables[USERS], user_rows)
        raw_warehouse.append_frame(adapter, tables[EVENTS], event_rows)
        counts[USERS] += len(user_rows)
        counts[EVENTS] += len(event_rows)
        if day == p.days - 1 or (day + 1) % max(1, p.days // 5) == 0:
            echo(f"  EVENTS, USERS: day {day + 1}/{p.days} loaded "
                 f"({counts[EVENTS]:,} events, {counts[USERS]:,} user versions, "
                 f"{time.monotonic() - began:.1f}s)")
    echo(f"{USERS}: {counts[USERS]:,} rows ({len(users.id):,} users)")
    echo(f"{EVENTS}: {counts[EVENTS]:,} rows")
    raw_warehouse.append_frame(adapter, tables[ORGS], demo_app.organizations_frame(orgs, p.end_us))
    counts[ORGS] = len(orgs)
    echo(f"{ORGS}: {len(orgs):,} rows")
    stripe_rows = demo_stripe.generate_stripe(p.seed, orgs, p.start_us, p.end_us)
    write_stripe(adapter, tables, stripe_rows)
    for name, rows in stripe_rows.items():
        counts[STRIPE + name] = len(rows)
        echo(f"{STRIPE}{name}: {len(rows):,} rows")
    return counts


def _select(adapter: EngineAdapter, fqn: str, columns: list[str], where: str = "") -> list[dict]:
    names = ", ".join(f'"{c}"' for c in columns)
    table = raw_warehouse.quoted(fqn).sql(adapter.dialect)
    rows = adapter.fetchall(f"SELECT {names} FROM {table} {where}")
    return [dict(zip(columns, row)) for row in rows]


def _us(values) -> np.ndarray:
    series = pd.to_datetime(pd.Series(list(values), dtype=object), utc=True)
    return series.dt.tz_localize(None).astype("datetime64[us]").to_numpy().view(np.int64)


def read_organizations(adapter: EngineAdapter, table: RawTable) -> pd.DataFrame:
    """ORGANIZATIONS as RAW holds it (timestamps as epoch microseconds), ordered by ID."""
    columns = [c for c in table.column_names if c != "_REPLICATED_AT"]
    orgs = pd.DataFrame(_select(adapter, table.fqn, columns), columns=columns)
    for column in ("CREATED_AT", "UPDATED_AT", "DELETED_AT"):
        orgs[column] = _us(orgs[column])
    orgs["ID"] = orgs["ID"].astype(np.int64)
    return orgs.sort_values("ID", ignore_index=True)


def read_users(adapter: EngineAdapter, table: RawTable, last_batch_us: int) -> demo_app.Users:
    """The latest version of every user, as the app holds it now (same ordering as the marts)."""
    fqn = raw_warehouse.quoted(table.fqn).sql(adapter.dialect)
    rows = adapter.fetchall(
        f'SELECT "ID", "ORGANIZATION_ID", "EMAIL", "FULL_NAME", "ROLE", "STATUS", "CREATED_AT", '
        f'"UPDATED_AT", "LAST_LOGIN_AT", "DELETED_AT", "_REPLICATED_AT" FROM {fqn}'
    )
    frame = pd.DataFrame(rows, columns=["id", "org", "email", "full_name", "role", "status",
                                        "created", "updated", "last_login", "deleted", "repl"])
    for column in ("created", "updated", "last_login", "deleted", "repl"):
        frame[column] = _us(frame[column])
    latest = frame.sort_values(["id", "updated", "repl"]).groupby("id").tail(1)
    latest = latest.sort_values("id")
    return demo_app.Users(
        id=latest["id"].astype(np.int64).to_numpy(),
        org=latest["org"].fillna(0).astype(np.int64).to_numpy(),
        email_base=latest["email"].str.strip().str.lower().to_numpy(dtype=object),
        email=latest["email"].to_numpy(dtype=object),
        full_name=latest["full_name"].to_numpy(dtype=object),
        role=latest["role"].to_numpy(dtype=object),
        status=latest["status"].to_numpy(dtype=object),
        created=latest["created"].to_numpy(), updated=latest["updated"].to_numpy(),
        last_login=latest["last_login"].to_numpy(), deleted=latest["deleted"].to_numpy(),
        replicated=np.ones(len(latest), dtype=bool),
        last_batch=np.flatnonzero(latest["repl"].to_numpy() == last_batch_us),
    )


def append_day(adapter: EngineAdapter, tables: dict[str, RawTable], seed: int,
               events_per_day: int, echo: Echo, *, now: datetime | None = None) -> date:
    """Append the batch of the day after the newest one in RAW; returns that day.

    The day brings its own events plus late ones for the previous three days, new users and new
    versions of some existing ones, a full reload of ORGANIZATIONS with a new organization, a
    free organization that starts paying, one moving from pro to team and one soft-deleted, and
    in Stripe the new customer and subscription, the team price, and a cancellation.
    """
    events = raw_warehouse.quoted(tables[EVENTS].fqn).sql(adapter.dialect)
    last_batch, first_event, max_event = adapter.fetchone(
        f'SELECT MAX("_REPLICATED_AT"), MIN("OCCURRED_AT"), MAX("ID") FROM {events}')
    if last_batch is None:
        raise click.ClickException("RAW EVENTS is empty: run `meshctl demo-data` first.")
    day_start = int(_us([last_batch])[0])
    floor_us = int(_us([first_event])[0]) // DAY * DAY
    # Lands at the midnight that closes the day, or just before `now` when that is still to come:
    # a run on the real clock only processes RAW that landed before it.
    now_us = int((now or datetime.now(timezone.utc)).timestamp() * US)
    batch_at = min(day_start + DAY, now_us - US)
    gen = demo_app.rng(seed, demo_app.STREAM_APPEND, demo_app.day_ordinal(day_start))

    orgs = read_organizations(adapter, tables[ORGS])
    users = read_users(adapter, tables[USERS], day_start)
    # Everything is read before anything is written, so a failed read leaves RAW as it was.
    sub_table = stripe_table(tables, "STRIPE_SUBSCRIPTIONS")
    subscriptions = [_stripe_row(sub_table, row)
                     for row in _select(adapter, sub_table.fqn, sub_table.column_names)]

    # Organizations: one new (users may already point at its ID), one upgrade from free, one pro
    # moving to team, one soft-deleted; all at some moment of the new day.
    at = lambda: day_start + int(gen.integers(3600, 20 * 3600)) * US  # noqa: E731
    alive = orgs["DELETED_AT"] == NULL_TS
    free = orgs.index[alive & (orgs["PLAN"] == "free")]
    # The pro organization that moves to team is one with a live subscription to re-price.
    live = {s["CUSTOMER"] for s in subscriptions if s["STATUS"] == "active" and not s["ENDED_AT"]}
    pro = orgs.index[alive & (orgs["PLAN"] == "pro") & orgs["STRIPE_CUSTOMER_ID"].isin(live)]
    upgraded = gen.choice(free, min(1, len(free)), replace=False)
    moved = gen.choice(pro, min(1, len(pro)), replace=False)
    remaining = orgs.index[alive].difference(upgraded).difference(moved)
    deleted = gen.choice(remaining, min(1, len(remaining)), replace=False)
    for i in upgraded:
        orgs.loc[i, ["PLAN", "STRIPE_CUSTOMER_ID", "UPDATED_AT"]] = [
            "pro", demo_stripe.token(gen, "cus_"), at()]
    for i in moved:
        orgs.loc[i, ["PLAN", "UPDATED_AT"]] = ["team", at()]
    for i in deleted:
        when = at()
        orgs.loc[i, ["DELETED_AT", "UPDATED_AT"]] = [when, when]
    new_org = demo_app.new_organizations(gen, int(orgs["ID"].max()) + 1,
                                         np.array([at()]), batch_at)
    new_org["PLAN"], new_org["STRIPE_CUSTOMER_ID"], new_org["DELETED_AT"] = "free", None, NULL_TS
    orgs = pd.concat([orgs, new_org], ignore_index=True)

    created = np.sort(day_start + gen.integers(0, DAY, max(1, len(users.id) // 100)))
    users.extend(demo_app.new_users(gen, int(users.id.max()) + 1, created, orgs,
                                    int(orgs["ID"].max()) + 1, floor_us))
    user_rows = demo_app.users_batch(users, seed, day_start)
    event_rows = demo_app.events_batch(users, seed, day_start, int(max_event) + 1,
                                       events_per_day, floor_us)
    if batch_at < day_start + DAY:  # the batches are stamped with the midnight: move them to now
        for rows in (user_rows, event_rows):
            rows["_REPLICATED_AT"] = demo_app.as_datetime(np.full(len(rows), batch_at))
    raw_warehouse.append_frame(adapter, tables[USERS], user_rows)
    raw_warehouse.append_frame(adapter, tables[EVENTS], event_rows)
    echo(f"{USERS}: +{len(user_rows):,} rows")
    late = int((event_rows["OCCURRED_AT"] < pd.Timestamp(day_start, unit="us")).sum())
    echo(f"{EVENTS}: +{len(event_rows):,} rows ({late:,} late, for earlier days)")

    with raw_warehouse.transaction(adapter):  # full refresh: readers never see an empty ORGANIZATIONS
        adapter.execute(f"DELETE FROM {raw_warehouse.quoted(ORGS).sql(adapter.dialect)}")
        raw_warehouse.append_frame(adapter, tables[ORGS], demo_app.organizations_frame(orgs, batch_at))
    echo(f"{ORGS}: {len(orgs):,} rows (reloaded)")

    changes = demo_stripe.append_changes(gen, subscriptions, orgs.loc[upgraded], orgs.loc[moved],
                                         day_start, floor_us + DAY)
    synced = datetime.fromtimestamp(batch_at / US, tz=timezone.utc)  # Airbyte's sync: same clamp
    for rows in changes.values():
        for row in rows:
            row["_AIRBYTE_EXTRACTED_AT"] = min(row["_AIRBYTE_EXTRACTED_AT"], synced)
    write_stripe(adapter, tables, changes, upsert=True)
    for name, rows in changes.items():
        echo(f"{STRIPE}{name}: {len(rows):,} rows upserted")
    return datetime.fromtimestamp(day_start / US, tz=timezone.utc).date()


def _stripe_row(table: RawTable, row: dict) -> dict:
    out = {}
    for column in table.columns:
        value = row[column.name]
        if column.kind == "variant" and isinstance(value, str):
            value = json.loads(value)
        elif isinstance(value, Decimal):
            value = int(value)
        out[column.name] = value
    return out
