"""Generated Stripe tables (as Airbyte lands them) for the generated organizations.

Rows are plain dicts keyed by column name, with Stripe's shapes: Unix-second times, cents,
nested objects for METADATA / ITEMS / STATUS_TRANSITIONS. Stripe tables are small (one customer
per paying organization), so this is ordinary Python. Every awkward case the MRR definition in
marts.md mentions is present: trials, yearly / weekly / daily prices, interval_count > 1, legacy
`plan` items, a metered price with no unit amount, a one-time price, missing quantities,
incomplete subscriptions, a non-USD currency, customers without (or with a dangling)
organization, and Airbyte metadata recording a nulled field.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from meshctl.demo.app import DAY, NULL_TS, STREAM_STRIPE, US, rng

# Prices in the catalogue: (unit_amount in cents or None, interval or None, interval_count).
PRICES = {
    "pro_monthly": (1200, "month", 1),
    "pro_weekly": (300, "week", 1),
    "team_monthly": (2400, "month", 1),
    "team_yearly": (24000, "year", 1),
    "enterprise_quarterly": (27000, "month", 3),
    "seat_weekly": (500, "week", 1),  # 500 * 52 / 12 cents a month: not a whole cent
    "storage_daily": (12, "day", 1),
    "api_metered": (None, "month", 1),
    "onboarding_once": (5000, None, 1),
}
LEGACY_PLANS = {"legacy_pro": (900, "month", 1), "legacy_team_biannual": (12000, "month", 6)}
MAIN_PRICES = {
    "pro": (["pro_monthly", "pro_weekly", "legacy_pro"], [0.7, 0.15, 0.15]),
    "team": (["team_monthly", "team_yearly", "legacy_team_biannual"], [0.6, 0.3, 0.1]),
    "enterprise": (["enterprise_quarterly", "team_yearly"], [0.7, 0.3]),
}
# The first paying organizations get these (status, main price, add-ons, currency), so even a
# tiny dataset holds every case the MRR definition distinguishes; the rest are drawn at random.
FORCED = [
    ("active", "pro_weekly", ["storage_daily"], "usd"),
    ("active", "team_yearly", ["api_metered"], "eur"),
    ("active", "enterprise_quarterly", ["onboarding_once"], "usd"),
    ("active", "legacy_pro", [], "usd"),
    ("past_due", "legacy_team_biannual", ["seat_weekly"], "usd"),
    ("incomplete", "pro_monthly", [], "usd"),
    ("incomplete_expired", "team_monthly", [], "usd"),
    ("unpaid", "pro_monthly", [], "usd"),
    ("paused", "team_monthly", [], "usd"),
    ("canceled", "pro_monthly", [], "usd"),
    ("trialing", "team_monthly", [], "usd"),  # its trial ends on the day after the window
]
STATUSES = ["active", "trialing", "past_due", "canceled", "unpaid", "incomplete",
            "incomplete_expired", "paused"]
STATUS_P = [0.6, 0.08, 0.05, 0.1, 0.02, 0.06, 0.05, 0.04]

SYNC_ID_BASE = 4000


def token(gen: np.random.Generator, prefix: str, length: int = 14) -> str:
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
    return prefix + "".join(gen.choice(alphabet, length))


def seconds(us: int) -> int:
    return int(us // US)


def airbyte_columns(gen: np.random.Generator, updated_s: int, end_us: int, start_us: int,
                    changes: list | None = None) -> dict:
    """Airbyte syncs once a day, at the midnight that ends it: a record carries the sync after its
    last update (the first sync for older records)."""
    first_sync = start_us + DAY
    sync_us = -(-updated_s * US // DAY) * DAY
    sync_us = min(max(sync_us, first_sync), end_us)
    return {
        "_AIRBYTE_RAW_ID": str(uuid.UUID(bytes=gen.bytes(16), version=4)),
        "_AIRBYTE_EXTRACTED_AT": datetime.fromtimestamp(sync_us / US, tz=timezone.utc),
        "_AIRBYTE_META": {"sync_id": SYNC_ID_BASE + int(sync_us // DAY), "changes": changes or []},
        "_AIRBYTE_GENERATION_ID": 1,
    }


def price_item(gen: np.random.Generator, sub_id: str, key: str, currency: str, quantity: int | None,
               created: int, *, explicit_null_price: bool | None = None) -> dict:
    item = {"id": token(gen, "si_"), "object": "subscription_item", "created": created,
            "metadata": {}, "subscription": sub_id, "tax_rates": []}
    if quantity is not None:
        item["quantity"] = quantity
    if key in LEGACY_PLANS:
        amount, interval, count = LEGACY_PLANS[key]
        item["plan"] = {"id": key, "object": "plan", "active": True, "amount": amount,
                        "amount_decimal": str(amount), "currency": currency, "interval": interval,
                        "interval_count": count, "usage_type": "licensed"}
        if explicit_null_price if explicit_null_price is not None else gen.random() < 0.5:
            item["price"] = None  # some old records say so explicitly, others omit the key
        return item
    amount, interval, count = PRICES[key]
    recurring = None
    if interval:
        usage = "metered" if amount is None else "licensed"
        recurring = {"interval": interval, "interval_count": count, "usage_type": usage,
                     "aggregate_usage": "sum" if amount is None else None}
    item["price"] = {
        "id": f"price_{key}_{currency}", "object": "price", "active": True, "currency": currency,
        "unit_amount": amount, "unit_amount_decimal": None if amount is None else str(amount),
        "billing_scheme": "per_unit", "recurring": recurring,
        "type": "recurring" if recurring else "one_time",
    }
    return item


def period_length_s(item: dict) -> int:
    if item.get("price"):
        recurring = item["price"]["recurring"] or {"interval": "month", "interval_count": 1}
        interval, count = recurring["interval"], recurring["interval_count"]
    else:
        interval, count = item["plan"]["interval"], item["plan"]["interval_count"]
    return {"day": 1, "week": 7, "month": 30, "year": 365}[interval] * count * 86400


def sub_currency(sub: dict) -> str:
    item = sub["ITEMS"]["data"][0]
    return (item.get("price") or item["plan"])["currency"]


def period_amount(item: dict) -> int:
    """Cents one billing period of the item costs (0 when metered)."""
    quantity = item.get("quantity", 1)
    amount = item["price"]["unit_amount"] if item.get("price") else item["plan"]["amount"]
    return (amount or 0) * quantity


class StripeBuilder:
    """Accumulates the three Stripe tables; one instance per generated window or appended day."""

    def __init__(self, gen: np.random.Generator, start_us: int, end_us: int):
        self.gen, self.start_us, self.end_us = gen, start_us, end_us
        self.customers: list[dict] = []
        self.subscriptions: list[dict] = []
        self.invoices: list[dict] = []

    def tables(self) -> dict[str, list[dict]]:
        return {"STRIPE_CUSTOMERS": self.customers, "STRIPE_SUBSCRIPTIONS": self.subscriptions,
                "STRIPE_INVOICES": self.invoices}

    def customer(self, cid: str, org_id: int | None, name: str, created_s: int, currency: str | None,
                 *, metadata_org: int | None, deleted: bool | None = None,
                 updated_s: int | None = None) -> dict:
        gen = self.gen
        metadata = {} if metadata_org is None else {"organization_id": str(metadata_org)}
        if metadata_org is not None and gen.random() < 0.3:
            metadata["signup_source"] = str(gen.choice(["web", "sales"]))
        updated_s = updated_s or created_s
        row = {
            "ID": cid,
            "EMAIL": f"billing+{org_id or cid.lower()}@example.com",
            "NAME": name,
            "CREATED": created_s,
            "CURRENCY": currency,
            "DELINQUENT": bool(gen.random() < 0.05),
            "DELETED": deleted,
            "LIVEMODE": True,
            "METADATA": metadata,
            "UPDATED": updated_s,
            # Not in the contract: Airbyte added it when Stripe did.
            "INVOICE_PREFIX": token(gen, "", 8).upper(),
            **airbyte_columns(gen, updated_s, self.end_us, self.start_us),
        }
        self.customers.append(row)
        return row

    def subscription(self, customer: str, plan: str, status: str, start_s: int, *,
                     currency: str = "usd", trial_end_s: int | None = None,
                     ended_s: int | None = None, metadata_org: int | None = None,
                     forced: tuple | None = None) -> dict:
        gen = self.gen
        end_s = seconds(self.end_us)
        sub_id = token(gen, "sub_")
        keys, p = MAIN_PRICES[plan]
        main = str(gen.choice(keys, p=p))
        quantity = int(gen.integers(1, 26))
        draws = gen.random(5)
        addons = [key for key, draw, p in zip(
            ["storage_daily", "api_metered", "onboarding_once", "seat_weekly"], draws[1:],
            [0.25, 0.15, 0.08, 0.08]) if draw < p]
        no_quantity = draws[0] < 0.1
        if forced:
            main, addons = forced[1], forced[2]
            no_quantity = main == "pro_weekly"
        items = [price_item(gen, sub_id, main, currency, None if no_quantity else quantity,
                            start_s, explicit_null_price=(main == "legacy_team_biannual"
                                                          if forced else None))]
        for key in addons:
            # Metered prices bill usage, so Stripe gives their items no quantity.
            addon_quantity = None if key == "api_metered" else int(gen.integers(1, 6))
            items.append(price_item(gen, sub_id, key, currency, addon_quantity, start_s))
        canceled_s = None
        if status == "canceled":
            ended_s = ended_s or int(gen.integers(start_s + 86400, max(end_s, start_s + 86401)))
            ended_s = min(ended_s, end_s)
            canceled_s = ended_s - int(gen.integers(0, 86400 * 3))
        period = period_length_s(items[0])
        anchor = trial_end_s if trial_end_s and trial_end_s < end_s else start_s
        current_start = anchor + max(0, (min(ended_s or end_s, end_s) - anchor) // period) * period
        cancel_later = status == "active" and gen.random() < 0.1
        if cancel_later:
            canceled_s = int(gen.integers(start_s, end_s))
        updated_s = max(v for v in (start_s, canceled_s, ended_s, current_start) if v)
        if trial_end_s and trial_end_s <= end_s:
            updated_s = max(updated_s, trial_end_s)
        row = {
            "ID": sub_id,
            "CUSTOMER": customer,
            "STATUS": status,
            "CREATED": start_s - int(gen.integers(0, 600)),
            "START_DATE": start_s,
            "CURRENT_PERIOD_START": current_start,
            "CURRENT_PERIOD_END": current_start + period,
            "TRIAL_START": start_s if trial_end_s else None,
            "TRIAL_END": trial_end_s,
            "CANCEL_AT_PERIOD_END": cancel_later,
            "CANCELED_AT": canceled_s,
            "ENDED_AT": ended_s,
            # Stripe fills the top-level quantity only for single-item subscriptions.
            "QUANTITY": items[0].get("quantity") if len(items) == 1 else None,
            "METADATA": {} if metadata_org is None else {"organization_id": str(metadata_org)},
            "ITEMS": {"object": "list", "data": items, "has_more": False,
                      "total_count": len(items),
                      "url": f"/v1/subscription_items?subscription={sub_id}"},
            "UPDATED": min(updated_s, end_s),
            **airbyte_columns(gen, min(updated_s, end_s), self.end_us, self.start_us),
        }
        self.subscriptions.append(row)
        return row

    def invoices_for(self, sub: dict, currency: str) -> None:
        """One invoice per billing period up to the end of the window (the latest four)."""
        end_s = seconds(self.end_us)
        items = sub["ITEMS"]["data"]
        period = period_length_s(items[0])
        first = sub["START_DATE"]
        stop = min(sub["ENDED_AT"] or end_s, end_s)
        starts = list(range(first, stop, period))[-4:] or [first]
        for n, period_start in enumerate(starts):
            amount = sum(period_amount(i) for i in items if period_length_s(i))
            in_trial = sub["TRIAL_END"] and period_start < sub["TRIAL_END"]
            amount = 0 if in_trial else amount
            last = n == len(starts) - 1
            status = "paid"
            if last:
                status = {"past_due": "open", "unpaid": "uncollectible", "incomplete": "open",
                          "incomplete_expired": "void"}.get(sub["STATUS"], "paid")
            self.invoice(sub["CUSTOMER"], sub["ID"], currency, amount, period_start,
                         period_start + period, status)

    def invoice(self, customer: str, subscription: str | None, currency: str, amount: int,
                created_s: int, period_end_s: int, status: str) -> dict:
        gen = self.gen
        end_s = seconds(self.end_us)
        created_s = min(created_s, end_s)
        finalized = None if status == "draft" else min(created_s + 3600, end_s)
        paid_at = min(created_s + int(gen.integers(60, 2 * 86400)), end_s) if status == "paid" else None
        voided = min(created_s + 86400, end_s) if status == "void" else None
        paid_amount = amount if status == "paid" else 0
        updated_s = max(v for v in (created_s, finalized, paid_at, voided) if v)
        row = {
            "ID": token(gen, "in_"),
            "CUSTOMER": customer,
            "SUBSCRIPTION": subscription,
            "STATUS": status,
            "CURRENCY": currency,
            "AMOUNT_DUE": amount,
            "AMOUNT_PAID": paid_amount,
            "AMOUNT_REMAINING": amount - paid_amount,
            "SUBTOTAL": amount,
            "TOTAL": amount,
            "CREATED": created_s,
            "PERIOD_START": created_s,
            "PERIOD_END": period_end_s,
            "PAID": status == "paid",
            "STATUS_TRANSITIONS": {"finalized_at": finalized, "paid_at": paid_at,
                                   "marked_uncollectible_at": None, "voided_at": voided},
            "UPDATED": updated_s,
            **airbyte_columns(gen, updated_s, self.end_us, self.start_us),
        }
        self.invoices.append(row)
        return row


def _subscribe(b: StripeBuilder, cid: str, plan: str, currency: str, org_id: int | None,
               created_s: int, status: str | None = None, forced: tuple | None = None) -> None:
    gen = b.gen
    start_s, end_s = seconds(b.start_us), seconds(b.end_us)
    status = (forced[0] if forced else status) or str(gen.choice(STATUSES, p=STATUS_P))
    begin = max(created_s, start_s - 45 * 86400)
    sub_start = int(gen.integers(begin, max(end_s - 86400, begin + 1)))
    trial_end = None
    if status == "trialing":
        trial_end = end_s + (12 * 3600 if forced else int(gen.integers(2, 14)) * 86400)
    elif status == "active" and gen.random() < 0.2:
        trial_end = sub_start + 14 * 86400
    sub = b.subscription(cid, plan, status, sub_start, currency=currency, trial_end_s=trial_end,
                         metadata_org=org_id, forced=forced)
    b.invoices_for(sub, currency)


def generate_stripe(seed: int, orgs: pd.DataFrame, start_us: int, end_us: int) -> dict[str, list]:
    gen = rng(seed, STREAM_STRIPE)
    b = StripeBuilder(gen, start_us, end_us)
    end_s = seconds(end_us)
    missing_org = int(orgs["ID"].max()) + 500
    paying = orgs[orgs["PLAN"] != "free"]
    forced = iter(FORCED)
    for org in paying.itertuples():
        cid = org.STRIPE_CUSTOMER_ID or token(gen, "cus_")
        currency = "eur" if gen.random() < 0.12 else "usd"
        created_s = seconds(org.CREATED_AT) + int(gen.integers(0, 3600))
        deleted = org.DELETED_AT != NULL_TS
        case = None if deleted else next(forced, None)
        currency = case[3] if case else currency
        b.customer(cid, org.ID, org.NAME, created_s, currency, metadata_org=org.ID,
                   deleted=True if deleted else (False if gen.random() < 0.3 else None))
        if deleted:
            _subscribe(b, cid, org.PLAN, currency, org.ID, created_s, status="canceled")
            continue
        _subscribe(b, cid, org.PLAN, currency, org.ID, created_s, forced=case)
        if gen.random() < 0.15:  # an earlier subscription this customer replaced
            _subscribe(b, cid, org.PLAN, currency, org.ID, created_s, status="canceled")

    # Customers created outside the app (no organization), and ones whose metadata names an
    # organization that does not exist.
    for n in range(3):
        cid = token(gen, "cus_")
        created_s = seconds(start_us) - int(gen.integers(86400, 90 * 86400))
        b.customer(cid, None, f"Manual invoice customer {n}", created_s, "usd", metadata_org=None)
        _subscribe(b, cid, "pro", "usd", None, created_s, status="active")
        b.invoice(cid, None, "usd", 5000, created_s + 86400, created_s + 86400, "paid")
    for n in range(2):
        cid = token(gen, "cus_")
        created_s = seconds(start_us) - int(gen.integers(86400, 30 * 86400))
        b.customer(cid, missing_org + n, f"Dangling org customer {n}", created_s, "usd",
                   metadata_org=missing_org + n)
        _subscribe(b, cid, "team", "usd", missing_org + n, created_s, status="active")

    # The next invoice of the trial that ends tomorrow is already drafted.
    trialing = next((s for s in b.subscriptions if s["TRIAL_END"] == end_s + 12 * 3600), None)
    if trialing:
        # ...and its subscription was touched in the last sync, like the victim customer below:
        # each Stripe table's newest _AIRBYTE_EXTRACTED_AT is the end of the window.
        trialing.update(UPDATED=end_s - 1800, **airbyte_columns(gen, end_s - 1800, end_us, start_us))
        b.invoice(trialing["CUSTOMER"], trialing["ID"], sub_currency(trialing), 0, end_s - 3600,
                  end_s + 86400 * 30, "draft")

    # Airbyte nulled a field that was too large, and says so; synced in the last sync.
    victim = b.customers[0]
    victim.update(NAME=None, UPDATED=end_s - 600,
                  **airbyte_columns(gen, end_s - 600, end_us, start_us, changes=[
                      {"field": "name", "change": "NULLED",
                       "reason": "DESTINATION_FIELD_SIZE_LIMITATION"}]))
    return b.tables()


def append_changes(
    gen: np.random.Generator,
    subscriptions: list[dict],
    upgraded: pd.DataFrame,
    moved_to_team: pd.DataFrame,
    day_start_us: int,
    first_sync_us: int,
) -> dict[str, list[dict]]:
    """One more day of Stripe: new customers and subscriptions for `upgraded` organizations (they
    get STRIPE_CUSTOMER_ID set by the caller), team prices for `moved_to_team`, and one
    cancellation. Returns the rows to upsert (Airbyte keeps only the latest version per ID)."""
    batch_us = day_start_us + DAY
    b = StripeBuilder(gen, first_sync_us - DAY, batch_us)
    change_s = seconds(day_start_us) + int(gen.integers(3600, 20 * 3600))
    for org in upgraded.itertuples():
        b.customer(org.STRIPE_CUSTOMER_ID, org.ID, org.NAME, change_s, "usd",
                   metadata_org=org.ID)
        sub = b.subscription(org.STRIPE_CUSTOMER_ID, "pro", "active", change_s,
                             metadata_org=org.ID)
        b.invoices_for(sub, "usd")

    live = [s for s in subscriptions if s["STATUS"] == "active" and not s["ENDED_AT"]]
    by_customer = {s["CUSTOMER"]: s for s in live}
    changed = []
    for org in moved_to_team.itertuples():
        sub = by_customer.get(org.STRIPE_CUSTOMER_ID)
        if sub is None:
            continue
        main = sub["ITEMS"]["data"][0]
        team = price_item(gen, sub["ID"], "team_monthly", sub_currency(sub),
                          main.get("quantity", 1), change_s)
        team["id"] = main["id"]
        sub["ITEMS"]["data"][0] = team
        changed.append(sub)
    cancelable = [s for s in live if s not in changed and sub_currency(s) == "usd"]
    if cancelable:
        sub = cancelable[int(gen.integers(0, len(cancelable)))]
        sub.update(STATUS="canceled", CANCELED_AT=change_s, ENDED_AT=change_s + 60)
        changed.append(sub)
    for sub in changed:
        sub["UPDATED"] = change_s + 60
        sub.update(airbyte_columns(gen, change_s + 60, batch_us, b.start_us))
        b.subscriptions.append(sub)
    return b.tables()
