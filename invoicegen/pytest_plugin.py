"""pytest fixtures for test suites that use invoicegen's schema and factories.

Registered through the ``pytest11`` entry point ``invoicegen``: once invoicegen is installed the
fixtures are there (``-p no:invoicegen`` turns them off); with plugin autoloading off, enable it
with ``-p invoicegen.pytest_plugin``. Importing this module is cheap and does nothing: SQLAlchemy,
Alembic and the factories are imported, and the database connected, only when a fixture is used.

The database (fixture ``invoicegen_database_url``) comes from ``--invoicegen-db-url``, else the
ini option ``invoicegen_db_url``, else ``INVOICEGEN_TEST_DATABASE_URL``, else a SQLite file in
pytest's temporary folder. Under pytest-xdist every worker gets a database of its own: the
temporary SQLite file is per worker already, a SQLite file named in the URL gets the worker id
in its name (``tests.db`` -> ``tests-gw0.db``), and on PostgreSQL or MariaDB the worker's
database ``NAME_pytest_TOKEN_gw0`` (``TOKEN`` random per run) is created next to ``NAME`` (the
URL's account needs CREATE DATABASE) and dropped at the end of the run; killed runs' leftovers
are dropped once unused. Without xdist, the named database is used as it is: it must exist.
A database that already holds rows in invoicegen's tables is refused.

A test marked ``@pytest.mark.invoicegen(users=500, seed=42, ...)`` gets instead a fresh copy of
a database seeded with that plan, seeded once per plan and run (see
:mod:`invoicegen.pytest_templates`): ``invoicegen_test_database_url``, ``invoicegen_test_engine``
and the connection and session on them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

# The async fixture lives in its own module; importing it here makes it this plugin's.
from invoicegen.pytest_async import ASYNC_SESSION, invoicegen_async_session  # noqa: F401

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine
    from sqlalchemy.orm import Session

    from invoicegen.pytest_templates import Templates

OPTION = "--invoicegen-db-url"
INI_OPTION = "invoicegen_db_url"
ENV_VARIABLE = "INVOICEGEN_TEST_DATABASE_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("invoicegen", "invoicegen test database")
    group.addoption(
        OPTION,
        dest=INI_OPTION,
        default=None,
        metavar="URL",
        help=f"database for the invoicegen fixtures (else ini {INI_OPTION}, "
        f"else ${ENV_VARIABLE}, else a SQLite file in pytest's temporary folder)",
    )
    parser.addini(INI_OPTION, f"database URL for the invoicegen fixtures ({OPTION} wins)")


def pytest_configure(config: pytest.Config) -> None:
    from invoicegen.pytest_templates import MARKER_HELP

    config.addinivalue_line("markers", MARKER_HELP)


def configured_url(config: pytest.Config) -> tuple[str, str] | None:
    """The database URL the run was given and where it came from, or None for the default."""
    candidates = (
        (OPTION, config.getoption(INI_OPTION)),
        (f"ini option {INI_OPTION}", config.getini(INI_OPTION)),
        (ENV_VARIABLE, os.environ.get(ENV_VARIABLE)),
    )
    for source, value in candidates:
        if isinstance(value, str) and value.strip():
            return value.strip(), source
    return None


def _worker_id(config: pytest.Config) -> str | None:
    """pytest-xdist's worker id (``gw0``, ...) in a worker process, None otherwise."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    return None if workerinput is None else str(workerinput["workerid"])


@contextlib.contextmanager
def _failing_tests(source: str) -> Iterator[None]:
    """An invoicegen error fails the tests that need the database, in one line, no traceback."""
    from invoicegen.errors import InvoicegenError

    try:
        yield
    except InvoicegenError as exc:
        # A value at fault is the one this plugin was given (its URL): name where it came from,
        # not the command line's option.
        detail = exc.problem if exc.option is not None else str(exc)
        raise pytest.fail.Exception(f"invoicegen: {source}: {detail}", pytrace=False) from None


def _parse(text: str, source: str) -> URL:
    from invoicegen.urls import parse

    url: URL | None = None
    with _failing_tests(source):
        url = parse(text)
    assert url is not None  # _failing_tests raised otherwise
    return url


@pytest.fixture(scope="session")
def invoicegen_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The URL of this run's (this xdist worker's) test database, password included."""
    from invoicegen.urls import sqlite_path

    configured = configured_url(request.config)
    if configured is None:  # pytest's temporary folder is per worker under xdist already
        yield f"sqlite:///{tmp_path_factory.mktemp('invoicegen') / 'invoicegen.db'}"
        return
    url = _parse(*configured)
    worker = _worker_id(request.config)
    if worker is None:
        yield configured[0]
        return
    path = sqlite_path(url)
    if url.get_backend_name() == "sqlite":
        if path is not None:
            url = url.set(database=str(path.with_name(f"{path.stem}-{worker}{path.suffix}")))
        yield url.render_as_string(hide_password=False)
        return
    with _failing_tests(f"the database of xdist worker {worker}"):
        yield from _worker_database(url, worker)


RUN_MARK = "_pytest_"  # worker databases: NAME_pytest_<random token>_gw0


def _worker_database(url: URL, worker: str) -> Iterator[str]:
    """Create this worker's database next to ``url``'s, for this run only; drop it at the end.

    Its name carries a random token, so concurrent runs on one server never share one or
    drop another's. The run holds a server lock named after it from before it is created
    until after it is dropped: a database of this plugin's pattern whose lock is free and to
    which nobody is connected was left by a killed run, and is dropped here first.
    """
    import secrets

    from invoicegen.db import connect, make_engine
    from invoicegen.locks import run_lock

    base = str(url.database)[:40]  # database names are at most 63 characters
    name = f"{base}{RUN_MARK}{secrets.token_hex(4)}_{worker}"
    engine = make_engine(url)
    admin = engine.execution_options(isolation_level="AUTOCOMMIT")
    quoted = admin.dialect.identifier_preparer.quote(name)
    try:
        with run_lock(engine, name=_lock_name(name)):
            _warn_kept(_drop_leftovers(engine, base))
            with connect(admin) as connection:
                connection.exec_driver_sql(f"CREATE DATABASE {quoted}")
            try:
                yield url.set(database=name).render_as_string(hide_password=False)
            finally:
                with connect(admin) as connection:
                    connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}{_force(admin)}")
    finally:
        engine.dispose()


def _warn_kept(kept: list[str]) -> None:
    if kept:
        import warnings

        warnings.warn(
            pytest.PytestWarning(
                f"invoicegen: left database(s) {', '.join(kept)} of an earlier test run "
                "in place: someone is connected to them; drop them when they are not"
            ),
            stacklevel=1,
        )


def _lock_name(database: str) -> str:
    return f"pytest database {database}"


def _force(engine: Engine) -> str:
    """PostgreSQL 13+: end the connections (of this run's own engines) that a drop would wait on."""
    version = engine.dialect.server_version_info or ()
    return " WITH (FORCE)" if engine.dialect.name == "postgresql" and version >= (13,) else ""


def _drop_leftovers(engine: Engine, base: str) -> list[str]:
    """Drop the databases killed runs left next to ``base``; return those kept (in use)."""
    import sqlalchemy as sa

    from invoicegen.db import connect
    from invoicegen.errors import InvoicegenError
    from invoicegen.locks import lock_is_free

    admin = engine.execution_options(isolation_level="AUTOCOMMIT")
    postgresql = admin.dialect.name == "postgresql"
    if postgresql:
        listing = "SELECT datname FROM pg_database WHERE datname LIKE :pattern"
        users = "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = :name"
    else:
        listing = (
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :pattern"
        )
        users = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = :name"
    # a worker's database, or a run's seeded template (_t1) or copy (_c1): the run's lock is
    # named after the part before that suffix
    ours = re.compile(rf"({re.escape(base)}{RUN_MARK}[0-9a-f]{{8}}_(?:gw\d+|main))(?:_[tc]\d+)?")
    with connect(admin) as connection:
        found = connection.execute(sa.text(listing), {"pattern": f"{base}%"}).scalars().all()
    kept: list[str] = []
    for name in sorted(str(n) for n in found if ours.fullmatch(str(n))):
        if not lock_is_free(engine, _lock_name(ours.fullmatch(name)[1])):  # type: ignore[index]
            continue  # a run that is alive: its own
        try:
            with connect(admin) as connection:
                if connection.execute(sa.text(users), {"name": name}).scalar_one():
                    kept.append(name)
                    continue
                quoted = admin.dialect.identifier_preparer.quote(name)
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}")
        except InvoicegenError:  # someone connected in between (PostgreSQL refuses the drop)
            kept.append(name)
    return kept


MARK = "invoicegen"  # @pytest.mark.invoicegen(users=500, ...): see invoicegen.pytest_templates
_TEMPLATES = pytest.StashKey["Templates"]()


@pytest.fixture(scope="session")
def _invoicegen_templates(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Templates]:
    """The seeded template databases of this run (this xdist worker), one per marker's plan.

    On a server they are created next to the run's database, named like the workers' ones
    (``NAME_pytest_TOKEN_gw0_t0``, without xdist ``..._main_t0``) under the run's lock, and
    dropped at the end; SQLite's are files in pytest's temporary folder.
    """
    from invoicegen.pytest_templates import Templates

    folder = tmp_path_factory.mktemp("invoicegen-templates")
    configured = configured_url(request.config)
    url = None if configured is None else _parse(*configured)
    if url is None or url.get_backend_name() == "sqlite":
        templates = Templates(None, run_name="run", folder=folder)
        request.config.stash[_TEMPLATES] = templates
        yield templates
        templates.close()
        return
    with _failing_tests("the seeded template databases"):
        yield from _server_templates(request.config, url, folder)


def _server_templates(config: pytest.Config, url: URL, folder: Any) -> Iterator[Templates]:
    import secrets

    from invoicegen.locks import run_lock
    from invoicegen.pytest_templates import Templates

    base = str(url.database)[:30]  # room for the token, the worker and _t1/_c123
    name = f"{base}{RUN_MARK}{secrets.token_hex(4)}_{_worker_id(config) or 'main'}"
    templates = config.stash[_TEMPLATES] = Templates(url, run_name=name, folder=folder)
    try:
        with run_lock(templates.admin(), name=_lock_name(name)):
            _warn_kept(_drop_leftovers(templates.admin(), base))
            try:
                yield templates
            finally:
                templates.close()
    finally:
        templates.dispose()


@pytest.fixture
def invoicegen_test_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """This test's database URL: for a test marked ``@pytest.mark.invoicegen(users=..., ...)``
    a fresh copy of a database seeded with that plan, dropped after the test; otherwise
    :func:`invoicegen_database_url`'s."""
    marker = request.node.get_closest_marker(MARK)
    if marker is None:
        yield request.getfixturevalue("invoicegen_database_url")
        return
    from invoicegen.errors import UsageError
    from invoicegen.pytest_templates import marker_plan

    try:
        plan = marker_plan(marker.args, marker.kwargs)
    except UsageError as exc:
        raise pytest.fail.Exception(f"invoicegen: {exc}", pytrace=False) from None
    templates: Templates = request.getfixturevalue("_invoicegen_templates")
    with _failing_tests(f"the database of @pytest.mark.{MARK}"), templates.copy(plan) as url:
        yield url


@pytest.fixture
def invoicegen_test_engine(
    request: pytest.FixtureRequest, invoicegen_test_database_url: str
) -> Iterator[Engine]:
    """An engine on this test's database: the seeded copy under the ``invoicegen`` marker
    (disposed after the test), otherwise :func:`invoicegen_engine`."""
    if request.node.get_closest_marker(MARK) is None:
        yield request.getfixturevalue("invoicegen_engine")
        return
    from invoicegen.db import make_engine

    with _failing_tests("invoicegen_test_engine"):
        engine = make_engine(invoicegen_test_database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    templates = config.stash.get(_TEMPLATES, None)
    if templates is not None and templates.seeded:
        terminalreporter.write_line(
            f"invoicegen: seeded {templates.seeded} template database(s) (one per plan); "
            f"{templates.copies} test(s) each got a fresh copy"
        )


@pytest.fixture(scope="session")
def invoicegen_engine(invoicegen_database_url: str) -> Iterator[Engine]:
    """An engine on the test database, migrated to invoicegen's newest schema once per run."""
    from invoicegen.db import make_engine
    from invoicegen.schema import upgrade

    with _failing_tests("invoicegen_engine"):
        engine = make_engine(invoicegen_database_url)
    try:
        with _failing_tests("invoicegen_engine"):
            upgrade(engine)
            _refuse_rows_of_others(engine)
        yield engine
    finally:
        engine.dispose()


def _refuse_rows_of_others(engine: Engine) -> None:
    """Tests count rows: in a database that already holds some, they fail with numbers that
    mean nothing. The plugin's own rows never outlive a test, so any row is someone else's."""
    from invoicegen.db import connect
    from invoicegen.errors import RefusedError
    from invoicegen.schema import count_rows
    from invoicegen.urls import mask

    with connect(engine) as connection:
        rows = {table: n for table, n in count_rows(connection).items() if n}
    if rows:
        held = ", ".join(f"{n:,} {table}" for table, n in rows.items())
        raise RefusedError(
            f"the test database {mask(engine.url)} already holds rows the tests did not make "
            f"({held}); point {OPTION} (or ini {INI_OPTION}, or ${ENV_VARIABLE}) at an empty "
            "database, e.g. one made with CREATE DATABASE for the tests"
        )


@pytest.fixture(scope="session")
def _invoicegen_tables_at_start(invoicegen_engine: Engine) -> frozenset[str]:
    """The test database's tables once migrated: a table beyond these was left by a test."""
    import sqlalchemy as sa

    return frozenset(sa.inspect(invoicegen_engine).get_table_names())


@pytest.fixture
def invoicegen_connection(_invoicegen_isolation: _Isolation) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test.

    Bind your application's sessions to it with ``join_transaction_mode="create_savepoint"``
    to see the factories' rows and have your own writes undone too. Should the code under test
    end that transaction (DDL on MariaDB/MySQL commits implicitly; a raw COMMIT), the test
    fails saying so, and the database is cleaned before the next test.
    """
    with _invoicegen_isolation.engine.connect() as connection:
        guard = _invoicegen_isolation.begin(connection)
        try:
            yield connection
        finally:
            _invoicegen_isolation.end(guard)
    guard.fail_if_cleaned()


@pytest.fixture
def _invoicegen_isolation(
    request: pytest.FixtureRequest, invoicegen_test_engine: Engine
) -> _Isolation:
    """How a test's connection is isolated: by invoicegen_connection, and by
    invoicegen_async_session (:mod:`invoicegen.pytest_async`) on its connection's sync side.
    Its engine is this test's database: the seeded copy under the invoicegen marker."""
    if request.node.get_closest_marker(MARK) is None:
        tables: frozenset[str] = request.getfixturevalue("_invoicegen_tables_at_start")
    else:
        import sqlalchemy as sa

        tables = frozenset(sa.inspect(invoicegen_test_engine).get_table_names())
    return _Isolation(request, invoicegen_test_engine, tables)


class _Isolation:
    """Begins a test's transaction on a connection, watched by an :class:`_IsolationGuard` that
    this plugin's hooks find in the test's stash; ends it, cleaning up if it was lost."""

    def __init__(self, request: pytest.FixtureRequest, engine: Engine, tables: frozenset[str]):
        self.request, self.engine, self.tables = request, engine, tables

    def begin(self, connection: Connection) -> _IsolationGuard:
        guard = _IsolationGuard(self.engine, connection, self.tables)
        self.request.node.stash[_GUARD] = guard
        return guard

    def end(self, guard: _IsolationGuard) -> None:
        if self.request.node.stash.get(_GUARD, None) is guard:
            del self.request.node.stash[_GUARD]
        guard.end()


class _IsolationGuard:
    """Knows whether a test's transaction is still the one the fixture began.

    On a server a sentinel row is written inside the transaction: another connection sees it
    only once that transaction is committed. On SQLite (whose DDL is transactional here) the
    driver says whether a transaction is open.
    """

    def __init__(self, engine: Engine, connection: Connection, tables: frozenset[str]) -> None:
        import uuid

        self.engine, self.connection, self.tables = engine, connection, tables
        self.transaction = connection.begin()
        self.key = f"pytest-isolation-{uuid.uuid4().hex}"
        self.reported = False
        self.cleaned: list[str] | None = None  # what end() had to clean up, once it did
        if engine.dialect.name != "sqlite":
            import sqlalchemy as sa

            from invoicegen.models import Setting

            connection.execute(sa.insert(Setting).values(key=self.key, value="open"))

    def lost(self) -> bool:
        if self.engine.dialect.name == "sqlite":
            dbapi_connection: Any = self.connection.connection.dbapi_connection
            inner = getattr(dbapi_connection, "_connection", None)  # aiosqlite's, when async
            return not getattr(inner, "_conn", dbapi_connection).in_transaction
        import sqlalchemy as sa

        from invoicegen.models import Setting

        with self.engine.connect() as other:
            query = sa.select(Setting.key).where(Setting.key == self.key)
            return other.execute(query).first() is not None

    def message(self) -> str:
        if self.cleaned is None:
            cleaning = "the test database is cleaned after this test"
        else:
            dropped = f", table(s) {', '.join(self.cleaned)} dropped" if self.cleaned else ""
            cleaning = (
                f"the test database was cleaned (rows of invoicegen's tables deleted{dropped})"
            )
        return (
            "invoicegen: the code under test ended the test's transaction (DDL such as CREATE "
            "TABLE commits implicitly on MariaDB/MySQL; so does a COMMIT on the connection), so "
            f"its writes were committed and isolation was lost; {cleaning}, so later tests "
            "start empty; run such DDL outside the test's transaction"
        )

    def fail_if_cleaned(self) -> None:
        """Fail the test's teardown when end() had to clean up (unless the test failed so)."""
        if self.cleaned is not None and not self.reported:
            pytest.fail(self.message(), pytrace=False)

    def end(self) -> None:
        """Roll the test back; if its transaction had been ended, clean the database."""
        from sqlalchemy.exc import SQLAlchemyError

        lost = self.lost()
        try:
            if self.transaction.is_active:
                self.transaction.rollback()
        except SQLAlchemyError:
            if not lost:
                raise
            self.connection.invalidate()
        if lost:
            self.cleaned = self._clean()

    def _clean(self) -> list[str]:
        import sqlalchemy as sa

        from invoicegen.models import DATA_TABLE_NAMES, Run, Setting

        with self.engine.begin() as connection:
            quote = connection.dialect.identifier_preparer.quote
            left = sorted(set(sa.inspect(connection).get_table_names()) - self.tables)
            for table in left:
                connection.exec_driver_sql(f"DROP TABLE {quote(table)}")
        with self.engine.begin() as connection:
            for table in reversed(DATA_TABLE_NAMES):
                connection.exec_driver_sql(f"DELETE FROM {quote(table)}")
            connection.execute(sa.delete(Run))
            connection.execute(sa.delete(Setting).where(Setting.key == self.key))
        return left


_GUARD = pytest.StashKey[_IsolationGuard]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Fail the test itself, not only its teardown, when it lost the transaction."""
    try:
        return (yield)
    finally:
        guard = item.stash.get(_GUARD, None)
        if guard is not None and guard.lost():
            guard.reported = True
            pytest.fail(guard.message(), pytrace=False)


@pytest.fixture
def invoicegen_session(
    request: pytest.FixtureRequest, invoicegen_connection: Connection
) -> Iterator[Session]:
    """A session whose every write is undone after the test, commits included.

    It runs inside SAVEPOINTs of :func:`invoicegen_connection`'s transaction, so the code under
    test may call ``commit()`` and ``rollback()``. Every invoicegen factory creates through it.
    """
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

    from invoicegen.factories import session_bound

    session = Session(bind=invoicegen_connection, join_transaction_mode="create_savepoint")
    try:
        with session, session_bound(session):
            yield session
    except SQLAlchemyError:  # e.g. "SAVEPOINT sa_savepoint_1 does not exist": say why instead
        guard = request.node.stash.get(_GUARD, None)
        if guard is None or not guard.lost():
            raise


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
    """Bind invoicegen_session before pytest-factoryboy's fixtures for invoicegen's factories.

    ``register(UserFactory)`` defines a ``user_factory`` that shadows the plugin's and a
    ``user`` model fixture that creates through it; neither knows a session. Their functions
    wrap a ``functools.partial`` carrying ``factory_class`` or ``factory_name``: when it names
    one of invoicegen's factories, the session is set up first. Nothing else is touched.
    """
    factory_class = _factoryboy_factory(fixturedef, request)
    if factory_class is not None and fixturedef.scope == "function":
        from invoicegen.factories import InvoicegenFactory

        if isinstance(factory_class, type) and issubclass(factory_class, InvoicegenFactory):
            request.getfixturevalue("invoicegen_session")
    return (yield)


def _factoryboy_factory(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
    """The factory class behind a pytest-factoryboy factory or model fixture, else None."""
    try:
        target = inspect.unwrap(fixturedef.func)
    except ValueError:  # a cycle of __wrapped__: not pytest-factoryboy's
        return None
    if not isinstance(target, functools.partial):
        return None
    if "factory_class" in target.keywords:
        return target.keywords["factory_class"]
    if "factory_name" in target.keywords:
        return request.getfixturevalue(str(target.keywords["factory_name"]))
    return None


def _factory_fixture(class_name: str, what: str) -> Any:
    """A fixture giving ``invoicegen.factories.<class_name>``, creating through the session."""

    def fixture(request: pytest.FixtureRequest) -> Any:
        if ASYNC_SESSION not in request.fixturenames:  # else that one binds the factories
            request.getfixturevalue("invoicegen_session")
        return getattr(importlib.import_module("invoicegen.factories"), class_name)

    fixture.__doc__ = (
        f"{class_name}: {what}; ``create()`` goes through invoicegen_session "
        f"(``await create_async()`` through {ASYNC_SESSION}, when the test uses it)."
    )
    return pytest.fixture(name=re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower())(fixture)


user_factory = _factory_fixture("UserFactory", "a user with clients, contracts, invoices")
client_factory = _factory_fixture("ClientFactory", "a client with contracts and invoices")
contract_factory = _factory_fixture("ContractFactory", "a contract with invoices")
invoice_factory = _factory_fixture("InvoiceFactory", "an invoice and its parents")
isolated_user_factory = _factory_fixture("IsolatedUserFactory", "a user, no clients")
isolated_client_factory = _factory_fixture(
    "IsolatedClientFactory", "a client and its user, no contracts"
)
isolated_contract_factory = _factory_fixture(
    "IsolatedContractFactory", "a contract and its parents, no invoices"
)
isolated_invoice_factory = _factory_fixture(
    "IsolatedInvoiceFactory", "an invoice and its parents (same as invoice_factory)"
)
