"""SQL checks of a seeded database, written independently of invoicegen's own code."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
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


def _text(column: str, value: Any) -> Any:
    if value is None or (isinstance(value, int) and column != "amount"):
        return value
    if column == "amount":  # SQLite keeps 20.00 as the integer 20, PostgreSQL as Decimal
        return f"{Decimal(str(value)):.2f}"
    return str(value)
