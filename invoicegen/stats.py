"""What is in the database, by aggregate queries only: rows never travel to Python.

:func:`collect` gathers the overview ``invoicegen stats`` shows; :func:`check` verifies the
data against the invariants seeding guarantees (``invoicegen stats --check``). Every number is
computed by a ``GROUP BY`` in the database; Python only receives one row per bucket (per month,
per child count, per top client), never one per invoice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
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
    """SQL for the YYYY-MM text of a date column."""
    if dialect == "sqlite":
        return f"strftime('%Y-%m', {column})"
    if dialect == "postgresql":
        return f"to_char({column}, 'YYYY-MM')"
    return f"DATE_FORMAT({column}, '%Y-%m')"  # MariaDB, MySQL


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


def _money(dialect: str, value: Any) -> Decimal:
    amount = Decimal(str(value or 0))
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


def _distribution(
    connection: Connection, parent: str, child: str, fk: str, mix: CountMix | None
) -> ChildrenPerParent:
    rows = connection.execute(
        sa.text(
            f"SELECT n, COUNT(*) FROM (SELECT COUNT(c.id) AS n FROM {parent} p "
            f"LEFT JOIN {child} c ON c.{fk} = p.id GROUP BY p.id) AS per_parent "
            "GROUP BY n ORDER BY n"
        )
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


def _months(connection: Connection, dialect: str) -> list[Month]:
    bucket = month_of(dialect, "period_end")
    rows = connection.execute(
        sa.text(
            f"SELECT {bucket} AS bucket, COUNT(*), {money_sum(dialect, 'amount')} "
            f"FROM invoices GROUP BY {bucket} ORDER BY bucket"
        )
    ).all()
    found = {str(month): Month(str(month), int(n), _money(dialect, s)) for month, n, s in rows}
    if not found:
        return []
    months = []
    year, month = map(int, min(found).split("-"))
    while (label := f"{year:04d}-{month:02d}") <= max(found):
        months.append(found.get(label, Month(label, 0, Decimal("0.00"))))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _top_clients(connection: Connection, dialect: str, limit: int) -> list[TopClient]:
    billed = money_sum(dialect, "i.amount")
    rows = connection.execute(
        sa.text(
            f"SELECT c.id, c.name, c.company_name, c.user_id, COUNT(i.id), {billed} AS billed "
            "FROM clients c JOIN contracts k ON k.client_id = c.id "
            "JOIN invoices i ON i.contract_id = k.id "
            "GROUP BY c.id, c.name, c.company_name, c.user_id "
            "ORDER BY billed DESC, c.id LIMIT :limit"
        ),
        {"limit": limit},
    ).all()
    return [
        TopClient(int(id_), name, company, int(user), int(n), _money(dialect, total))
        for id_, name, company, user, n, total in rows
    ]


def collect(engine: Engine, *, top: int = TOP_CLIENTS) -> Stats:
    """Counts, children per parent, money per month, top clients and the run manifest.

    Never writes: it runs in a read-only transaction (:func:`db.connect`).
    """
    dialect = engine.dialect.name
    with db.connect(engine, read_only=True) as connection:
        state = _open_schema(connection, engine)
        counts = schema.count_rows(connection)
        amounts = connection.execute(
            sa.text(f"SELECT {money_sum(dialect, 'amount')}, COUNT(*) FROM invoices")
        ).one()
        starts = connection.execute(
            sa.text(
                "SELECT MIN(start_date), MAX(start_date), "
                "SUM(CASE WHEN end_date IS NULL THEN 1 ELSE 0 END) FROM contracts"
            )
        ).one()
        periods = connection.execute(
            sa.text("SELECT MIN(period_start), MAX(period_end) FROM invoices")
        ).one()
        total = _money(dialect, amounts[0])
        runs = manifest.runs(connection)
        return Stats(
            database=mask(engine.url),
            revision=state.revision,
            counts=counts,
            children=[
                _distribution(connection, parent, child, fk, recorded_mix(runs, key))
                for parent, child, fk, key in LEVELS
            ],
            amount_total=total,
            amount_mean=(total / amounts[1]).quantize(_CENT, ROUND_HALF_UP) if amounts[1] else None,
            contract_starts=DateRange(_date(starts[0]), _date(starts[1])),
            invoice_periods=DateRange(_date(periods[0]), _date(periods[1])),
            ongoing_contracts=int(starts[2] or 0),
            months=_months(connection, dialect),
            top_clients=_top_clients(connection, dialect, top),
            runs=runs[-RUNS_SHOWN:],
            billing=_billing(connection, dialect),
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


def _checks(dialect: str, expect: Expectations) -> list[tuple[str, str, str | None]]:
    """(name, table, SQL selecting the ids of the offending rows, or None when skipped)."""
    checks: list[tuple[str, str, str | None]] = [
        (
            f"{child} without their {parent[:-1]}",
            child,
            f"SELECT c.id FROM {child} c LEFT JOIN {parent} p ON p.id = c.{fk} WHERE p.id IS NULL",
        )
        for parent, child, fk, _ in LEVELS
    ]
    for parent, child, fk, key in LEVELS:
        wanted = expect.ranges.get(key)
        # A mix's weights do not matter here: a count is fine in any of its parts.
        allowed = " or ".join(str(p) for p, _ in wanted.parts) if wanted else "the recorded range"
        checks.append(
            (
                f"{parent} with {child} outside {allowed}",
                parent,
                None
                if wanted is None
                else f"SELECT p.id FROM {parent} p LEFT JOIN {child} c ON c.{fk} = p.id "
                f"GROUP BY p.id HAVING {_outside(wanted, 'COUNT(c.id)')}",
            )
        )
    # For each invoice, the latest end of the earlier periods of its contract.
    previous = (
        "SELECT id, period_start, MAX(period_end) OVER (PARTITION BY contract_id "
        "ORDER BY period_start, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end "
        "FROM invoices"
    )
    as_of = expect.as_of
    checks += [
        ("duplicate user emails", "users",
         "SELECT MIN(id) FROM users GROUP BY email HAVING COUNT(*) > 1"),
        ("contracts ending before they start", "contracts",
         "SELECT id FROM contracts WHERE end_date < start_date"),
        ("invoice periods ending before they start", "invoices",
         "SELECT id FROM invoices WHERE period_end < period_start"),
        ("invoices outside their contract's dates", "invoices",
         "SELECT i.id FROM invoices i JOIN contracts k ON k.id = i.contract_id "
         "WHERE i.period_start < k.start_date OR i.period_end > k.end_date"),
        ("invoice periods overlapping an earlier one", "invoices",
         f"SELECT id FROM ({previous}) AS w WHERE prev_end >= period_start"),
        ("gaps between consecutive invoice periods", "invoices",
         f"SELECT id FROM ({previous}) AS w WHERE {day_after(dialect, 'prev_end')} < period_start"),
        (f"invoices after the as-of date{f' {as_of}' if as_of else ''}", "invoices",
         None if as_of is None else f"SELECT id FROM invoices WHERE period_end > '{as_of}'"),
        ("invoices with a negative amount", "invoices",
         "SELECT id FROM invoices WHERE amount < 0"),
    ]  # fmt: skip
    return checks


def _outside(mix: CountMix, count: str) -> str:
    """SQL true when ``count`` is in none of the parts of ``mix``."""
    return " AND ".join(f"({count} < {part.low} OR {count} > {part.high})" for part, _ in mix.parts)


def check(engine: Engine, *, fallback: Expectations) -> CheckReport:
    """Verify the invariants; expectations come from the run manifest, else from ``fallback``.

    Never writes (a read-only transaction). A violated invariant is reported, not raised: the
    caller decides.
    """
    dialect = engine.dialect.name
    with db.connect(engine, read_only=True) as connection:
        _open_schema(connection, engine)
        expect = expectations_from_manifest(manifest.runs(connection), fallback)
        results = [_run_check(connection, *check) for check in _checks(dialect, expect)]
        billing, notes = _billing_results(connection, dialect, expect)
        return CheckReport(mask(engine.url), expect, results + billing, notes)


def _run_check(
    connection: Connection, name: str, table: str, sql: str | None, skipped: str = "not recorded"
) -> CheckResult:
    """Count the rows ``sql`` selects (ids, first column); fetch the first few only when there
    are any (sorting for them can cost more than the count, and sound data has none)."""
    if sql is None:
        return CheckResult(name, table, None, skipped=skipped)
    count = int(connection.execute(sa.text(f"SELECT COUNT(*) FROM ({sql}) AS v")).scalar_one())
    if not count:
        return CheckResult(name, table, 0, [])
    examples = connection.execute(
        sa.text(f"SELECT * FROM ({sql}) AS v ORDER BY 1 LIMIT {EXAMPLES}")
    ).scalars()
    return CheckResult(name, table, count, [int(i) for i in examples])


# --- billing: the invoices' lifecycle and money (schema 0003) ---------------------------------

#: An invoice's statuses in lifecycle order (``invoices.status``).
STATUSES = ("draft", "open", "paid", "overdue", "void")
_ISSUED = "('open', 'paid', 'overdue', 'void')"  # numbered, with issue and due dates
_BILLED = "('open', 'paid', 'overdue')"  # issued and not void: what counts as billed
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


def _dataset_as_of(connection: Connection) -> tuple[dt.date | None, str]:
    """The as-of date the data was generated for: the latest recorded run's, else the latest
    date in the invoices."""
    dates = [d for run in manifest.runs(connection) if (d := _date(run.as_of)) is not None]
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


def _receivables(connection: Connection, dialect: str, as_of: dt.date) -> list[Receivables]:
    amount = money_sum(dialect, "amount")
    owed: dict[str, dict[str, tuple[int, Decimal]]] = {}
    for currency, age, n, total in connection.execute(
        sa.text(
            f"SELECT currency, {_age_case(as_of)} AS age, COUNT(*), {amount} FROM invoices "
            "WHERE status IN ('open', 'overdue') GROUP BY 1, 2"
        )
    ):
        owed.setdefault(str(currency), {})[str(age)] = (int(n), _money(dialect, total))
    window = as_of - dt.timedelta(days=DSO_DAYS)
    billed = {
        str(currency): _money(dialect, total)
        for currency, total in connection.execute(
            sa.text(
                f"SELECT currency, {amount} FROM invoices WHERE status IN {_BILLED} "
                f"AND issued_on > {_literal(window)} "
                f"AND issued_on <= {_literal(as_of)} GROUP BY currency"
            )
        )
    }
    result = []
    for currency in sorted(owed.keys() | billed.keys()):
        ages = owed.get(currency, {})
        by_age = {label: ages.get(label, (0, Decimal("0.00")))[1] for label, *_ in AGE_BUCKETS}
        total = sum(by_age.values(), Decimal("0.00"))
        recent = billed.get(currency, Decimal("0.00"))
        dso = (total / recent * DSO_DAYS).quantize(Decimal("0.1")) if recent else None
        invoices = sum(n for n, _ in ages.values())
        result.append(Receivables(currency, by_age, invoices, total, recent, dso))
    return result


def _billed_months(connection: Connection, dialect: str) -> list[BilledMonth]:
    bucket = month_of(dialect, "issued_on")
    return [
        BilledMonth(str(month), str(currency), int(n), _money(dialect, total))
        for month, currency, n, total in connection.execute(
            sa.text(
                f"SELECT {bucket}, currency, COUNT(*), {money_sum(dialect, 'amount')} "
                f"FROM invoices WHERE status IN {_BILLED} "
                "GROUP BY 1, 2 ORDER BY 1, 2"
            )
        )
    ]


def _billing(connection: Connection, dialect: str) -> Billing | None:
    """The billing view; None when the schema predates the billing columns."""
    if not has_billing_columns(connection):
        return None
    as_of, source = _dataset_as_of(connection)
    rows = connection.execute(
        sa.text(
            f"SELECT status, currency, COUNT(*), {money_sum(dialect, 'amount')} "
            "FROM invoices GROUP BY status, currency"
        )
    ).all()
    order = {status: index for index, status in enumerate(STATUSES)}
    by_status = sorted(
        (StatusTotal(s, c, int(n), _money(dialect, total)) for s, c, n, total in rows),
        key=lambda t: (order.get(t.status or "", len(order)), t.status or "", t.currency or ""),
    )
    return Billing(
        as_of=as_of,
        as_of_source=source,
        by_status=by_status,
        receivables=[] if as_of is None else _receivables(connection, dialect, as_of),
        billed_months=_billed_months(connection, dialect),
        predating=sum(t.invoices for t in by_status if t.status is None),
    )


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
    else:
        year, month = "EXTRACT(YEAR FROM {})", "EXTRACT(MONTH FROM {})"
    return (
        f"(({year.format(later)} - {year.format(earlier)}) * 12 "
        f"+ {month.format(later)} - {month.format(earlier)})"
    )


def _periods(dialect: str) -> str:
    """Each invoice of a contract that has billing columns, with the end ``full_end`` of the
    monthly period its start falls in: period n (counted from 0) starts on start + n months, so
    it starts in the n-th month after the start's, and ends the day before start + n + 1 months.
    """
    n = months_between(dialect, "k.start_date", "i.period_start")
    full_end = add_days(dialect, add_months(dialect, "k.start_date", f"{n} + 1"), "-1")
    return (
        "SELECT i.id, i.period_end, i.amount, k.end_date, k.monthly_rate, "
        f"{full_end} AS full_end FROM invoices i JOIN contracts k ON k.id = i.contract_id "
        "WHERE k.monthly_rate IS NOT NULL"
    )


def _billing_checks(dialect: str, as_of: dt.date | None) -> list[tuple[str, str, str | None]]:
    """(name, table, SQL selecting the ids of the offending rows, or None without an as-of).

    Rows seeded before the billing columns (NULL ``status`` or ``monthly_rate``) are left out.
    """
    periods = _periods(dialect)
    day = _literal(as_of) if as_of else ""
    after = _literal(as_of + dt.timedelta(days=1)) if as_of else ""
    per_contract = (
        "SELECT contract_id, COUNT(*) AS n, MIN(period_start) AS first_start, "
        "MAX(period_end) AS last_end FROM invoices GROUP BY contract_id"
    )
    n = "COALESCE(b.n, 0)"
    # billed_to: end_date when it is on or before as-of, else the end of the last monthly
    # period complete on as-of. The invoices tile the periods 0..n-1 (each ends on a period's
    # end, and none leaves a gap or overlaps, checked apart), so a running contract is billed to
    # billed_to when period n-1 is complete and period n is not.
    coverage = (
        f"SELECT k.id FROM contracts k LEFT JOIN ({per_contract}) AS b ON b.contract_id = k.id "
        "WHERE k.monthly_rate IS NOT NULL AND CASE "
        "WHEN b.first_start IS NOT NULL AND b.first_start <> k.start_date THEN 1 "
        f"WHEN k.end_date <= {day} "
        "THEN CASE WHEN b.last_end = k.end_date THEN 0 ELSE 1 END "
        f"WHEN {add_months(dialect, 'k.start_date', f'{n} + 1')} <= {after} THEN 1 "
        f"WHEN {n} > 0 AND {add_months(dialect, 'k.start_date', n)} > {after} THEN 1 "
        "ELSE 0 END = 1"
    )
    expected_number = concat(dialect, "'INV-'", "w.user_id", "'-'", "w.n")
    numbered = (
        "SELECT i.id, i.number, c.user_id, "
        "ROW_NUMBER() OVER (PARTITION BY c.user_id ORDER BY i.issued_on, i.id) AS n "
        "FROM invoices i JOIN contracts k ON k.id = i.contract_id "
        f"JOIN clients c ON c.id = k.client_id WHERE i.status IN {_ISSUED}"
    )
    due = add_days(dialect, "i.issued_on", "c.payment_terms_days")

    def dated(sql: str) -> str | None:
        return sql if as_of else None

    return [
        ("invoices not ending where a monthly period ends", "invoices",
         f"SELECT id FROM ({periods}) AS p WHERE period_end <> full_end AND NOT "
         "(end_date IS NOT NULL AND period_end = end_date AND period_end < full_end)"),
        ("contracts not billed exactly from start to billed_to", "contracts", dated(coverage)),
        ("invoice amounts off their contract's rate", "invoices",
         f"SELECT id FROM ({periods}) AS p WHERE CASE WHEN period_end = full_end "
         "THEN CASE WHEN amount = monthly_rate THEN 0 ELSE 1 END "
         "WHEN amount > 0 AND amount <= monthly_rate THEN 0 ELSE 1 END = 1"),
        ("invoices in another currency than their contract", "invoices",
         "SELECT i.id FROM invoices i JOIN contracts k ON k.id = i.contract_id "
         "WHERE i.status IS NOT NULL AND (i.currency IS NULL OR k.currency IS NULL "
         "OR i.currency <> k.currency)"),
        ("invoice numbers not INV-<user>-<n> in issue order", "invoices",
         f"SELECT id FROM ({numbered}) AS w "
         f"WHERE w.number IS NULL OR w.number <> {expected_number}"),
        ("drafts with a number or dates, or not the latest", "invoices",
         "SELECT i.id FROM invoices i WHERE i.status = 'draft' AND (i.number IS NOT NULL "
         "OR i.issued_on IS NOT NULL OR i.due_on IS NOT NULL OR i.paid_on IS NOT NULL "
         "OR EXISTS (SELECT 1 FROM invoices l WHERE l.contract_id = i.contract_id "
         "AND l.period_start > i.period_start))"),
        ("issue dates before the period's end or after as-of", "invoices",
         dated(f"SELECT id FROM invoices WHERE status IN {_ISSUED} AND (issued_on IS NULL "
               f"OR issued_on < period_end OR issued_on > {day})")),
        ("due dates other than issue date + payment terms", "invoices",
         "SELECT i.id FROM invoices i JOIN contracts k ON k.id = i.contract_id "
         f"JOIN clients c ON c.id = k.client_id WHERE i.status IN {_ISSUED} "
         f"AND (i.due_on IS NULL OR c.payment_terms_days IS NULL OR i.due_on <> {due})"),
        ("paid invoices not paid between issue and as-of", "invoices",
         dated("SELECT id FROM invoices WHERE status = 'paid' AND (paid_on IS NULL "
               f"OR paid_on < issued_on OR paid_on > {day})")),
        ("open invoices paid or past due", "invoices",
         dated("SELECT id FROM invoices WHERE status = 'open' "
               f"AND (paid_on IS NOT NULL OR due_on < {day})")),
        ("overdue invoices paid or not past due", "invoices",
         dated("SELECT id FROM invoices WHERE status = 'overdue' "
               f"AND (paid_on IS NOT NULL OR due_on >= {day})")),
        ("void invoices with a payment date", "invoices",
         "SELECT id FROM invoices WHERE status = 'void' AND paid_on IS NOT NULL"),
    ]  # fmt: skip


def _predating(connection: Connection) -> tuple[int, int, int]:
    """(invoices, contracts) seeded before the billing columns, and invoices seeded after."""
    invoices = connection.execute(
        sa.text(
            "SELECT SUM(CASE WHEN status IS NULL THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN status IS NULL THEN 0 ELSE 1 END) FROM invoices"
        )
    ).one()
    contracts = connection.execute(
        sa.text("SELECT COUNT(*) FROM contracts WHERE monthly_rate IS NULL")
    ).scalar_one()
    return int(invoices[0] or 0), int(contracts or 0), int(invoices[1] or 0)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' * (n != 1)}"


def _billing_results(
    connection: Connection, dialect: str, expect: Expectations
) -> tuple[list[CheckResult], list[str]]:
    """The billing invariants, and a note on rows that predate the billing columns (seeded by
    invoicegen 0.1, then migrated): they cannot be checked, so they are left out, plainly."""
    checks = _billing_checks(dialect, expect.as_of)
    if not has_billing_columns(connection):
        reason = "schema older than 0003"
        note = "the schema predates the billing columns; run `invoicegen migrate`"
        return [CheckResult(name, table, None, skipped=reason) for name, table, _ in checks], [note]
    old_invoices, old_contracts, new_invoices = _predating(connection)
    notes = []
    if old_invoices or old_contracts:
        parts = [_count(old_invoices, "invoice")] * bool(old_invoices)
        parts += [_count(old_contracts, "contract")] * bool(old_contracts)
        verb = "predates" if parts in (["1 invoice"], ["1 contract"]) else "predate"
        notes.append(
            f"{' and '.join(parts)} {verb} the billing columns (seeded by invoicegen 0.1); "
            "reseed to check them"
        )
        if not new_invoices:
            reason = "rows predate billing"
            return [CheckResult(name, table, None, skipped=reason) for name, table, _ in checks], (
                notes
            )
    return [_run_check(connection, *check, skipped="no as-of date") for check in checks], notes
