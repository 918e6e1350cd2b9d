"""The marts computed in plain Python from RAW rows, following marts.md word for word.

Independent of the SQL models on purpose: nothing here reads staging or mart tables, and the
rules are written from the contract, not from the models. Input is RAW as `read_raw` returns it
(TIMESTAMP_NTZ as naive UTC datetimes, VARIANT parsed); output is one list of row dicts per mart,
with the mart's upper-case column names.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

EVENTS = "GOODWORD_WH.RAW.EVENTS"
USERS = "GOODWORD_WH.RAW.USERS"
ORGS = "GOODWORD_WH.RAW.ORGANIZATIONS"
CUSTOMERS = "AIRBYTE_DB.RAW.STRIPE_CUSTOMERS"
SUBSCRIPTIONS = "AIRBYTE_DB.RAW.STRIPE_SUBSCRIPTIONS"
INVOICES = "AIRBYTE_DB.RAW.STRIPE_INVOICES"

# "normalized to a month (year / 12, week x 52 / 12, day x 365 / 12, each further / interval_count)"
MONTHLY_FACTOR = {"month": Fraction(1), "year": Fraction(1, 12), "week": Fraction(52, 12),
                  "day": Fraction(365, 12)}
EPOCH = datetime(1970, 1, 1)

# "Money in a currency's major unit" (marts.md): Stripe's zero-decimal and three-decimal
# currencies; every other currency has two decimals.
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
                "vuv", "xaf", "xof", "xpf"}
THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}

# The whole-days rule falls back to the clock when Stripe is quiet: Airbyte syncs every 6 hours,
# so a sync at least this long after midnight has run even if it landed no rows (config variable
# `airbyte_max_sync_gap_hours` in the project).
AIRBYTE_MAX_SYNC_GAP_HOURS = 7


def utc(seconds: int | None) -> datetime | None:
    """A Stripe Unix time as a naive UTC datetime."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).replace(tzinfo=None)


def exponent(currency: str | None) -> int:
    """Decimal places of the currency's minor unit."""
    currency = (currency or "").lower()
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def major(amount: int | None, currency: str | None) -> Decimal | None:
    """A Stripe amount (minor unit) in the currency's major unit, exactly."""
    return None if amount is None else Decimal(int(amount)).scaleb(-exponent(currency))


def cents(amount: int | None) -> Decimal | None:
    return major(amount, "usd")


def to_cents(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP)


# --- app tables ----------------------------------------------------------------------------


def distinct_events(raw: dict) -> list[dict]:
    """RAW EVENTS deduplicated on ID (any copy; they are identical)."""
    by_id: dict[int, dict] = {}
    for row in raw[EVENTS]:
        by_id.setdefault(row["ID"], row)
    return list(by_id.values())


def latest_users(raw: dict) -> list[dict]:
    """Per ID, the row with the greatest UPDATED_AT, then _REPLICATED_AT."""
    best: dict[int, dict] = {}
    for row in raw[USERS]:
        key = (row["UPDATED_AT"] or datetime.min, row["_REPLICATED_AT"] or datetime.min)
        current = best.get(row["ID"])
        if current is None or key > (current["UPDATED_AT"] or datetime.min,
                                     current["_REPLICATED_AT"] or datetime.min):
            best[row["ID"]] = row
    return list(best.values())


def _not_json(name: str):
    raise ValueError(f"{name} is not JSON")  # Python accepts NaN and Infinity; JSON does not


def properties_object(text: str | None) -> dict | None:
    """The parsed PROPERTIES when the text is a JSON object, else None."""
    if text is None:
        return None
    try:
        value = json.loads(text, parse_constant=_not_json)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def fct_events(raw: dict, latest_complete: date | None = None) -> list[dict]:
    """Every distinct event landed, whatever its date: today's, and the few stamped up to five
    minutes ahead of the replication clock (`latest_complete` is accepted and ignored; the
    whole-days rule is for the daily marts only)."""
    rows = []
    for event in distinct_events(raw):
        event_date = event["OCCURRED_AT"].date()
        props = properties_object(event["PROPERTIES"])
        rows.append({
            "EVENT_ID": event["ID"],
            "USER_ID": event["USER_ID"],
            "ORGANIZATION_ID": event["ORGANIZATION_ID"],
            "EVENT_TYPE": event["EVENT_TYPE"],
            "OCCURRED_AT": event["OCCURRED_AT"],
            "EVENT_DATE": event_date,
            "PROPERTIES": props,
            "HAS_VALID_PROPERTIES": props is not None,
        })
    return rows


def dim_users(raw: dict) -> list[dict]:
    return [{
        "USER_ID": user["ID"],
        "ORGANIZATION_ID": user["ORGANIZATION_ID"],
        "EMAIL": None if user["EMAIL"] is None else user["EMAIL"].strip().lower(),
        "ROLE": user["ROLE"],
        "STATUS": user["STATUS"],
        "IS_DELETED": user["DELETED_AT"] is not None,
        "CREATED_AT": user["CREATED_AT"],
        "LAST_LOGIN_AT": user["LAST_LOGIN_AT"],
    } for user in latest_users(raw)]


def dim_organizations(raw: dict) -> list[dict]:
    active = defaultdict(int)
    for user in latest_users(raw):
        if user["STATUS"] == "active" and user["DELETED_AT"] is None:
            active[user["ORGANIZATION_ID"]] += 1
    return [{
        "ORGANIZATION_ID": org["ID"],
        "ORGANIZATION_NAME": org["NAME"],
        "PLAN": org["PLAN"],
        "INDUSTRY": org["INDUSTRY"],
        "COUNTRY_CODE": None if org["COUNTRY_CODE"] is None else org["COUNTRY_CODE"].upper(),
        "STRIPE_CUSTOMER_ID": org["STRIPE_CUSTOMER_ID"],
        "IS_DELETED": org["DELETED_AT"] is not None,
        "CREATED_AT": org["CREATED_AT"],
        "ACTIVE_MEMBER_COUNT": active[org["ID"]],
    } for org in raw[ORGS]]


class PlanHistory:
    """SCD type 2 on PLAN over the ORGANIZATIONS each build saw (the table is a full refresh, so
    history exists only across builds). As the model documents it (marts.md leaves it open):
    periods seen at the first build start at 1970-01-01, later ones at the execution time of the
    first run that saw them, and a period ends when the next one starts. Observing a build that
    saw nothing new changes nothing, so observing every tick equals observing only the ticks on
    which the model evaluated (a plan change always comes with an ORGANIZATIONS reload)."""

    def __init__(self) -> None:
        self.periods: dict[int, list[dict]] = {}
        self.builds = 0

    def observe(self, execution_time: datetime, raw: dict) -> None:
        starts = EPOCH if self.builds == 0 else execution_time
        self.builds += 1
        for org in raw[ORGS]:
            history = self.periods.setdefault(org["ID"], [])
            if history and history[-1]["PLAN"] == org["PLAN"]:
                continue
            if history:
                history[-1]["VALID_TO"] = starts
            history.append({"ORGANIZATION_ID": org["ID"], "PLAN": org["PLAN"],
                            "VALID_FROM": starts, "VALID_TO": None})

    def rows(self) -> list[dict]:
        return [dict(period) for history in self.periods.values() for period in history]


def dim_organizations_history(builds: list[tuple[datetime, dict]]) -> list[dict]:
    history = PlanHistory()
    for execution_time, raw in builds:
        history.observe(execution_time, raw)
    return history.rows()


# --- Stripe --------------------------------------------------------------------------------


def organization_of_customers(raw: dict) -> dict[str, int | None]:
    """The organization whose STRIPE_CUSTOMER_ID is the customer, else the customer's
    metadata.organization_id when that organization exists; None when neither resolves."""
    org_ids = {org["ID"] for org in raw[ORGS]}
    by_customer: dict[str, int] = {}
    for org in raw[ORGS]:
        if org["STRIPE_CUSTOMER_ID"] is not None:
            assert org["STRIPE_CUSTOMER_ID"] not in by_customer, "two organizations, one customer"
            by_customer[org["STRIPE_CUSTOMER_ID"]] = org["ID"]
    resolved: dict[str, int | None] = defaultdict(lambda: None)
    for customer in raw[CUSTOMERS]:
        metadata = customer["METADATA"] if isinstance(customer["METADATA"], dict) else {}
        named = metadata.get("organization_id")
        try:
            named = int(named) if named is not None else None
        except (TypeError, ValueError):
            named = None
        resolved[customer["ID"]] = named if named in org_ids else None
    resolved.update(by_customer)
    return resolved


def item_mrr(item: dict) -> tuple[str | None, Fraction]:
    """(currency, monthly amount in major units) of one subscription item."""
    price = item.get("price")
    if price:
        amount, currency = price.get("unit_amount"), price.get("currency")
        recurring = price.get("recurring") or {}
        interval, count = recurring.get("interval"), recurring.get("interval_count")
    else:
        plan = item.get("plan") or {}
        amount, currency = plan.get("amount"), plan.get("currency")
        interval, count = plan.get("interval"), plan.get("interval_count")
    currency = currency.lower() if currency else None
    if amount is None or interval is None:
        return currency, Fraction(0)
    quantity = item.get("quantity")
    quantity = 1 if quantity is None else quantity
    return currency, (Fraction(amount) * quantity / 10 ** exponent(currency)
                      * MONTHLY_FACTOR[interval] / (count or 1))


def counted_on(sub: dict, day: date) -> bool:
    if sub["STATUS"] in ("incomplete", "incomplete_expired") or sub["START_DATE"] is None:
        return False
    if utc(sub["START_DATE"]).date() > day:
        return False
    if sub["ENDED_AT"] is not None and utc(sub["ENDED_AT"]).date() <= day:
        return False
    return sub["TRIAL_END"] is None or utc(sub["TRIAL_END"]).date() <= day


def mrr_exact(raw: dict, latest_complete: date) -> dict[tuple, Fraction]:
    """(date, customer, currency) -> exact MRR, for every date from the earliest subscription
    start to the latest complete date; zero rows left out."""
    subs = raw[SUBSCRIPTIONS]
    assert len({s["ID"] for s in subs}) == len(subs), "Airbyte dedup promises one row per ID"
    starts = [utc(s["START_DATE"]).date() for s in subs if s["START_DATE"] is not None]
    totals: dict[tuple, Fraction] = defaultdict(Fraction)
    if not starts:
        return {}
    day = min(starts)
    while latest_complete is not None and day <= latest_complete:
        for sub in subs:
            if not counted_on(sub, day):
                continue
            for item in (sub["ITEMS"] or {}).get("data", []):
                currency, amount = item_mrr(item)
                if amount:
                    totals[(day, sub["CUSTOMER"], currency)] += amount
        day += timedelta(days=1)
    return {key: value for key, value in totals.items() if value > 0}


def fct_mrr_daily(raw: dict, latest_complete: date) -> list[dict]:
    organization = organization_of_customers(raw)
    return [{
        "DATE": day, "STRIPE_CUSTOMER_ID": customer, "ORGANIZATION_ID": organization[customer],
        "CURRENCY": currency, "MRR": value,  # exact Fraction; compared to the mart within 0.005
    } for (day, customer, currency), value in mrr_exact(raw, latest_complete).items()]


def fct_invoices(raw: dict) -> list[dict]:
    organization = organization_of_customers(raw)
    rows = []
    for invoice in raw[INVOICES]:
        transitions = invoice["STATUS_TRANSITIONS"] or {}
        rows.append({
            "INVOICE_ID": invoice["ID"],
            "STRIPE_CUSTOMER_ID": invoice["CUSTOMER"],
            "ORGANIZATION_ID": organization[invoice["CUSTOMER"]],
            "SUBSCRIPTION_ID": invoice["SUBSCRIPTION"],
            "STATUS": invoice["STATUS"],
            "CURRENCY": None if invoice["CURRENCY"] is None else invoice["CURRENCY"].lower(),
            # exact; the mart's NUMBER(38,2) is compared within half a cent (kwd has 3 decimals)
            "AMOUNT_DUE": major(invoice["AMOUNT_DUE"], invoice["CURRENCY"]),
            "AMOUNT_PAID": major(invoice["AMOUNT_PAID"], invoice["CURRENCY"]),
            "CREATED_AT": utc(invoice["CREATED"]),
            "PAID_AT": utc(transitions.get("paid_at")),
            "PERIOD_START_AT": utc(invoice["PERIOD_START"]),
            "PERIOD_END_AT": utc(invoice["PERIOD_END"]),
        })
    return rows


# --- the whole-days rule ------------------------------------------------------------------


def _utc_naive(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def latest_complete_date(raw: dict, execution_time: datetime,
                         max_sync_gap_hours: float = AIRBYTE_MAX_SYNC_GAP_HOURS) -> date | None:
    """D*, the last date FCT_MRR_DAILY and METRICS_DAILY may publish at a run at `execution_time`:

        D* = min(date(T) - 1, date(max ORGANIZATIONS._REPLICATED_AT) - 1, S)
        S  = max(date(max _AIRBYTE_EXTRACTED_AT over the three Stripe tables) - 1,
                 date(T - max_sync_gap_hours) - 1)

    A day is whole once the replication run after its midnight has reloaded ORGANIZATIONS and an
    Airbyte sync after that midnight has landed -- or enough time has passed that a sync has run
    even though it brought no rows. None when ORGANIZATIONS is empty (no replication run has
    closed any day)."""
    one = timedelta(days=1)
    execution_time = _utc_naive(execution_time)
    replicated = [o["_REPLICATED_AT"] for o in raw.get(ORGS, []) if o["_REPLICATED_AT"]]
    if not replicated:
        return None
    extracted = [_utc_naive(row["_AIRBYTE_EXTRACTED_AT"])
                 for table in (CUSTOMERS, SUBSCRIPTIONS, INVOICES) for row in raw.get(table, [])
                 if row.get("_AIRBYTE_EXTRACTED_AT") is not None]
    stripe = (execution_time - timedelta(hours=max_sync_gap_hours)).date() - one
    if extracted:
        stripe = max(stripe, max(extracted).date() - one)
    return min(execution_time.date() - one, max(replicated).date() - one, stripe)


# --- company metrics -----------------------------------------------------------------------


def metrics_daily(raw: dict, latest_complete: date) -> list[dict]:
    events = distinct_events(raw)
    if not events:
        return []
    users_by_date: dict[date, set] = defaultdict(set)
    for event in events:
        if event["USER_ID"] is not None:
            users_by_date[event["OCCURRED_AT"].date()].add(event["USER_ID"])
    new_users = defaultdict(int)
    for user in latest_users(raw):
        new_users[user["CREATED_AT"].date()] += 1
    new_orgs = defaultdict(int)
    for org in raw[ORGS]:
        new_orgs[org["CREATED_AT"].date()] += 1
    mrr_usd: dict[date, Decimal] = defaultdict(Decimal)
    paying: dict[date, set] = defaultdict(set)
    for row in fct_mrr_daily(raw, latest_complete):
        if row["CURRENCY"] == "usd":
            # "the sum of FCT_MRR_DAILY.MRR": of the mart's values, which are in cents.
            mrr_usd[row["DATE"]] += to_cents(row["MRR"])
        if row["ORGANIZATION_ID"] is not None:
            paying[row["DATE"]].add(row["ORGANIZATION_ID"])

    def active(day: date, days: int) -> int:
        return len(set().union(*(users_by_date[day - timedelta(days=k)] for k in range(days))))

    rows = []
    day = min(event["OCCURRED_AT"].date() for event in events)
    while latest_complete is not None and day <= latest_complete:
        rows.append({
            "DATE": day, "DAU": active(day, 1), "WAU": active(day, 7), "MAU": active(day, 28),
            "NEW_USERS": new_users[day], "NEW_ORGANIZATIONS": new_orgs[day],
            "MRR_USD": mrr_usd[day], "PAYING_ORGANIZATIONS": len(paying[day]),
        })
        day += timedelta(days=1)
    return rows


def marts(raw: dict, latest_complete: date | None,
          builds: list[tuple[datetime, dict]] | PlanHistory) -> dict:
    """Every mart. `latest_complete` is D* (see `latest_complete_date`); `builds` is the
    (execution time, RAW) of each build so far, or a PlanHistory that has observed them."""
    history = builds if isinstance(builds, PlanHistory) else None
    return {
        "DIM_ORGANIZATIONS": dim_organizations(raw),
        "DIM_ORGANIZATIONS_HISTORY": (history.rows() if history is not None
                                      else dim_organizations_history(builds)),
        "DIM_USERS": dim_users(raw),
        "FCT_EVENTS": fct_events(raw),
        "FCT_INVOICES": fct_invoices(raw),
        "FCT_MRR_DAILY": fct_mrr_daily(raw, latest_complete),
        "METRICS_DAILY": metrics_daily(raw, latest_complete),
    }


KEYS = {
    "DIM_ORGANIZATIONS": ("ORGANIZATION_ID",),
    "DIM_ORGANIZATIONS_HISTORY": ("ORGANIZATION_ID", "VALID_FROM"),
    "DIM_USERS": ("USER_ID",),
    "FCT_EVENTS": ("EVENT_ID",),
    "FCT_INVOICES": ("INVOICE_ID",),
    "FCT_MRR_DAILY": ("DATE", "STRIPE_CUSTOMER_ID", "CURRENCY"),
    "METRICS_DAILY": ("DATE",),
}
