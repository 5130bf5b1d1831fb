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
class HostForeignKey:
    """A foreign key from a table invoicegen does not own to one of invoicegen's tables."""

    schema: str | None  # the host table's schema (database on MariaDB), None = the current one
    table: str
    name: str | None  # SQLite allows unnamed constraints
    columns: tuple[str, ...]
    referred_table: str
    on_delete: str | None  # CASCADE, SET NULL, ...; None for NO ACTION / RESTRICT

    def __str__(self) -> str:
        table = f"{self.schema}.{self.table}" if self.schema else self.table
        rule = f", ON DELETE {self.on_delete}" if self.on_delete else ""
        return (
            f"{table}.{self.name or '(unnamed)'} "
            f"({', '.join(self.columns)} -> {self.referred_table}{rule})"
        )


@dataclass(frozen=True)
class ResetPlan:
    """What a reset would drop, and what stands in its way."""

    tables: list[TableRows]
    protected: bool
    #: foreign keys of other tables into invoicegen's: reset refuses them unless told to drop them
    host_foreign_keys: list[HostForeignKey]
    #: indexes with invoicegen's names left on tables it no longer owns (a renamed table):
    #: index names are schema-wide on SQLite and PostgreSQL, so migrating again needs them gone
    stray_indexes: list[StrayIndex]
    #: PostgreSQL: views of others on invoicegen's tables ("view v on users"); it will not drop
    #: a table a view depends on, and invoicegen never drops a view it does not own
    dependent_views: list[str]


@dataclass(frozen=True)
class StrayIndex:
    name: str
    table: str
    constraint: bool  # PostgreSQL: the index of a primary key or unique constraint

    def __str__(self) -> str:
        return f"{self.name} (on {self.table})"


@functools.cache
def _owned_object_names() -> tuple[frozenset[str], frozenset[str]]:
    """The names of invoicegen's (indexes, foreign keys); indexes include those of its primary
    keys and unique constraints, which are indexes of those names on PostgreSQL."""
    indexes = {f"{VERSION_TABLE}_pkc"}  # Alembic's name for its version table's primary key
    foreign: set[str] = set()
    for table in Base.metadata.tables.values():
        indexes.update(str(index.name) for index in table.indexes)
        for constraint in table.constraints:
            if isinstance(constraint, sa.PrimaryKeyConstraint | sa.UniqueConstraint):
                indexes.add(str(constraint.name))
            elif isinstance(constraint, sa.ForeignKeyConstraint):
                foreign.add(str(constraint.name))
    return frozenset(indexes), frozenset(foreign)


_PG_DELETE_RULES = {"c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}  # a, r: none


def _host_foreign_keys(connection: Connection, owned: list[str]) -> list[HostForeignKey]:
    """Every foreign key from a table invoicegen does not own (in any schema or database of
    the server) to one of ``owned``."""
    dialect = connection.dialect.name
    keys: list[HostForeignKey] = []
    if dialect == "postgresql":
        query = sa.text(
            "WITH ours AS (SELECT to_regclass(n) AS oid FROM unnest(CAST(:names AS text[])) AS n) "
            "SELECT c.conname, ns.nspname, r.relname, f.relname, c.confdeltype, "
            "ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(num, pos) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num "
            "ORDER BY k.pos), ns.nspname = current_schema() "
            "FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid "
            "JOIN pg_namespace ns ON ns.oid = r.relnamespace "
            "JOIN pg_class f ON f.oid = c.confrelid "
            "WHERE c.contype = 'f' AND c.confrelid IN (SELECT oid FROM ours) "
            "AND c.conrelid NOT IN (SELECT oid FROM ours WHERE oid IS NOT NULL) "
            "ORDER BY ns.nspname, r.relname, c.conname"
        )
        for name, schema, table, referred, rule, columns, current in connection.execute(
            query, {"names": owned}
        ):
            keys.append(
                HostForeignKey(
                    None if current else schema,
                    table,
                    name,
                    tuple(columns),
                    referred,
                    _PG_DELETE_RULES.get(rule),
                )
            )
    elif dialect == "mysql":
        query = sa.text(
            "SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, "
            "k.REFERENCED_TABLE_NAME, rc.DELETE_RULE, k.TABLE_SCHEMA = DATABASE() "
            "FROM information_schema.KEY_COLUMN_USAGE k "
            "JOIN information_schema.REFERENTIAL_CONSTRAINTS rc "
            "ON rc.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA "
            "AND rc.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND rc.TABLE_NAME = k.TABLE_NAME "
            "WHERE k.REFERENCED_TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IN :names "
            "ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION"
        ).bindparams(sa.bindparam("names", expanding=True))
        found: dict[tuple[str | None, str, str], list[Any]] = {}
        for schema, table, name, column, referred, rule, current in connection.execute(
            query, {"names": owned}
        ):
            if current and table in owned:
                continue
            where = None if current else str(schema)
            entry = found.setdefault((where, str(table), str(name)), [[], referred, rule])
            entry[0].append(str(column))
        for (schema, table, name), (columns, referred, rule) in found.items():
            on_delete = None if rule in ("NO ACTION", "RESTRICT") else str(rule)
            keys.append(HostForeignKey(schema, table, name, tuple(columns), referred, on_delete))
    else:
        inspector = sa.inspect(connection)
        _, our_names = _owned_object_names()
        for table in sorted(set(inspector.get_table_names()) - set(owned)):
            for fk in inspector.get_foreign_keys(table):
                # A key with invoicegen's own name sits on a renamed table of invoicegen's; the
                # drop runs with foreign keys off, so it is never enforced against the host.
                if fk["referred_table"] not in owned or fk["name"] in our_names:
                    continue
                rule = (fk.get("options") or {}).get("ondelete")
                on_delete = (
                    None if rule is None or rule.upper() in ("NO ACTION", "RESTRICT") else rule
                )
                keys.append(
                    HostForeignKey(
                        None,
                        table,
                        fk["name"],
                        tuple(fk["constrained_columns"]),
                        fk["referred_table"],
                        on_delete,
                    )
                )
    return keys


def _stray_indexes(connection: Connection, owned: list[str]) -> list[StrayIndex]:
    """Indexes of invoicegen's names on tables that are not (or no longer) invoicegen's, where
    index names are schema-wide (SQLite; PostgreSQL, in the current schema)."""
    indexes, _ = _owned_object_names()
    if connection.dialect.name == "sqlite":
        query = "SELECT name, tbl_name, 0 FROM sqlite_master WHERE type = 'index'"
    elif connection.dialect.name == "postgresql":
        query = (
            "SELECT i.relname, t.relname, EXISTS (SELECT 1 FROM pg_constraint c "
            "WHERE c.conindid = i.oid AND c.conrelid = t.oid) "
            "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE i.relnamespace = CAST(current_schema() AS regnamespace)"
        )
    else:  # MariaDB and MySQL: index names are per table
        return []
    return sorted(
        (
            StrayIndex(str(name), str(table), bool(constraint))
            for name, table, constraint in connection.exec_driver_sql(query)
            if name in indexes and table not in owned
        ),
        key=str,
    )


def _dependent_views(connection: Connection, owned: list[str]) -> list[str]:
    """PostgreSQL: views (in any schema) that depend on one of ``owned``."""
    if connection.dialect.name != "postgresql":
        return []  # SQLite and MariaDB drop a table under a view (the view then fails)
    query = sa.text(
        "WITH ours AS (SELECT to_regclass(n) AS oid FROM unnest(CAST(:names AS text[])) AS n) "
        "SELECT DISTINCT v.oid::regclass::text, t.relname FROM pg_depend d "
        "JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class "
        "JOIN pg_class t ON t.oid = d.refobjid "
        "WHERE d.classid = CAST('pg_rewrite' AS regclass) AND d.refobjid IN (SELECT oid FROM ours) "
        "AND v.oid <> d.refobjid ORDER BY 1, 2"
    )
    rows = connection.execute(query, {"names": owned})
    return [f"view {view} on {table}" for view, table in rows]


def _reset_plan(connection: Connection) -> ResetPlan:
    state = inspect_schema(connection, allow_incomplete=True)
    tables = [
        TableRows(name, connection.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one())
        for name in state.present_tables
    ]
    return ResetPlan(
        tables=tables,
        protected=is_protected(connection),
        host_foreign_keys=_host_foreign_keys(connection, owned_table_names()),
        stray_indexes=_stray_indexes(connection, owned_table_names()),
        dependent_views=_dependent_views(connection, owned_table_names()),
    )


def drop_plan(engine: Engine) -> ResetPlan:
    """The invoicegen tables that a reset would drop, with their row counts, and the host
    foreign keys that make it refuse."""
    with connect(engine) as connection:
        return _reset_plan(connection)


def host_keys_problem(url: URL, plan: ResetPlan, *, drop_foreign_keys: bool) -> str | None:
    """Why reset refuses this database's host foreign keys (or views on invoicegen's tables),
    and the way out; None if it need not."""
    if plan.dependent_views:
        return (
            f"{'; '.join(plan.dependent_views)} in {mask(url)} depend on invoicegen's tables, "
            "and reset never drops what others made; drop or change the view(s) first, then "
            "reset again"
        )
    keys = plan.host_foreign_keys
    if not keys or (drop_foreign_keys and url.get_backend_name() != "sqlite"):
        return None
    listed = "; ".join(str(key) for key in keys)
    problem = (
        f"{len(keys)} foreign key(s) of tables invoicegen does not own point at its tables in "
        f"{mask(url)}: {listed}; reset refuses to drop tables others depend on"
    )
    if url.get_backend_name() == "sqlite":
        hosts = ", ".join(sorted({key.table for key in keys}))
        return (
            f"{problem}. SQLite cannot drop a foreign key without re-creating its table: "
            f"re-create {hosts} without it (or keep invoicegen in a database file of its own), "
            "then reset again"
        )
    return (
        f"{problem}. Drop them yourself, or run `invoicegen reset --yes --drop-foreign-keys` to "
        "drop these constraints only (their tables and rows stay)"
    )


def refuse_if_host_keys(url: URL, plan: ResetPlan, *, drop_foreign_keys: bool) -> None:
    problem = host_keys_problem(url, plan, drop_foreign_keys=drop_foreign_keys)
    if problem is not None:
        raise RefusedError(f"{problem}; nothing was dropped")


def reset(
    engine: Engine,
    *,
    force_protected: str | None = None,
    drop_foreign_keys: bool = False,
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
) -> ResetPlan:
    """Drop invoicegen's tables (and nothing else), then migrate to an empty schema.

    Refuses, before it drops anything, a protected database unless ``force_protected`` is its
    name (the mark survives), and foreign keys from other tables into invoicegen's unless
    ``drop_foreign_keys`` (then those constraints are dropped first: never the tables or rows;
    SQLite cannot, and refuses). On SQLite the tables are dropped with foreign keys off, so no
    DROP runs an implicit DELETE that could cascade anywhere. Whatever remains of invoicegen's
    schema (half-dropped, half-migrated) is dropped the same way, so reset always repairs it.
    Returns what was dropped.
    """
    with run_lock(engine, timeout=lock_timeout):
        wait_for_shards(engine, timeout=lock_timeout)
        if engine.dialect.name == "sqlite":
            plan = _sqlite_drop(engine, force_protected=force_protected)
        else:
            with connect(engine) as connection:
                plan = _reset_plan(connection)
                _refuse(engine.url, plan, force_protected, drop_foreign_keys)
                _drop(connection, plan, drop_foreign_keys=drop_foreign_keys)
        if plan.protected:
            set_protected(engine, True)
        else:
            upgrade(engine)
    return plan


def _refuse(
    url: URL, plan: ResetPlan, force_protected: str | None, drop_foreign_keys: bool
) -> None:
    refuse_if_protected(url, protected=plan.protected, force_protected=force_protected)
    refuse_if_host_keys(url, plan, drop_foreign_keys=drop_foreign_keys)


def _drop(connection: Connection, plan: ResetPlan, *, drop_foreign_keys: bool) -> None:
    """Everything checked already: host constraints (if asked), then tables children first,
    then invoicegen's index names left on other tables (SQLite)."""
    quote = connection.dialect.identifier_preparer.quote
    for key in plan.host_foreign_keys if drop_foreign_keys else ():
        table = f"{quote(key.schema)}.{quote(key.table)}" if key.schema else quote(key.table)
        what = "FOREIGN KEY" if connection.dialect.name == "mysql" else "CONSTRAINT"
        connection.exec_driver_sql(f"ALTER TABLE {table} DROP {what} {quote(str(key.name))}")
    for table_rows in plan.tables:
        connection.exec_driver_sql(f"DROP TABLE {quote(table_rows.name)}")
    for index in plan.stray_indexes:
        if index.constraint:
            name, table = quote(index.name), quote(index.table)
            connection.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        else:
            connection.exec_driver_sql(f"DROP INDEX {quote(index.name)}")


def _sqlite_drop(engine: Engine, *, force_protected: str | None) -> ResetPlan:
    """Drop with ``PRAGMA foreign_keys`` off, in one transaction: no implicit DELETE, no cascade.

    The pragma is a no-op inside a transaction, so it is set on a connection in autocommit
    mode, checked, and only then is the transaction begun (IMMEDIATE: the plan is made again
    under the write lock, so nothing can slip in between the check and the drops).
    """
    with database_errors(engine.url), engine.connect() as outer:
        connection = outer.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
        try:
            if connection.exec_driver_sql("PRAGMA foreign_keys").scalar() != 0:
                raise InvoicegenError(
                    f"cannot turn SQLite's foreign keys off on {mask(engine.url)}; nothing was "
                    "dropped"
                )
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                plan = _reset_plan(connection)
                _refuse(engine.url, plan, force_protected, drop_foreign_keys=False)
                _drop(connection, plan, drop_foreign_keys=False)
            except BaseException:
                connection.exec_driver_sql("ROLLBACK")
                raise
            connection.exec_driver_sql("COMMIT")
        finally:
            connection.exec_driver_sql("PRAGMA foreign_keys = ON")
    return plan
