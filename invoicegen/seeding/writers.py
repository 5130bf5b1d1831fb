"""Bulk writes of generated rows: the fastest path each database offers.

- PostgreSQL: ``COPY ... FROM STDIN`` through psycopg 3 (rows streamed, typed by psycopg).
- MariaDB/MySQL: ``executemany`` of one INSERT, which PyMySQL sends as multi-row INSERTs.
- SQLite: ``executemany`` (one prepared statement, no round trips) of pre-adapted values.

Rows arrive as tuples in :data:`COLUMNS` order and are prepared by :func:`adapter` in the
process that generated them (for PostgreSQL: encoded as COPY text), so no value is converted
twice and the writing process only sends. After a batch, :func:`sync_sequences` moves
PostgreSQL's id sequences past the ids just written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from invoicegen.models import DATA_TABLE_NAMES

Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class CopyText:
    """Rows already encoded in PostgreSQL's COPY text format, and how many they are."""

    data: bytes
    rows: int


Prepared = Rows | CopyText

#: Column order of the tuples each table's rows are written with.
COLUMNS = {
    "users": ("id", "name", "email", "phone"),
    "clients": ("id", "name", "company_name", "email", "country", "payment_terms_days", "user_id"),
    "contracts": (
        "id",
        "summary",
        "start_date",
        "end_date",
        "currency",
        "monthly_rate",
        "client_id",
    ),
    "invoices": (
        "id",
        "period_start",
        "period_end",
        "amount",
        "number",
        "issued_on",
        "due_on",
        "paid_on",
        "status",
        "currency",
        "contract_id",
    ),
}
TABLES = DATA_TABLE_NAMES
assert tuple(COLUMNS) == TABLES, "COLUMNS lists the data tables, parents first"


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()  # sqlite3's default date adapter is deprecated
    if isinstance(value, Decimal):
        return str(value)  # sqlite3 has no Decimal adapter
    return value


class _IsoDates(dict[dt.date, str]):
    """date -> its ISO text, made once: a batch's dates repeat (months, due days)."""

    def __missing__(self, day: dt.date) -> str:
        if len(self) >= 1 << 16:
            self.clear()
        text = self[day] = day.isoformat()
        return text


#: type -> what sqlite3 takes instead (looked up by exact type: one dict probe per value).
_SQLITE_CONVERT: dict[type, Callable[[Any], Any]] = {
    dt.date: _IsoDates().__getitem__,
    dt.datetime: dt.datetime.isoformat,
    Decimal: str,
}


def _adapt_sqlite(rows: Rows) -> Rows:
    convert = _SQLITE_CONVERT.get  # the engine's values are of exactly these types
    return [
        tuple([value if (to := convert(type(value))) is None else to(value) for value in row])
        for row in rows
    ]


def _unchanged(rows: Rows) -> Rows:
    return rows


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    return str(value)  # int, date (ISO), Decimal: their str() is what COPY reads


#: type -> its COPY text, by exact type (C callables: no Python call per value).
_COPY_CONVERT: dict[type, Callable[[Any], str]] = {
    str: operator.methodcaller("translate", _COPY_ESCAPES),
    int: str,
    type(None): {None: "\\N"}.__getitem__,
    dt.date: _IsoDates().__getitem__,
    Decimal: str,
}


def encode_copy(rows: Rows) -> CopyText:
    """Rows as PostgreSQL COPY text: tab-separated, \\N for NULL, specials escaped."""
    convert = _COPY_CONVERT.get
    lines = ["\t".join([(convert(type(v)) or _copy_field)(v) for v in row]) for row in rows]
    return CopyText(("\n".join(lines) + "\n").encode() if lines else b"", len(rows))


def row_count(prepared: Prepared) -> int:
    return prepared.rows if isinstance(prepared, CopyText) else len(prepared)


def adapter(dialect: str) -> Callable[[Rows], Prepared]:
    """What rows become before this dialect's writer takes them."""
    if dialect == "postgresql":
        return encode_copy
    return _adapt_sqlite if dialect == "sqlite" else _unchanged


def _copy(connection: Connection, table: str, rows: CopyText) -> None:
    driver_connection: Any = connection.connection.driver_connection
    statement = f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN"
    dbapi = connection.dialect.loaded_dbapi
    try:
        with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write(rows.data)
    except dbapi.Error as exc:  # as SQLAlchemy would wrap it: errors map to exit codes alike
        raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi.Error) from exc


def _executemany(connection: Connection, table: str, rows: Rows) -> None:
    columns = COLUMNS[table]
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    statement = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))})"
    )
    connection.exec_driver_sql(statement, rows)


def write_batch(connection: Connection, rows: Sequence[Prepared]) -> None:
    """Insert one batch, parents first, inside the caller's transaction."""
    for table, table_rows in zip(TABLES, rows, strict=True):
        if not row_count(table_rows):
            continue
        if isinstance(table_rows, CopyText):
            _copy(connection, table, table_rows)
        else:
            _executemany(connection, table, table_rows)


def highest_ids(first_ids: Sequence[int], rows: Sequence[Prepared]) -> dict[str, int]:
    """Table -> the largest id of a batch's rows (ids are consecutive from the first)."""
    return {
        table: first + row_count(table_rows) - 1
        for table, first, table_rows in zip(TABLES, first_ids, rows, strict=True)
        if row_count(table_rows)
    }


def next_ids(connection: Connection) -> tuple[int, int, int, int]:
    """The id after the largest of each table: where an append continues."""
    ids = [
        int(connection.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {table}").scalar_one())
        + 1
        for table in TABLES
    ]
    return ids[0], ids[1], ids[2], ids[3]


# One transaction at a time moves the sequences: the key of a transaction-level advisory lock.
_SEQUENCES_LOCK = int.from_bytes(
    hashlib.blake2b(b"invoicegen sequences", digest_size=8).digest(), "big", signed=True
)


def sync_sequences(connection: Connection, highest: Mapping[str, int]) -> None:
    """Move id generators past the ids just written (``highest``: table -> largest id), inside
    the caller's transaction, so the application's own inserts never collide; never backwards.

    PostgreSQL's serial sequences do not follow explicit ids; MariaDB's AUTO_INCREMENT and
    SQLite's rowid do. Shards write interleaved id ranges at once, so a sequence only ever moves
    forward, and one transaction at a time moves them (a transaction-level advisory lock):
    ``setval`` is not transactional, and reading then setting a sequence is two steps.
    """
    if connection.dialect.name != "postgresql" or not highest:
        return
    tables = list(highest)
    names = ", ".join(f"pg_get_serial_sequence('{table}', 'id')" for table in tables)
    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SEQUENCES_LOCK})")
    sequences = connection.exec_driver_sql(f"SELECT {names}").one()
    # The next id a sequence gives is its last_value, plus one once that has been given.
    moves = ", ".join(
        f"setval('{sequence}', GREATEST({int(highest[table]) + 1}, "
        f"(SELECT last_value + is_called::int FROM {sequence})), false)"
        for table, sequence in zip(tables, sequences, strict=True)
    )
    connection.exec_driver_sql(f"SELECT {moves}")
