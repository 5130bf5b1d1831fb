"""Reset and protect: what reset may drop (invoicegen's tables, nothing of its host's) and
what makes it refuse (a protected database, foreign keys or views of others on its tables).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from invoicegen.db import LOCK_TIMEOUT_SECONDS, connect, create_schema, database_errors, schema_of
from invoicegen.errors import InvoicegenError, RefusedError
from invoicegen.locks import run_lock
from invoicegen.manifest import wait_for_shards
from invoicegen.models import Base, Setting
from invoicegen.schema import VERSION_TABLE, inspect_schema, owned_table_names, upgrade
from invoicegen.urls import mask, sqlite_path

PROTECTED_KEY = "protected"  # in invoicegen_meta: present = reset refuses the database


def confirmation_name(url: URL, *, schema: str | None = None) -> str:
    """What a person types to confirm a reset: the database name (a SQLite file's name), or
    with ``--schema`` the schema's (two schemas of one database are reset apart)."""
    if schema is not None:
        return schema
    path = sqlite_path(url)
    return path.name if path is not None else str(url.database or "memory")


def is_protected(connection: Connection) -> bool:
    tables = sa.inspect(connection).get_table_names(schema=schema_of(connection))
    if Setting.__tablename__ not in tables:
        return False
    query = sa.select(Setting.value).where(Setting.key == PROTECTED_KEY)
    return connection.execute(query).first() is not None


def set_protected(
    engine: Engine, protected: bool, *, lock_timeout: float = LOCK_TIMEOUT_SECONDS
) -> None:
    """Mark the database protected (migrating invoicegen's schema first: it holds the mark),
    or remove the mark."""
    create_schema(engine)
    with run_lock(engine, timeout=lock_timeout):
        if protected:
            upgrade(engine)
        with connect(engine) as connection:
            if is_protected(connection):
                connection.execute(sa.delete(Setting).where(Setting.key == PROTECTED_KEY))
            if protected:
                stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                connection.execute(sa.insert(Setting).values(key=PROTECTED_KEY, value=stamp))


def refuse_if_protected(
    url: URL, *, protected: bool, force_protected: str | None, schema: str | None = None
) -> None:
    """A protected database (or schema) is reset only when ``force_protected`` is its name."""
    name = confirmation_name(url, schema=schema)
    if not protected or force_protected == name:
        return
    where = mask(url) if schema is None else f"schema {schema} of {mask(url)}"
    if force_protected is None:
        raise RefusedError(
            f"{where} is protected (`invoicegen protect`), so reset refuses it even with "
            f"--yes; to reset it anyway: invoicegen reset --yes --force-protected {name}",
            database=mask(url),
        )
    raise RefusedError(
        f"--force-protected {force_protected!r} does not name this "
        f"{'database' if schema is None else 'schema'} ({name!r}); "
        "nothing was dropped",
        database=mask(url),
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
        raise RefusedError(f"{problem}; nothing was dropped", database=mask(url))


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
    Returns what was dropped. With a schema (``--schema``), only what is in it: the schema
    itself stays (``migrate`` fills it again; the host may have granted rights on it).
    """
    create_schema(engine)
    with run_lock(engine, timeout=lock_timeout):
        wait_for_shards(engine, timeout=lock_timeout)
        if engine.dialect.name == "sqlite":
            plan = _sqlite_drop(engine, force_protected=force_protected)
        else:
            with connect(engine) as connection:
                plan = _reset_plan(connection)
                _refuse(engine, plan, force_protected, drop_foreign_keys)
                _drop(connection, plan, drop_foreign_keys=drop_foreign_keys)
        if plan.protected:
            set_protected(engine, True)
        else:
            upgrade(engine)
    return plan


def _refuse(
    engine: Engine, plan: ResetPlan, force_protected: str | None, drop_foreign_keys: bool
) -> None:
    refuse_if_protected(
        engine.url,
        protected=plan.protected,
        force_protected=force_protected,
        schema=schema_of(engine),
    )
    refuse_if_host_keys(engine.url, plan, drop_foreign_keys=drop_foreign_keys)


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
                _refuse(engine, plan, force_protected, drop_foreign_keys=False)
                _drop(connection, plan, drop_foreign_keys=False)
            except BaseException:
                connection.exec_driver_sql("ROLLBACK")
                raise
            connection.exec_driver_sql("COMMIT")
        finally:
            connection.exec_driver_sql("PRAGMA foreign_keys = ON")
    return plan
