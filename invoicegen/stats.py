"""What is in the database, by aggregate queries only: rows never travel to Python.

:func:`collect` gathers the overview ``invoicegen stats`` shows; :func:`check` verifies the
data against the invariants seeding guarantees (``invoicegen stats --check``). Every number is
computed by a ``GROUP BY`` in the database; Python only receives one row per bucket (per month,
per child count, per top client), never one per invoice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from invoicegen import db, manifest, schema
from invoicegen.errors import CheckFailed, SchemaStateError, UsageError
from invoicegen.manifest import RunRecord
from invoicegen.models import DATA_TABLE_NAMES
from invoicegen.settings import CountMix, CountRange, Settings
from invoicegen.urls import mask

#: (parent, child, foreign key, the option that sets how many children a parent gets)
LEVELS = (
    ("users", "clients", "user_id", "clients_per_user"),
    ("clients", "contracts", "client_id", "contracts_per_client"),
    ("contracts", "invoices", "contract_id", "invoices_per_contract"),
)
#: The settings ``stats --check`` falls back on when the database has no run manifest.
EXPECTATION_KEYS = tuple(level[3] for level in LEVELS) + ("as_of",)
TOP_CLIENTS = 10
RUNS_SHOWN = 20
EXAMPLES = 5
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Step:
    """What :func:`collect` or :func:`check` is doing: step ``number`` of ``total`` (from 1).

    ``total`` can grow while :func:`check` runs: fetching a failed check's examples is a step.
    """

    name: str
    number: int
    total: int


#: Called as each step starts; library code reports progress this way and never prints.
Progress = Callable[[Step], None]


class _Steps:
    """Numbers the steps of one run for a :data:`Progress` callback (which may be None)."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self._progress = progress
        self.total = total
        self._done = 0

    def __call__(self, name: str) -> None:
        self._done += 1
        self.total = max(self.total, self._done)
        if self._progress is not None:
            self._progress(Step(name, self._done, self.total))


@dataclass(frozen=True)
class ChildrenPerParent:
    """How many children the parents of one level have; ``distribution`` maps a number of
    children to the number of parents that have exactly that many."""

    parent: str
    child: str
    min: int
    mean: float
    max: int
    distribution: dict[int, int]
    #: The mix every run recorded for this level, when they agree (None: unknown or mixed).
    mix: CountMix | None = None

    def by_part(self) -> list[tuple[CountRange | None, int]]:
        """Parents per part of ``mix``, in its order, then those in no part (None) if any."""
        assert self.mix is not None, "only a recorded mix has parts"
        parents: dict[CountRange | None, int] = {part: 0 for part, _ in self.mix.parts}
        for children, count in self.distribution.items():
            part = self.mix.part_of(children)
            parents[part] = parents.get(part, 0) + count
        return list(parents.items())


@dataclass(frozen=True)
class DateRange:
    first: dt.date | None
    last: dt.date | None


@dataclass(frozen=True)
class Month:
    """Invoices whose period ends in ``month`` (YYYY-MM), and what they bill."""

    month: str
    invoices: int
    billed: Decimal


@dataclass(frozen=True)
class TopClient:
    id: int
    name: str
    company_name: str
    user_id: int
    invoices: int
    billed: Decimal


@dataclass(frozen=True)
class Stats:
    database: str
    revision: str | None
    counts: dict[str, int]
    children: list[ChildrenPerParent]
    amount_total: Decimal
    amount_mean: Decimal | None
    contract_starts: DateRange
    invoice_periods: DateRange
    ongoing_contracts: int
    months: list[Month] = field(default_factory=list)
    top_clients: list[TopClient] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    #: None when the schema predates the billing columns (migration 0003)
    billing: Billing | None = None

    def to_json(self) -> dict[str, Any]:
        data = _jsonable(asdict(self))
        for level, raw in zip(data["children"], self.children, strict=True):
            level["distribution"] = [
                {"children": n, "parents": parents} for n, parents in raw.distribution.items()
            ]
            level["mix"] = None if raw.mix is None else str(raw.mix)
        for run in data["runs"]:
            run["first_user"] += 1  # counted from 1, as in `seed --json` and "Seeded users 1-N"
        return data  # type: ignore[no-any-return]


def _jsonable(value: Any) -> Any:
    """Dates and times (UTC, ``...Z``) as ISO 8601 text, money as exact decimal strings."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):  # the manifest's times are UTC, stored without a zone
        utc = value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


# --- dialect-specific SQL: one portable expression per dialect --------------------------------


def month_of(dialect: str, column: str) -> str:
    """SQL for a cheap value naming the month of a date column, for grouping: YYYY-MM text, a
    timestamp, or the number YYYYMM (:func:`_month_label` reads each)."""
    if dialect == "sqlite":  # ISO text: a substring costs far less than strftime
        return f"substr({column}, 1, 7)"
    if dialect == "postgresql":  # date_trunc costs half of to_char
        return f"date_trunc('month', {column})"
    return f"EXTRACT(YEAR_MONTH FROM {column})"  # MariaDB, MySQL: YYYYMM, half DATE_FORMAT's cost


def _month_label(value: Any) -> str | None:
    """The YYYY-MM of a :func:`month_of` value."""
    if value is None:
        return None
    if isinstance(value, int | Decimal):  # MariaDB's YYYYMM
        return f"{int(value) // 100:04d}-{int(value) % 100:02d}"
    return str(value)[:7]


def day_after(dialect: str, column: str) -> str:
    if dialect == "sqlite":
        return f"date({column}, '+1 day')"
    if dialect == "postgresql":
        return f"({column} + 1)"
    return f"DATE_ADD({column}, INTERVAL 1 DAY)"


def money_sum(dialect: str, column: str) -> str:
    """SQL for an exact sum of a NUMERIC(12,2) column: SQLite sums whole cents, not floats."""
    if dialect == "sqlite":
        return f"SUM(CAST(ROUND({column} * 100) AS INTEGER))"
    return f"SUM({column})"


def _raw(value: Any) -> Decimal:
    """A :func:`money_sum` as it came from the database, for adding sums up exactly."""
    return Decimal(str(value or 0))


def _money(dialect: str, value: Any) -> Decimal:
    amount = _raw(value)
    if dialect == "sqlite":
        amount /= 100
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)


def _date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    return dt.date.fromisoformat(str(value)[:10])  # SQLite returns ISO text


# --- the overview -----------------------------------------------------------------------------


def _open_schema(connection: Connection, engine: Engine) -> schema.SchemaState:
    state = schema.inspect_schema(connection)
    if state.revision is None or not set(DATA_TABLE_NAMES) <= set(state.present_tables):
        raise SchemaStateError(
            f"{mask(engine.url)} has no invoicegen schema; run `invoicegen seed` first"
        )
    if state.is_current:  # what seed and migrate refuse, stats refuses too
        schema.refuse_drift(connection)
    return state


#: MariaDB's in-memory temporary tables for the session, in bytes. At its default (16 MiB) the
#: window over 2 million invoices spills to an on-disk table and costs 2.5x the CPU.
MARIADB_HEAP_TABLE_SIZE = 256 * 1024 * 1024


@contextlib.contextmanager
def _aggregating(connection: Connection) -> Iterator[None]:
    """The session tuned for big aggregates while the queries run, then as it was: MariaDB
    keeps temporary tables (windows, groups) in memory up to :data:`MARIADB_HEAP_TABLE_SIZE`."""
    if connection.dialect.name not in ("mysql", "mariadb"):
        yield
        return
    names = ("max_heap_table_size", "tmp_table_size", "optimizer_switch")
    before = connection.exec_driver_sql(f"SELECT @@{', @@'.join(names)}").one()
    size = max(MARIADB_HEAP_TABLE_SIZE, *map(int, before[:2]))
    # A grouped derived table joined on its key is grouped once, not once per outer row
    # ("LATERAL DERIVED"): see :func:`_contracts_source`. MySQL has no such flag.
    switch = "split_materialized=off" if "split_materialized" in before[2] else before[2]
    connection.exec_driver_sql(
        "SET SESSION max_heap_table_size = %s, tmp_table_size = %s, optimizer_switch = %s",
        (size, size, switch),
    )
    try:
        yield
    finally:
        connection.exec_driver_sql(
            "SET SESSION max_heap_table_size = %s, tmp_table_size = %s, optimizer_switch = %s",
            tuple(before),
        )


def children_counts(dialect: str, parent: str, child: str, fk: str) -> str:
    """SQL selecting each parent's ``id`` and its number of children ``n`` (0 for none).

    PostgreSQL counts the children per foreign key first (an index-only scan of the key's
    index), then merge-joins them to their parents. SQLite and MariaDB walk the parents in key
    order and count each one's children in the foreign key's index: a nested loop with no
    temporary table (MariaDB would materialize the per-key counts, or run them per parent).
    """
    if dialect == "postgresql":
        return (
            f"SELECT p.id, COALESCE(b.n, 0) AS n FROM {parent} p LEFT JOIN "
            f"(SELECT {fk}, COUNT(*) AS n FROM {child} GROUP BY {fk}) AS b ON b.{fk} = p.id"
        )
    return (
        f"SELECT p.id, COUNT(c.{fk}) AS n FROM {parent} p "
        f"LEFT JOIN {child} c ON c.{fk} = p.id GROUP BY p.id"
    )


def _dense_ids(connection: Connection, table: str) -> tuple[int, int] | None:
    """The least and greatest id of ``table`` when every id between them exists (as seeded);
    None when some are missing (rows deleted by hand) or the table is empty."""
    rows, low, high = connection.execute(
        sa.text(f"SELECT COUNT(*), MIN(id), MAX(id) FROM {table}")
    ).one()
    return (int(low), int(high)) if rows and high - low + 1 == rows else None


def _dense_distribution(
    connection: Connection, parent: str, child: str, fk: str
) -> dict[int, int] | None:
    """Parents per number of children from the foreign key's index alone (MariaDB), when the
    parents' ids are dense (:func:`_dense_ids`) and every key is among them: then no child is
    an orphan, and the parents without a child are the rest. Else None (parents were deleted,
    or there are none): each parent must be looked up.

    MariaDB has no merge join: looking up every parent's children, or every key's parent, cost
    it three to four times this one ordered pass over the index.
    """
    ids = _dense_ids(connection, parent)
    if ids is None:
        return None
    low, high = ids
    rows = connection.execute(
        sa.text(
            f"SELECT n, COUNT(*), MIN(k), MAX(k) FROM (SELECT {fk} AS k, COUNT(*) AS n FROM "
            f"{child} WHERE {fk} IS NOT NULL GROUP BY {fk}) AS per_key GROUP BY n"
        )
    ).all()
    if any(least < low or greatest > high for _, _, least, greatest in rows):
        return None
    distribution = {int(n): int(keys) for n, keys, _, _ in rows}
    if childless := high - low + 1 - sum(distribution.values()):
        distribution[0] = childless
    return dict(sorted(distribution.items()))


def _distribution(
    connection: Connection, dialect: str, parent: str, child: str, fk: str, mix: CountMix | None
) -> ChildrenPerParent:
    distribution = None
    if dialect in ("mysql", "mariadb"):
        distribution = _dense_distribution(connection, parent, child, fk)
    if distribution is None:
        per_parent = children_counts(dialect, parent, child, fk)
        rows = connection.execute(
            sa.text(f"SELECT n, COUNT(*) FROM ({per_parent}) AS per_parent GROUP BY n ORDER BY n")
        ).all()
        distribution = {int(n): int(parents) for n, parents in rows}
    parents = sum(distribution.values())
    mean = sum(n * k for n, k in distribution.items()) / parents if parents else 0.0
    return ChildrenPerParent(
        parent,
        child,
        min=min(distribution, default=0),
        mean=mean,
        max=max(distribution, default=0),
        distribution=distribution,
        mix=mix,
    )


def _top_clients(connection: Connection, dialect: str, limit: int) -> list[TopClient]:
    """The clients billed most, grouped by client id alone (names are joined to the top few:
    grouping by the names too made MariaDB write a temporary table of every client to disk).

    Contracts whose client is missing (only in hand-broken data) are left out. Checking that
    on every row costs a join of every contract; so the top is found without it, and found
    again with it only when one of the top clients turns out to be missing.
    """
    rows = connection.execute(sa.text(_top_sql(dialect, exact=False)), {"limit": limit}).all()
    if any(row[1] is None for row in rows):
        rows = connection.execute(sa.text(_top_sql(dialect, exact=True)), {"limit": limit}).all()
    return [
        TopClient(int(id_), name, company, int(user), int(n), _money(dialect, total))
        for _, id_, name, company, user, n, total in rows
    ]


def _top_sql(dialect: str, *, exact: bool) -> str:
    """SQL for the top clients by amount billed; ``exact``: only clients that exist."""
    billed = money_sum(dialect, "amount")
    exists = " JOIN clients p ON p.id = k.client_id" if exact else ""
    if dialect in ("sqlite", "postgresql"):  # invoices summed per contract first
        invoices = (
            f"(SELECT contract_id, COUNT(*) AS n, {billed} AS billed FROM invoices "
            "GROUP BY contract_id) AS b JOIN contracts k ON k.id = b.contract_id"
        )
        sums = "SUM(b.n) AS n, SUM(b.billed) AS billed"
    else:  # MariaDB: each client's contracts in turn (client_id's index), their invoices' counts
        # and amounts read from the contract's index (0005), summed in client order as they come
        invoices = "contracts k STRAIGHT_JOIN invoices i ON i.contract_id = k.id"
        sums = f"COUNT(*) AS n, {billed} AS billed"
    return (
        "SELECT t.client_id, c.id, c.name, c.company_name, c.user_id, t.n, t.billed FROM "
        f"(SELECT k.client_id, {sums} FROM {invoices}{exists} GROUP BY k.client_id "
        "ORDER BY billed DESC, k.client_id LIMIT :limit) AS t "
        "LEFT JOIN clients c ON c.id = t.client_id ORDER BY t.billed DESC, t.client_id"
    )


def _month_range(found: dict[str, Month]) -> list[Month]:
    """Every month from the first found to the last, those without invoices at zero."""
    if not found:
        return []
    months = []
    year, month = map(int, min(found).split("-"))
    while (label := f"{year:04d}-{month:02d}") <= max(found):
        months.append(found.get(label, Month(label, 0, Decimal("0.00"))))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


#: The steps of :func:`collect`, in order.
COLLECT_STEPS = (
    "schema and runs",
    "clients per user",
    "contracts per client",
    "invoices per contract",
    "contract dates",
    "invoices by month, status and currency",
    "top clients",
)


def collect(engine: Engine, *, top: int = TOP_CLIENTS, progress: Progress | None = None) -> Stats:
    """Counts, children per parent, money per month, top clients and the run manifest.

    Never writes: it runs in a read-only transaction (:func:`db.connect`). ``progress`` is
    called as each step (:data:`COLLECT_STEPS`) starts.
    """
    dialect = engine.dialect.name
    step = _Steps(progress, len(COLLECT_STEPS))
    names = iter(COLLECT_STEPS)
    with db.connect(engine, read_only=True) as connection, _aggregating(connection):
        step(next(names))
        state = _open_schema(connection, engine)
        runs = manifest.runs(connection)
        billing = has_billing_columns(connection)
        as_of, as_of_source = _dataset_as_of(connection, runs) if billing else (None, "")
        children = []
        for parent, child, fk, key in LEVELS:
            step(next(names))
            mix = recorded_mix(runs, key)
            children.append(_distribution(connection, dialect, parent, child, fk, mix))
        step(next(names))
        # running on the as-of date: no end date, or an agreed end after it
        running = "end_date IS NULL"
        if as_of is not None:
            running += f" OR end_date > {_literal(as_of)}"
        # three queries in one, each answered by an index (0006): the first and last start
        # at either end of the start dates', the running contracts a range of the end dates'
        # (one pass over the table read every contract's row: 5x the CPU on MariaDB)
        starts = connection.execute(
            sa.text(
                "SELECT (SELECT MIN(start_date) FROM contracts), "
                "(SELECT MAX(start_date) FROM contracts), "
                f"(SELECT COUNT(*) FROM contracts WHERE {running})"
            )
        ).one()
        step(next(names))
        invoices = _invoice_totals(connection, dialect, billing=billing, as_of=as_of)
        step(next(names))
        top_clients = _top_clients(connection, dialect, top)
        counts = {level.parent: sum(level.distribution.values()) for level in children}
        counts["invoices"] = invoices.count
        total = _money(dialect, invoices.amount)
        return Stats(
            database=mask(engine.url),
            revision=state.revision,
            counts={table: counts[table] for table in DATA_TABLE_NAMES},
            children=children,
            amount_total=total,
            amount_mean=(total / invoices.count).quantize(_CENT, ROUND_HALF_UP)
            if invoices.count
            else None,
            contract_starts=DateRange(_date(starts[0]), _date(starts[1])),
            invoice_periods=DateRange(invoices.first_start, invoices.last_end),
            ongoing_contracts=int(starts[2] or 0),
            months=invoices.months,
            top_clients=top_clients,
            runs=runs[-RUNS_SHOWN:],
            billing=invoices.billing(as_of, as_of_source) if billing else None,
        )


# --- the check --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectations:
    """What the data was seeded with: the child ranges per level and the as-of date.

    None means unknown (that check is skipped). ``source`` says where they came from.
    """

    ranges: dict[str, CountMix | None]
    as_of: dt.date | None
    source: str
    #: Keys set on purpose (command line, environment, file): they win over the manifest.
    explicit: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, resolved: Settings) -> Expectations:
        """The ranges and as-of of resolved settings (which must include EXPECTATION_KEYS)."""
        origins = sorted({resolved.sources[key] for key in EXPECTATION_KEYS})
        return cls(
            ranges={key: resolved.values[key] for key in EXPECTATION_KEYS[:-1]},
            as_of=resolved.values["as_of"],
            source=f"settings ({', '.join(origins)})",
            explicit=frozenset(k for k in EXPECTATION_KEYS if resolved.sources[k] != "default"),
        )


@dataclass(frozen=True)
class CheckResult:
    """One invariant: how many rows break it, and the ids of the first few."""

    name: str
    table: str
    violations: int | None  # None: skipped, see ``skipped``
    examples: list[int] = field(default_factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class CheckReport:
    database: str
    expectations: Expectations
    results: list[CheckResult]
    #: what the checks could not cover, in words (rows older than the billing columns)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def raise_for_violations(self) -> None:
        """Raise :class:`CheckFailed` naming each violated invariant, if any is."""
        if self.failed:
            failed = ", ".join(f"{r.name} ({r.violations:,})" for r in self.failed)
            raise CheckFailed(f"{len(self.failed)} of {len(self.results)} checks failed: {failed}")

    def to_json(self) -> dict[str, Any]:
        expectations = self.expectations
        return {
            "database": self.database,
            "ok": self.ok,
            "expectations": {
                "source": expectations.source,
                "as_of": None if expectations.as_of is None else expectations.as_of.isoformat(),
                **{k: None if v is None else str(v) for k, v in expectations.ranges.items()},
            },
            "checks": [asdict(r) | {"ok": r.ok} for r in self.results],
            "notes": self.notes,
        }


def _mix_from_manifest(value: Any) -> CountMix | None:
    """A count mix as another invoicegen version may have recorded it; None if unreadable."""
    if isinstance(value, dict):
        value = [value.get("low", value.get("min")), value.get("high", value.get("max"))]
    try:
        return CountMix.parse(value)
    except (UsageError, TypeError):
        return None


def recorded_mix(runs: list[RunRecord], key: str) -> CountMix | None:
    """The mix of option ``key`` all ``runs`` recorded; None if one differs or did not record it."""
    found = {
        _mix_from_manifest(run.options.get(key)) if isinstance(run.options, dict) else None
        for run in runs
    }
    return found.pop() if len(found) == 1 else None


def _union(mixes: list[CountMix]) -> CountMix:
    """The counts any of ``mixes`` allows: one mix if they agree, else their ranges merged."""
    if len(set(mixes)) == 1:
        return mixes[0]
    merged: list[CountRange] = []
    for part in sorted(part for mix in mixes for part, _ in mix.parts):
        if merged and part.low <= merged[-1].high + 1:
            merged[-1] = CountRange(merged[-1].low, max(merged[-1].high, part.high))
        else:
            merged.append(part)
    return CountMix(tuple((part, 1) for part in merged))


def expectations_from_manifest(runs: list[RunRecord], fallback: Expectations) -> Expectations:
    """The union of the ranges every recorded run used, and the latest as-of; what a run did
    not record (or recorded in a form this version cannot read), and what was set on purpose,
    comes from ``fallback``."""
    if not runs:
        return fallback
    ranges: dict[str, CountMix | None] = {}
    unrecorded = []
    for key in fallback.ranges:
        if key in fallback.explicit:
            ranges[key] = fallback.ranges[key]
            unrecorded.append(key)
            continue
        found = [
            _mix_from_manifest(run.options.get(key)) if isinstance(run.options, dict) else None
            for run in runs
        ]
        known = [r for r in found if r is not None]
        if len(known) == len(found):
            ranges[key] = _union(known)
        else:
            ranges[key] = fallback.ranges[key]
            unrecorded.append(key)
    dates = [run.as_of for run in runs if run.as_of is not None]
    as_of = max(dates) if dates and "as_of" not in fallback.explicit else fallback.as_of
    if "as_of" in fallback.explicit:
        unrecorded.append("as_of")
    source = f"run manifest ({len(runs)} run{'s' * (len(runs) > 1)})"
    if unrecorded:
        source += f"; {', '.join(unrecorded)} from {fallback.source}"
    return Expectations(ranges, as_of, source)


@dataclass(frozen=True)
class _Rule:
    """One check (or one count for the notes): offending rows are the rows of ``source``
    where ``condition`` holds. Rules on the same source are counted in one pass over it."""

    name: str
    table: str  # the table the ids are from
    source: str  # a key of :func:`_sources`
    condition: str | None  # SQL, true on an offending row; None: skipped
    skipped: str = "not recorded"  # why, when ``condition`` is None


#: The rows the checks look at, by source: what a person is told while each is read.
SOURCE_STEPS = {
    "users": "users and their clients",
    "clients": "clients, their users and contracts",
    "contracts": "contracts, their clients and invoices",
    "invoices": "invoices, their contracts and clients",
    "periods": "invoice periods in order",
    "numbers": "invoice numbers in issue order",
    "emails": "user emails",
}


def _sources(
    dialect: str,
    *,
    billing: bool,
    clients: tuple[int, int] | None = None,
    users: tuple[int, int] | None = None,
) -> dict[str, str]:
    """SQL for each source of rows, each with an ``id`` column: a table with its parent
    (``parent_id``, NULL when missing) and its number of children (``n``); the invoices with
    their contract, client and (with billing columns) the end of the monthly period each starts
    in; the invoices with the previous period's end; the issued invoices numbered per user in
    issue order; one id per duplicated email. ``clients``, ``users``: those tables' ids when
    dense (:func:`_dense_ids`, MariaDB only), see :func:`_contracts_source` and
    :func:`_clients_source`."""
    months = months_between(dialect, "k.start_date", "i.period_start")
    full_end = add_days(dialect, add_months(dialect, "k.start_date", f"{months} + 1"), "-1")
    invoice_columns = [
        "i.id", "i.period_start", "i.period_end", "i.amount", "k.id AS parent_id",
        "k.start_date", "k.end_date",
    ]  # fmt: skip
    joins = "invoices i LEFT JOIN contracts k ON k.id = i.contract_id"
    # For each invoice, the latest end of the earlier periods of its contract: a window over
    # the contract's invoices in period order. Only narrow columns go through the window's
    # sort; the rest of the invoice checks read the joined rows as they stream.
    period_columns = [
        "id", "period_start",
        "MAX(period_end) OVER (PARTITION BY contract_id ORDER BY period_start, id "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end",
    ]  # fmt: skip
    if billing:
        invoice_columns += [
            "i.contract_id", "i.status", "i.currency", "i.number", "i.issued_on", "i.due_on",
            "i.paid_on",
            "k.currency AS contract_currency", "k.monthly_rate", "c.id AS client_id",
            "c.payment_terms_days", f"{full_end} AS full_end",
        ]  # fmt: skip
        joins += " LEFT JOIN clients c ON c.id = k.client_id"
    mariadb = dialect in ("mysql", "mariadb")
    # MariaDB: the invoices as stored, each looking up its contract and client; left to itself
    # it walked the clients and fetched each contract's invoices from the table one by one
    join = "STRAIGHT_JOIN" if mariadb else "JOIN"
    return {
        "users": children_counts(dialect, "users", "clients", "user_id"),
        "clients": _clients_source(dialect, users=users),
        "contracts": _contracts_source(dialect, billing=billing, clients=clients),
        "invoices": f"SELECT {', '.join(invoice_columns)} FROM {joins}",
        "periods": f"SELECT {', '.join(period_columns)} FROM invoices",
        "numbers": "SELECT i.id, i.number, c.user_id, "
        "ROW_NUMBER() OVER (PARTITION BY c.user_id ORDER BY i.issued_on, i.id) AS n "
        f"FROM invoices i {join} contracts k ON k.id = i.contract_id "
        f"{join} clients c ON c.id = k.client_id WHERE i.status IN {_ISSUED}",
        "emails": "SELECT MIN(id) AS id FROM users GROUP BY email HAVING COUNT(*) > 1",
    }


def _clients_source(dialect: str, *, users: tuple[int, int] | None = None) -> str:
    """Each client with its user's id (``parent_id``) and its number of contracts ``n``.

    ``users`` given (MariaDB, the ids dense), a client's user exists when its id is between
    the least and the greatest: no lookup of each user (0.7x the CPU of the pass)."""
    if dialect in ("mysql", "mariadb"):  # one nested loop in client order, nothing materialized
        user, parent = " LEFT JOIN users u ON u.id = t.user_id", "u.id"
        if users is not None:
            user, parent = "", _dense_parent("t.user_id", users)
        return (
            f"SELECT t.id, MAX({parent}) AS parent_id, COUNT(c.client_id) AS n FROM clients t"
            f"{user} LEFT JOIN contracts c ON c.client_id = t.id GROUP BY t.id"
        )
    return (
        "SELECT t.id, u.id AS parent_id, b.n FROM clients t "
        "LEFT JOIN users u ON u.id = t.user_id JOIN "
        f"({children_counts(dialect, 'clients', 'contracts', 'client_id')}) AS b ON b.id = t.id"
    )


def _dense_parent(key: str, ids: tuple[int, int]) -> str:
    """SQL for the parent's id of a foreign ``key`` when the parents' ids are dense
    (:func:`_dense_ids`): the key itself when the parent exists, i.e. when it is between the
    least and the greatest id, else NULL; no lookup of the parent."""
    low, high = ids
    return f"CASE WHEN {key} BETWEEN {low} AND {high} THEN {key} END"


def _contracts_source(
    dialect: str,
    *,
    billing: bool,
    clients: tuple[int, int] | None = None,
    invoiced: bool = False,
) -> str:
    """Each contract with its dates (and rate), its client's id (``parent_id``) and its
    invoices' number ``n``, first start and last end.

    PostgreSQL and MariaDB group the invoices per contract first, in one ordered pass over the
    contract's index, and join the groups to the contracts (a merge join; MariaDB looks them up
    in the grouped table's key, with ``split_materialized`` off (:func:`_aggregating`): else it
    grouped each contract's invoices apart, and it cost as much as the old nested loop plus a
    temporary table of every contract for the outer sums). ``clients`` given (MariaDB, the ids
    dense), a contract's client exists when its id is between the least and the greatest:
    no lookup of each client.

    ``invoiced`` (MariaDB): only the contracts that have invoices, the other way round: each
    group of invoices looks up its contract by primary key, in key order (0.8x the CPU of
    looking each contract up in the groups' temporary table; a hash join cost 1.6x, a nested
    loop 1.05x). The contracts without invoices are left out: see :func:`_count_if_every_row`.
    """
    rate = ", t.monthly_rate" if billing else ""
    grouped = (
        "(SELECT contract_id, COUNT(*) AS n, MIN(period_start) AS first_start, "
        "MAX(period_end) AS last_end FROM invoices GROUP BY contract_id) AS b"
    )
    if clients is not None:
        parent, client = _dense_parent("t.client_id", clients), ""
    else:
        parent, client = "c.id", " LEFT JOIN clients c ON c.id = t.client_id"
    columns = f"t.id, t.start_date, t.end_date{rate}, {parent} AS parent_id"
    if invoiced:
        return (
            f"SELECT {columns}, b.n, b.first_start, b.last_end FROM {grouped} "
            f"STRAIGHT_JOIN contracts t ON t.id = b.contract_id{client}"
        )
    if dialect != "sqlite":
        return (
            f"SELECT {columns}, COALESCE(b.n, 0) AS n, b.first_start, b.last_end "
            f"FROM contracts t{client} LEFT JOIN {grouped} ON b.contract_id = t.id"
        )
    # SQLite: contracts in key order, each one's invoices through the index (MAX() of a
    # contract's own columns: one value per group)
    rate = ", MAX(t.monthly_rate) AS monthly_rate" if billing else ""
    return (
        f"SELECT t.id, MAX(t.start_date) AS start_date, MAX(t.end_date) AS end_date{rate}, "
        "MAX(c.id) AS parent_id, COUNT(i.id) AS n, MIN(i.period_start) AS first_start, "
        "MAX(i.period_end) AS last_end FROM contracts t LEFT JOIN clients c ON c.id = t.client_id "
        "LEFT JOIN invoices i ON i.contract_id = t.id GROUP BY t.id"
    )


def _checks(dialect: str, expect: Expectations) -> list[_Rule]:
    """The invariants of every schema, as rules on the sources of :func:`_sources`."""
    rules = [
        _Rule(f"{child} without their {parent[:-1]}", child, child, "parent_id IS NULL")
        for parent, child, _, _ in LEVELS
    ]
    for parent, child, _, key in LEVELS:
        wanted = expect.ranges.get(key)
        # A mix's weights do not matter here: a count is fine in any of its parts.
        allowed = " or ".join(str(p) for p, _ in wanted.parts) if wanted else "the recorded range"
        outside = None if wanted is None else _outside(wanted, "n")
        rules.append(_Rule(f"{parent} with {child} outside {allowed}", parent, parent, outside))
    as_of = expect.as_of
    rules += [
        _Rule("duplicate user emails", "users", "emails", "1 = 1"),
        _Rule("contracts ending before they start", "contracts", "contracts",
              "end_date < start_date"),
        _Rule("invoice periods ending before they start", "invoices", "invoices",
              "period_end < period_start"),
        _Rule("invoices outside their contract's dates", "invoices", "invoices",
              "period_start < start_date OR period_end > end_date"),
        _Rule("invoice periods overlapping an earlier one", "invoices", "periods",
              "prev_end >= period_start"),
        _Rule("gaps between consecutive invoice periods", "invoices", "periods",
              f"{day_after(dialect, 'prev_end')} < period_start"),
        _Rule(f"invoices after the as-of date{f' {as_of}' if as_of else ''}", "invoices",
              "invoices", None if as_of is None else f"period_end > {_literal(as_of)}"),
        _Rule("invoices with a negative amount", "invoices", "invoices", "amount < 0"),
    ]  # fmt: skip
    return rules


def _outside(mix: CountMix, count: str) -> str:
    """SQL true when ``count`` is in none of the parts of ``mix``."""
    return " AND ".join(f"({count} < {part.low} OR {count} > {part.high})" for part, _ in mix.parts)


def check(
    engine: Engine, *, fallback: Expectations, progress: Progress | None = None
) -> CheckReport:
    """Verify the invariants; expectations come from the run manifest, else from ``fallback``.

    Never writes (a read-only transaction). A violated invariant is reported, not raised: the
    caller decides. The checks on the same rows are counted together, in one pass over them;
    the examples of a failed check are fetched after. ``progress`` is called as each pass
    (:data:`SOURCE_STEPS`) and each fetch of examples starts.
    """
    dialect = engine.dialect.name
    with db.connect(engine, read_only=True) as connection, _aggregating(connection):
        _open_schema(connection, engine)
        expect = expectations_from_manifest(manifest.runs(connection), fallback)
        billing = has_billing_columns(connection)
        rules = _checks(dialect, expect)
        counters = _predating_counts() if billing else []
        billing_rules = _billing_checks(dialect, expect.as_of)
        counted = rules + (billing_rules if billing else []) + counters
        mariadb = dialect in ("mysql", "mariadb")
        clients = _dense_ids(connection, "clients") if mariadb else None
        users = _dense_ids(connection, "users") if mariadb else None
        sources = _sources(dialect, billing=billing, clients=clients, users=users)
        wanted = [s for s in SOURCE_STEPS if any(r.source == s and r.condition for r in counted)]
        step = _Steps(progress, len(wanted))
        counts: dict[str, int] = {}
        for source in wanted:
            step(SOURCE_STEPS[source])
            on_source = [r for r in counted if r.source == source]
            tally = None
            # MariaDB: the users' rules read only their number of clients (``n``), known from
            # the clients' key index alone when the users' ids are dense
            if mariadb and source == "users":
                per_count = _dense_distribution(connection, "users", "clients", "user_id")
                tally = _count_per_count(connection, per_count, on_source) if per_count else None
            # MariaDB: the contracts from their invoices' groups, when every contract has some
            elif mariadb and source == "contracts":
                invoiced = _contracts_source(
                    dialect, billing=billing, clients=clients, invoiced=True
                )
                tally = _count_if_every_row(connection, invoiced, on_source, "contracts")
            counts |= _count(connection, sources[source], on_source) if tally is None else tally
        notes = []
        if not billing:
            notes.append("the schema predates the billing columns; run `invoicegen migrate`")
            billing_rules = [replace(r, condition=None, skipped="schema older than 0003")
                             for r in billing_rules]  # fmt: skip
        elif note := _predating_note(counts):
            notes.append(note)
            if not counts["new invoices"]:
                billing_rules = [replace(r, condition=None, skipped="rows predate billing")
                                 for r in billing_rules]  # fmt: skip
        results = []
        for rule in rules + billing_rules:
            if rule.condition is None:
                results.append(CheckResult(rule.name, rule.table, None, skipped=rule.skipped))
                continue
            found = counts[rule.name]
            if found:
                step(f"examples of {rule.name}")
            examples = _examples(connection, sources[rule.source], rule) if found else []
            results.append(CheckResult(rule.name, rule.table, found, examples))
        return CheckReport(mask(engine.url), expect, results, notes)


def _count(connection: Connection, source: str, rules: list[_Rule]) -> dict[str, int]:
    """How many rows of ``source`` each of ``rules`` finds, in one pass."""
    rules = [r for r in rules if r.condition is not None]
    row = connection.execute(sa.text(f"SELECT {_counters(rules)} FROM ({source}) AS v")).one()
    return {rule.name: int(n or 0) for rule, n in zip(rules, row, strict=True)}


def _counters(rules: list[_Rule]) -> str:
    """The select list counting the rows each rule finds. ``COUNT(CASE WHEN ... THEN 1 END)``,
    not ``SUM(CASE ... ELSE 0 END)``: the same counts, and on MariaDB the invoices pass of
    ``--check`` costs 0.9x the CPU (2 million rows, a dozen rules)."""
    return ", ".join(f"COUNT(CASE WHEN {r.condition} THEN 1 END)" for r in rules)


def _count_if_every_row(
    connection: Connection, source: str, rules: list[_Rule], table: str
) -> dict[str, int] | None:
    """As :func:`_count`, over a ``source`` that may leave out some rows of ``table`` (at
    most one row per row of it): None when it may have left any out, and the rules must be
    counted over every row.

    The rows seen are compared with the span of ``table``'s ids (greatest - least + 1, read
    at both ends of the primary key, in the statement's own snapshot), not with a count of its
    rows: the ids are distinct integers in that span, so seen <= rows <= span, and seen = span
    proves every row was seen. Ids with gaps (rows deleted) only cost the fallback. On 660,000
    contracts, counting them cost MariaDB 0.05-0.08 CPU s (a scan of their smallest index)."""
    rules = [r for r in rules if r.condition is not None]
    *row, seen, span = connection.execute(
        sa.text(
            f"SELECT {_counters(rules)}, COUNT(*), "
            f"(SELECT COALESCE(MAX(id) - MIN(id) + 1, 0) FROM {table}) FROM ({source}) AS v"
        )
    ).one()
    if seen != span:
        return None
    return {rule.name: int(n or 0) for rule, n in zip(rules, row, strict=True)}


def _count_per_count(
    connection: Connection, distribution: dict[int, int], rules: list[_Rule]
) -> dict[str, int]:
    """How many parents each of ``rules`` (conditions on ``n`` alone) finds, from the parents
    per number of children (:func:`_dense_distribution`): one row per count, weighted."""
    rules = [r for r in rules if r.condition is not None]
    sums = ", ".join(f"SUM(CASE WHEN {r.condition} THEN parents ELSE 0 END)" for r in rules)
    counts = " UNION ALL ".join(
        f"SELECT {int(n)} AS n, {int(parents)} AS parents" for n, parents in distribution.items()
    )
    row = connection.execute(sa.text(f"SELECT {sums} FROM ({counts}) AS v")).one()
    return {rule.name: int(n or 0) for rule, n in zip(rules, row, strict=True)}


def _examples(connection: Connection, source: str, rule: _Rule) -> list[int]:
    """The first few ids ``rule`` finds (fetched only when it found any: sorting for them can
    cost more than the count, and sound data has none)."""
    return [
        int(i)
        for i in connection.execute(
            sa.text(
                f"SELECT id FROM ({source}) AS v WHERE {rule.condition} "
                f"ORDER BY id LIMIT {EXAMPLES}"
            )
        ).scalars()
    ]


# --- billing: the invoices' lifecycle and money (schema 0003) ---------------------------------

#: An invoice's statuses in lifecycle order (``invoices.status``).
STATUSES = ("draft", "open", "paid", "overdue", "void")
_ISSUED = "('open', 'paid', 'overdue', 'void')"  # numbered, with issue and due dates
#: Issued and not void: what counts as billed.
BILLED_STATUSES = ("open", "paid", "overdue")
_BILLED = "('open', 'paid', 'overdue')"
#: Receivables by days past due on the as-of date: (label, fewest days, most days).
AGE_BUCKETS: tuple[tuple[str, int | None, int | None], ...] = (
    ("current", None, 0),
    ("1-30", 1, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("90+", 91, None),
)
#: Days sales outstanding = receivables / billed in the last DSO_DAYS days * DSO_DAYS.
DSO_DAYS = 90


@dataclass(frozen=True)
class StatusTotal:
    """Invoices of one status in one currency; None for both: rows that predate billing."""

    status: str | None
    currency: str | None
    invoices: int
    amount: Decimal


@dataclass(frozen=True)
class Receivables:
    """What is owed in one currency on the as-of date (open and overdue invoices), by days
    past due, and the days sales outstanding."""

    currency: str
    #: bucket label (AGE_BUCKETS) -> amount; every bucket present
    by_age: dict[str, Decimal]
    invoices: int
    total: Decimal
    #: billed (issued, not void) in the DSO_DAYS days up to as-of
    billed_recently: Decimal
    #: total / billed_recently * DSO_DAYS; None when nothing was billed in that window
    dso_days: Decimal | None


@dataclass(frozen=True)
class BilledMonth:
    """Invoices issued in ``month`` (YYYY-MM) in one currency, void ones excluded."""

    month: str
    currency: str
    invoices: int
    billed: Decimal


@dataclass(frozen=True)
class Billing:
    """The billing view of ``stats``; computed as of ``as_of`` (see ``as_of_source``)."""

    as_of: dt.date | None
    as_of_source: str
    by_status: list[StatusTotal]
    receivables: list[Receivables]
    billed_months: list[BilledMonth]
    #: invoices without a status: seeded before the billing columns existed
    predating: int
    dso_window_days: int = DSO_DAYS


def has_billing_columns(connection: Connection) -> bool:
    """Whether the schema has migration 0003's columns (``invoices.status`` stands for all)."""
    return any(c["name"] == "status" for c in sa.inspect(connection).get_columns("invoices"))


def _literal(day: dt.date) -> str:
    """A date as a SQL literal all three databases compare with a DATE column."""
    return f"'{day.isoformat()}'"


def _dataset_as_of(connection: Connection, runs: list[RunRecord]) -> tuple[dt.date | None, str]:
    """The as-of date the data was generated for: the latest recorded run's, else the latest
    date in the invoices."""
    dates = [d for run in runs if (d := _date(run.as_of)) is not None]
    if dates:
        return max(dates), "the run manifest"
    latest = connection.execute(sa.text("SELECT MAX(issued_on), MAX(paid_on) FROM invoices")).one()
    found = [d for d in map(_date, latest) if d is not None]
    if not found:
        return None, "unknown (no run manifest, no issued invoice)"
    return max(found), "the latest issue or payment date (no run manifest)"


def _age_case(as_of: dt.date) -> str:
    """CASE naming the AGE_BUCKETS label of ``due_on``, from date literals computed here."""
    whens = []
    for label, fewest, most in AGE_BUCKETS:
        if most is None:  # at least ``fewest`` days past due
            bound, compare = as_of - dt.timedelta(days=fewest or 0), "<="
        else:  # at most ``most`` days past due (the earlier buckets took the fewer days)
            bound, compare = as_of - dt.timedelta(days=most), ">="
        whens.append(f"WHEN due_on {compare} {_literal(bound)} THEN '{label}'")
    return f"CASE {' '.join(whens)} END"


@dataclass
class _InvoiceTotals:
    """What one grouping pass over the invoices found (see :func:`_invoice_totals`): one row per
    month, status, currency, age and window, added up here."""

    dialect: str
    count: int = 0
    amount: Decimal = Decimal(0)  # raw: whole cents on SQLite
    first_start: dt.date | None = None
    last_end: dt.date | None = None
    by_month: dict[str, tuple[int, Decimal]] = field(default_factory=dict)
    by_status: dict[tuple[str | None, str | None], tuple[int, Decimal]] = field(
        default_factory=dict
    )
    owed: dict[str, dict[str, tuple[int, Decimal]]] = field(default_factory=dict)
    billed_recently: dict[str, Decimal] = field(default_factory=dict)
    billed_months: dict[tuple[str | None, str | None], tuple[int, Decimal]] = field(
        default_factory=dict
    )

    @property
    def months(self) -> list[Month]:
        return _month_range(
            {m: Month(m, n, _money(self.dialect, s)) for m, (n, s) in self.by_month.items()}
        )

    def billing(self, as_of: dt.date | None, as_of_source: str) -> Billing:
        money = functools.partial(_money, self.dialect)
        order = {status: index for index, status in enumerate(STATUSES)}
        by_status = sorted(
            (StatusTotal(s, c, n, money(total)) for (s, c), (n, total) in self.by_status.items()),
            key=lambda t: (order.get(t.status or "", len(order)), t.status or "", t.currency or ""),
        )
        receivables = []
        for currency in sorted(self.owed.keys() | self.billed_recently.keys()):
            ages = self.owed.get(currency, {})
            by_age = {label: money(ages.get(label, (0, 0))[1]) for label, *_ in AGE_BUCKETS}
            total = sum(by_age.values(), Decimal("0.00"))
            recent = money(self.billed_recently.get(currency, 0))
            dso = (total / recent * DSO_DAYS).quantize(Decimal("0.1")) if recent else None
            invoices = sum(n for n, _ in ages.values())
            receivables.append(Receivables(currency, by_age, invoices, total, recent, dso))
        billed_months = [
            BilledMonth(str(month), str(currency), n, money(total))
            for (month, currency), (n, total) in sorted(
                self.billed_months.items(), key=lambda kv: (kv[0][0] or "", kv[0][1] or "")
            )
        ]
        return Billing(
            as_of=as_of,
            as_of_source=as_of_source,
            by_status=by_status,
            receivables=receivables if as_of is not None else [],
            billed_months=billed_months,
            predating=sum(t.invoices for t in by_status if t.status is None),
        )


def _add(buckets: dict[Any, tuple[int, Decimal]], key: Any, n: int, amount: Decimal) -> None:
    had_n, had_amount = buckets.get(key, (0, Decimal(0)))
    buckets[key] = (had_n + n, had_amount + amount)


def _invoice_totals(
    connection: Connection, dialect: str, *, billing: bool, as_of: dt.date | None
) -> _InvoiceTotals:
    """Totals, periods, months and the billing view, in ONE grouping pass over the invoices.

    The database returns one row per combination of the period's month, status, currency,
    issue month (billed invoices), age (owed invoices, on ``as_of``) and whether the invoice
    was billed in the DSO window: a few thousand rows for millions of invoices.
    """
    amount = money_sum(dialect, "amount")
    if billing:
        owed = "status IN ('open', 'overdue')"
        billed = f"status IN {_BILLED}"
        age = f"CASE WHEN {owed} THEN {_age_case(as_of)} END" if as_of else "NULL"
        recent = (
            f"CASE WHEN {billed} AND issued_on > {_literal(as_of - dt.timedelta(days=DSO_DAYS))} "
            f"AND issued_on <= {_literal(as_of)} THEN 1 ELSE 0 END"
            if as_of
            else "0"
        )
        keys = [
            "status",
            "currency",
            f"CASE WHEN {billed} THEN {month_of(dialect, 'issued_on')} END",
            age,
            recent,
        ]
    else:
        keys = ["NULL"] * 4 + ["0"]
    groups = ", ".join(str(n) for n in range(1, len(keys) + 2)) if billing else "1"
    rows = connection.execute(
        sa.text(
            f"SELECT {month_of(dialect, 'period_end')}, {', '.join(keys)}, COUNT(*), {amount}, "
            f"MIN(period_start), MAX(period_end) FROM invoices GROUP BY {groups}"
        )
    ).all()
    totals = _InvoiceTotals(dialect)
    starts, ends = [], []
    for month, status, currency, issued, age, recent, n, raw, first, last in rows:
        n, money = int(n), _raw(raw)
        totals.count += n
        totals.amount += money
        starts.append(_date(first))
        ends.append(_date(last))
        _add(totals.by_month, _month_label(month), n, money)
        _add(totals.by_status, (status, currency), n, money)
        if status in ("open", "overdue"):
            _add(totals.owed.setdefault(str(currency), {}), str(age), n, money)
        if status in BILLED_STATUSES:
            _add(totals.billed_months, (_month_label(issued), currency), n, money)
        if int(recent):
            key = str(currency)
            totals.billed_recently[key] = totals.billed_recently.get(key, Decimal(0)) + money
    totals.first_start = min((d for d in starts if d is not None), default=None)
    totals.last_end = max((d for d in ends if d is not None), default=None)
    return totals


# --- billing: the checks ------------------------------------------------------------------------


def add_days(dialect: str, column: str, days: str) -> str:
    """SQL for the date ``days`` (an integer expression) after a date expression."""
    if dialect == "sqlite":
        if days.lstrip("-").isdigit():
            return f"date({column}, '{int(days):+d} days')"
        return f"date({column}, printf('%+d days', {days}))"
    if dialect == "postgresql":
        return f"({column} + CAST({days} AS INTEGER))"
    return f"DATE_ADD({column}, INTERVAL ({days}) DAY)"


def add_months(dialect: str, column: str, months: str) -> str:
    """SQL for a date expression plus ``months`` (an integer expression), the day
    clamped to the end of a shorter month (Jan 31 + 1 month = Feb 28 or 29), as PostgreSQL's
    and MariaDB's own month arithmetic does. SQLite's would roll over into March: there it is the
    earlier of the same day and the last day of the month ``months`` later."""
    if dialect == "sqlite":
        # ISO text: the day is characters 9-10 (substr is much cheaper than strftime)
        same_day = (
            f"date({column}, 'start of month', printf('%+d months', {months}), "
            f"'+' || (substr({column}, 9, 2) - 1) || ' days')"
        )
        month_end = (
            f"date({column}, 'start of month', printf('%+d months', ({months}) + 1), '-1 day')"
        )
        return f"min({same_day}, {month_end})"
    if dialect == "postgresql":
        return f"CAST({column} + CAST({months} AS INTEGER) * INTERVAL '1 month' AS DATE)"
    return f"DATE_ADD({column}, INTERVAL ({months}) MONTH)"


def concat(dialect: str, *parts: str) -> str:
    """SQL joining text and integer expressions into one string."""
    if dialect in ("sqlite", "postgresql"):
        return "(" + " || ".join(f"CAST({p} AS TEXT)" if p[0] != "'" else p for p in parts) + ")"
    return f"CONCAT({', '.join(parts)})"


def months_between(dialect: str, earlier: str, later: str) -> str:
    """SQL for the number of calendar months from one date expression's month to another's."""
    if dialect == "sqlite":  # ISO text: arithmetic on substrings reads them as integers
        year, month = "substr({}, 1, 4)", "substr({}, 6, 2)"
    elif dialect == "postgresql":  # EXTRACT returns numeric there: date_part's float is cheaper
        year, month = "date_part('year', {})", "date_part('month', {})"
    else:  # MariaDB, MySQL: months between two YYYYMM numbers, at half the cost of four EXTRACTs
        return f"PERIOD_DIFF(EXTRACT(YEAR_MONTH FROM {later}), EXTRACT(YEAR_MONTH FROM {earlier}))"
    return (
        f"(({year.format(later)} - {year.format(earlier)}) * 12 "
        f"+ {month.format(later)} - {month.format(earlier)})"
    )


def _billing_checks(dialect: str, as_of: dt.date | None) -> list[_Rule]:
    """The billing invariants, as rules on the sources of :func:`_sources` (None conditions
    without an as-of). Rows seeded before the billing columns (NULL ``status`` or
    ``monthly_rate``) are left out."""
    day = _literal(as_of) if as_of else ""
    after = _literal(as_of + dt.timedelta(days=1)) if as_of else ""
    # billed_to: end_date when it is on or before as-of, else the end of the last monthly
    # period complete on as-of. The invoices tile the periods 0..n-1 (each ends on a period's
    # end, and none leaves a gap or overlaps, checked apart), so a running contract is billed to
    # billed_to when period n-1 is complete and period n is not.
    coverage = (
        "monthly_rate IS NOT NULL AND CASE "
        "WHEN first_start IS NOT NULL AND first_start <> start_date THEN 1 "
        f"WHEN end_date <= {day} "
        "THEN CASE WHEN last_end = end_date THEN 0 ELSE 1 END "
        f"WHEN {add_months(dialect, 'start_date', 'n + 1')} <= {after} THEN 1 "
        f"WHEN n > 0 AND {add_months(dialect, 'start_date', 'n')} > {after} THEN 1 "
        "ELSE 0 END = 1"
    )
    expected_number = concat(dialect, "'INV-'", "user_id", "'-'", "n")
    due = add_days(dialect, "issued_on", "payment_terms_days")

    def dated(condition: str) -> str | None:
        return condition if as_of else None

    return [
        _Rule("invoices not ending where a monthly period ends", "invoices", "invoices",
              "monthly_rate IS NOT NULL AND period_end <> full_end AND NOT "
              "(end_date IS NOT NULL AND period_end = end_date AND period_end < full_end)"),
        _Rule("contracts not billed exactly from start to billed_to", "contracts", "contracts",
              dated(coverage)),
        _Rule("invoice amounts off their contract's rate", "invoices", "invoices",
              "monthly_rate IS NOT NULL AND CASE WHEN period_end = full_end "
              "THEN CASE WHEN amount = monthly_rate THEN 0 ELSE 1 END "
              "WHEN amount > 0 AND amount <= monthly_rate THEN 0 ELSE 1 END = 1"),
        _Rule("invoices in another currency than their contract", "invoices", "invoices",
              "parent_id IS NOT NULL AND status IS NOT NULL AND (currency IS NULL "
              "OR contract_currency IS NULL OR currency <> contract_currency)"),
        _Rule("invoice numbers not INV-<user>-<n> in issue order", "invoices", "numbers",
              f"number IS NULL OR number <> {expected_number}"),
        # A later invoice of the same contract: one probe of the (contract_id, period_start)
        # index per draft, cheaper than a second window over every invoice.
        _Rule("drafts with a number or dates, or not the latest", "invoices", "invoices",
              "status = 'draft' AND (number IS NOT NULL OR issued_on IS NOT NULL "
              "OR due_on IS NOT NULL OR paid_on IS NOT NULL OR EXISTS (SELECT 1 FROM invoices l "
              "WHERE l.contract_id = v.contract_id AND l.period_start > v.period_start))"),
        _Rule("issue dates before the period's end or after as-of", "invoices", "invoices",
              dated(f"status IN {_ISSUED} AND (issued_on IS NULL OR issued_on < period_end "
                    f"OR issued_on > {day})")),
        _Rule("due dates other than issue date + payment terms", "invoices", "invoices",
              f"client_id IS NOT NULL AND status IN {_ISSUED} AND (due_on IS NULL "
              f"OR payment_terms_days IS NULL OR due_on <> {due})"),
        _Rule("paid invoices not paid between issue and as-of", "invoices", "invoices",
              dated("status = 'paid' AND (paid_on IS NULL OR paid_on < issued_on "
                    f"OR paid_on > {day})")),
        _Rule("open invoices paid or past due", "invoices", "invoices",
              dated(f"status = 'open' AND (paid_on IS NOT NULL OR due_on < {day})")),
        _Rule("overdue invoices paid or not past due", "invoices", "invoices",
              dated(f"status = 'overdue' AND (paid_on IS NOT NULL OR due_on >= {day})")),
        _Rule("void invoices with a payment date", "invoices", "invoices",
              "status = 'void' AND paid_on IS NOT NULL"),
    ]  # fmt: skip


def _predating_counts() -> list[_Rule]:
    """Rows seeded before the billing columns, and invoices seeded after: counted with the
    checks, for the notes."""
    return [
        _Rule("old invoices", "invoices", "invoices", "status IS NULL"),
        _Rule("new invoices", "invoices", "invoices", "status IS NOT NULL"),
        _Rule("old contracts", "contracts", "contracts", "monthly_rate IS NULL"),
    ]


def _count_of(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' * (n != 1)}"


def _predating_note(counts: dict[str, int]) -> str | None:
    """A note on rows that predate the billing columns (seeded by invoicegen 0.1, then
    migrated): they cannot be checked, so they are left out, plainly."""
    old_invoices, old_contracts = counts["old invoices"], counts["old contracts"]
    if not (old_invoices or old_contracts):
        return None
    parts = [_count_of(old_invoices, "invoice")] * bool(old_invoices)
    parts += [_count_of(old_contracts, "contract")] * bool(old_contracts)
    verb = "predates" if parts in (["1 invoice"], ["1 contract"]) else "predate"
    return (
        f"{' and '.join(parts)} {verb} the billing columns (seeded by invoicegen 0.1); "
        "reseed to check them"
    )
