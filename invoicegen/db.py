"""Engines, their dialect tuning, and the translation of driver errors into invoicegen's.

Nothing here prints. Every failure becomes an :class:`~invoicegen.errors.InvoicegenError`
whose message never contains a password. URLs are :mod:`invoicegen.urls`' concern, run locks
:mod:`invoicegen.locks`', the schema :mod:`invoicegen.schema`'s, reset :mod:`invoicegen.guards`'.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from invoicegen import settings
from invoicegen.errors import (
    ConnectionFailed,
    DiskFull,
    InvoicegenError,
    LockTimeout,
    MissingDriver,
    SchemaStateError,
    WriteDenied,
)
from invoicegen.urls import DRIVERS, check_query, mask, parse, scrub, sqlite_path

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

CONNECT_TIMEOUT_SECONDS = 10
LOCK_TIMEOUT_SECONDS: int = settings.default(
    "lock_timeout"
)  # --lock-timeout's; SQLite's busy timeout


def make_engine(
    url: URL | str, *, must_exist: bool = False, busy_timeout: float = LOCK_TIMEOUT_SECONDS
) -> Engine:
    """An engine for ``url``, with invoicegen's connection settings; nothing is connected yet.

    ``must_exist``: a SQLite file that is not there is an error rather than created
    (for commands that only read). ``busy_timeout``: how long SQLite waits for another
    connection's write lock before giving up.
    """
    url = parse(url) if isinstance(url, str) else url
    check_query(url)
    backend = url.get_backend_name()
    _, module, extra = DRIVERS[backend]
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingDriver(
            f"the {backend} driver ({module}) is not installed; "
            f"run: pip install 'invoicegen[{extra}]'"
        ) from None
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            if not path.parent.is_dir():
                raise ConnectionFailed(
                    f"cannot open {mask(url)}: folder {path.parent} does not exist"
                )
            if must_exist and not path.exists():
                raise SchemaStateError(
                    f"no database at {path}; run `invoicegen seed` or `invoicegen migrate` first"
                )
        connect_args["timeout"] = busy_timeout
    elif "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    bound_handshake = module == "pymysql" and "read_timeout" not in url.query
    if bound_handshake:
        # PyMySQL's connect_timeout covers the TCP connect only; a host that accepts and stays
        # silent would hang the handshake forever. Bound it, then lift the bound for queries.
        connect_args["read_timeout"] = CONNECT_TIMEOUT_SECONDS
    engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=False)
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
    if bound_handshake:
        sa.event.listen(engine, "connect", _pymysql_on_connect)
    return engine


def _pymysql_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection._read_timeout = None  # PyMySQL applies it at the next read


#: The asyncio driver of each backend, all three installed by ``invoicegen[async]``.
ASYNC_DRIVERS = {
    "sqlite": "aiosqlite",
    "postgresql": "asyncpg",
    "mysql": "aiomysql",
    "mariadb": "aiomysql",
}


def async_url(url: URL | str) -> URL:
    """``url`` with its backend's asyncio driver (``sqlite+aiosqlite``, ``postgresql+asyncpg``,
    ``mysql+aiomysql``); :class:`MissingDriver` naming the extra when it is not installed."""
    url = parse(url) if isinstance(url, str) else url
    backend = url.get_backend_name()
    driver = ASYNC_DRIVERS[backend]
    missing = []
    for module in (driver, "greenlet"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise MissingDriver(
            f"the asyncio driver for {backend} ({', '.join(missing)}) is not installed; "
            "run: pip install 'invoicegen[async]'"
        )
    return url.set(drivername=f"{backend}+{driver}")


def make_async_engine(url: URL | str, *, busy_timeout: float = LOCK_TIMEOUT_SECONDS) -> AsyncEngine:
    """An :class:`~sqlalchemy.ext.asyncio.AsyncEngine` on ``url`` through its asyncio driver,
    tuned as :func:`make_engine`'s (SQLite's transactions are SQLAlchemy's, foreign keys on).

    It pools no connection: asyncio connections belong to the event loop that opened them.
    """
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    url = async_url(url)
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        connect_args["timeout"] = busy_timeout
    elif backend == "postgresql":
        connect_args["timeout"] = CONNECT_TIMEOUT_SECONDS
    elif "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    engine = create_async_engine(url, connect_args=connect_args, poolclass=NullPool)
    if backend == "sqlite":
        sa.event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


# SQLite's transactions are SQLAlchemy's, not pysqlite's: pysqlite's legacy handling opens a
# transaction only before INSERT/UPDATE/DELETE and runs DDL in autocommit, so a migration killed
# half-way left tables without their revision. With pysqlite out of the way (isolation_level
# None) and BEGIN emitted when SQLAlchemy begins, DDL, SAVEPOINTs and reads are transactional:
# the recipe of SQLAlchemy's pysqlite notes, "Serializable isolation / Savepoints /
# Transactional DDL". BEGIN is DEFERRED, as pysqlite's was: a read-only transaction never
# takes the write lock.


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # pysqlite emits no BEGIN and no implicit COMMIT
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")  # outside a transaction, where it takes effect
    cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return
    dbapi_connection: Any = connection.connection.dbapi_connection
    if dbapi_connection.isolation_level is not None:  # SQLAlchemy restores it after AUTOCOMMIT
        dbapi_connection.isolation_level = None
    connection.exec_driver_sql("BEGIN")


# Driver error codes (SQLite's error name, PostgreSQL's SQLSTATE, MariaDB's error number).
_LOCKED = ("SQLITE_BUSY", "SQLITE_LOCKED", "55P03", "1205")
_WRITE_DENIED = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "42501", "25006", "1142", "1290", "1792")
_DISK_FULL = ("SQLITE_FULL", "53100", "1021")
_NOT_A_DATABASE = ("SQLITE_NOTADB",)


def error_code(orig: BaseException | None) -> str:
    """The driver's code for an error: SQLite's error name, a SQLSTATE, a MariaDB number."""
    for attribute in ("sqlite_errorname", "sqlstate"):
        code = getattr(orig, attribute, None)
        if code:
            return str(code)
    args = getattr(orig, "args", ())
    return str(args[0]) if args else ""


@contextlib.contextmanager
def database_errors(url: URL) -> Iterator[None]:
    """Turn driver and SQLAlchemy errors into invoicegen errors: the masked URL, then the
    driver's message with the URL and any password in it hidden by their structure; one line."""
    try:
        yield
    except InvoicegenError:
        raise
    except DBAPIError as exc:
        database = mask(url)
        detail = scrub(str(exc.orig) if exc.orig is not None else str(exc), url)
        code = error_code(exc.orig)
        if code.startswith(_LOCKED):
            raise LockTimeout(
                f"{mask(url)} is locked by another connection; gave up waiting "
                f"(--lock-timeout): {detail}",
                database=database,
            ) from None
        if code.startswith(_DISK_FULL):
            raise DiskFull(
                f"disk full: cannot write to {mask(url)}: {detail}", database=database
            ) from None
        if code.startswith(_NOT_A_DATABASE):
            raise ConnectionFailed(
                f"cannot open {mask(url)}: {sqlite_path(url)} is not an SQLite database ({detail})",
                database=database,
            ) from None
        if code.startswith(_WRITE_DENIED):
            raise WriteDenied(f"cannot write to {mask(url)}: {detail}", database=database) from None
        if _no_such_database(exc, url, detail):
            raise ConnectionFailed(
                f"cannot connect to {mask(url)}: database {url.database} does not exist; "
                f"create it first: {_create_database(url)}",
                database=database,
            ) from None
        if exc.connection_invalidated or _is_connect_error(exc):
            raise ConnectionFailed(
                f"cannot connect to {mask(url)}: {detail}", database=database
            ) from None
        raise InvoicegenError(
            f"database error on {mask(url)}: {detail}", database=database
        ) from None
    except SQLAlchemyError as exc:
        raise InvoicegenError(
            f"database error on {mask(url)}: {scrub(str(exc), url)}", database=mask(url)
        ) from None


def _no_such_database(exc: DBAPIError, url: URL, detail: str) -> bool:
    """The server has no database of ``url``'s name: MariaDB's error 1049; PostgreSQL's
    3D000, which psycopg reports at connect as text only."""
    number = (getattr(exc.orig, "args", None) or (None,))[0]
    return number == 1049 or f'database "{url.database}" does not exist' in detail


def _create_database(url: URL) -> str:
    """The statement that creates ``url``'s database (its name quoted only when it must be)."""
    name = str(url.database)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        name = f'"{name}"' if url.get_backend_name() == "postgresql" else f"`{name}`"
    return f"CREATE DATABASE {name}"


def _is_connect_error(exc: DBAPIError) -> bool:
    # A failed connect() surfaces as OperationalError with no statement attached.
    return isinstance(exc, sa.exc.OperationalError) and not exc.statement


@contextlib.contextmanager
def connect(engine: Engine, *, read_only: bool = False) -> Iterator[Connection]:
    """A connection inside a transaction, with errors translated.

    ``read_only``: the database itself refuses any write in the transaction (PostgreSQL and
    MariaDB/MySQL: a READ ONLY transaction; SQLite: ``PRAGMA query_only``, lifted afterwards).
    """
    with database_errors(engine.url), engine.begin() as connection:
        if not read_only:
            yield connection
            return
        dialect = engine.dialect.name
        if dialect == "sqlite":
            connection.exec_driver_sql("PRAGMA query_only = ON")
        elif dialect == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        else:  # MariaDB, MySQL: the transaction has not begun yet (PyMySQL begins it lazily)
            connection.exec_driver_sql("START TRANSACTION READ ONLY")
        try:
            yield connection
        finally:
            if dialect == "sqlite":  # the pooled connection must be writable for the next user
                try:
                    connection.exec_driver_sql("PRAGMA query_only = OFF")
                except SQLAlchemyError:
                    connection.invalidate()
