"""What is in the database, by aggregate queries only: rows never travel to Python."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from invoicegen import db
from invoicegen.errors import SchemaStateError
from invoicegen.seeding import TABLES, count_rows

_LEVELS = (
    ("users", "clients", "user_id"),
    ("clients", "contracts", "client_id"),
    ("contracts", "invoices", "contract_id"),
)


@dataclass(frozen=True)
class ChildrenPerParent:
    parent: str
    child: str
    min: int
    mean: float
    max: int


@dataclass(frozen=True)
class DateRange:
    first: dt.date | None
    last: dt.date | None


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

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["amount_total"] = str(self.amount_total)
        data["amount_mean"] = None if self.amount_mean is None else str(self.amount_mean)
        for key in ("contract_starts", "invoice_periods"):
            data[key] = {k: v.isoformat() if v else None for k, v in data[key].items()}
        return data


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))  # SQLite returns ISO text


def _children(connection: Connection, parent: str, child: str, fk: str) -> ChildrenPerParent:
    row = connection.execute(
        sa.text(
            f"SELECT MIN(n), AVG(n), MAX(n) FROM (SELECT COUNT(c.id) AS n FROM {parent} p "
            f"LEFT JOIN {child} c ON c.{fk} = p.id GROUP BY p.id) AS per_parent"
        )
    ).one()
    return ChildrenPerParent(parent, child, int(row[0] or 0), float(row[1] or 0), int(row[2] or 0))


def collect(engine: Engine) -> Stats:
    """Counts, children per parent, amounts and date ranges. Never writes."""
    with db.connect(engine) as connection:
        state = db.inspect_schema(connection)
        if state.revision is None or not set(TABLES) <= set(state.present_tables):
            raise SchemaStateError(
                f"{db.mask(engine.url)} has no invoicegen schema; run `invoicegen seed` first"
            )
        counts = count_rows(connection)
        amounts = connection.execute(sa.text("SELECT SUM(amount), AVG(amount) FROM invoices")).one()
        starts = connection.execute(
            sa.text(
                "SELECT MIN(start_date), MAX(start_date), "
                "SUM(CASE WHEN end_date IS NULL THEN 1 ELSE 0 END) FROM contracts"
            )
        ).one()
        periods = connection.execute(
            sa.text("SELECT MIN(period_start), MAX(period_end) FROM invoices")
        ).one()
        return Stats(
            database=db.mask(engine.url),
            revision=state.revision,
            counts=counts,
            children=[_children(connection, *level) for level in _LEVELS],
            amount_total=_money(amounts[0]),
            amount_mean=None if amounts[1] is None else _money(amounts[1]),
            contract_starts=DateRange(_date(starts[0]), _date(starts[1])),
            invoice_periods=DateRange(_date(periods[0]), _date(periods[1])),
            ongoing_contracts=int(starts[2] or 0),
        )
