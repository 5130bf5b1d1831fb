"""Bulk writes of generated rows: the fastest path each database offers.

- PostgreSQL: ``COPY ... FROM STDIN`` through psycopg 3 (rows streamed, typed by psycopg).
- MariaDB/MySQL: ``LOAD DATA LOCAL INFILE`` of the same text (tab-separated, backslash
  escapes, ``\\N`` for NULL: LOAD DATA's default format), which PyMySQL reads from a file by
  name: a memory file (``memfd``; a private temporary file where there is none). A server whose
  ``local_infile`` is off gets ``executemany`` of one INSERT instead, which PyMySQL sends as
  multi-row INSERTs (escaping every value in Python, in the writing process: slower).
- SQLite: ``executemany`` (one prepared statement, no round trips) of pre-adapted values.

Which of these a database takes is its :func:`write_path`, decided once per run. Rows arrive as
tuples in :data:`COLUMNS` order and are prepared by :func:`adapter` in the process that
generated them (for COPY and LOAD DATA: encoded as text; the encodings live in
:mod:`.encoders`, shared with the export files), so no value is converted twice and the
writing process only sends bytes. After a batch, :func:`sync_sequences` moves PostgreSQL's id
sequences past the ids just written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from invoicegen.seeding.encoders import COLUMNS, TABLES, CopyText, encode_copy, sqlite_values

__all__ = [
    "COLUMNS",
    "TABLES",
    "CopyText",
    "Prepared",
    "Rows",
    "SERVER_PARSES",
    "adapter",
    "encode_copy",
    "write_path",
]

Rows = list[tuple[Any, ...]]
Prepared = Rows | CopyText


def _unchanged(rows: Rows) -> Rows:
    return rows


def row_count(prepared: Prepared) -> int:
    return prepared.rows if isinstance(prepared, CopyText) else len(prepared)


#: A write path -> what rows become before its writer takes them.
_ADAPTERS: dict[str, Callable[[Rows], Prepared]] = {
    "copy": encode_copy,
    "load_data": encode_copy,  # LOAD DATA, in the format _load_data spells out, reads it
    "executemany": _unchanged,
    "sqlite": sqlite_values,
}


#: Write paths whose rows the server parses from the text the writing process sends: the
#: writing process's own work per batch is short, and the server waits for each batch.
SERVER_PARSES = frozenset(("copy", "load_data"))


def adapter(path: str) -> Callable[[Rows], Prepared]:
    """What rows become before the writer of ``path`` (a :func:`write_path`) takes them."""
    return _ADAPTERS[path]


def write_path(connection: Connection) -> str:
    """How this database takes a batch: ``copy`` (PostgreSQL), ``load_data`` (MariaDB/MySQL
    through PyMySQL whose server allows ``LOAD DATA LOCAL``), ``executemany`` (one whose
    ``local_infile`` is off, or another driver), ``sqlite``. Asked once per run: the
    server's setting is global."""
    dialect = connection.dialect.name
    if dialect in ("postgresql", "sqlite"):
        return "copy" if dialect == "postgresql" else "sqlite"
    if connection.dialect.driver != "pymysql":  # a driver a URL named: LOAD DATA is PyMySQL's
        return "executemany"
    allowed = connection.exec_driver_sql("SELECT @@GLOBAL.local_infile").scalar_one()
    return "load_data" if int(allowed) else "executemany"


def _copy(connection: Connection, table: str, rows: CopyText) -> None:
    driver_connection: Any = connection.connection.driver_connection
    statement = f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN"
    dbapi = connection.dialect.loaded_dbapi
    try:
        with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write(rows.data)
    except dbapi.Error as exc:  # as SQLAlchemy would wrap it: errors map to exit codes alike
        raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi.Error) from exc


@contextlib.contextmanager
def _file_of(data: bytes) -> Iterator[str]:
    """A name PyMySQL can open that reads ``data``: a memory file of this process (Linux: no
    name in any folder, nothing left behind if the process is killed), else a private
    temporary file (mode 0600), removed afterwards."""
    if hasattr(os, "memfd_create"):
        descriptor = os.memfd_create("invoicegen-load", os.MFD_CLOEXEC)
        try:
            with open(descriptor, "wb", closefd=False) as memory:
                memory.write(data)
            yield f"/proc/self/fd/{descriptor}"  # opened afresh: reads from the start
        finally:
            os.close(descriptor)
        return
    with tempfile.NamedTemporaryFile(prefix="invoicegen-load-", delete=False) as file:
        file.write(data)
    try:
        yield file.name
    finally:
        os.unlink(file.name)


def _load_data(connection: Connection, table: str, rows: CopyText) -> None:
    """``LOAD DATA LOCAL INFILE`` in the caller's transaction, refused unless every row is
    stored as it was sent: with LOCAL the server turns what strict mode would refuse (a
    duplicate key, a truncated value, a bad date) into a warning and goes on, so a warning or a
    skipped row raises the driver's error for it, and the caller's transaction rolls back."""
    driver_connection: Any = connection.connection.driver_connection
    dbapi = connection.dialect.loaded_dbapi
    with _file_of(rows.data) as name:
        # The format spelled out in hex: with NO_BACKSLASH_ESCAPES in a server's sql_mode the
        # default ESCAPED BY is empty (\\N would be stored as text), and '\\' means two.
        statement = (
            f"LOAD DATA LOCAL INFILE '{name}' INTO TABLE {table} CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY X'09' ESCAPED BY X'5C' LINES TERMINATED BY X'0A' "
            f"({', '.join(COLUMNS[table])})"
        )
        # Connected with the LOCAL capability, but PyMySQL sends a file only while this
        # statement runs: a server asking for one at any other time is refused.
        driver_connection._local_infile = True
        try:
            with driver_connection.cursor() as cursor:
                cursor.execute(statement)
                if cursor.warning_count or cursor.rowcount != rows.rows:
                    cursor.execute("SHOW WARNINGS LIMIT 1")
                    found = cursor.fetchone()
                    level, code, message = found or (
                        "Error",
                        0,
                        f"{cursor.rowcount} of {rows.rows} rows stored",
                    )
                    kind = dbapi.err.error_map.get(code, dbapi.err.DataError)
                    raise kind(code, f"LOAD DATA into {table}: {level}: {message}")
        except dbapi.Error as exc:  # as SQLAlchemy would wrap it: errors map to exit codes alike
            raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi.Error) from exc
        finally:
            driver_connection._local_infile = False


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
        if isinstance(table_rows, CopyText) and connection.dialect.name == "postgresql":
            _copy(connection, table, table_rows)
        elif isinstance(table_rows, CopyText):
            _load_data(connection, table, table_rows)
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
