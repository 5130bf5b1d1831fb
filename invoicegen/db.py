"""Engines, Alembic driven from code, and the guards around invoicegen's own schema.

Nothing here prints. Every failure becomes an :class:`~invoicegen.errors.InvoicegenError`
whose message never contains a password.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from invoicegen.errors import (
    ConnectionFailed,
    InvoicegenError,
    MissingDriver,
    SchemaStateError,
    UsageError,
)
from invoicegen.models import Base

VERSION_TABLE = "invoicegen_alembic_version"
CONNECT_TIMEOUT_SECONDS = 10
SQLITE_BUSY_TIMEOUT_SECONDS = 15

# backend name -> (driver invoicegen uses, importable module, extra that installs it)
_DRIVERS = {
    "sqlite": ("pysqlite", "sqlite3", None),
    "postgresql": ("psycopg", "psycopg", "postgres"),
    "mysql": ("pymysql", "pymysql", "mysql"),
    "mariadb": ("pymysql", "pymysql", "mysql"),
}
_SCHEME_ALIASES = {"postgres": "postgresql"}


def parse_url(text: str) -> URL:
    """Validate a database URL without connecting; pick invoicegen's driver for it."""
    text = text.strip()
    scheme = text.split("://", 1)[0] if "://" in text else ""
    backend, _, driver = scheme.partition("+")
    backend = _SCHEME_ALIASES.get(backend, backend)
    if not re.fullmatch(r"[a-z][a-z0-9]*(\+[a-z0-9_]+)?", scheme) or backend not in _DRIVERS:
        shown = scheme or text.split(":", 1)[0][:20]
        raise UsageError(
            f"--database-url: unsupported or malformed URL (scheme {shown!r}); use "
            "sqlite:///FILE, postgresql://USER@HOST/DB or mysql://USER@HOST/DB"
        )
    try:
        url = sa.make_url(f"{backend}+{driver or _DRIVERS[backend][0]}://{text.split('://', 1)[1]}")
        url.get_dialect()
    except (ArgumentError, ValueError):
        raise UsageError("--database-url: the URL could not be parsed") from None
    except sa.exc.NoSuchModuleError:
        raise UsageError(f"--database-url: unknown driver {driver!r} for {backend}") from None
    if backend != "sqlite" and not url.host:
        raise UsageError("--database-url: the URL names no host")
    if backend != "sqlite" and not url.database:
        raise UsageError("--database-url: the URL names no database")
    return url


def mask(url: URL | str) -> str:
    """The URL as it may be shown: password replaced by ***."""
    if isinstance(url, str):
        try:
            url = sa.make_url(url)
        except ArgumentError:
            return "<unparsable URL>"
    backend = url.get_backend_name()
    if backend in _DRIVERS and url.get_driver_name() == _DRIVERS[backend][0]:
        url = url.set(drivername=backend)  # show the URL as people write it
    return url.render_as_string(hide_password=True)


def scrub(message: str, url: URL) -> str:
    """Remove every spelling of the URL's password from a message, and fold it to one line."""
    if url.password:
        password = str(url.password)
        for secret in {password, quote(password, safe=""), quote(password)}:
            message = message.replace(secret, "***")
    return " ".join(message.split())


def sqlite_path(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for an in-memory database."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database or "")


def make_engine(url: URL | str, *, must_exist: bool = False) -> Engine:
    """An engine for ``url``, with invoicegen's connection settings; nothing is connected yet.

    ``must_exist``: a SQLite file that is not there is an error rather than created
    (for commands that only read).
    """
    url = parse_url(url) if isinstance(url, str) else url
    backend = url.get_backend_name()
    _, module, extra = _DRIVERS[backend]
    if importlib.util.find_spec(module) is None:
        raise MissingDriver(
            f"the {backend} driver ({module}) is not installed; "
            f"run: pip install 'invoicegen[{extra}]'"
        )
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
        connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_SECONDS
    elif "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=False)
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


@contextlib.contextmanager
def database_errors(url: URL) -> Iterator[None]:
    """Turn driver and SQLAlchemy errors into invoicegen errors: scrubbed, one line."""
    try:
        yield
    except InvoicegenError:
        raise
    except DBAPIError as exc:
        detail = scrub(str(exc.orig) if exc.orig is not None else str(exc), url)
        if exc.connection_invalidated or _is_connect_error(exc):
            raise ConnectionFailed(f"cannot connect to {mask(url)}: {detail}") from None
        raise InvoicegenError(f"database error on {mask(url)}: {detail}") from None
    except SQLAlchemyError as exc:
        raise InvoicegenError(f"database error on {mask(url)}: {scrub(str(exc), url)}") from None


def _is_connect_error(exc: DBAPIError) -> bool:
    # A failed connect() surfaces as OperationalError with no statement attached.
    return isinstance(exc, sa.exc.OperationalError) and not exc.statement


@contextlib.contextmanager
def connect(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction, with errors translated."""
    with database_errors(engine.url), engine.begin() as connection:
        yield connection


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


def owned_table_names() -> list[str]:
    """invoicegen's tables, children first (the order they can be dropped in)."""
    return [table.name for table in reversed(Base.metadata.sorted_tables)] + [VERSION_TABLE]


@dataclass(frozen=True)
class SchemaState:
    revision: str | None
    head: str
    present_tables: tuple[str, ...]

    @property
    def is_current(self) -> bool:
        return self.revision == self.head


def inspect_schema(connection: Connection) -> SchemaState:
    """Where invoicegen's schema stands in this database; refuses foreign or newer schemas."""
    existing = set(sa.inspect(connection).get_table_names())
    present = tuple(name for name in owned_table_names() if name in existing)
    revision = current_revision(connection) if VERSION_TABLE in existing else None
    script = ScriptDirectory.from_config(alembic_config())
    head = head_revision()
    if revision is not None:
        try:
            script.get_revision(revision)
        except Exception:
            raise SchemaStateError(
                f"the database's invoicegen schema is at revision {revision}, which this "
                "version of invoicegen does not know (newer?); upgrade invoicegen"
            ) from None
    elif present and present != (VERSION_TABLE,):
        raise SchemaStateError(
            f"table(s) {', '.join(n for n in present if n != VERSION_TABLE)} exist but were not "
            "created by invoicegen; point invoicegen at another database"
        )
    return SchemaState(revision=revision, head=head, present_tables=present)


def upgrade(engine: Engine) -> str:
    """Bring invoicegen's schema to the newest revision; returns that revision."""
    with connect(engine) as connection:
        state = inspect_schema(connection)
        if not state.is_current:
            command.upgrade(alembic_config(connection), "head")
    return state.head


@dataclass(frozen=True)
class TableRows:
    name: str
    rows: int


def drop_plan(engine: Engine) -> list[TableRows]:
    """The invoicegen tables that a reset would drop, with their row counts."""
    with connect(engine) as connection:
        state = inspect_schema(connection)
        return [
            TableRows(
                name, connection.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
            )
            for name in state.present_tables
        ]


def reset(engine: Engine) -> list[TableRows]:
    """Drop invoicegen's tables (and nothing else), then migrate to an empty schema."""
    dropped = drop_plan(engine)
    with connect(engine) as connection:
        for table in dropped:
            connection.execute(sa.text(f"DROP TABLE {table.name}"))
    upgrade(engine)
    return dropped
