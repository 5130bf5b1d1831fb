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

from invoicegen import db, manifest
from invoicegen.errors import CheckFailed, SchemaStateError, UsageError
from invoicegen.manifest import RunRecord
from invoicegen.settings import CountMix, CountRange, Settings

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

    def to_json(self) -> dict[str, Any]:
        data = _jsonable(asdict(self))
        for level, raw in zip(data["children"], self.children, strict=True):
            level["distribution"] = [
                {"children": n, "parents": parents} for n, parents in raw.distribution.items()
            ]
            level["mix"] = None if raw.mix is None else str(raw.mix)
        return data  # type: ignore[no-any-return]


def _jsonable(value: Any) -> Any:
    """Dates as ISO text, money as exact decimal strings, recursively."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
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


def _open_schema(connection: Connection, engine: Engine) -> db.SchemaState:
    state = db.inspect_schema(connection)
    if state.revision is None or not set(db.TABLES) <= set(state.present_tables):
        raise SchemaStateError(
            f"{db.mask(engine.url)} has no invoicegen schema; run `invoicegen seed` first"
        )
    if state.is_current:  # what seed and migrate refuse, stats refuses too
        db.refuse_drift(connection)
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
        counts = db.count_rows(connection)
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
            database=db.mask(engine.url),
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
        results = []
        for name, table, sql in _checks(dialect, expect):
            if sql is None:
                results.append(CheckResult(name, table, None, skipped="not recorded"))
                continue
            count = connection.execute(sa.text(f"SELECT COUNT(*) FROM ({sql}) AS v")).scalar_one()
            examples = connection.execute(
                sa.text(f"SELECT * FROM ({sql}) AS v ORDER BY 1 LIMIT {EXAMPLES}")
            ).scalars()
            results.append(CheckResult(name, table, int(count), [int(i) for i in examples]))
        return CheckReport(db.mask(engine.url), expect, results)
