"""Database URLs: passwords masked in every spelling, and no SQL (or anything else) from a URL.

Issue 10, defects 4 and 5. Errors are provoked for real (a closed port, a database that does
not exist) on PostgreSQL and MariaDB, through the CLI; the read-only mode of ``stats`` is
proven by writes that the database itself rejects.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from invoicegen import db, settings, stats, urls
from invoicegen.errors import InvoicegenError, UsageError, WriteDenied
from tests.helpers import (
    SERVER_URLS,
    admin_engine,
    assert_one_line_error,
    fresh_database,
    invoke,
    require_server,
    seed_args,
    users_in,
)
from tests.invariants import scalar

SECRET = "Zq7hunter2"  # long enough to look for in any output
AT_SECRET = "s3cr@ret-Zq7"  # an unencoded @ in the URL
ONE_LETTER = "o"  # masked by text replacement it garbled every "o" in the message
WIDE = {"COLUMNS": "400"}  # --verbose's table folds long values at 80 columns


def absent(secret: str, output: str) -> bool:
    """No part of the secret (first or last four characters) in the output."""
    if len(secret) == 1:  # a one-letter password can only be looked for in its URL place
        return f":{secret}@" not in output and f"={secret}" not in output
    return all(part not in output for part in (secret, secret[:4], secret[-4:]))


# --- masking, by the URL's structure ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret", "shown"),
    [
        ("postgresql://bob:Zq7hunter2@db.example:5432/app", SECRET,
         "postgresql://bob:***@db.example:5432/app"),
        ("postgresql://bob@db.example/app?password=Zq7hunter2&sslmode=require", SECRET,
         "postgresql://bob@db.example/app?password=***&sslmode=require"),
        ("mysql://bob@db.example/app?passwd=Zq7hunter2", SECRET,
         "mysql://bob@db.example/app?passwd=***"),
        ("mysql://bob@db.example/app?password=Zq7hunter2", SECRET,
         "mysql://bob@db.example/app?password=***"),
        ("postgres://bob@db.example/app?sslpassword=Zq7hunter2", SECRET,
         "postgresql://bob@db.example/app?sslpassword=***"),
        ("postgresql://bob:s3cr@ret-Zq7@db.example/app", AT_SECRET,
         "postgresql://bob:***@db.example/app"),
        ("mysql://root:o@db.example/app", ONE_LETTER, "mysql://root:***@db.example/app"),
    ],
)  # fmt: skip
def test_mask_hides_the_password_in_every_spelling(text: str, secret: str, shown: str) -> None:
    assert urls.mask(text) == shown
    assert urls.mask(urls.parse(text)) == shown
    assert urls.mask(text) == shown  # db re-exports the one function
    assert absent(secret, shown)


def test_an_unencoded_at_sign_belongs_to_the_password() -> None:
    url = urls.parse("postgresql://bob:s3cr@ret-Zq7@db.example:6432/app")
    assert (url.username, url.password, url.host, url.port) == (
        "bob",
        AT_SECRET,
        "db.example",
        6432,
    )


def test_a_driver_message_of_several_lines_reads_as_one_sentence_after_another() -> None:
    # psycopg: 'connection failed: ... Connection refused\n\tIs the server running on that ...'
    message = "port 1 failed: Connection refused\n\tIs the server running?\n"
    assert urls.scrub(message) == "port 1 failed: Connection refused. Is the server running?"
    assert urls.scrub("near\n  line two:\n\nsee this") == "near line two: see this"
    assert urls.scrub("done.\nNext") == "done. Next"


def test_scrub_removes_passwords_by_structure_and_leaves_other_text_alone() -> None:
    url = urls.parse("postgresql://bob:o@db.example/app")
    message = 'connection to server at "db.example", port 5432 failed: Connection refused'
    assert urls.scrub(message, url) == message  # not "c***nnecti***n"
    leaky = (
        "failed: postgresql://bob:o@db.example/app; conninfo host=db password=Zq7hunter2 "
        "port=5432; kwargs {'user': 'bob', 'password': 'Zq7hunter2'}; "
        "mysql://x:Zq7hunter2@h/d?passwd=Zq7hunter2&charset=utf8mb4"
    )
    scrubbed = urls.scrub(leaky, url)
    assert absent(SECRET, scrubbed) and ":o@" not in scrubbed
    assert "postgresql://bob:***@db.example/app" in scrubbed
    assert "host=db password=*** port=5432" in scrubbed
    assert "'user': 'bob'" in scrubbed and "charset=utf8mb4" in scrubbed


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:Zq7hunter2@127.0.0.1:1/x",
        "postgresql://app@127.0.0.1:1/x?password=Zq7hunter2",
        "mysql://app@127.0.0.1:1/x?passwd=Zq7hunter2",
    ],
)
def test_a_password_in_a_settings_file_warns_in_any_spelling(url: str, tmp_path: Path) -> None:
    (tmp_path / "invoicegen.toml").write_text(f'database_url = "{url}"\n')
    resolved = settings.resolve({}, keys=["database_url"], cwd=tmp_path, environ={})
    assert any("holds a password" in warning for warning in resolved.warnings)
    assert all(absent(SECRET, warning) for warning in resolved.warnings)


# --- real errors through the CLI, each spelling -------------------------------------------------

SPELLINGS: dict[str, tuple[str, Callable[[str, str, str, str], str]]] = {
    # name: (password, how the URL spells it: scheme, user, password, "host:port/db")
    "userinfo": (SECRET, lambda s, u, p, rest: f"{s}://{u}:{quote(p, safe='')}@{rest}"),
    "query password": (SECRET, lambda s, u, p, rest: f"{s}://{u}@{rest}?password={p}"),
    "query passwd": (SECRET, lambda s, u, p, rest: f"{s}://{u}@{rest}?passwd={p}"),
    "unencoded @": (AT_SECRET, lambda s, u, p, rest: f"{s}://{u}:{p}@{rest}"),
    "one letter": (ONE_LETTER, lambda s, u, p, rest: f"{s}://{u}:{p}@{rest}"),
}


@pytest.fixture(scope="module")
def mariadb_accounts() -> Iterator[dict[str, str]]:
    """A MariaDB account per password of SPELLINGS, allowed into nothing but ``test``."""
    require_server("mariadb")
    admin = admin_engine("mariadb")
    accounts = {password: f"ig_{uuid.uuid4().hex[:8]}" for password, _ in SPELLINGS.values()}
    with admin.connect() as connection:
        for password, user in accounts.items():
            connection.execute(
                sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY :password"), {"password": password}
            )
    try:
        yield accounts
    finally:
        with admin.connect() as connection:
            for user in accounts.values():
                connection.execute(sa.text(f"DROP USER '{user}'@'%'"))
        admin.dispose()


def _server_url(kind: str, spelling: str, fault: str, accounts: dict[str, str]) -> str:
    password, spell = SPELLINGS[spelling]
    server = urls.parse(SERVER_URLS[kind])
    port = 1 if fault == "wrong port" else server.port or (5432 if kind == "postgresql" else 3306)
    database = f"no_such_db_{uuid.uuid4().hex[:6]}"
    user = accounts[password] if kind == "mariadb" else str(server.username)
    scheme = "postgresql" if kind == "postgresql" else "mysql"
    return spell(scheme, user, password, f"{server.host}:{port}/{database}")


@pytest.mark.parametrize("fault", ["wrong port", "wrong database"])
@pytest.mark.parametrize("spelling", list(SPELLINGS))
@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_connection_errors_never_show_the_password_in_any_spelling(
    kind: str, spelling: str, fault: str, request: pytest.FixtureRequest
) -> None:
    require_server(kind)
    accounts = request.getfixturevalue("mariadb_accounts") if kind == "mariadb" else {}
    password = SPELLINGS[spelling][0]
    url = _server_url(kind, spelling, fault, accounts)
    result = invoke("stats", "-d", url, env=WIDE)
    output = result.output
    if kind == "postgresql" and spelling == "query passwd":  # libpq has no passwd: refused
        line = assert_one_line_error(result, 2)
        assert "'passwd' is not allowed" in line
    else:
        line = assert_one_line_error(result, 4)
        assert line.startswith("error: cannot connect to ")
        if fault == "wrong port":
            assert "Connection refused" in line or "Can't connect to MySQL server" in line
        elif kind == "postgresql":
            # the database is named and how to create it is said (issue 16's way forward)
            assert "database no_such_db_" in line and "does not exist" in line
            assert "CREATE DATABASE no_such_db_" in line
        else:  # authenticated (so the password got through whole), then refused the database
            assert "Access denied for user" in line and "to database 'no_such_db_" in line
    assert absent(password, output), output
    assert output.count("***") <= 1  # the password's place in the URL, nothing else
    verbose = invoke("stats", "--verbose", "-d", url, env=WIDE)
    assert verbose.exit_code == result.exit_code
    assert absent(password, verbose.output), verbose.output
    assert "***" in verbose.stderr.split("error:")[0]  # the settings table shows it masked


# --- no SQL from a URL: an allow-list per driver ------------------------------------------------


@pytest.mark.slow  # three real processes
def test_init_command_in_the_url_is_refused_and_the_victim_survives(mariadb_url: str) -> None:
    name = urls.parse(mariadb_url).database
    engine = db.make_engine(mariadb_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE victim (id INTEGER PRIMARY KEY)")
        connection.exec_driver_sql("INSERT INTO victim VALUES (1)")
    attack = f"{mariadb_url}?init_command=DROP+TABLE+{name}.victim"
    for command in ("stats", "seed", "migrate"):
        done = subprocess.run(
            [sys.executable, "-m", "invoicegen", command],
            env={**os.environ, "INVOICEGEN_DATABASE_URL": attack},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr
        assert "query parameter 'init_command' is not allowed for mysql" in lines[0]
        assert "charset" in lines[0] and "ssl_ca" in lines[0]  # the allowed ones are listed
        assert "DROP" not in lines[0]  # a refused value is never shown
    assert scalar(engine, "SELECT COUNT(*) FROM victim") == 1
    assert sa.inspect(engine).get_table_names() == ["victim"]
    engine.dispose()


@pytest.mark.parametrize(
    ("base", "parameter"),
    [
        ("postgresql://u@127.0.0.1/d", "options=-c+default_transaction_read_only%3Doff"),
        ("postgresql://u@127.0.0.1/d", "service=other"),
        ("postgresql://u@127.0.0.1/d", "passwd=Zq7hunter2"),
        ("mysql://u@127.0.0.1/d", "read_default_file=/tmp/my.cnf"),
        ("mysql://u@127.0.0.1/d", "local_infile=1"),
        ("mysql://u@127.0.0.1/d", "sql_mode=ANSI"),
        ("mysql://u@127.0.0.1/d", "client_flag=65536"),
        ("mysql://u@127.0.0.1/d", "collation=utf8mb4_bin"),
        ("mysql://u@127.0.0.1/d", "plugin=anything"),
        ("sqlite:///{tmp}/x.db", "isolation_level=AUTOCOMMIT"),
        ("sqlite:///{tmp}/x.db", "check_same_thread=false"),
        ("sqlite:///{tmp}/x.db", "uri=true"),
    ],
)
def test_query_parameters_outside_the_allow_list_exit_2_before_anything(
    base: str, parameter: str, tmp_path: Path
) -> None:
    url = base.format(tmp=tmp_path) + "?" + parameter
    line = assert_one_line_error(invoke("seed", "-n", "1", "-d", url), 2)
    name = parameter.split("=")[0]
    assert f"query parameter '{name}' is not allowed" in line and "(allowed: " in line
    assert parameter.split("=")[1] not in line
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UsageError):  # library users get the same refusal
        db.make_engine(sa.make_url(url).set(drivername=sa.make_url(url).get_backend_name()))


@pytest.mark.parametrize(
    ("kind", "query"),
    [
        ("postgresql", "application_name=invoicegen-test&connect_timeout=5&sslmode=disable"),
        ("mariadb", "charset=utf8mb4&connect_timeout=5&read_timeout=30&program_name=ig"),
    ],
)
def test_allowed_query_parameters_still_work(kind: str, query: str, tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(contextlib.contextmanager(fresh_database)(kind, tmp_path))
        result = invoke("seed", "-n", "2", "--json", "-q", "-d", f"{url}?{query}")
        assert result.exit_code == 0, result.stderr
        assert scalar(db.make_engine(url), "SELECT COUNT(*) FROM users") == 2


# --- stats is read-only ---------------------------------------------------------------------


def _seeded(url: str) -> sa.Engine:
    result = invoke("seed", "-n", "3", "--seed", "1", "--as-of", "2026-03-31", "-q", "-d", url)
    assert result.exit_code == 0, result.stderr
    return db.make_engine(url)


def test_a_read_only_connection_rejects_writes_and_is_writable_again_after(
    database_url: str,
) -> None:
    engine = _seeded(database_url)
    with pytest.raises(WriteDenied), db.connect(engine, read_only=True) as connection:
        connection.execute(sa.text("UPDATE users SET name = 'pwned'"))
    assert scalar(engine, "SELECT COUNT(*) FROM users WHERE name = 'pwned'") == 0
    with db.connect(engine) as connection:  # the pooled connection is not left read-only
        connection.execute(sa.text("UPDATE users SET name = 'renamed' WHERE id = 1"))
    assert scalar(engine, "SELECT COUNT(*) FROM users WHERE name = 'renamed'") == 1
    engine.dispose()


_READ_ONLY_CODES = ("SQLITE_READONLY", "25006", "1792")  # SQLite, PostgreSQL, MariaDB


def test_a_write_attempted_inside_stats_is_rejected_by_the_database(database_url: str) -> None:
    engine = _seeded(database_url)
    attempts: list[BaseException | None] = []

    def host_writes(connection: sa.Connection, _cursor: Any, statement: str, *_: Any) -> None:
        # A host application's hook (or anything else sharing stats' connection) tries to write
        # while stats runs its first aggregate.
        if attempts or "COUNT(" not in statement:
            return
        try:
            connection.exec_driver_sql("UPDATE users SET name = 'pwned'")
            attempts.append(None)
        except sa.exc.DBAPIError as exc:
            attempts.append(exc)

    sa.event.listen(engine, "before_cursor_execute", host_writes)
    with contextlib.suppress(InvoicegenError):  # PostgreSQL then aborts the transaction
        stats.collect(engine)
    sa.event.remove(engine, "before_cursor_execute", host_writes)
    assert len(attempts) == 1 and attempts[0] is not None, "the write went through"
    assert db.error_code(attempts[0].orig).startswith(_READ_ONLY_CODES), attempts[0]
    assert scalar(engine, "SELECT COUNT(*) FROM users WHERE name = 'pwned'") == 0
    engine.dispose()


def test_a_successful_run_shows_a_query_password_masked(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:  # PostgreSQL's trust authentication ignores it
        url = stack.enter_context(contextlib.contextmanager(fresh_database)("postgresql", tmp_path))
        with_password = f"{url}?password={SECRET}&application_name=invoicegen-test"
        seeded = invoke("seed", "-n", "2", "--json", "-v", "-d", with_password, env=WIDE)
        assert seeded.exit_code == 0, seeded.stderr
        shown = json.loads(seeded.stdout)["database"]
        assert shown.endswith("?password=***&application_name=invoicegen-test"), shown
        shown_stats = invoke("stats", "-d", with_password, env=WIDE)
        assert shown_stats.exit_code == 0, shown_stats.stderr
        assert absent(SECRET, seeded.output + shown_stats.output)


# --- the postgres:// shorthand ----------------------------------------------------------------


def test_postgres_shorthand_seeds(postgresql_url: str) -> None:
    url = postgresql_url
    shorthand = "postgres://" + url.split("://", 1)[1]
    result = invoke(*seed_args(shorthand, 2), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["database"].startswith("postgresql://")
    assert users_in(url) == 2


# --- an in-memory SQLite database ends with the process that opened it --------------------------

IN_MEMORY = ["sqlite://", "sqlite:///", "sqlite:///:memory:"]
DATABASE_COMMANDS = [
    ["seed", "-n", "3", "--seed", "1"],
    ["migrate"],
    ["reset", "--yes"],
    ["protect"],
    ["unprotect"],
    ["stats"],
    ["stats", "--check"],
]


@pytest.mark.parametrize("url", IN_MEMORY)
@pytest.mark.parametrize("args", DATABASE_COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_a_command_refuses_an_in_memory_database_and_names_a_file_instead(
    url: str, args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a command writes to (or reads from) an in-memory database is gone when it exits:
    `seed -d sqlite://` reported success for data that never outlived it."""
    monkeypatch.chdir(tmp_path)
    line = assert_one_line_error(invoke(*args, "-d", url), UsageError.exit_code)
    assert line.startswith("error: --database-url: "), line
    assert "in-memory" in line and "sqlite:///invoicegen.db" in line, line
    assert list(tmp_path.iterdir()) == []  # no file written in its place
    result = invoke(*args, "-d", url, "--json")
    assert result.exit_code == UsageError.exit_code, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["code"] == UsageError.exit_code
    assert result.stderr.strip() == f"error: {error['message']}"


def test_an_in_memory_database_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    result = invoke("migrate", env={settings.env_var("database_url"): "sqlite://"})
    line = assert_one_line_error(result, UsageError.exit_code)
    assert line.startswith("error: environment INVOICEGEN_DATABASE_URL: --database-url: "), line


def test_the_library_still_opens_an_in_memory_database() -> None:
    """The pytest plugin and users' scripts keep SQLite's in-memory database: it lives as
    long as their engine."""
    engine = db.make_engine("sqlite://")
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT 1")).scalar() == 1
    engine.dispose()
