"""invoicegen's own schema: Alembic driven from code, where a database's schema stands, drift.

No alembic.ini: the configuration is built here, the live connection handed to ``env.py``
through ``Config.attributes``, and the version table has invoicegen's own name.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from invoicegen.db import LOCK_TIMEOUT_SECONDS, connect, create_schema, schema_of, target
from invoicegen.errors import IncompleteSchema, SchemaStateError
from invoicegen.locks import run_lock
from invoicegen.models import DATA_TABLE_NAMES, Base
from invoicegen.urls import mask

VERSION_TABLE = "invoicegen_alembic_version"


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


def version_table(connection: Connection) -> dict[str, Any]:
    """Alembic's options for invoicegen's version table: its own name, in invoicegen's schema."""
    return {"version_table": VERSION_TABLE, "version_table_schema": schema_of(connection)}


def current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts=version_table(connection))
    return context.get_current_revision()


def count_rows(connection: Connection) -> dict[str, int]:
    """Rows per data table."""
    return {
        table: int(connection.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one())
        for table in DATA_TABLE_NAMES
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
    existing = set(sa.inspect(connection).get_table_names(schema=schema_of(connection)))
    present = tuple(name for name in owned_table_names() if name in existing)
    head = head_revision()
    where = target(connection)
    if VERSION_TABLE not in existing:
        if present:
            raise SchemaStateError(
                f"table(s) {', '.join(present)} in {where} exist but were not created by "
                "invoicegen; give invoicegen a schema of its own (--schema NAME) or point it "
                "at another database",
                database=mask(connection.engine.url),
            )
        return SchemaState(revision=None, head=head, present_tables=present)
    revision = current_revision(connection)
    if revision is not None:
        try:
            ScriptDirectory.from_config(alembic_config()).get_revision(revision)
        except Exception:
            raise SchemaStateError(
                f"the invoicegen schema in {where} is at revision {revision}, which this "
                "version of invoicegen does not know (newer?); upgrade invoicegen",
                database=mask(connection.engine.url),
                revision=revision,
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
            f"the invoicegen schema in {where} is incomplete: revision {revision or '(none)'} "
            f"is recorded, but {' and '.join(problems)} (an interrupted migration?); run "
            "`invoicegen reset --yes` to drop invoicegen's tables and migrate again",
            database=mask(connection.engine.url),
            revision=revision,
        )
    return SchemaState(revision=revision, head=head, present_tables=present)


def _only_invoicegen_tables(name: str | None, type_: str, _parents: Any) -> bool:
    return type_ != "table" or name in Base.metadata.tables


def schema_differences(connection: Connection) -> list[str]:
    """How invoicegen's tables differ from its models (= its migrations at head), in words."""
    context = MigrationContext.configure(
        connection,
        opts={
            **version_table(connection),
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
    An engine with a schema (:func:`~invoicegen.db.schema_of`) creates it when missing.
    """
    create_schema(engine)
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
            f"invoicegen's tables in {target(connection)} differ from its migrations: "
            f"{'; '.join(differences[:3])}{' …' if len(differences) > 3 else ''}; "
            "run `invoicegen reset` to re-create them",
            database=mask(connection.engine.url),
        )
