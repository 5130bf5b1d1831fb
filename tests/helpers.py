"""Helpers shared by the test modules: the test servers, the CLI in-process and as a real
process, and a few reads of a seeded database. Test modules import from here (and from the
focused helpers invariants.py, manifest.py, readme.py), never from each other or conftest.py.

Fixtures live in conftest.py; the plain functions behind them live here.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from invoicegen import db, schema, urls
from invoicegen.cli import app
from invoicegen.seeding import TABLES, SeedPlan, seed
from tests.invariants import children_range, scalar, violations

AS_OF = "2026-03-31"
SEED = 5

# --- the test servers ---------------------------------------------------------------------------

SERVER_URLS = {
    "postgresql": os.environ.get(
        "INVOICEGEN_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get("INVOICEGEN_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}
DIALECTS = ("sqlite", "postgresql", "mariadb")


@functools.cache
def _server_problem(kind: str) -> str | None:
    engine = sa.create_engine(urls.parse(SERVER_URLS[kind]), connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except Exception as exc:  # any failure means: no usable server
        return (
            f"{kind} server not reachable at {urls.mask(SERVER_URLS[kind])}: {type(exc).__name__}"
        )
    finally:
        engine.dispose()
    return None


def require_server(kind: str) -> None:
    """Skip the test when the server is not reachable; fail it with INVOICEGEN_REQUIRE_SERVERS=1."""
    problem = _server_problem(kind)
    if problem is None:
        return
    if os.environ.get("INVOICEGEN_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{problem} (INVOICEGEN_REQUIRE_SERVERS=1)")
    pytest.skip(problem)


def admin_engine(kind: str) -> sa.Engine:
    """An autocommit engine on the server's administrative account."""
    return sa.create_engine(urls.parse(SERVER_URLS[kind]), isolation_level="AUTOCOMMIT")


def _fresh_server_database(kind: str) -> Iterator[str]:
    require_server(kind)
    name = f"invoicegen_test_{uuid.uuid4().hex[:12]}"
    engine = admin_engine(kind)
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    url = urls.parse(SERVER_URLS[kind]).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            force = " WITH (FORCE)" if kind == "postgresql" else ""
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
        engine.dispose()


def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A new, empty database's URL (yielded once), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'invoicegen-test.db'}"
    else:
        yield from _fresh_server_database(kind)


# --- the command line ---------------------------------------------------------------------------

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """`invoicegen ARGS` in this process, through Typer's CliRunner."""
    return runner.invoke(app, list(args), env=env, input=input)


def assert_one_line_error(result: Result, code: int) -> str:
    """The CliRunner result exited ``code`` with one `error: ` line on stderr; that line."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def one_line_error(stderr: str) -> str:
    """A real process's stderr is one `error: ` line; that line."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def cli(*args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
    """`python -m invoicegen ARGS` as a real process."""
    return subprocess.Popen(
        [sys.executable, "-m", "invoicegen", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        **popen,
    )


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m invoicegen ARGS` as a real process, to the end."""
    return subprocess.run(
        [sys.executable, "-m", "invoicegen", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def seed_args(
    url: str, users: int, *extra: str, seed_value: int = SEED, workers: int = 1
) -> list[str]:
    """The arguments of a quiet, reproducible `seed` of ``users`` users."""
    return [
        "seed",
        "-n",
        str(users),
        "--seed",
        str(seed_value),
        "--as-of",
        AS_OF,
        "--workers",
        str(workers),
        "-q",
        "-d",
        url,
        *extra,
    ]


# --- what a database holds ----------------------------------------------------------------------


def users_in(url: str) -> int:
    """Committed users in the database (0 when there is no users table)."""
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            if "users" not in sa.inspect(connection).get_table_names():
                return 0
            return int(connection.exec_driver_sql("SELECT COUNT(*) FROM users").scalar_one())
    finally:
        engine.dispose()


def wait_for_users(url: str, at_least: int, process: subprocess.Popen[str]) -> None:
    """Wait until a running seed process has committed ``at_least`` users."""
    deadline = time.monotonic() + 120
    while users_in(url) < at_least:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the seeding process committed nothing in time"
        time.sleep(0.05)


def table_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return schema.count_rows(connection)


def assert_whole_trees(engine: sa.Engine, tmp_path: Path, *, seed_value: int = SEED) -> int:
    """The database holds exactly the first N user trees of the plan, each whole; N."""
    users = scalar(engine, "SELECT COUNT(*) FROM users")
    reference = db.make_engine(f"sqlite:///{tmp_path / f'reference-{uuid.uuid4().hex}.db'}")
    plan = SeedPlan(users=users, seed=seed_value, as_of=dt.date.fromisoformat(AS_OF))
    assert table_counts(engine) == seed(reference, plan).counts
    for table in TABLES:
        assert (scalar(engine, f"SELECT MAX(id) FROM {table}") or 0) == scalar(
            engine, f"SELECT COUNT(*) FROM {table}"
        ), table
    if users:
        assert children_range(engine, "users", "clients", "user_id")[0] >= 1
        assert children_range(engine, "clients", "contracts", "client_id")[0] >= 1
        assert children_range(engine, "contracts", "invoices", "contract_id")[0] >= 1
    as_of = dt.date.fromisoformat(AS_OF)
    assert violations(engine, as_of) == dict.fromkeys(violations(engine, as_of), 0)
    return int(users)


def snapshot(engine: sa.Engine, tables: list[str]) -> dict[str, Any]:
    """Columns and rows of some tables, to prove they were not touched."""
    inspector = sa.inspect(engine)
    with engine.connect() as connection:
        return {
            table: (
                [(c["name"], str(c["type"])) for c in inspector.get_columns(table)],
                connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY 1").all(),
            )
            for table in tables
        }


def add_foreign_tables(engine: sa.Engine) -> list[str]:
    """A host application's tables, one of them named like Alembic's; their names."""
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE app_orders (id INTEGER PRIMARY KEY, note VARCHAR(20))"
        )
        connection.exec_driver_sql("INSERT INTO app_orders VALUES (1, 'keep me'), (2, 'me too')")
        connection.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('hostapp123')")
    return ["alembic_version", "app_orders"]


# --- the pytest plugin ----------------------------------------------------------------------------


def assert_lost_isolation_fails_and_leaks_nothing(
    pytester: pytest.Pytester, database_url: str, engine: sa.Engine, module: str
) -> None:
    """Run ``module`` twice: its first test ends the test's transaction with ``{statement}``
    (DDL on MariaDB, which commits implicitly; elsewhere DDL is transactional, a COMMIT is
    not) and must fail saying so; the second must pass; nothing may be left in the database."""
    statement = "CREATE TABLE leak_t (id INTEGER)" if engine.dialect.name == "mysql" else "COMMIT"
    pytester.makepyfile(test_leak=module.format(statement=statement))
    for _run in range(2):  # a second run starts from an empty database too
        result = pytester.runpytest("-p", "no:cacheprovider", "--invoicegen-db-url", database_url)
        result.assert_outcomes(failed=1, passed=1)
        result.stdout.fnmatch_lines(
            ["*invoicegen: the code under test ended the test's transaction*isolation was lost*"]
        )
        # the test itself fails with the reason (after the driver's error it provoked, if any)
        result.stdout.fnmatch_lines(
            ["FAILED *test_code_that_ends_the_transaction - Failed: invoicegen*"]
        )
        with engine.connect() as connection:
            assert all(n == 0 for n in schema.count_rows(connection).values())
            assert connection.exec_driver_sql("SELECT COUNT(*) FROM invoicegen_meta").scalar() == 0
        assert "leak_t" not in sa.inspect(engine).get_table_names()
