"""Bulk writes of generated rows: the fastest path each database offers.

- PostgreSQL: ``COPY ... FROM STDIN`` through psycopg 3 (rows streamed, typed by psycopg).
- MariaDB/MySQL: ``executemany`` of one INSERT, which PyMySQL sends as multi-row INSERTs.
- SQLite: ``executemany`` (one prepared statement, no round trips) of pre-adapted values.

Rows arrive as tuples in :data:`COLUMNS` order and are prepared by :func:`adapter` in the
process that generated them (for PostgreSQL: encoded as COPY text; the encodings live in
:mod:`.encoders`, shared with the export files), so no value is converted twice and the
writing process only sends. After a batch, :func:`sync_sequences` moves
PostgreSQL's id sequences past the ids just written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from invoicegen.seeding.encoders import COLUMNS, TABLES, CopyText, encode_copy, sqlite_values

__all__ = ["COLUMNS", "TABLES", "CopyText", "Prepared", "Rows", "adapter", "encode_copy"]

Rows = list[tuple[Any, ...]]
Prepared = Rows | CopyText


def _unchanged(rows: Rows) -> Rows:
    return rows


def row_count(prepared: Prepared) -> int:
    return prepared.rows if isinstance(prepared, CopyText) else len(prepared)


def adapter(dialect: str) -> Callable[[Rows], Prepared]:
    """What rows become before this dialect's writer takes them."""
    if dialect == "postgresql":
        return encode_copy
    return sqlite_values if dialect == "sqlite" else _unchanged


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
    # One round trip per batch (a DO block): the lock first, then per table the next id its
    # sequence gives (its last_value, plus one once that has been given) and the move.
    moves = "".join(
        f"  seq := pg_get_serial_sequence('{table}', 'id');\n"
        "  EXECUTE 'SELECT last_value + is_called::int FROM ' || seq::text INTO next_id;\n"
        f"  PERFORM setval(seq, GREATEST({int(last) + 1}, next_id), false);\n"
        for table, last in highest.items()
    )
    connection.exec_driver_sql(
        f"DO $$\nDECLARE\n  seq regclass;\n  next_id bigint;\nBEGIN\n"
        f"  PERFORM pg_advisory_xact_lock({_SEQUENCES_LOCK});\n{moves}END\n$$"
    )
