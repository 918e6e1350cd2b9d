"""One hour's replication batch for the benchmark's hourly tick (bench only).

`meshctl demo-data` models replication as one batch a day, at the midnight that closes it. The
hourly tick needs the batch the replication service lands one hour after the newest one in RAW:
the events that occurred in that hour plus a 1/24 share of the day's late ones (up to 72 h old,
so they fall on dates already published), the user versions written in the hour (new users,
logins, role and status changes), and a full reload of ORGANIZATIONS with one organization
renamed. Stripe is untouched (Airbyte syncs once a day). The rows come from the same generators
as a whole day (`demo_app.events_batch`, `users_batch`), so they look like any other batch;
deterministic given RAW and the seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sqlmesh.core.engine_adapter import EngineAdapter

from meshctl.demo import app as demo_app
from meshctl.demo.app import DAY, HOUR, NULL_TS, US
from meshctl.demo.generator import EVENTS, ORGS, USERS, _us, read_organizations, read_users
from meshctl.raw import warehouse as raw_warehouse
from meshctl.raw.schema import RawTable

STREAM_HOUR = 101  # a random stream of its own: the daily streams stay as `append_day` uses them


def append_hour(adapter: EngineAdapter, tables: dict[str, RawTable], seed: int,
                events_per_day: int, echo: Callable[[str], None]) -> dict:
    """Land the batch of the hour after the newest EVENTS batch; returns what it wrote."""
    events = raw_warehouse.quoted(tables[EVENTS].fqn).sql(adapter.dialect)
    last_batch, first_event, max_event = adapter.fetchone(
        f'SELECT MAX("_REPLICATED_AT"), MIN("OCCURRED_AT"), MAX("ID") FROM {events}')
    last_us = int(_us([last_batch])[0])
    batch_at = last_us + HOUR
    day_start = last_us // DAY * DAY
    floor_us = int(_us([first_event])[0]) // DAY * DAY
    gen = demo_app.rng(seed, STREAM_HOUR, int(last_us // HOUR))

    orgs = read_organizations(adapter, tables[ORGS])
    users = read_users(adapter, tables[USERS], last_us)

    # Users: the day's versions as `users_batch` makes them, keeping those written before the
    # batch (new users of the hour, about 1/24 of the day's changes, same-UPDATED_AT rewrites).
    created = np.sort(last_us + gen.integers(0, HOUR, max(1, len(users.id) // 2400)))
    users.extend(demo_app.new_users(gen, int(users.id.max()) + 1, created, orgs,
                                    int(orgs["ID"].max()) + 1, floor_us))
    day_users = demo_app.users_batch(users, seed, day_start)
    user_rows = day_users[day_users["UPDATED_AT"] < pd.Timestamp(batch_at, unit="us")].copy()
    user_rows["_REPLICATED_AT"] = demo_app.as_datetime(np.full(len(user_rows), batch_at))

    # Events: the day's events that occurred in the hour, and every 24th of its late ones.
    day_events = demo_app.events_batch(users, seed, day_start, int(max_event) + 1,
                                       events_per_day, floor_us)
    occurred = day_events["OCCURRED_AT"]
    in_hour = (occurred >= pd.Timestamp(last_us, unit="us")) & (occurred < pd.Timestamp(batch_at, unit="us"))
    late_ids = day_events.loc[occurred < pd.Timestamp(day_start, unit="us"), "ID"].unique()
    late = day_events["ID"].isin(late_ids[::24])
    event_rows = day_events[in_hour | late].copy()
    event_rows["_REPLICATED_AT"] = demo_app.as_datetime(np.full(len(event_rows), batch_at))

    # ORGANIZATIONS: full reload; one live organization renamed during the hour.
    alive = orgs.index[orgs["DELETED_AT"] == NULL_TS]
    renamed = int(gen.choice(alive))
    orgs.loc[renamed, ["NAME", "UPDATED_AT"]] = [
        f"{orgs.loc[renamed, 'NAME']} (renamed)", last_us + int(gen.integers(60, 3600)) * US]

    raw_warehouse.append_frame(adapter, tables[USERS], user_rows)
    raw_warehouse.append_frame(adapter, tables[EVENTS], event_rows)
    with raw_warehouse.transaction(adapter):  # full refresh, as the replication service does it
        adapter.execute(f"DELETE FROM {raw_warehouse.quoted(ORGS).sql(adapter.dialect)}")
        raw_warehouse.append_frame(adapter, tables[ORGS], demo_app.organizations_frame(orgs, batch_at))

    late_rows = int(late.sum())
    echo(f"{USERS}: +{len(user_rows):,} rows")
    echo(f"{EVENTS}: +{len(event_rows):,} rows ({late_rows:,} late, for earlier days), "
         f"{event_rows['ID'].nunique():,} distinct IDs")
    echo(f"{ORGS}: {len(orgs):,} rows (reloaded)")
    return {"batch_at_us": batch_at, "events": len(event_rows), "late": late_rows,
            "new_event_ids": int(event_rows["ID"].nunique()), "users": len(user_rows),
            "organizations": len(orgs)}
