"""`--schema NAME`: invoicegen inside an application's database, in a schema of its own.

On PostgreSQL a schema of the database, on MariaDB a database of the same server; SQLite refuses
the option. Each test puts a host application's own `users` table (with rows) where invoicegen
would otherwise go, and checks by SQL that every command keeps to its schema.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from invoicegen import db, schema, stats, urls
from invoicegen.models import User
from invoicegen.seeding import TABLES, SeedPlan, seed
from tests.helpers import (
    SERVER_URLS,
    admin_engine,
    assert_one_line_error,
    fresh_database,
    invoke,
    seed_args,
)

OURS = {*TABLES, "invoicegen_meta", "invoicegen_runs", schema.VERSION_TABLE}
HOST_ROWS = [(1, "host one"), (2, "host two"), (3, "host three")]
SERVERS = ("postgresql", "mariadb")


class Host:
    """A host application's database: its own `users` table with three rows, and the names of
    the schemas invoicegen is given (unique per test: on MariaDB they are server-wide)."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind, self.url = kind, url
        self.created: list[str] = []
        self.engine = sa.create_engine(urls.parse(url), isolation_level="AUTOCOMMIT")
        with self.engine.connect() as connection:
            connection.exec_driver_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
            connection.execute(
                sa.text("INSERT INTO users (id, name) VALUES (:id, :name)"),
                [{"id": id_, "name": name} for id_, name in HOST_ROWS],
            )

    @property
    def default_schema(self) -> str:
        return "public" if self.kind == "postgresql" else str(urls.parse(self.url).database)

    def schema(self, label: str) -> str:
        name = f"{label}_{uuid.uuid4().hex[:10]}"
        self.created.append(name)
        return name

    def tables(self, schema_name: str) -> set[str]:
        """The tables in ``schema_name`` (a MariaDB database), by information_schema."""
        query = sa.text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :schema"
        )
        with self.engine.connect() as connection:
            return set(connection.execute(query, {"schema": schema_name}).scalars())

    def host_rows(self) -> list[tuple[int, str]]:
        with self.engine.connect() as connection:
            rows = connection.exec_driver_sql(
                f"SELECT id, name FROM {self.default_schema}.users ORDER BY id"
            )
            return [(int(id_), str(name)) for id_, name in rows]

    def users_in(self, schema_name: str) -> int:
        with self.engine.connect() as connection:
            query = f"SELECT COUNT(*) FROM {schema_name}.users"
            return int(connection.exec_driver_sql(query).scalar_one())

    def assert_untouched(self) -> None:
        """The host's table, and nothing of invoicegen's, in the default schema."""
        assert self.tables(self.default_schema) == {"users"}
        assert self.host_rows() == HOST_ROWS

    def close(self) -> None:
        if self.kind == "mariadb":  # the databases this test's schemas made on the server
            with self.engine.connect() as connection:  # a host key into one would stop it
                connection.exec_driver_sql("DROP TABLE IF EXISTS notes")
            with admin_engine("mariadb").connect() as connection:
                for name in self.created:
                    connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        self.engine.dispose()


@pytest.fixture(params=SERVERS)
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    for url in fresh_database(request.param, tmp_path):
        made = Host(request.param, url)
        try:
            yield made
        finally:
            made.close()


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = invoke(*args, env=env)
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    return result.stdout


def test_without_a_schema_the_host_table_is_in_the_way(host: Host) -> None:
    """The problem --schema solves: the application's own users table blocks invoicegen."""
    message = assert_one_line_error(invoke(*seed_args(host.url, 2)), 5)
    assert "--schema NAME" in message
    host.assert_untouched()


def test_every_command_keeps_to_its_schema(host: Host) -> None:
    ig = host.schema("ig")
    ok("migrate", "-d", host.url, "--schema", ig)
    assert host.tables(ig) == OURS
    host.assert_untouched()

    ok(*seed_args(host.url, 5), "--schema", ig)
    ok(*seed_args(host.url, 2), "--append", "--schema", ig)  # the schema's drift check too
    assert host.users_in(ig) == 7
    stats = json.loads(ok("stats", "--json", "-d", host.url, "--schema", ig))
    assert stats["counts"]["users"] == 7  # not the host's 3
    report = json.loads(ok("stats", "--check", "--json", "-d", host.url, "--schema", ig))
    assert report["ok"] is True
    host.assert_untouched()

    planned = json.loads(ok("reset", "--dry-run", "--json", "-d", host.url, "--schema", ig))
    assert {table["name"] for table in planned["tables"]} == OURS
    assert {t["name"]: t["rows"] for t in planned["tables"]}["users"] == 7
    assert host.users_in(ig) == 7  # a dry run

    result = invoke("reset", "--yes", "-d", host.url, "--schema", ig)
    assert result.exit_code == 0, result.stderr
    target, done = result.stderr.splitlines()[0], result.stdout.splitlines()[-1]
    assert target.startswith("target: ") and ig in target  # says where it drops
    assert ig in done
    assert host.tables(ig) == OURS  # migrated again, empty; the schema itself stays
    assert host.users_in(ig) == 0
    host.assert_untouched()


def test_the_library_takes_the_schema_from_the_engine(host: Host) -> None:
    """``make_engine(url, schema=...)``: the services need nothing else."""
    ig = host.schema("ig")
    engine = db.make_engine(host.url, schema=ig)
    try:
        assert db.schema_of(engine) == ig
        plan = SeedPlan(users=3, seed=5, as_of=dt.date(2026, 3, 31))
        assert seed(engine, plan).counts["users"] == 3
        with engine.connect() as connection:  # SQLAlchemy statements are qualified too
            assert connection.execute(sa.select(sa.func.count()).select_from(User)).scalar() == 3
        assert stats.collect(engine).counts["users"] == 3
    finally:
        engine.dispose()
    with host.engine.connect() as connection:  # the schema's id sequence follows the seed
        connection.exec_driver_sql(
            f"INSERT INTO {ig}.users (name, email, phone) VALUES ('app', 'app@example.org', '1')"
        )
        assert connection.exec_driver_sql(f"SELECT MAX(id) FROM {ig}.users").scalar() == 4
    assert host.users_in(ig) == 4
    host.assert_untouched()


def test_two_schemas_in_one_database_are_independent(host: Host) -> None:
    first, second = host.schema("first"), host.schema("second")
    ok(*seed_args(host.url, 3), "--schema", first)
    ok(*seed_args(host.url, 4, seed_value=9), "--schema", second)
    assert (host.users_in(first), host.users_in(second)) == (3, 4)

    ok("protect", "-d", host.url, "--schema", first)
    refused = assert_one_line_error(invoke("reset", "--yes", "-d", host.url, "--schema", first), 3)
    assert f"schema {first} of" in refused and f"--force-protected {first}" in refused
    ok("reset", "--yes", "-d", host.url, "--schema", second)  # the mark is the first's alone
    assert (host.users_in(first), host.users_in(second)) == (3, 0)

    database = str(urls.parse(host.url).database)  # the schema's name confirms, not this
    wrong = invoke(
        "reset", "--yes", "--force-protected", database, "-d", host.url, "--schema", first
    )
    assert "does not name this schema" in assert_one_line_error(wrong, 3)
    assert host.users_in(first) == 3
    ok("reset", "--yes", "--force-protected", first, "-d", host.url, "--schema", first)
    assert host.users_in(first) == 0
    ok("unprotect", "-d", host.url, "--schema", first)
    ok("reset", "--yes", "-d", host.url, "--schema", first)
    host.assert_untouched()


def test_a_host_foreign_key_into_the_schema_stops_reset(host: Host) -> None:
    ig = host.schema("ig")
    ok(*seed_args(host.url, 2), "--schema", ig)
    with host.engine.connect() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, user_id INTEGER, "
            f"CONSTRAINT notes_user FOREIGN KEY (user_id) REFERENCES {ig}.users (id))"
        )
        connection.exec_driver_sql("INSERT INTO notes VALUES (1, 1)")
    message = assert_one_line_error(invoke("reset", "--yes", "-d", host.url, "--schema", ig), 3)
    assert "notes_user" in message
    assert host.users_in(ig) == 2  # nothing dropped


@pytest.mark.parametrize("how", ["environment", "profile"])
def test_the_schema_comes_from_the_environment_or_a_profile(
    how: str, postgresql_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = Host("postgresql", postgresql_url)
    try:
        monkeypatch.chdir(tmp_path)
        for name in ("INVOICEGEN_PROFILE", "INVOICEGEN_SCHEMA"):
            monkeypatch.delenv(name, raising=False)
        if how == "environment":
            env, args, expected = {"INVOICEGEN_SCHEMA": "from_env"}, [], "from_env"
        else:
            (tmp_path / "invoicegen.toml").write_text(
                '[profiles.inside]\nschema = "from_profile"\n'
            )
            env, args, expected = {}, ["--profile", "inside"], "from_profile"
        ok(*seed_args(host.url, 2), *args, env=env)
        assert host.users_in(expected) == 2
        result = invoke("stats", "--verbose", "--json", "-d", host.url, *args, env=env)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["counts"]["users"] == 2
        source = "environment INVOICEGEN_SCHEMA" if how == "environment" else "profile inside"
        assert any(
            line.split()[:1] == ["schema"] and source in line for line in result.stderr.splitlines()
        )
        host.assert_untouched()
    finally:
        host.close()


def test_a_schema_named_by_a_reserved_word_is_quoted(postgresql_url: str) -> None:
    host = Host("postgresql", postgresql_url)
    try:
        ok(*seed_args(host.url, 2), "--schema", "order")
        assert host.users_in('"order"') == 2
        assert (
            json.loads(ok("stats", "--json", "-d", host.url, "--schema", "order"))["counts"][
                "users"
            ]
            == 2
        )
        ok("reset", "--yes", "-d", host.url, "--schema", "order")
        host.assert_untouched()
    finally:
        host.close()


def test_mariadb_never_touches_the_url_database(mariadb_url: str) -> None:
    """The schema's database is created from a connection to no database; the URL's own
    database keeps exactly its tables."""
    host = Host("mariadb", mariadb_url)
    try:
        ig = host.schema("ig")
        assert_one_line_error(invoke("stats", "-d", host.url, "--schema", ig), 5)
        ok("migrate", "-d", host.url, "--schema", ig)
        with host.engine.connect() as connection:
            charset = connection.execute(
                sa.text(
                    "SELECT default_character_set_name FROM information_schema.schemata "
                    "WHERE schema_name = :name"
                ),
                {"name": ig},
            ).scalar_one()
        assert charset == "utf8mb4"
        host.assert_untouched()
    finally:
        host.close()


COMMANDS = (
    ["migrate"],
    ["seed", "-n", "2"],
    ["stats"],
    ["stats", "--check"],
    ["reset", "--yes"],
    ["reset", "--dry-run"],
    ["protect"],
    ["unprotect"],
)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_sqlite_refuses_a_schema(command: list[str], tmp_path: Path) -> None:
    """SQLite has no schemas, and an ATTACHed file would not keep a host's `users` apart
    (unqualified names find the main database's first): a file of its own is the way."""
    path = tmp_path / "app.db"
    message = assert_one_line_error(
        invoke(*command, "-d", f"sqlite:///{path}", "--schema", "ig"), 2
    )
    assert "SQLite has no schemas" in message and "--schema" in message
    assert not path.exists()


def test_sqlite_refuses_a_schema_from_the_environment(tmp_path: Path) -> None:
    result = invoke(
        *seed_args(f"sqlite:///{tmp_path / 'app.db'}", 2), env={"INVOICEGEN_SCHEMA": "ig"}
    )
    assert "SQLite has no schemas" in assert_one_line_error(result, 2)


@pytest.mark.parametrize(
    "name",
    ["Ig", "1ig", "ig-data", "ig.data", "", "x" * 64, "pg_data", "information_schema", "mysql"],
)
def test_a_schema_name_is_checked_first(name: str, tmp_path: Path) -> None:
    """Checked before anything connects: one line naming the option, exit 2."""
    url = SERVER_URLS["postgresql"]
    message = assert_one_line_error(invoke("migrate", "-d", url, "--schema", name), 2)
    assert "--schema" in message
    env_message = assert_one_line_error(
        invoke("stats", "-d", url, env={"INVOICEGEN_SCHEMA": name or " "}), 2
    )
    assert "INVOICEGEN_SCHEMA" in env_message
