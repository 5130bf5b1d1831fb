"""SQL checks of a seeded database, written independently of invoicegen's own code."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa


def scalar(engine: sa.Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(sa.text(sql), params).scalar_one()


def children_range(engine: sa.Engine, parent: str, child: str, fk: str) -> tuple[int, int]:
    with engine.connect() as connection:
        low, high = connection.execute(
            sa.text(
                f"SELECT MIN(n), MAX(n) FROM (SELECT COUNT(c.id) AS n FROM {parent} p "
                f"LEFT JOIN {child} c ON c.{fk} = p.id GROUP BY p.id) AS t"
            )
        ).one()
    return int(low), int(high)


def violations(engine: sa.Engine, as_of: dt.date) -> dict[str, int]:
    """Each invariant's number of violating rows; all zero for a good dataset."""
    checks = {
        "orphan clients": "SELECT COUNT(*) FROM clients c LEFT JOIN users u ON u.id = c.user_id "
        "WHERE u.id IS NULL",
        "orphan contracts": "SELECT COUNT(*) FROM contracts k LEFT JOIN clients c "
        "ON c.id = k.client_id WHERE c.id IS NULL",
        "orphan invoices": "SELECT COUNT(*) FROM invoices i LEFT JOIN contracts k "
        "ON k.id = i.contract_id WHERE k.id IS NULL",
        "duplicate emails": "SELECT COUNT(*) - COUNT(DISTINCT email) FROM users",
        "contract ends before start": "SELECT COUNT(*) FROM contracts WHERE end_date < start_date",
        "invoice outside contract": "SELECT COUNT(*) FROM invoices i JOIN contracts k "
        "ON k.id = i.contract_id WHERE i.period_start < k.start_date "
        "OR (k.end_date IS NOT NULL AND i.period_end > k.end_date)",
        "invoice in the future": "SELECT COUNT(*) FROM invoices WHERE period_end > :as_of",
        "period ends before start": "SELECT COUNT(*) FROM invoices WHERE period_end < period_start",
        "overlapping periods": "SELECT COUNT(*) FROM invoices a JOIN invoices b "
        "ON a.contract_id = b.contract_id AND a.id < b.id "
        "AND a.period_start <= b.period_end AND b.period_start <= a.period_end",
        "gaps between periods": "SELECT COUNT(*) FROM invoices a WHERE a.period_end < "
        "(SELECT MAX(period_start) FROM invoices x WHERE x.contract_id = a.contract_id) "
        "AND NOT EXISTS (SELECT 1 FROM invoices b WHERE b.contract_id = a.contract_id "
        "AND b.period_start > a.period_end AND b.period_start <= a.period_end + :one_day)",
        "amount not positive": "SELECT COUNT(*) FROM invoices WHERE amount <= 0",
    }
    results = {}
    with engine.connect() as connection:
        day = "INTERVAL '1 day'" if engine.dialect.name == "postgresql" else None
        for name, sql in checks.items():
            params: dict[str, Any] = {"as_of": as_of}
            if ":one_day" in sql:
                if engine.dialect.name == "sqlite":
                    sql = sql.replace("a.period_end + :one_day", "date(a.period_end, '+1 day')")
                elif day:
                    sql = sql.replace(":one_day", day)
                else:
                    sql = sql.replace("a.period_end + :one_day", "a.period_end + INTERVAL 1 DAY")
            results[name] = int(connection.execute(sa.text(sql), params).scalar_one())
    return results


def dump(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every data table, ordered by id, with values normalised to text."""
    out = {}
    with engine.connect() as connection:
        for table in ("users", "clients", "contracts", "invoices"):
            result = connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id")
            columns = list(result.keys())
            out[table] = [
                tuple(_text(column, v) for column, v in zip(columns, row, strict=True))
                for row in result
            ]
    return out


MONEY = ("amount", "monthly_rate")


def _text(column: str, value: Any) -> Any:
    if value is None or (isinstance(value, int) and column not in MONEY):
        return value
    if column in MONEY:  # SQLite keeps 20.00 as the integer 20, PostgreSQL as Decimal
        return f"{Decimal(str(value)):.2f}"
    return str(value)


# --- billing: computed here from plain SQL rows, independently of invoicegen's code ---------------

NO_CENTS = {"JPY", "KRW", "CLP", "VND"}  # ISO 4217 currencies without a minor unit we use


def _day(value: Any) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(str(value)[:10])


def _plus_months(day: dt.date, months: int) -> dt.date:
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    month += 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def expected_periods(
    start: dt.date, end: dt.date | None, as_of: dt.date
) -> list[tuple[dt.date, dt.date, int]]:
    """The issue's rule: monthly from start, tiling [start, billed_to]; (first, last, full days)."""
    periods = []
    i = 0
    while True:
        first, following = _plus_months(start, i), _plus_months(start, i + 1)
        last = following - dt.timedelta(days=1)
        if end is not None and end <= as_of:
            if first > end:
                return periods
            periods.append((first, min(last, end), (following - first).days))
        elif last > as_of:
            return periods
        else:
            periods.append((first, last, (following - first).days))
        i += 1


def _rows(engine: sa.Engine, sql: str) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.exec_driver_sql(sql))


def billing_violations(engine: sa.Engine, as_of: dt.date) -> dict[str, int]:
    """Each billing invariant of issue 12's data side: its number of violating rows."""
    clients = {
        r[0]: (r[1], r[2], r[3])
        for r in _rows(engine, "SELECT id, user_id, country, payment_terms_days FROM clients")
    }
    contracts = {
        r[0]: (r[1], _day(r[2]), _day(r[3]), r[4], None if r[5] is None else Decimal(str(r[5])))
        for r in _rows(
            engine,
            "SELECT id, client_id, start_date, end_date, currency, monthly_rate FROM contracts",
        )
    }
    invoices = _rows(
        engine,
        "SELECT id, contract_id, period_start, period_end, amount, number, issued_on, due_on, "
        "paid_on, status, currency FROM invoices ORDER BY id",
    )
    found = dict.fromkeys(
        (
            "client without country or terms",
            "contract without currency or rate",
            "periods do not tile the contract",
            "amount is not the (prorated) rate",
            "currency differs from the contract's",
            "draft with a number or dates",
            "draft that is not the latest invoice",
            "issued before the period ends or after as-of",
            "due date is not issue date + terms",
            "paid outside issue date .. as-of",
            "status does not match the dates",
            "numbers not 1..n per user by issue date",
        ),
        0,
    )
    for client in clients.values():
        if client[1] is None or len(client[1]) != 2 or not client[2] or client[2] <= 0:
            found["client without country or terms"] += 1
    by_contract: dict[int, list[Any]] = {k: [] for k in contracts}
    for invoice in invoices:
        by_contract[invoice[1]].append(invoice)
    issued_by_user: dict[int, list[tuple[dt.date, int, str | None]]] = {}
    for contract_id, (client_id, start, end, currency, rate) in contracts.items():
        if not currency or len(currency) != 3 or rate is None or rate <= 0:
            found["contract without currency or rate"] += 1
            continue
        user_id, _country, terms = clients[client_id]
        rows = sorted(by_contract[contract_id], key=lambda r: _day(r[2]))
        periods = expected_periods(start, end, as_of)
        if [(_day(r[2]), _day(r[3])) for r in rows] != [(p[0], p[1]) for p in periods]:
            found["periods do not tile the contract"] += 1
            continue
        for position, (row, period) in enumerate(zip(rows, periods, strict=True)):
            _id, _k, _ps, period_end, amount, number, issued, due, paid, status, cur = row
            period_end, issued, due, paid = map(_day, (period_end, issued, due, paid))
            days = (period[1] - period[0]).days + 1
            unit = Decimal(1) if currency in NO_CENTS else Decimal("0.01")
            expected = rate if days == period[2] else rate * days / period[2]
            if Decimal(str(amount)) != expected.quantize(unit, rounding=ROUND_HALF_UP):
                found["amount is not the (prorated) rate"] += 1
            if cur != currency:
                found["currency differs from the contract's"] += 1
            if status == "draft":
                if number is not None or issued or due or paid:
                    found["draft with a number or dates"] += 1
                if position != len(rows) - 1:
                    found["draft that is not the latest invoice"] += 1
                continue
            if issued is None or not period_end <= issued <= as_of:
                found["issued before the period ends or after as-of"] += 1
                continue
            if due != issued + dt.timedelta(days=terms):
                found["due date is not issue date + terms"] += 1
            if paid is not None and not issued <= paid <= as_of:
                found["paid outside issue date .. as-of"] += 1
            right = {
                "paid": paid is not None,
                "open": paid is None and due is not None and due >= as_of,
                "overdue": paid is None and due is not None and due < as_of,
                "void": paid is None,
            }.get(status, False)
            if not right:
                found["status does not match the dates"] += 1
            issued_by_user.setdefault(user_id, []).append((issued, row[0], number))
    for user_id, issued_list in issued_by_user.items():
        issued_list.sort()
        wanted = [f"INV-{user_id}-{n}" for n in range(1, len(issued_list) + 1)]
        found["numbers not 1..n per user by issue date"] += sum(
            1 for (_d, _i, number), want in zip(issued_list, wanted, strict=True) if number != want
        )
    return found
