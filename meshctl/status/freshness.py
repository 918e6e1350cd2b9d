"""Each mart against the contract in marts.md ("Freshness and consistency"), in two steps:

`gather` reads facts (SQLMesh's state for what was built, the warehouse for what landed and what is
published); `judge` turns facts into a verdict at a given moment. The scheduler gathers after
every run and stores the facts (store.py); the status page judges them again when it renders, so a
mart waiting for a run turns `behind` once that run is overdue, even if no run comes.

Verdicts:
  fresh    everything that landed in the mart's RAW sources is in it, and (whole-days marts) it is
           published through the latest complete date;
  pending  within the contract: RAW landed and the run due to reflect it has not come yet ("by the
           second run after its batch lands"), or the next date is not complete because a source
           has not landed what closes it (the whole-days rule); the reason says which;
  behind   the contract is broken: the second scheduled run after a landing has passed and the
           mart does not reflect it, or a run should have published a date and did not.

Facts per mart:
  * processed through P: the end of the last interval SQLMesh built for it in the environment
    (state). A run at tick T reads what landed before T, so RAW stamped before P is in the mart;
    RAW stamped at or after P is not yet (the run that reads it builds intervals past it);
  * sources: the RAW tables upstream of it (lineage in the state), each with its newest load stamp
    (`_REPLICATED_AT` / `_AIRBYTE_EXTRACTED_AT`, MAX: answered from metadata on Snowflake) and,
    only when that is at or after P, the first stamp at or after P (when the unreflected landing
    began: the clock of "the second run after");
  * published: the newest value of its date column (the DATE column of its grain, else its first
    DATE column; none for the dims);
  * whole-days marts (their query uses @closed_through_date): the date a run at P should have
    published and the one a run now would, by the rule in macros/arrivals.py recomputed from the
    ORGANIZATIONS and Stripe stamps, and when the first unpublished date became complete.

A tick with nothing new reads only MAX probes and the marts' MAX dates; the filtered MIN/MAX
queries run only when something is unreflected or unpublished (so quiet ticks stay cheap).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import date, datetime, time, timedelta, timezone

from croniter import croniter

log = logging.getLogger("meshctl.status.freshness")

FRESH, PENDING, BEHIND, UNKNOWN = "fresh", "pending", "behind", "unknown"
SEVERITY = {FRESH: 0, UNKNOWN: 1, PENDING: 2, BEHIND: 3}
MART_SCHEMA = "MARTS"
LOAD_COLUMNS = ("_REPLICATED_AT", "_AIRBYTE_EXTRACTED_AT")
# The whole-days rule's inputs (macros/arrivals.py reads them through their staging views).
ORGANIZATIONS = "GOODWORD_WH.RAW.ORGANIZATIONS"
STRIPE = ("AIRBYTE_DB.RAW.STRIPE_CUSTOMERS", "AIRBYTE_DB.RAW.STRIPE_SUBSCRIPTIONS",
          "AIRBYTE_DB.RAW.STRIPE_INVOICES")
WHOLE_DAYS_MACRO = "closed_through_date"


def _utc(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):  # a date
        return datetime.combine(value, time(0), timezone.utc)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _date(value) -> date | None:
    if value is None:
        return None
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    return value.date() if isinstance(value, datetime) else value


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), timezone.utc)


@dataclasses.dataclass
class Source:
    table: str  # DB.SCHEMA.TABLE, unquoted
    column: str
    newest: datetime | None = None
    first_unreflected: datetime | None = None  # first stamp at or after the mart's P


@dataclasses.dataclass
class MartFacts:
    name: str  # GOODWORD_WH.MARTS.METRICS_DAILY
    date_column: str | None = None
    published: date | None = None
    processed_through: datetime | None = None
    sources: list[Source] = dataclasses.field(default_factory=list)
    whole_days: bool = False
    expected_at_processed: date | None = None  # what the run at P should have published
    expected_now: date | None = None  # what a run now would publish
    complete_since: datetime | None = None  # when the first unpublished date became complete
    waiting_for: str | None = None  # why the next date is not complete yet
    error: str | None = None

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def newest_landed(self) -> Source | None:
        landed = [s for s in self.sources if s.newest is not None]
        return max(landed, key=lambda s: s.newest) if landed else None

    def as_json(self) -> dict:
        out = dataclasses.asdict(self)
        return _jsonable(out)

    @classmethod
    def from_json(cls, data: dict) -> MartFacts:
        data = dict(data)
        data["sources"] = [
            Source(s["table"], s["column"], _utc(s.get("newest")), _utc(s.get("first_unreflected")))
            for s in data.get("sources") or []
        ]
        for key in ("published", "expected_at_processed", "expected_now"):
            data[key] = _date(data.get(key))
        for key in ("processed_through", "complete_since"):
            data[key] = _utc(data.get(key))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


@dataclasses.dataclass
class Verdict:
    status: str
    reason: str
    due: datetime | None = None  # the run by which it should be fresh (pending)
    behind_since: datetime | None = None

    def as_json(self) -> dict:
        return _jsonable(dataclasses.asdict(self))


def nth_tick_after(cron: str, moment: datetime, n: int = 2) -> datetime:
    """The n-th scheduler tick strictly after `moment` ("by the second run after it lands")."""
    it = croniter(cron, moment)
    tick = moment
    for _ in range(n):
        tick = it.get_next(datetime)
    return _utc(tick)


def closed_through(at: datetime, organizations: datetime | None, stripe: datetime | None,
                   sync_gap_hours: int) -> date | None:
    """macros/arrivals.py's @closed_through_date for a run at `at`, given the newest
    ORGANIZATIONS reload and Airbyte sync it sees (None: no date is complete)."""
    if organizations is None:
        return None
    airbyte = (stripe.date() - timedelta(days=1)) if stripe else date(1970, 1, 1)
    released = (at - timedelta(hours=sync_gap_hours)).date() - timedelta(days=1)
    return min(at.date() - timedelta(days=1), organizations.date() - timedelta(days=1), max(airbyte, released))


def _fmt(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def judge(facts: MartFacts, now: datetime, cron: str, run_in_flight: bool = False) -> Verdict:
    """The verdict on `facts` at `now`; `cron` is the scheduler's (when runs come)."""
    if facts.error:
        return Verdict(UNKNOWN, f"could not be assessed: {facts.error}")
    if facts.processed_through is None:
        return Verdict(UNKNOWN, "not built in this environment yet")
    verdicts: list[Verdict] = []
    p = facts.processed_through
    unreflected = [s for s in facts.sources if s.newest is not None and s.newest >= p]
    if unreflected:
        first = min(unreflected, key=lambda s: s.first_unreflected or s.newest)
        landed = first.first_unreflected or first.newest
        due = nth_tick_after(cron, landed)
        what = f"{first.table.rsplit('.', 1)[-1]} rows landed at {_fmt(landed)}"
        if now < due or run_in_flight:
            wait = "a run is in progress" if now >= due else f"due by the run at {_fmt(due)}"
            verdicts.append(Verdict(PENDING, f"{what}, not in the mart yet: {wait}", due=due))
        else:
            verdicts.append(Verdict(
                BEHIND, f"{what} are not in the mart: it was last built through {_fmt(p)}, and the run "
                        f"due at {_fmt(due)} (the second after they landed) did not build it",
                due=due, behind_since=due))
    if facts.whole_days:
        expected, published = facts.expected_at_processed, facts.published
        if expected is not None and (published is None or published < expected):
            verdicts.append(Verdict(
                BEHIND, f"published through {published or 'nothing'}, but the run at {_fmt(p)} had what it "
                        f"needed for {expected} (the whole-days rule)", behind_since=p))
        elif facts.expected_now is not None and (published is None or published < facts.expected_now):
            complete = facts.complete_since or now
            due = nth_tick_after(cron, complete)
            day = (published + timedelta(days=1)) if published else facts.expected_now
            if now < due or run_in_flight:
                verdicts.append(Verdict(
                    PENDING, f"{day} is complete since {_fmt(complete)}: due by the run at {_fmt(due)}", due=due))
            else:
                verdicts.append(Verdict(
                    BEHIND, f"{day} is complete since {_fmt(complete)} and still not published "
                            f"(due by the run at {_fmt(due)})", due=due, behind_since=due))
        elif facts.waiting_for:
            verdicts.append(Verdict(PENDING, facts.waiting_for))
    if not verdicts:
        newest = facts.newest_landed
        through = f", through {facts.published}" if facts.published else ""
        landed = f"; newest RAW ({newest.table.rsplit('.', 1)[-1]}) landed {_fmt(newest.newest)}" if newest else ""
        return Verdict(FRESH, f"built through {_fmt(p)}{through}{landed}")
    return max(verdicts, key=lambda v: SEVERITY[v.status])


# --- gathering facts ---------------------------------------------------------------------------
def _plain(name: str) -> str:
    return name.replace('"', "")


def _schema_of(name: str) -> str:
    parts = _plain(name).split(".")
    return parts[-2].upper() if len(parts) >= 2 else ""


def _view_name(name: str, environment: str) -> str:
    """The environment's view of a model (prod: the model's own name; else SCHEMA__ENV)."""
    parts = _plain(name).split(".")
    if environment.lower() != "prod" and len(parts) >= 2:
        parts[-2] = f"{parts[-2]}__{environment.upper()}"
    return ".".join(parts)


def _date_column(model) -> str | None:
    columns = model.columns_to_types or {}
    dates = [c for c, t in columns.items() if t is not None and t.is_type("date")]
    grain = [g.name if hasattr(g, "name") else str(g) for g in (model.grains or [])]
    for column in grain:
        for name in dates:
            if name.upper() == column.upper():
                return name
    return dates[0] if dates else None


class Warehouse:
    """The few queries `gather` needs, through a SQLMesh engine adapter."""

    def __init__(self, adapter):
        self.adapter = adapter

    def _literal(self, moment: datetime, column_type: str):
        from sqlglot import exp

        text = moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        if column_type == "TIMESTAMPTZ":
            return exp.cast(exp.Literal.string(text + "+00:00"), exp.DataType.build("TIMESTAMPTZ"))
        return exp.cast(exp.Literal.string(text), exp.DataType.build("TIMESTAMP"))

    def value(self, func: str, table: str, column: str, *, where: tuple[str, datetime] | None = None,
              column_type: str = "TIMESTAMP"):
        from sqlglot import exp

        query = exp.select(exp.func(func, exp.column(column, quoted=True))).from_(
            exp.to_table(table, dialect="snowflake"))
        if where:
            op, moment = where
            cond = {">=": exp.GTE, "<": exp.LT}[op](this=exp.column(column, quoted=True),
                                                    expression=self._literal(moment, column_type))
            query = query.where(cond)
        row = self.adapter.fetchone(query)
        return row[0] if row else None


def gather(context, environment: str, now: datetime, sync_gap_hours: int = 7) -> list[MartFacts]:
    """Facts for every model in the environment's MARTS schema. `context`: a SQLMesh Context
    (load=False is enough: everything comes from the state and the warehouse)."""
    env = context.state_reader.get_environment(environment)
    if env is None:
        return []
    snapshots = context.state_reader.get_snapshots(env.snapshots)
    by_name = {s.name: s for s in snapshots.values()}
    warehouse = Warehouse(context.engine_adapter)
    sources_cache: dict[str, set[str]] = {}

    def raw_sources(name: str) -> set[str]:
        if name not in sources_cache:
            sources_cache[name] = set()  # cycles cannot happen in a DAG; this stops repeats
            snapshot = by_name.get(name)
            found: set[str] = set()
            if snapshot is not None:
                if getattr(snapshot, "is_external", False):
                    found.add(name)
                for parent in snapshot.parents:
                    found |= raw_sources(parent.name)
            sources_cache[name] = found
        return sources_cache[name]

    column_types: dict[str, tuple[str, str] | None] = {}

    def load_column(table: str) -> tuple[str, str] | None:
        if table not in column_types:
            column_types[table] = None
            model = by_name[table].model
            for column, dtype in (model.columns_to_types or {}).items():
                if column.upper() in LOAD_COLUMNS:
                    tz = dtype is not None and dtype.is_type("timestamptz", "timestampltz")
                    column_types[table] = (column, "TIMESTAMPTZ" if tz else "TIMESTAMP")
        return column_types[table]

    newest_cache: dict[str, datetime | None] = {}

    def newest(table: str) -> datetime | None:
        if table not in newest_cache:
            column, ctype = load_column(table)
            newest_cache[table] = _utc(warehouse.value("MAX", _plain(table), column, column_type=ctype))
        return newest_cache[table]

    def bounded(func: str, table: str, op: str, moment: datetime) -> datetime | None:
        if table not in by_name or load_column(table) is None:
            return None
        column, ctype = load_column(table)
        return _utc(warehouse.value(func, _plain(table), column, where=(op, moment), column_type=ctype))

    def newest_before(table: str, moment: datetime) -> datetime | None:
        mark = newest(table) if table in by_name and load_column(table) else None
        if mark is None or mark < moment:
            return mark  # everything landed before `moment`: no filtered query needed
        return bounded("MAX", table, "<", moment)

    org = next((n for n in by_name if _plain(n).upper() == ORGANIZATIONS), None)
    stripe = [n for n in by_name if _plain(n).upper() in STRIPE]

    def stripe_newest(before: datetime | None = None) -> datetime | None:
        marks = [newest_before(t, before) if before else newest(t) for t in stripe if load_column(t)]
        marks = [m for m in marks if m is not None]
        return max(marks) if marks else None

    facts: list[MartFacts] = []
    for name, snapshot in sorted(by_name.items()):
        if not snapshot.is_model or _schema_of(name) != MART_SCHEMA:
            continue
        model = snapshot.model
        mart = MartFacts(name=_plain(name))
        try:
            ends = [end for _, end in snapshot.intervals]
            mart.processed_through = _utc(datetime.fromtimestamp(max(ends) / 1000, timezone.utc)) if ends else None
            mart.date_column = _date_column(model)
            for table in sorted(raw_sources(name)):
                lc = load_column(table)
                if lc is None:
                    continue
                source = Source(_plain(table), lc[0], newest(table))
                p = mart.processed_through
                if p is not None and source.newest is not None and source.newest >= p:
                    source.first_unreflected = bounded("MIN", table, ">=", p)
                mart.sources.append(source)
            if mart.date_column:
                mart.published = _date(warehouse.value("MAX", _view_name(name, environment), mart.date_column))
            text = getattr(getattr(model, "query_", None), "sql", None) or model.query.sql(dialect="snowflake")
            mart.whole_days = WHOLE_DAYS_MACRO in text.lower()
            if mart.whole_days and org is not None and mart.processed_through is not None:
                p = mart.processed_through
                mart.expected_at_processed = closed_through(
                    p, newest_before(org, p), stripe_newest(before=p), sync_gap_hours)
                mart.expected_now = closed_through(now, newest(org), stripe_newest(), sync_gap_hours)
                published = mart.published
                if mart.expected_now is not None and (published is None or published < mart.expected_now):
                    day = (published + timedelta(days=1)) if published else mart.expected_now
                    m = midnight(day + timedelta(days=1))
                    org_after = bounded("MIN", org, ">=", m)
                    stripe_after = [bounded("MIN", t, ">=", m) for t in stripe]
                    stripe_after = [s for s in stripe_after if s is not None]
                    airbyte = min([*stripe_after, m + timedelta(hours=sync_gap_hours)])
                    mart.complete_since = max(m, org_after or m, airbyte)
                yesterday = now.date() - timedelta(days=1)
                if mart.expected_now is not None and mart.expected_now < yesterday:
                    mart.waiting_for = _waiting_for(mart.expected_now + timedelta(days=1), now, newest(org),
                                                    stripe_newest(), sync_gap_hours)
                elif mart.expected_now is None:
                    mart.waiting_for = "no ORGANIZATIONS reload has landed yet: no date is complete"
        except Exception as exc:  # one mart's failure does not hide the others
            log.warning("freshness of %s could not be assessed: %s", name, exc)
            mart.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        facts.append(mart)
    return facts


def _waiting_for(day: date, now: datetime, organizations: datetime | None, stripe: datetime | None,
                 sync_gap_hours: int) -> str:
    """Why `day` is not complete yet (marts.md "Whole days only")."""
    m = midnight(day + timedelta(days=1))
    missing = []
    if organizations is None or organizations < m:
        missing.append(f"the ORGANIZATIONS reload after {_fmt(m)} (newest {_fmt(organizations)})")
    release = m + timedelta(hours=sync_gap_hours)
    if (stripe is None or stripe < m) and now < release:
        missing.append(f"an Airbyte sync after {_fmt(m)} (newest {_fmt(stripe)}; or {_fmt(release)}, "
                       f"when a quiet Stripe counts as synced)")
    return f"{day} is not complete: waiting for " + (" and ".join(missing) or "the next run")
