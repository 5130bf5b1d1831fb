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
database ``NAME_gw0`` is created next to ``NAME`` (the URL's account needs CREATE DATABASE) and
dropped at the end of the run. Without xdist, the named database is used as it is: it must exist.
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

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine
    from sqlalchemy.orm import Session

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
        detail = str(exc).removeprefix("--database-url: ")
        raise pytest.fail.Exception(f"invoicegen: {source}: {detail}", pytrace=False) from None


def _parse(text: str, source: str) -> URL:
    from invoicegen.db import parse_url

    url: URL | None = None
    with _failing_tests(source):
        url = parse_url(text)
    assert url is not None  # _failing_tests raised otherwise
    return url


@pytest.fixture(scope="session")
def invoicegen_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The URL of this run's (this xdist worker's) test database, password included."""
    from invoicegen.db import sqlite_path

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
        yield from _worker_database(url, f"{url.database}_{worker}")


def _worker_database(url: URL, name: str) -> Iterator[str]:
    """Create database ``name`` on ``url``'s server if missing; drop it afterwards if created."""
    import sqlalchemy as sa

    from invoicegen.db import connect, make_engine

    engine = make_engine(url)
    admin = engine.execution_options(isolation_level="AUTOCOMMIT")
    preparer = admin.dialect.identifier_preparer
    try:
        with connect(admin) as connection:
            if admin.dialect.name == "postgresql":
                query = "SELECT 1 FROM pg_database WHERE datname = :name"
            else:
                query = "SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"
            created = connection.execute(sa.text(query), {"name": name}).first() is None
            if created:
                connection.exec_driver_sql(f"CREATE DATABASE {preparer.quote(name)}")
        yield url.set(database=name).render_as_string(hide_password=False)
        if created:
            with connect(admin) as connection:
                version = admin.dialect.server_version_info or ()
                force = (
                    " WITH (FORCE)"
                    if admin.dialect.name == "postgresql" and version >= (13,)
                    else ""
                )
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {preparer.quote(name)}{force}")
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def invoicegen_engine(invoicegen_database_url: str) -> Iterator[Engine]:
    """An engine on the test database, migrated to invoicegen's newest schema once per run."""
    from invoicegen.db import make_engine, upgrade

    with _failing_tests("invoicegen_engine"):
        engine = make_engine(invoicegen_database_url)
    if engine.dialect.name == "sqlite":
        _sqlite_real_transactions(engine)
    try:
        with _failing_tests("invoicegen_engine"):
            upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def _sqlite_real_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not pysqlite, emit BEGIN: SAVEPOINTs (and DDL) then stay transactional.

    The workaround in SQLAlchemy's pysqlite notes ("Serializable isolation / Savepoints /
    Transactional DDL").
    """
    from sqlalchemy import event

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite emits no BEGIN, no implicit COMMIT

    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)


@pytest.fixture
def invoicegen_connection(invoicegen_engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test.

    Bind your application's sessions to it with ``join_transaction_mode="create_savepoint"``
    to see the factories' rows and have your own writes undone too.
    """
    with invoicegen_engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            if transaction.is_active:
                transaction.rollback()


@pytest.fixture
def invoicegen_session(invoicegen_connection: Connection) -> Iterator[Session]:
    """A session whose every write is undone after the test, commits included.

    It runs inside SAVEPOINTs of :func:`invoicegen_connection`'s transaction, so the code under
    test may call ``commit()`` and ``rollback()``. Every invoicegen factory creates through it.
    """
    from sqlalchemy.orm import Session

    from invoicegen.factories import session_bound

    session = Session(bind=invoicegen_connection, join_transaction_mode="create_savepoint")
    with session, session_bound(session):
        yield session


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
    target = inspect.unwrap(fixturedef.func)
    if not isinstance(target, functools.partial):
        return None
    if "factory_class" in target.keywords:
        return target.keywords["factory_class"]
    if "factory_name" in target.keywords:
        return request.getfixturevalue(str(target.keywords["factory_name"]))
    return None


def _factory_fixture(class_name: str, what: str) -> Any:
    """A fixture giving ``invoicegen.factories.<class_name>``, creating through the session."""

    def fixture(invoicegen_session: Session) -> Any:
        return getattr(importlib.import_module("invoicegen.factories"), class_name)

    fixture.__doc__ = f"{class_name}: {what}; ``create()`` goes through invoicegen_session."
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
