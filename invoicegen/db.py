"""Engines, their dialect tuning, and the translation of driver errors into invoicegen's.

Nothing here prints. Every failure becomes an :class:`~invoicegen.errors.InvoicegenError`
whose message never contains a password. URLs are :mod:`invoicegen.urls`' concern, run locks
:mod:`invoicegen.locks`', the schema :mod:`invoicegen.schema`'s, reset :mod:`invoicegen.guards`'.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit
from urllib.request import url2pathname

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
    UsageError,
    WriteDenied,
)
from invoicegen.urls import (
    DRIVERS,
    check_query,
    mask,
    parse,
    refuse_in_memory,
    scrub,
    sqlite_path,
)
from invoicegen.urls import describe_target as describe_target_url

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

CONNECT_TIMEOUT_SECONDS = 10
LOCK_TIMEOUT_SECONDS: int = settings.default(
    "lock_timeout"
)  # --lock-timeout's; SQLite's busy timeout


def make_engine(
    url: URL | str,
    *,
    must_exist: bool = False,
    busy_timeout: float = LOCK_TIMEOUT_SECONDS,
    schema: str | None = None,
    in_memory: bool = True,
) -> Engine:
    """An engine for ``url``, with invoicegen's connection settings; nothing is connected yet.

    ``must_exist``: a SQLite file that is not there is an error rather than created
    (for commands that only read). ``busy_timeout``: how long SQLite waits for another
    connection's write lock before giving up. ``schema``: where invoicegen's tables live
    (see :func:`schema_of`; a name :func:`invoicegen.settings.parse_schema` accepted).
    ``in_memory=False``: refuse SQLite's in-memory database (the commands: their data must
    outlive them, see :func:`invoicegen.urls.refuse_in_memory`).
    """
    url = parse(url) if isinstance(url, str) else url
    check_query(url)
    if not in_memory:
        refuse_in_memory(url)
    backend = url.get_backend_name()
    if schema is not None and backend == "sqlite":
        raise UsageError(
            "SQLite has no schemas: give invoicegen a database file of its own instead "
            f"(e.g. -d sqlite:///{schema}.db)",
            option="--schema",
        )
    if schema is not None and backend != "postgresql":  # MariaDB/MySQL: a schema is a database
        url = url.set(database=schema)
    driver, module, extra = DRIVERS[backend]
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingDriver(
            f"the {backend} driver ({module}) is not installed; run: {install_command(str(extra))}"
        ) from None
    if url.get_driver_name() != driver:  # a driver the URL names itself (postgresql+psycopg2)
        try:
            url.get_dialect().import_dbapi()
        except ImportError as exc:
            raise MissingDriver(
                f"the URL's {backend} driver ({exc.name}) is not installed; install it, or "
                f"use {backend}:// for {driver} (run: {install_command(str(extra))})"
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
    if schema is not None and backend == "postgresql":
        # Set when the session starts, before SQLAlchemy asks for the current schema: every
        # unqualified name (hand-written SQL, COPY, sequences) resolves in it, and only in it.
        connect_args["options"] = f"-c search_path={schema}"
    local_files = url.get_driver_name() == "pymysql"
    if local_files:
        # The LOCAL capability, for the seeding writers' LOAD DATA LOCAL INFILE; the engine's
        # to set (a URL may not, see urls.ALLOWED_QUERY). PyMySQL sends a file only while the
        # writer's own statement runs (see _pymysql_no_local_files and writers._load_data).
        connect_args["local_infile"] = True
    bound_handshake = module == "pymysql" and "read_timeout" not in url.query
    if bound_handshake:
        # PyMySQL's connect_timeout covers the TCP connect only; a host that accepts and stays
        # silent would hang the handshake forever. Bound it, then lift the bound for queries.
        connect_args["read_timeout"] = CONNECT_TIMEOUT_SECONDS
    engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=False)
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
    if local_files:
        sa.event.listen(engine, "connect", _pymysql_no_local_files)
    if bound_handshake:
        sa.event.listen(engine, "connect", _pymysql_on_connect)
    if schema is not None and backend == "postgresql":
        sa.event.listen(engine, "connect", functools.partial(_check_search_path, schema, url))
    if schema is not None:  # SQLAlchemy's statements and DDL (Alembic's too) name it
        return engine.execution_options(schema_translate_map={None: schema})
    return engine


# invoicegen in a schema of its own (``--schema``): the engine carries the name twice. SQLAlchemy's
# ``schema_translate_map`` qualifies every table of its statements and DDL, Alembic's migrations
# included; the session's default namespace (PostgreSQL's ``search_path``, set to that schema
# alone; MariaDB/MySQL's current database, which is the schema) resolves the unqualified names
# of the hand-written SQL (stats, the bulk writers' COPY and INSERT, ``setval``, reset's DROPs),
# so none of it needs to name the schema, and a host's table of the same name is never read.


def schema_of(bind: Engine | Connection) -> str | None:
    """The schema invoicegen works in through ``bind``; None: the connection's default."""
    translate = bind.get_execution_options().get("schema_translate_map") or {}
    return cast("str | None", translate.get(None))


def target(bind: Engine | Connection) -> str:
    """Where invoicegen works, for messages: the masked URL, and a PostgreSQL schema's name
    (on MariaDB/MySQL the URL names the schema's database already)."""
    return mask(bind.engine.url) + _schema_suffix(bind)


def describe_target(bind: Engine | Connection) -> str:
    """:func:`invoicegen.urls.describe_target`, and a PostgreSQL schema's name."""
    return describe_target_url(bind.engine.url) + _schema_suffix(bind, ",")


def _schema_suffix(bind: Engine | Connection, separator: str = "") -> str:
    schema = schema_of(bind)
    if schema is None or bind.dialect.name != "postgresql":
        return ""
    return f"{separator} schema {schema}"


_SCHEMA_LOCK = int.from_bytes(b"igschema", "big")  # serializes CREATE SCHEMA IF NOT EXISTS


def create_schema(engine: Engine) -> None:
    """Create the engine's schema when it is missing (nothing without one).

    PostgreSQL: ``CREATE SCHEMA``; MariaDB/MySQL: ``CREATE DATABASE`` (utf8mb4), from a
    connection to no database at all, so the URL's own database is never touched.
    """
    schema = schema_of(engine)
    if schema is None:
        return
    quoted = engine.dialect.identifier_preparer.quote_identifier(schema)
    if engine.dialect.name == "postgresql":
        with connect(engine) as connection:
            # IF NOT EXISTS alone can fail when two runs race to create the same schema
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
            connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        return
    server = make_engine(engine.url._replace(database=None))
    try:
        with connect(server) as connection:
            connection.exec_driver_sql(
                f"CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4"
            )
    finally:
        server.dispose()


def _check_search_path(schema: str, url: URL, dbapi_connection: Any, _record: Any) -> None:
    """A connection whose search path is not the schema alone (a pooler that dropped the
    start-up option) would read and write a host's tables of invoicegen's names: refuse it."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SHOW search_path")
        found = str(cursor.fetchone()[0])
    finally:
        cursor.close()
    if found != schema:
        raise ConnectionFailed(
            f"cannot use schema {schema} on {mask(url)}: the connection's search_path is "
            f"{found!r}, not {schema!r} (a connection pooler that drops libpq's options? "
            "connect to PostgreSQL itself)",
            database=mask(url),
        )


def install_command(extra: str) -> str:
    """The ``pip install`` line that adds ``extra`` to this invoicegen, where it came from.

    pip records an install from a folder (a clone: ``pip install .``, ``pip install -e .``) in
    the distribution's ``direct_url.json`` (PEP 610): the line then names that folder (``.``
    from inside it), with ``-e`` when the install is editable. From a wheel or an index, where
    the folder is not known: ``pip install 'invoicegen[EXTRA]'``.
    """
    # Every invoicegen distribution on the path: from inside a clone, its build's
    # invoicegen.egg-info (which records nothing) comes before the installed one.
    recorded = [
        found.read_text("direct_url.json")
        for found in importlib.metadata.distributions(name="invoicegen")
    ]
    try:
        origin = json.loads(next((text for text in recorded if text), "{}"))
    except ValueError:
        origin = {}
    url, folder = str(origin.get("url", "")), origin.get("dir_info")
    if isinstance(folder, dict) and url.startswith("file://"):
        path = Path(url2pathname(urlsplit(url).path))
        shown = "." if path == Path.cwd() else str(path)
        editable = "-e " if folder.get("editable") else ""
        return f"pip install {editable}{shlex.quote(f'{shown}[{extra}]')}"
    return f"pip install 'invoicegen[{extra}]'"


def _pymysql_no_local_files(dbapi_connection: Any, _record: Any) -> None:
    """A server may answer any statement by asking for a client file by name; PyMySQL sends
    one only while this flag is up, which the LOAD DATA writer raises for its own statement."""
    dbapi_connection._local_infile = False


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
            f"run: {install_command('async')}"
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
def database_errors(url: URL, *, schema: str | None = None) -> Iterator[None]:
    """Turn driver and SQLAlchemy errors into invoicegen errors: the masked URL, then the
    driver's message with the URL and any password in it hidden by their structure; one line.
    ``schema``: the engine's (:func:`schema_of`), for MariaDB's missing database."""
    try:
        yield
    except InvoicegenError:
        raise
    except DBAPIError as exc:
        database = mask(url)
        detail = scrub(_driver_text(exc.orig) if exc.orig is not None else str(exc), url)
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
        mysql_schema = schema is not None and url.get_backend_name() != "postgresql"
        if mysql_schema and _no_such_database(exc, url, detail):  # the schema's own database
            raise SchemaStateError(
                f"no schema {schema} in {mask(url._replace(database=None))}: run "
                f"`invoicegen migrate --schema {schema}` (or seed) first",
                database=database,
            ) from None
        if _no_such_database(exc, url, detail):
            raise ConnectionFailed(
                f"cannot connect to {mask(url)}: database {url.database} does not exist; "
                f"seed or migrate with --create-database creates it (or run "
                f"{_create_database(url)})",
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


def _driver_text(error: BaseException) -> str:
    """A driver error's own text: PyMySQL's ``str()`` is its arguments' tuple, ``(2003, "Can't
    connect ...")``, shown as ``Can't connect ... (MySQL error 2003)``."""
    args = error.args
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        return f"{args[1]} (MySQL error {args[0]})"
    return str(error)


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


def create_database(url: URL | str) -> bool:
    """Create ``url``'s database on its server if it has none of that name; whether it did.

    PostgreSQL: through the server's maintenance database ``postgres``; MariaDB/MySQL: through
    a connection without a database. SQLite: nothing to do, a file is created when first
    written. Another run creating it at the same moment is not an error.
    """
    url = parse(url) if isinstance(url, str) else url
    backend = url.get_backend_name()
    if backend == "sqlite" or not url.database:
        return False
    # (URL.set ignores None: _replace is how a URL loses its database.)
    maintenance = make_engine(
        url._replace(database="postgres" if backend == "postgresql" else None)
    )
    engine = maintenance.execution_options(isolation_level="AUTOCOMMIT")
    quoted = engine.dialect.identifier_preparer.quote(url.database)
    exists = (
        "SELECT 1 FROM pg_database WHERE datname = %(name)s"
        if backend == "postgresql"
        else "SELECT 1 FROM information_schema.schemata WHERE schema_name = %(name)s"
    )
    try:
        with database_errors(url), engine.connect() as connection:
            if connection.exec_driver_sql(exists, {"name": url.database}).first():
                return False
            try:
                connection.exec_driver_sql(f"CREATE DATABASE {quoted}")
            except DBAPIError as exc:
                if error_code(exc.orig) in _ALREADY_EXISTS:  # created by another run meanwhile
                    return False
                raise
            return True
    finally:
        maintenance.dispose()


_ALREADY_EXISTS = ("42P04", "1007")  # PostgreSQL's duplicate_database, MariaDB's


def _is_connect_error(exc: DBAPIError) -> bool:
    # A failed connect() surfaces as OperationalError with no statement attached.
    return isinstance(exc, sa.exc.OperationalError) and not exc.statement


@contextlib.contextmanager
def connect(engine: Engine, *, read_only: bool = False) -> Iterator[Connection]:
    """A connection inside a transaction, with errors translated.

    ``read_only``: the database itself refuses any write in the transaction (PostgreSQL and
    MariaDB/MySQL: a READ ONLY transaction; SQLite: ``PRAGMA query_only``, lifted afterwards).
    """
    with database_errors(engine.url, schema=schema_of(engine)), engine.begin() as connection:
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
