"""Fixtures: a fresh, empty database per test on SQLite, PostgreSQL and MariaDB.

Servers come from INVOICEGEN_TEST_POSTGRESQL_URL and INVOICEGEN_TEST_MYSQL_URL (an account that
may create databases). A server that cannot be reached skips its tests, unless
INVOICEGEN_REQUIRE_SERVERS=1 (as in CI), where it fails them. The plain functions behind these
fixtures (fresh_database, require_server ...) are in tests/helpers.py, for the tests to import.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiomysql  # noqa: F401  # see below
import aiosqlite  # noqa: F401
import asyncpg  # noqa: F401
import factory.random
import psycopg  # noqa: F401
import pymysql  # noqa: F401
import pytest
import sqlalchemy as sa
import sqlalchemy.ext.asyncio  # noqa: F401

import invoicegen.factories  # noqa: F401
from invoicegen import db
from tests.helpers import DIALECTS, SERVER_URLS, fresh_database

# The drivers and the factories are imported here, before any in-process pytester run: modules
# first imported during such a run are dropped after it, and imported again, psycopg's Python
# classes no longer match its compiled part, and a test module's factories are not the plugin's.


@pytest.fixture(params=DIALECTS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each of the three engines."""
    yield from fresh_database(request.param, tmp_path)


@pytest.fixture
def postgresql_url(tmp_path: Path) -> Iterator[str]:
    yield from fresh_database("postgresql", tmp_path)


@pytest.fixture
def mariadb_url(tmp_path: Path) -> Iterator[str]:
    yield from fresh_database("mariadb", tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'invoicegen-test.db'}"


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def plugin_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest runs inside a test (pytester) see no outside settings for the invoicegen plugin."""
    names = ("INVOICEGEN_TEST_DATABASE_URL", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_ADDOPTS")
    for name in names:
        monkeypatch.delenv(name, raising=False)


def _needs_a_server(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    fixtures = getattr(item, "fixturenames", ())
    return (
        any(value in SERVER_URLS for value in params if isinstance(value, str))
        or any(name in fixtures for name in ("postgresql_url", "mariadb_url"))
        or item.get_closest_marker("servers") is not None
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every case that runs on PostgreSQL or MariaDB carries the `servers` marker, so that
    `-m "not servers"` runs the suite on SQLite alone."""
    for item in items:
        if _needs_a_server(item):
            item.add_marker(pytest.mark.servers)


@pytest.fixture(autouse=True)
def _reseeded_factories() -> None:
    """Each test draws factory values from the same known state, not from whatever the tests
    before it left in factory-boy's shared generator."""
    factory.random.reseed_random(0)
