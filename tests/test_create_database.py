"""``--create-database``: a server database that is not there is created (PostgreSQL through
the maintenance database ``postgres``, MariaDB through a connection without a database);
without the option, the missing database's one line names it. SQLite: a no-op."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from invoicegen import urls
from tests.helpers import (
    SERVER_URLS,
    admin_engine,
    assert_one_line_error,
    invoke,
    require_server,
    users_in,
)

EXISTS = {
    "postgresql": "SELECT COUNT(*) FROM pg_database WHERE datname = %(name)s",
    "mariadb": "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = %(name)s",
}


def _exists(kind: str, name: str) -> bool:
    engine = admin_engine(kind)
    try:
        with engine.connect() as connection:
            return bool(connection.exec_driver_sql(EXISTS[kind], {"name": name}).scalar())
    finally:
        engine.dispose()


@pytest.fixture(params=["postgresql", "mariadb"])
def missing(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, str]]:
    """A server, and a database name of this test's (a hyphen: it must be quoted) that does
    not exist there; dropped afterwards if a test created it."""
    kind = str(request.param)
    require_server(kind)
    name = f"ig_create-{uuid.uuid4().hex[:10]}"
    url = urls.parse(SERVER_URLS[kind]).set(database=name).render_as_string(False)
    yield kind, name, url
    engine = admin_engine(kind)
    try:
        quoted = engine.dialect.identifier_preparer.quote(name)
        force = " WITH (FORCE)" if kind == "postgresql" else ""
        with engine.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}{force}")
    finally:
        engine.dispose()


@pytest.mark.servers
@pytest.mark.parametrize("command", ["migrate", "seed"])
def test_without_the_option_the_error_names_it(command: str, missing: tuple[str, str, str]) -> None:
    kind, name, url = missing
    result = invoke(command, "-d", url, *(["-n", "1"] if command == "seed" else []))
    line = assert_one_line_error(result, 4)
    assert f"database {name} does not exist" in line
    assert "--create-database" in line
    assert not _exists(kind, name)


@pytest.mark.servers
def test_migrate_creates_the_database_then_finds_it(missing: tuple[str, str, str]) -> None:
    kind, name, url = missing
    created = invoke("migrate", "--create-database", "-d", url)
    assert created.exit_code == 0, created.stderr
    assert _exists(kind, name)
    assert f"created database {name}" in created.stderr
    assert "is at revision" in created.stdout
    again = invoke("migrate", "--create-database", "-d", url)
    assert again.exit_code == 0, again.stderr
    assert "created database" not in again.stderr  # there already: nothing to create


@pytest.mark.servers
def test_seed_creates_the_database_and_seeds_it(missing: tuple[str, str, str]) -> None:
    kind, name, url = missing
    seeded = invoke("seed", "--create-database", "-n", "3", "--seed", "1", "-q", "-d", url)
    assert seeded.exit_code == 0, seeded.stderr
    assert (seeded.stdout, seeded.stderr) == ("", "")  # -q hides the note
    assert _exists(kind, name) and users_in(url) == 3


def test_on_sqlite_the_option_changes_nothing(sqlite_url: str) -> None:
    """A SQLite file is created when first written, with or without the option."""
    done = invoke("migrate", "--create-database", "-d", sqlite_url)
    assert done.exit_code == 0, done.stderr
    assert "created database" not in done.stderr
    engine = sa.create_engine(sqlite_url)
    try:
        assert "users" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
