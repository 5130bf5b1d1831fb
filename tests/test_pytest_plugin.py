"""The pytest plugin, from the outside: real pytest runs (pytester) against real databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from invoicegen import db, schema, urls
from invoicegen.models import User
from tests.helpers import assert_lost_isolation_fails_and_leaks_nothing

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.usefixtures("plugin_environment")

ROLLBACK_MODULE = """
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from invoicegen import factories
from invoicegen.models import Invoice, User


def count(session, model):
    return session.scalar(sa.select(sa.func.count()).select_from(model))


def test_a_full_factory_creates_a_tree(user_factory, invoicegen_session):
    user = user_factory.create(clients=2, clients__contracts=1, clients__contracts__invoices=3)
    assert user.id is not None
    assert count(invoicegen_session, Invoice) == 6


def test_rows_of_the_previous_test_are_gone(invoicegen_session):
    assert count(invoicegen_session, User) == 0


def test_code_under_test_may_commit_and_roll_back(isolated_user_factory, invoicegen_session):
    isolated_user_factory.create(email="committed@example.com")
    invoicegen_session.commit()
    invoicegen_session.add(isolated_user_factory.build(email="committed@example.com"))
    with pytest.raises(IntegrityError):
        invoicegen_session.commit()
    invoicegen_session.rollback()
    assert count(invoicegen_session, User) == 1


def test_committed_rows_are_gone_too(invoicegen_session):
    assert count(invoicegen_session, User) == 0


@pytest.mark.parametrize(
    "name", ["user", "client", "contract", "invoice"] + ["isolated_" + n for n in
    ("user", "client", "contract", "invoice")]
)
def test_each_factory_fixture_creates_through_the_session(name, request, invoicegen_session):
    made = request.getfixturevalue(name + "_factory").create()
    class_name = "".join(part.title() for part in name.split("_")) + "Factory"
    assert request.getfixturevalue(name + "_factory") is getattr(factories, class_name)
    assert made in invoicegen_session and made.id is not None
"""

URL_MODULE = """
def test_url(invoicegen_database_url, invoicegen_engine, tmp_path_factory):
    assert invoicegen_database_url == {expected!r} or (
        {expected!r} is None
        and invoicegen_database_url.startswith("sqlite:///")
        and invoicegen_database_url.endswith("invoicegen.db")
        and str(tmp_path_factory.getbasetemp()) in invoicegen_database_url
    )
"""

USES_SESSION = """
def test_uses_the_session(invoicegen_session):
    assert invoicegen_session.is_active
"""


def _count_users(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(User)).scalar_one()


def test_fixtures_roll_back_every_test_even_one_that_commits(
    pytester: pytest.Pytester, database_url: str, engine: sa.Engine
) -> None:
    pytester.makepyfile(test_rollback=ROLLBACK_MODULE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--invoicegen-db-url", database_url)
    result.assert_outcomes(passed=12)
    with db.connect(engine) as connection:  # migrated by the plugin, and left empty
        assert schema.inspect_schema(connection).is_current
    assert _count_users(engine) == 0


@pytest.mark.parametrize("given", ["option", "ini", "environment", "nothing"])
def test_the_url_comes_from_the_option_then_ini_then_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    sources = ["option", "ini", "environment"]
    files = {source: pytester.path / f"{source}.db" for source in sources}
    urls = {source: f"sqlite:///{path}" for source, path in files.items()}
    active = sources[sources.index(given) :] if given in sources else []
    args = ["--invoicegen-db-url", urls["option"]] if "option" in active else []
    if "ini" in active:
        pytester.makeini(f"[pytest]\ninvoicegen_db_url = {urls['ini']}\n")
    if "environment" in active:
        monkeypatch.setenv("INVOICEGEN_TEST_DATABASE_URL", urls["environment"])
    pytester.makepyfile(test_url=URL_MODULE.format(expected=urls.get(given)))
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    assert {source for source, path in files.items() if path.exists()} == (
        {given} if given in sources else set()
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nosuch://db", "invoicegen: --invoicegen-db-url: unsupported or malformed URL*"),
        (
            "postgresql://nobody@127.0.0.1:1/nothing",
            "invoicegen: invoicegen_engine: cannot connect to postgresql://nobody@127.0.0.1:1/*",
        ),
    ],
)
def test_a_database_problem_fails_the_tests_in_one_line(
    pytester: pytest.Pytester, url: str, message: str
) -> None:
    pytester.makepyfile(test_session=USES_SESSION)
    result = pytester.runpytest("-p", "no:cacheprovider", "--invoicegen-db-url", url)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])
    result.stdout.no_fnmatch_line("*pytest_plugin.py:*")  # no traceback into the plugin
    result.stdout.no_fnmatch_line("*During handling of the above exception*")


def test_p_no_invoicegen_disables_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_session=USES_SESSION)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:invoicegen")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'invoicegen_session' not found*"])
    refused = pytester.runpytest("-p", "no:invoicegen", "--invoicegen-db-url", "sqlite://")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*unrecognized arguments: --invoicegen-db-url*"])


def test_with_autoloading_off_p_enables_the_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_session=USES_SESSION)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(errors=1)
    enabled = pytester.runpytest("-p", "no:cacheprovider", "-p", "invoicegen.pytest_plugin")
    enabled.assert_outcomes(passed=1)


XDIST_MODULE = """
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from invoicegen.models import User


@pytest.mark.parametrize("n", range(6))
def test_each_worker_has_its_own_database(
    n, worker_id, invoicegen_database_url, isolated_user_factory, invoicegen_session
):
    assert worker_id in make_url(invoicegen_database_url).database
    isolated_user_factory.create_batch(n + 1)
    invoicegen_session.commit()
    assert invoicegen_session.scalar(sa.select(sa.func.count()).select_from(User)) == n + 1
"""


def _databases_like(engine: sa.Engine, prefix: str) -> set[str]:
    query = {
        "postgresql": "SELECT datname FROM pg_database WHERE datname LIKE :pattern",
        "mysql": "SELECT schema_name FROM information_schema.schemata "
        "WHERE schema_name LIKE :pattern",
    }[engine.dialect.name]
    with engine.connect() as connection:
        rows = connection.execute(sa.text(query), {"pattern": prefix + "%"})
        return {row[0] for row in rows}


@pytest.mark.slow
def test_under_xdist_each_worker_gets_its_own_database(
    pytester: pytest.Pytester, database_url: str, engine: sa.Engine
) -> None:
    pytester.makepyfile(test_workers=XDIST_MODULE)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--invoicegen-db-url", database_url
    )
    result.assert_outcomes(passed=6)
    url = sa.make_url(database_url)
    path = urls.sqlite_path(url)
    if path is not None:  # SQLite: one file per worker, next to the one named
        assert not path.exists()
        workers = {p.name for p in path.parent.glob(f"{path.stem}-gw*{path.suffix}")}
        assert workers == {f"{path.stem}-gw0{path.suffix}", f"{path.stem}-gw1{path.suffix}"}
    else:  # a server: NAME_pytest_TOKEN_gw0 and ..._gw1 were created, then dropped at the end
        assert _databases_like(engine, f"{url.database}_pytest_") == set()


@pytest.mark.slow
def test_under_xdist_the_default_sqlite_file_is_per_worker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_workers=XDIST_MODULE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=6)


def test_importing_the_plugin_imports_no_database_code() -> None:
    code = (
        "import sys, invoicegen.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'alembic', 'factory', 'faker', 'rich', 'typer') "
        "or m.startswith('invoicegen.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    assert done.stdout.strip() == "['invoicegen.pytest_async', 'invoicegen.pytest_plugin']"


# --- pytest-factoryboy ---------------------------------------------------------------------------

FACTORYBOY_MODULE = """
import pytest
import sqlalchemy as sa
from pytest_factoryboy import register

from invoicegen.factories import ClientFactory, ContractFactory, UserFactory
from invoicegen.models import Client, Contract, User

register(UserFactory)
register(ClientFactory)
register(ContractFactory)


def count(session, model):
    return session.scalar(sa.select(sa.func.count()).select_from(model))


def test_the_user_fixture_is_a_user_with_its_default_clients(user, invoicegen_session):
    assert isinstance(user, User) and user.id is not None and user in invoicegen_session
    assert 1 <= len(user.clients) <= 3
    assert count(invoicegen_session, User) == 1
    assert count(invoicegen_session, Client) == len(user.clients)


def test_the_registered_factory_fixture_creates_through_the_session(user_factory):
    user = user_factory.create(clients=2, clients__contracts=1)
    assert user.id is not None and len(user.clients) == 2


@pytest.mark.parametrize("user__clients", [0, 2])
def test_attribute_fixtures_shape_the_model(user, user__clients, invoicegen_session):
    assert len(user.clients) == user__clients
    assert count(invoicegen_session, Client) == user__clients


def test_related_model_fixtures(contract, client, user):
    assert contract.client is client and client.user is user
    assert contract.invoices and all(i.contract is contract for i in contract.invoices)


def test_rows_of_the_previous_tests_are_gone(invoicegen_session):
    assert count(invoicegen_session, User) == 0
"""


def test_full_factories_work_under_pytest_factoryboy_register(
    pytester: pytest.Pytester, database_url: str
) -> None:
    pytester.makepyfile(test_factoryboy=FACTORYBOY_MODULE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--invoicegen-db-url", database_url)
    result.assert_outcomes(passed=6)


# --- a database that is not empty, and code under test that ends the isolation ----------------


def test_a_database_with_rows_of_others_is_refused_in_one_line(
    pytester: pytest.Pytester, database_url: str, engine: sa.Engine
) -> None:
    seeded = subprocess.run(
        [sys.executable, "-m", "invoicegen", "seed", "-n", "3", "-q", "-d", database_url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    url = sa.make_url(database_url)
    if url.get_backend_name() == "postgresql":  # trust authentication: the password is unused
        url = url.set(password="s3cret-pw")
    pytester.makepyfile(test_session=USES_SESSION)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--invoicegen-db-url", url.render_as_string(hide_password=False)
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*invoicegen: invoicegen_engine: the test database * already holds rows the tests "
            "did not make (3 users, * clients, * contracts, * invoices); point "
            "--invoicegen-db-url (or ini invoicegen_db_url, or $INVOICEGEN_TEST_DATABASE_URL) "
            "at an empty database*"
        ]
    )
    assert "s3cret-pw" not in result.stdout.str() + result.stderr.str()
    result.stdout.no_fnmatch_line("*pytest_plugin.py:*")
    assert _count_users(engine) == 3  # nothing touched


LEAK_MODULE = """
import sqlalchemy as sa

from invoicegen.models import User


def count(session):
    return session.scalar(sa.select(sa.func.count()).select_from(User))


def test_code_that_ends_the_transaction(isolated_user_factory, invoicegen_session):
    isolated_user_factory.create_batch(3)
    invoicegen_session.execute(sa.text({statement!r}))
    isolated_user_factory.create()
    invoicegen_session.commit()


def test_the_next_test_sees_nothing_leaked(invoicegen_session):
    assert count(invoicegen_session) == 0
    assert "leak_t" not in sa.inspect(invoicegen_session.connection()).get_table_names()
"""


def test_code_that_ends_the_isolation_fails_and_leaks_nothing(
    pytester: pytest.Pytester, database_url: str, engine: sa.Engine
) -> None:
    assert_lost_isolation_fails_and_leaks_nothing(pytester, database_url, engine, LEAK_MODULE)


# --- concurrent runs on one server, and what killed runs leave -----------------------------------

CONCURRENT_MODULE = """
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from invoicegen.models import User


@pytest.mark.parametrize("n", range(8))
def test_a_database_of_this_run_and_worker(n, worker_id, invoicegen_database_url,
                                           isolated_user_factory, invoicegen_session):
    name = make_url(invoicegen_database_url).database
    assert name.endswith("_" + worker_id) and "_pytest_" in name
    isolated_user_factory.create_batch(n + 1)
    invoicegen_session.commit()
    time.sleep(0.4)  # the two runs overlap
    assert invoicegen_session.scalar(sa.select(sa.func.count()).select_from(User)) == n + 1
"""


def _server_only(database_url: str) -> None:
    if sa.make_url(database_url).get_backend_name() == "sqlite":
        pytest.skip("worker databases are created on servers only")


@pytest.mark.slow
def test_two_concurrent_xdist_runs_on_one_server_both_pass(
    pytester: pytest.Pytester, database_url: str, engine: sa.Engine
) -> None:
    _server_only(database_url)
    pytester.makepyfile(test_concurrent=CONCURRENT_MODULE)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "-q"]
    runs = [
        subprocess.Popen(
            [
                *command,
                "--basetemp",
                str(pytester.path / f"tmp{i}"),
                "--invoicegen-db-url",
                database_url,
            ],
            cwd=pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output
        assert "8 passed" in output, output
    url = sa.make_url(database_url)
    assert _databases_like(engine, f"{url.database}_pytest_") == set()


def test_databases_left_by_killed_runs_are_dropped_unless_in_use(
    pytester: pytest.Pytester, database_url: str, engine: sa.Engine
) -> None:
    """A killed run leaves its database with no connection and its lock released."""
    _server_only(database_url)
    base = sa.make_url(database_url).database
    admin = engine.execution_options(isolation_level="AUTOCOMMIT")
    left = f"{base}_pytest_0badc0de_gw0"
    in_use = f"{base}_pytest_0badc0de_gw1"
    not_ours = f"{base}_pytest_keepme"
    with admin.connect() as connection:
        for name in (left, in_use, not_ours):
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
    holder = db.make_engine(sa.make_url(database_url).set(database=in_use))
    try:
        with holder.connect() as busy:
            busy.exec_driver_sql("SELECT 1")
            pytester.makepyfile(test_workers=XDIST_MODULE)
            result = pytester.runpytest_subprocess(
                "-p", "no:cacheprovider", "-n", "2", "--invoicegen-db-url", database_url
            )
            result.assert_outcomes(passed=6, warnings=None)
            result.stdout.fnmatch_lines([f"*invoicegen: left database(s) {in_use} of an earlier*"])
            assert _databases_like(engine, f"{base}_pytest_") == {in_use, not_ours}
    finally:
        holder.dispose()
        with admin.connect() as connection:
            for name in (in_use, not_ours):
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")


KILLED_MODULE = """
import time

import pytest


@pytest.mark.parametrize("n", range(2))
def test_waits_to_be_killed(n, invoicegen_engine):
    time.sleep(300)
"""


def _connections_to(engine: sa.Engine, names: set[str]) -> int:
    query = {
        "postgresql": "SELECT COUNT(*) FROM pg_stat_activity WHERE datname IN :names",
        "mysql": "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB IN :names",
    }[engine.dialect.name]
    statement = sa.text(query).bindparams(sa.bindparam("names", expanding=True))
    with engine.connect() as connection:
        return int(connection.execute(statement, {"names": sorted(names)}).scalar_one())


def _wait_until(condition: Any, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_the_databases_of_a_killed_run_are_dropped_by_the_next_run(
    pytester: pytest.Pytester, database_url: str, engine: sa.Engine
) -> None:
    _server_only(database_url)
    prefix = f"{sa.make_url(database_url).database}_pytest_"
    pytester.makepyfile(test_killed=KILLED_MODULE, test_workers=XDIST_MODULE)
    killed = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "test_killed.py"]
        + ["--invoicegen-db-url", database_url],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the workers die with it
    )
    try:
        _wait_until(
            lambda: len(_databases_like(engine, prefix)) == 2, "both workers' databases exist"
        )
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
    left = _databases_like(engine, prefix)
    assert len(left) == 2  # a killed run cannot drop its databases
    _wait_until(lambda: _connections_to(engine, left) == 0, "the server notices the kill")

    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "test_workers.py", "--invoicegen-db-url", database_url
    )
    result.assert_outcomes(passed=6)
    result.stdout.no_fnmatch_line("*left database*")
    assert _databases_like(engine, prefix) == set()
