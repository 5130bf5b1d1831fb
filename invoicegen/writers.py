"""Bulk writes of generated rows: the fastest path each database offers.

- PostgreSQL: ``COPY ... FROM STDIN`` through psycopg 3 (rows streamed, typed by psycopg).
- MariaDB/MySQL: ``executemany`` of one INSERT, which PyMySQL sends as multi-row INSERTs.
- SQLite: ``executemany`` (one prepared statement, no round trips) of pre-adapted values.

Rows arrive as tuples in :data:`COLUMNS` order, already adapted by :func:`adapter` in the
process that generated them, so no value is converted twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from invoicegen.models import DATA_TABLES

Rows = list[tuple[Any, ...]]

#: Column order of the tuples each table's rows are written with.
COLUMNS = {
    "users": ("id", "name", "email", "phone"),
    "clients": ("id", "name", "company_name", "email", "user_id"),
    "contracts": ("id", "summary", "start_date", "end_date", "client_id"),
    "invoices": ("id", "period_start", "period_end", "amount", "contract_id"),
}
TABLES = tuple(table.name for table in DATA_TABLES)
assert tuple(COLUMNS) == TABLES, "COLUMNS lists the data tables, parents first"


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()  # sqlite3's default date adapter is deprecated
    if isinstance(value, Decimal):
        return str(value)  # sqlite3 has no Decimal adapter
    return value


def _adapt_sqlite(rows: Rows) -> Rows:
    return [tuple(_sqlite_value(v) for v in row) for row in rows]


def _unchanged(rows: Rows) -> Rows:
    return rows


def adapter(dialect: str) -> Callable[[Rows], Rows]:
    """What rows need before this dialect's writer takes them."""
    return _adapt_sqlite if dialect == "sqlite" else _unchanged


def _copy(connection: Connection, table: str, rows: Rows) -> None:
    driver_connection: Any = connection.connection.driver_connection
    statement = f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN"
    with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _executemany(connection: Connection, table: str, rows: Rows) -> None:
    columns = COLUMNS[table]
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    statement = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))})"
    )
    connection.exec_driver_sql(statement, rows)


def write_batch(connection: Connection, rows: Sequence[Rows]) -> None:
    """Insert one batch, parents first, inside the caller's transaction."""
    write = _copy if connection.dialect.name == "postgresql" else _executemany
    for table, table_rows in zip(TABLES, rows, strict=True):
        if table_rows:
            write(connection, table, table_rows)
