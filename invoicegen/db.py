"""Engines, Alembic driven from code, and the guards around invoicegen's own schema.

Nothing here prints. Every failure becomes an :class:`~invoicegen.errors.InvoicegenError`
whose message never contains a password.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import importlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from invoicegen import urls
from invoicegen.errors import (
    ConnectionFailed,
    DiskFull,
    IncompleteSchema,
    InvoicegenError,
    LockTimeout,
    MissingDriver,
    RefusedError,
    SchemaStateError,
    WriteDenied,
)
from invoicegen.models import DATA_TABLE_NAMES, Base, Setting
from invoicegen.urls import DRIVERS, check_query

if sys.platform != "win32":
    import fcntl

VERSION_TABLE = "invoicegen_alembic_version"
CONNECT_TIMEOUT_SECONDS = 10
LOCK_TIMEOUT_SECONDS = 60  # also SQLite's busy timeout
PROTECTED_KEY = "protected"  # in invoicegen_meta: present = reset refuses the database

# URLs are invoicegen.urls' concern; these names stay for db's callers.
parse_url = urls.parse
mask = urls.mask
scrub = urls.scrub
sqlite_path = urls.sqlite_path
describe_target = urls.describe_target


def make_engine(
    url: URL | str, *, must_exist: bool = False, busy_timeout: float = LOCK_TIMEOUT_SECONDS
) -> Engine:
    """An engine for ``url``, with invoicegen's connection settings; nothing is connected yet.

    ``must_exist``: a SQLite file that is not there is an error rather than created
    (for commands that only read). ``busy_timeout``: how long SQLite waits for another
    connection's write lock before giving up.
    """
    url = parse_url(url) if isinstance(url, str) else url
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
        detail = scrub(str(exc.orig) if exc.orig is not None else str(exc), url)
        code = error_code(exc.orig)
        if code.startswith(_LOCKED):
            raise LockTimeout(
                f"{mask(url)} is locked by another connection; gave up waiting "
                f"(--lock-timeout): {detail}"
            ) from None
        if code.startswith(_DISK_FULL):
            raise DiskFull(f"disk full: cannot write to {mask(url)}: {detail}") from None
        if code.startswith(_NOT_A_DATABASE):
            raise ConnectionFailed(
                f"cannot open {mask(url)}: {sqlite_path(url)} is not an SQLite database ({detail})"
            ) from None
        if code.startswith(_WRITE_DENIED):
            raise WriteDenied(f"cannot write to {mask(url)}: {detail}") from None
        if exc.connection_invalidated or _is_connect_error(exc):
            raise ConnectionFailed(f"cannot connect to {mask(url)}: {detail}") from None
        raise InvoicegenError(f"database error on {mask(url)}: {detail}") from None
    except SQLAlchemyError as exc:
        raise InvoicegenError(f"database error on {mask(url)}: {scrub(str(exc), url)}") from None


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


# --- the run lock -------------------------------------------------------------------------------

# lock -> the thread holding it, so that services nested in one run do not wait on themselves
_LOCK_HOLDERS: dict[str, int] = {}
_PG_LOCK_KEY = int.from_bytes(b"invoiceg", "big")  # one advisory-lock key per database


@contextlib.contextmanager
def run_lock(
    engine: Engine, *, timeout: float = LOCK_TIMEOUT_SECONDS, name: str = ""
) -> Iterator[None]:
    """One invoicegen run at a time per database: hold the lock for the block.

    PostgreSQL: a session advisory lock; MariaDB/MySQL: ``GET_LOCK`` on a name of the database;
    SQLite: ``flock`` on the file. The server or the OS releases it when the process dies, even
    by ``kill -9``. Waits up to ``timeout`` seconds, then raises :class:`LockTimeout`.
    Re-entrant within a thread. ``name`` picks another lock of the same database on the
    servers (a shard's own); SQLite has the one lock.
    """
    if engine.url.get_backend_name() == "sqlite":
        name = ""
    key = f"{mask(engine.url)}#{name}"
    if _LOCK_HOLDERS.get(key) == threading.get_ident():
        yield
        return
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        lock = _file_lock(engine, timeout)
    else:
        lock = _server_lock(engine, timeout, name)
    with lock:
        _LOCK_HOLDERS[key] = threading.get_ident()
        try:
            yield
        finally:
            del _LOCK_HOLDERS[key]


def live_shard_runs(engine: Engine) -> list[str]:
    """The shards still writing ("K/N"), by the run manifest and their locks.

    Call with the database's lock held: a run that is not a shard holds it while it runs, so
    one the manifest still calls running died without saying so (kill -9, a lost machine),
    and so did a shard whose own lock is free. Those are marked interrupted.
    """
    runs = Base.metadata.tables["invoicegen_runs"]
    with connect(engine) as connection:
        if not sa.inspect(connection).has_table(runs.name):
            return []
        running = connection.execute(
            sa.select(runs.c.id, runs.c.shard).where(runs.c.status == "running")
        ).all()
        server = engine.url.get_backend_name() != "sqlite"
        alive: list[str] = []
        dead: list[int] = []
        for run_id, shard in running:
            if shard and server and not lock_is_free(engine, f"shard {shard}"):
                alive.append(shard)
            else:
                dead.append(run_id)
        if dead:
            connection.execute(
                runs.update().where(runs.c.id.in_(dead)).values(status="interrupted")
            )
    return alive


def wait_for_shards(engine: Engine, *, timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
    """With the database's lock held: wait until no shard is writing, or raise LockTimeout."""
    _wait_for(lambda: not live_shard_runs(engine), engine.url, timeout)


def lock_is_free(engine: Engine, name: str) -> bool:
    """Whether nobody holds the server lock ``name`` now (a run that holds it is alive)."""
    try:
        with _server_lock(engine, 0, name):
            return True
    except LockTimeout:
        return False


def _wait_for(try_lock: Any, url: URL, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not try_lock():
        if time.monotonic() >= deadline:
            raise LockTimeout(
                f"another invoicegen run is using {mask(url)}; gave up waiting after "
                f"{timeout:g} s (raise --lock-timeout to wait longer)"
            )
        time.sleep(0.2)


@contextlib.contextmanager
def _server_lock(engine: Engine, timeout: float, name: str = "") -> Iterator[None]:
    if engine.url.get_backend_name() == "postgresql":
        take, release = "SELECT pg_try_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"
        key = _PG_LOCK_KEY
        if name:  # advisory locks are per database: a key per name
            digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
            key = int.from_bytes(digest, "big", signed=True)
        params: dict[str, Any] = {"key": key}
    else:  # lock names are server-wide: name the database
        take, release = "SELECT GET_LOCK(:key, 0)", "SELECT RELEASE_LOCK(:key)"
        # GET_LOCK names are at most 64 characters: hash, so long names never collide
        lock_name = hashlib.blake2b(f"{engine.url.database}:{name}".encode(), digest_size=20)
        params = {"key": f"invoicegen:{lock_name.hexdigest()}"}
    with database_errors(engine.url), engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        _wait_for(lambda: connection.execute(sa.text(take), params).scalar(), engine.url, timeout)
        try:
            yield
        finally:
            # A connection that broke during the run has lost its session, and the lock with it.
            with contextlib.suppress(SQLAlchemyError):
                connection.execute(sa.text(release), params)


@contextlib.contextmanager
def _file_lock(engine: Engine, timeout: float) -> Iterator[None]:
    path = sqlite_path(engine.url)
    if path is None or sys.platform == "win32":  # in memory, or no flock: the busy timeout only
        yield
        return
    try:
        # An empty file is an empty SQLite database; SQLite ignores flock locks.
        descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError as exc:
        raise WriteDenied(f"cannot open {mask(engine.url)}: {exc.strerror}") from None

    def try_lock() -> bool:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        _wait_for(try_lock, engine.url, timeout)
        yield
    finally:
        # Closing a descriptor drops the process's POSIX locks on the file, SQLite's too: this
        # runs after the block, when no transaction of this run is open any more.
        os.close(descriptor)


# --- Alembic ---------------------------------------------------------------------------------


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configuration built in code: no alembic.ini, migrations from the package."""
    config = Config()
    config.set_main_option("script_location", str(files("invoicegen.migrations")))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "invoicegen ships at least one migration"
    return head


def current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


TABLES = DATA_TABLE_NAMES  # users, clients, contracts, invoices


def count_rows(connection: Connection) -> dict[str, int]:
    """Rows per data table."""
    return {
        table: int(connection.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one())
        for table in TABLES
    }


def owned_table_names() -> list[str]:
    """invoicegen's tables, children first (the order they can be dropped in)."""
    return [table.name for table in reversed(Base.metadata.sorted_tables)] + [VERSION_TABLE]


@functools.cache
def tables_at(revision: str | None) -> frozenset[str]:
    """invoicegen's tables (its version table aside) in a database migrated to ``revision``.

    Found by running the migrations on an in-memory SQLite database, so it cannot drift from them.
    """
    if revision is None:
        return frozenset()
    if revision == head_revision():
        return frozenset(Base.metadata.tables)
    scratch = sa.create_engine("sqlite://")
    with scratch.begin() as connection:
        command.upgrade(alembic_config(connection), revision)
        names = set(sa.inspect(connection).get_table_names())
    scratch.dispose()
    return frozenset(names - {VERSION_TABLE})


@dataclass(frozen=True)
class SchemaState:
    revision: str | None
    head: str
    present_tables: tuple[str, ...]

    @property
    def is_current(self) -> bool:
        return self.revision == self.head


def inspect_schema(connection: Connection, *, allow_incomplete: bool = False) -> SchemaState:
    """Where invoicegen's schema stands in this database.

    Refuses (:class:`SchemaStateError`) tables of invoicegen's names that invoicegen did not
    create, and a revision newer than this invoicegen. A schema left half-way by an interrupted
    migration (MariaDB and MySQL cannot roll back DDL) raises :class:`IncompleteSchema`, unless
    ``allow_incomplete`` (for ``reset``, which repairs it).
    """
    existing = set(sa.inspect(connection).get_table_names())
    present = tuple(name for name in owned_table_names() if name in existing)
    head = head_revision()
    target = mask(connection.engine.url)
    if VERSION_TABLE not in existing:
        if present:
            raise SchemaStateError(
                f"table(s) {', '.join(present)} in {target} exist but were not created by "
                "invoicegen; point invoicegen at another database"
            )
        return SchemaState(revision=None, head=head, present_tables=present)
    revision = current_revision(connection)
    if revision is not None:
        try:
            ScriptDirectory.from_config(alembic_config()).get_revision(revision)
        except Exception:
            raise SchemaStateError(
                f"the invoicegen schema in {target} is at revision {revision}, which this "
                "version of invoicegen does not know (newer?); upgrade invoicegen"
            ) from None
    expected = tables_at(revision)
    found = set(present) - {VERSION_TABLE}
    if found != expected and not allow_incomplete:
        problems = []
        if found - expected:
            problems.append(f"{', '.join(sorted(found - expected))} already exist")
        if expected - found:
            problems.append(f"{', '.join(sorted(expected - found))} are missing")
        raise IncompleteSchema(
            f"the invoicegen schema in {target} is incomplete: revision {revision or '(none)'} "
            f"is recorded, but {' and '.join(problems)} (an interrupted migration?); run "
            "`invoicegen reset --yes` to drop invoicegen's tables and migrate again"
        )
    return SchemaState(revision=revision, head=head, present_tables=present)


def _only_invoicegen_tables(name: str | None, type_: str, _parents: Any) -> bool:
    return type_ != "table" or name in Base.metadata.tables


def schema_differences(connection: Connection) -> list[str]:
    """How invoicegen's tables differ from its models (= its migrations at head), in words."""
    context = MigrationContext.configure(
        connection,
        opts={
            "version_table": VERSION_TABLE,
            "compare_type": True,
            "include_name": _only_invoicegen_tables,
        },
    )
    return [_describe_difference(diff) for diff in compare_metadata(context, Base.metadata)]


def _describe_difference(diff: Any) -> str:
    if isinstance(diff, list):  # modify_type, modify_nullable, ...: one list per column
        kind, _schema, table, column, _existing, found, wanted = diff[0]
        return f"{table}.{column}: {kind.removeprefix('modify_')} is {found}, expected {wanted}"
    kind, *args = diff
    thing = args[-1]
    table = args[-2] if len(args) >= 2 else getattr(getattr(thing, "table", None), "name", None)
    label = ".".join(str(part) for part in (table, getattr(thing, "name", None)) if part)
    verb, _, what = kind.partition("_")
    return f"{what} {label} " + ("is missing" if verb == "add" else "is not invoicegen's")


def upgrade(engine: Engine, *, lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> str:
    """Bring invoicegen's schema to the newest revision; returns that revision.

    Refuses a database whose invoicegen tables are at the newest revision but differ from it.
    """
    with run_lock(engine, timeout=lock_timeout), connect(engine) as connection:
        state = inspect_schema(connection)
        if not state.is_current:
            command.upgrade(alembic_config(connection), "head")
        else:
            refuse_drift(connection)
    return state.head


def refuse_drift(connection: Connection) -> None:
    """Raise :class:`SchemaStateError` when invoicegen's tables, at the newest revision, differ
    from its migrations (a dropped or added column, a changed type)."""
    if differences := schema_differences(connection):
        raise SchemaStateError(
            f"invoicegen's tables in {mask(connection.engine.url)} differ from its migrations: "
            f"{'; '.join(differences[:3])}{' …' if len(differences) > 3 else ''}; "
            "run `invoicegen reset` to re-create them"
        )


# --- reset and its guards ---------------------------------------------------------------------


def confirmation_name(url: URL) -> str:
    """What a person types to confirm a reset: the database name (a SQLite file's name)."""
    path = sqlite_path(url)
    return path.name if path is not None else str(url.database or "memory")


def is_protected(connection: Connection) -> bool:
    if Setting.__tablename__ not in sa.inspect(connection).get_table_names():
        return False
    query = sa.select(Setting.value).where(Setting.key == PROTECTED_KEY)
    return connection.execute(query).first() is not None


def set_protected(
    engine: Engine, protected: bool, *, lock_timeout: float = LOCK_TIMEOUT_SECONDS
) -> None:
    """Mark the database protected (migrating invoicegen's schema first: it holds the mark),
    or remove the mark."""
    with run_lock(engine, timeout=lock_timeout):
        if protected:
            upgrade(engine)
        with connect(engine) as connection:
            if is_protected(connection):
                connection.execute(sa.delete(Setting).where(Setting.key == PROTECTED_KEY))
            if protected:
                stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                connection.execute(sa.insert(Setting).values(key=PROTECTED_KEY, value=stamp))


def refuse_if_protected(url: URL, *, protected: bool, force_protected: str | None) -> None:
    """A protected database is reset only when ``force_protected`` is its name."""
    name = confirmation_name(url)
    if not protected or force_protected == name:
        return
    if force_protected is None:
        raise RefusedError(
            f"{mask(url)} is protected (`invoicegen protect`), so reset refuses it even with "
            f"--yes; to reset it anyway: invoicegen reset --yes --force-protected {name}"
        )
    raise RefusedError(
        f"--force-protected {force_protected!r} does not name this database ({name!r}); "
        "nothing was dropped"
    )


@dataclass(frozen=True)
class TableRows:
    name: str
    rows: int


@dataclass(frozen=True)
class ResetPlan:
    """What a reset would drop, and whether the database is protected against it."""

    tables: list[TableRows]
    protected: bool


def _reset_plan(connection: Connection) -> ResetPlan:
    state = inspect_schema(connection, allow_incomplete=True)
    tables = [
        TableRows(name, connection.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one())
        for name in state.present_tables
    ]
    return ResetPlan(tables=tables, protected=is_protected(connection))


def drop_plan(engine: Engine) -> ResetPlan:
    """The invoicegen tables that a reset would drop, with their row counts."""
    with connect(engine) as connection:
        return _reset_plan(connection)


def reset(
    engine: Engine,
    *,
    force_protected: str | None = None,
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
) -> list[TableRows]:
    """Drop invoicegen's tables (and nothing else), then migrate to an empty schema.

    Refuses a protected database unless ``force_protected`` is its name; the mark survives.
    """
    with run_lock(engine, timeout=lock_timeout):
        wait_for_shards(engine, timeout=lock_timeout)
        with connect(engine) as connection:
            plan = _reset_plan(connection)
            refuse_if_protected(
                engine.url, protected=plan.protected, force_protected=force_protected
            )
            for table in plan.tables:
                connection.execute(sa.text(f"DROP TABLE {table.name}"))
        if plan.protected:
            set_protected(engine, True)
        else:
            upgrade(engine)
    return plan.tables
