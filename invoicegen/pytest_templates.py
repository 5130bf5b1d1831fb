"""Seeded test databases, one template per plan and a fresh copy per test.

The pytest plugin's ``invoicegen`` marker (``@pytest.mark.invoicegen(users=500, seed=42)``)
names a plan; :func:`marker_plan` reads it. :class:`Templates` seeds one template database per
distinct plan with the bulk engine (:func:`invoicegen.seeding.seed`, as ``invoicegen seed``
does) the first time a test asks for it, and gives each test a copy of its own, dropped after
the test, so nothing a test does (committed or not) reaches the next one:

- SQLite: a copy of the template's file;
- PostgreSQL: ``CREATE DATABASE copy TEMPLATE template`` (the server copies the files; it
  needs nobody connected to the template, which is only ever connected while it is seeded);
- MariaDB/MySQL: a new database with each table's own ``SHOW CREATE TABLE`` (indexes,
  foreign keys and AUTO_INCREMENT kept) and one ``INSERT ... SELECT`` per table.

The plugin owns the naming (a random token per run, the xdist worker), the run's lock and the
clean-up of killed runs' leftovers; this module only builds, copies and drops. It is imported
only when a test carries the marker.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoicegen import settings
from invoicegen.errors import InvoicegenError, UsageError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

    from invoicegen.seeding import SeedPlan

MARKER = "invoicegen"

#: The marker's options: what shapes a new dataset (the names of ``SeedPlan``'s fields and of
#: ``invoicegen seed``'s options, with underscores).
PLAN_OPTIONS = (
    "users",
    "seed",
    "clients_per_user",
    "contracts_per_client",
    "invoices_per_contract",
    "as_of",
    "since",
    "locale",
)

#: The seed when the marker gives none: a fixed one, so a test sees the same rows every run.
DEFAULT_SEED = 0

MARKER_HELP = (
    f"{MARKER}({', '.join(f'{name}=...' for name in PLAN_OPTIONS)}): the test's database is a "
    "fresh copy of one seeded with this plan (seeded once per plan and run)"
)


def marker_plan(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> SeedPlan:
    """The plan a marker's arguments describe; a :class:`UsageError` naming the option at fault.

    Values are read as ``invoicegen seed`` reads them: ``users=500``, ``clients_per_user="1-3"``
    or ``(1, 3)`` or a weighted mix ``"1-3:80,4-20:20"``, ``as_of="2025-12-31"`` or a date.
    """
    from invoicegen.seeding import SeedPlan
    from invoicegen.seeding.plan import SHAPING_DEFAULTS, workers_for

    where = f"@pytest.mark.{MARKER}"
    if args:
        raise UsageError(
            f"{where} takes options by name (e.g. users=500), got {len(args)} positional "
            f"argument(s): {', '.join(repr(a) for a in args)}"
        )
    unknown = sorted(set(kwargs) - set(PLAN_OPTIONS))
    if unknown:
        raise UsageError(
            f"{where}: unknown option(s) {', '.join(unknown)} (known: {', '.join(PLAN_OPTIONS)})"
        )
    if "users" not in kwargs:
        raise UsageError(f"{where}: the option users is required (e.g. users=500)")
    # a shaping option left out is its default, so that plans equal in effect share a template
    values: dict[str, Any] = {"seed": DEFAULT_SEED, **SHAPING_DEFAULTS}
    for name, raw in kwargs.items():
        value = list(raw) if isinstance(raw, tuple) else raw
        try:
            values[name] = settings.OPTIONS[name].parse(value)
        except UsageError as exc:
            raise UsageError(f"{where}({name}={raw!r}): {exc.problem}") from None
    try:
        return SeedPlan(workers=workers_for(values["users"], None), **values)
    except UsageError as exc:
        problem = exc.problem.replace("--as-of", "as_of").replace("--since", "since")
        raise UsageError(f"{where}: {problem}") from None


@dataclass
class _Template:
    name: str
    error: InvoicegenError | None = None


class Templates:
    """One run's (one xdist worker's) template databases and their copies.

    ``base``: the server database the run was given (templates and copies are created next to
    it, named ``<run_name>_t1``, ``<run_name>_c1``...), or None for SQLite files in ``folder``.
    """

    def __init__(self, base: URL | None, *, run_name: str, folder: Path) -> None:
        self.base, self.run_name, self.folder = base, run_name, folder
        self.templates: dict[SeedPlan, _Template] = {}
        self.seeded = 0  # templates seeded so far: one per plan
        self.copies = 0
        self._admin: Engine | None = None
        self._ddl: dict[str, list[tuple[str, str]]] = {}  # MariaDB: each template's tables

    @property
    def backend(self) -> str:
        return "sqlite" if self.base is None else self.base.get_backend_name()

    def url(self, name: str) -> URL:
        import sqlalchemy as sa

        if self.base is None:
            return sa.make_url(f"sqlite:///{self.folder / name}.db")
        return self.base.set(database=name)

    @contextlib.contextmanager
    def copy(self, plan: SeedPlan) -> Iterator[str]:
        """A fresh copy of ``plan``'s template (seeded first if need be): its URL, password
        included, for the block; dropped afterwards."""
        template = self.template(plan)
        self.copies += 1
        name = f"{self.run_name}_c{self.copies}"
        try:
            self._copy(template, name)
            yield self.url(name).render_as_string(hide_password=False)
        finally:
            self.drop(name)

    def template(self, plan: SeedPlan) -> str:
        """The name of ``plan``'s template database, seeded on first use."""
        from invoicegen.db import make_engine
        from invoicegen.seeding import seed

        template = self.templates.get(plan)
        if template is None:
            template = self.templates[plan] = _Template(f"{self.run_name}_t{len(self.templates)}")
            try:
                self._create(template.name)
                engine = make_engine(self.url(template.name))
                try:
                    seed(engine, plan)
                    self._seeded(engine, template.name)
                finally:
                    engine.dispose()
                self.seeded += 1
            except BaseException as exc:
                with contextlib.suppress(InvoicegenError):  # the run's end (or the next) retries
                    self.drop(template.name)
                if not isinstance(exc, InvoicegenError):
                    del self.templates[plan]
                    raise
                template.error = exc  # every test of this plan fails the same way, fast
        if template.error is not None:
            raise template.error
        return template.name

    def close(self) -> None:
        """Drop every template (the copies are dropped after their tests)."""
        for template in self.templates.values():
            self.drop(template.name)

    def dispose(self) -> None:
        if self._admin is not None:
            self._admin.dispose()

    # --- per database -----------------------------------------------------------------------

    def admin(self) -> Engine:
        """An AUTOCOMMIT engine on the base database: CREATE and DROP DATABASE run there."""
        from invoicegen.db import make_engine

        if self._admin is None:
            assert self.base is not None
            self._admin = make_engine(self.base).execution_options(isolation_level="AUTOCOMMIT")
        return self._admin

    def _sql(self, *statements: str) -> None:
        from invoicegen.db import connect

        with connect(self.admin()) as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)

    def _quote(self, name: str) -> str:
        return str(self.admin().dialect.identifier_preparer.quote(name))

    def _create(self, name: str) -> None:
        if self.base is not None:
            self._sql(f"CREATE DATABASE {self._quote(name)}")

    def drop(self, name: str) -> None:
        if self.base is None:
            Path(self.folder / f"{name}.db").unlink(missing_ok=True)
            return
        force = ""
        admin = self.admin()
        if self.backend == "postgresql" and (admin.dialect.server_version_info or ()) >= (13,):
            force = " WITH (FORCE)"  # a connection the test's code left open does not block it
        self._sql(f"DROP DATABASE IF EXISTS {self._quote(name)}{force}")

    def _seeded(self, engine: Engine, name: str) -> None:
        """After seeding: what makes copying the template right and fast."""
        from invoicegen.db import connect

        if self.backend == "postgresql":
            # Planner statistics now, once, for every copy to inherit; and no reason left for
            # autovacuum to connect to the template while it is being copied.
            with connect(engine.execution_options(isolation_level="AUTOCOMMIT")) as connection:
                connection.exec_driver_sql("ANALYZE")
        elif self.backend != "sqlite":
            with connect(self.admin()) as connection:
                tables = connection.exec_driver_sql(
                    f"SHOW FULL TABLES FROM {self._quote(name)} WHERE Table_type = 'BASE TABLE'"
                ).all()
                self._ddl[name] = [
                    (
                        str(table),
                        str(
                            connection.exec_driver_sql(
                                f"SHOW CREATE TABLE {self._quote(name)}.{self._quote(table)}"
                            ).one()[1]
                        ),
                    )
                    for table, _ in tables
                ]

    def _copy(self, template: str, name: str) -> None:
        if self.base is None:
            shutil.copyfile(self.folder / f"{template}.db", self.folder / f"{name}.db")
        elif self.backend == "postgresql":
            self._copy_postgresql(template, name)
        else:
            self._copy_mysql(template, name)

    def _copy_postgresql(self, template: str, name: str, *, patience: float = 30) -> None:
        """``CREATE DATABASE ... TEMPLATE``; should a server process (autovacuum) be on the
        template for a moment, try again until ``patience`` runs out."""
        from sqlalchemy.exc import OperationalError

        from invoicegen.db import error_code

        statement = f"CREATE DATABASE {self._quote(name)} TEMPLATE {self._quote(template)}"
        deadline = time.monotonic() + patience
        while True:
            try:
                with self.admin().connect() as connection:
                    connection.exec_driver_sql(statement)
                return
            except OperationalError as exc:  # 55006: "source database is being accessed"
                if error_code(exc.orig) != "55006" or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        self._sql(statement)  # once more, its error translated

    def _copy_mysql(self, template: str, name: str) -> None:
        """A database with the template's tables as they are (SHOW CREATE TABLE keeps indexes,
        foreign keys, AUTO_INCREMENT), filled by one INSERT ... SELECT per table, checks off
        (the rows are the template's, already checked)."""
        from invoicegen.db import connect

        copy, source = self._quote(name), self._quote(template)
        with connect(self.admin()) as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {copy}")
            connection.exec_driver_sql(f"USE {copy}")
            connection.exec_driver_sql("SET SESSION foreign_key_checks = 0, unique_checks = 0")
            try:
                for _table, create in self._ddl[template]:
                    connection.exec_driver_sql(create)
                for table, _ in self._ddl[template]:
                    quoted = self._quote(table)
                    connection.exec_driver_sql(
                        f"INSERT INTO {quoted} SELECT * FROM {source}.{quoted}"
                    )
            finally:
                connection.exec_driver_sql("SET SESSION foreign_key_checks = 1, unique_checks = 1")
                connection.exec_driver_sql(f"USE {self._quote(str(self.admin().url.database))}")
