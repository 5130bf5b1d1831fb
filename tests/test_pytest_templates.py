"""The plugin's ``invoicegen`` marker, from the outside: pytester suites written as a user would,
on SQLite, PostgreSQL and MariaDB. A marked test starts from a database seeded with the marker's
plan (seeded once per plan and run), a fresh copy of its own, whatever the tests before it did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.usefixtures("plugin_environment")

# Reads through the test's own engine (a connection of its own, not the test's transaction),
# then writes committed outside the test's transaction: the strongest changes a test can make.
MARKED_MODULE = """
import pytest
import sqlalchemy as sa

from invoicegen.models import Client, Contract, Invoice, Run, User

pytestmark = pytest.mark.invoicegen(users=20, seed=1, as_of="2026-03-31")
MODELS = {"users": User, "clients": Client, "contracts": Contract, "invoices": Invoice}
SEEN = {}


def counts(connection):
    return {
        name: connection.scalar(sa.select(sa.func.count()).select_from(model))
        for name, model in MODELS.items()
    }


def seen(engine):
    with engine.connect() as connection:
        run = connection.execute(sa.select(Run.id, Run.seed, Run.started_at)).one()
        emails = set(connection.scalars(sa.select(User.email)))
        return counts(connection), tuple(run), emails


def test_the_first_changes_everything(invoicegen_test_engine, invoicegen_session):
    SEEN["first"] = seen(invoicegen_test_engine)
    assert SEEN["first"][0]["users"] == 20 and SEEN["first"][0]["invoices"] > 0
    assert SEEN["first"][1][1] == 1  # the manifest: seeded with the marker's seed
    with invoicegen_test_engine.begin() as connection:
        connection.execute(sa.delete(Invoice))
        connection.exec_driver_sql("CREATE TABLE left_by_the_first (id INTEGER)")
    invoicegen_session.execute(sa.delete(Contract))
    invoicegen_session.commit()
    assert invoicegen_session.scalar(sa.select(sa.func.count()).select_from(Invoice)) == 0


def test_the_next_sees_the_seeded_database_whole(
    invoicegen_test_engine, invoicegen_session, isolated_user_factory
):
    assert seen(invoicegen_test_engine) == SEEN["first"]  # the same template: the same run
    assert not sa.inspect(invoicegen_test_engine).has_table("left_by_the_first")
    assert isolated_user_factory.create().id == 21  # ids go on after the seeded ones
    assert invoicegen_session.scalar(sa.select(sa.func.count()).select_from(User)) == 21


class TestAClassPlan:
    pytestmark = pytest.mark.invoicegen(
        users=7, seed=2, clients_per_user=2, contracts_per_client=(1, 1),
        invoices_per_contract="3-3:5",
    )

    def test_the_class_plan(self, invoicegen_test_engine):
        assert seen(invoicegen_test_engine)[0] == {
            "users": 7, "clients": 14, "contracts": 14, "invoices": 42
        }


@pytest.mark.invoicegen(users=20, seed=3, as_of="2026-03-31")
def test_the_closest_marker_wins_and_another_seed_other_data(
    invoicegen_database_url, invoicegen_test_database_url, invoicegen_test_engine
):
    counts, run, emails = seen(invoicegen_test_engine)
    assert counts["users"] == 20 and run[1] == 3
    assert emails != SEEN["first"][2]
    assert invoicegen_test_database_url != invoicegen_database_url
"""

UNMARKED_MODULE = """
import pytest
import sqlalchemy as sa

from invoicegen.models import User


def test_an_unmarked_test_starts_empty(invoicegen_session):
    assert invoicegen_session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


@pytest.mark.invoicegen(users=5, clients_per_user="lots")
def test_a_bad_value(invoicegen_session):
    pass


@pytest.mark.invoicegen(users=5, clients=2)
def test_an_unknown_option(invoicegen_session):
    pass
"""


def _server_databases(database_url: str) -> set[str]:
    """This plugin's databases next to ``database_url``'s (none on SQLite)."""
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return set()
    query = {
        "postgresql": "SELECT datname FROM pg_database WHERE datname LIKE :pattern",
        "mysql": "SELECT schema_name FROM information_schema.schemata "
        "WHERE schema_name LIKE :pattern",
    }[url.get_backend_name()]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text(query), {"pattern": f"{url.database}_pytest_%"})
            return {row[0] for row in rows}
    finally:
        engine.dispose()


def _left_files(basetemp: Path) -> list[Path]:
    return sorted(basetemp.glob("**/invoicegen-templates*/*.db"))


def test_each_marked_test_gets_a_fresh_copy_of_its_plan(
    pytester: pytest.Pytester, database_url: str
) -> None:
    pytester.makepyfile(test_marked=MARKED_MODULE, test_unmarked=UNMARKED_MODULE)
    basetemp = pytester.path / "basetemp"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--strict-markers", f"--basetemp={basetemp}", "-rE",
        "--invoicegen-db-url", database_url,
    )  # fmt: skip
    result.assert_outcomes(passed=5, errors=2)
    result.stdout.fnmatch_lines_random(
        [
            "*invoicegen: seeded 3 template database(s) (one per plan); "
            "4 test(s) each got a fresh copy*",
            "*invoicegen: @pytest.mark.invoicegen(clients_per_user='lots'): "
            "expected N or MIN-MAX with whole numbers, got 'lots'*",
            "*invoicegen: @pytest.mark.invoicegen: unknown option(s) clients (known: users, seed,*",
        ]
    )
    assert _server_databases(database_url) == set()  # templates and copies dropped
    assert _left_files(basetemp) == []


XDIST_MODULE = """
import json

import pytest
import sqlalchemy as sa

from invoicegen.models import Invoice, Run, User

pytestmark = pytest.mark.invoicegen(users=10, seed=4)


@pytest.mark.parametrize("n", range(6))
def test_each_worker_copies_its_template(n, worker_id, invoicegen_test_engine):
    with invoicegen_test_engine.connect() as connection:
        run = connection.execute(sa.select(Run.id, Run.started_at)).one()
        users = connection.scalar(sa.select(sa.func.count()).select_from(User))
        invoices = connection.scalar(sa.select(sa.func.count()).select_from(Invoice))
    with open("records.jsonl", "a") as records:
        records.write(json.dumps([worker_id, str(run.started_at), users, invoices]) + "\\n")
    with invoicegen_test_engine.begin() as connection:
        connection.execute(sa.delete(Invoice))
"""


@pytest.mark.slow
def test_under_xdist_each_worker_seeds_a_plan_once(
    pytester: pytest.Pytester, database_url: str
) -> None:
    pytester.makepyfile(test_workers=XDIST_MODULE)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "xdist", "-n", "2", "--invoicegen-db-url", database_url
    )
    result.assert_outcomes(passed=6)
    records = [
        json.loads(line) for line in (pytester.path / "records.jsonl").read_text().splitlines()
    ]
    assert len(records) == 6
    assert len({(users, invoices) for _, _, users, invoices in records}) == 1
    assert records[0][2] == 10 and records[0][3] > 0
    runs: dict[str, set[str]] = {}
    for worker, started_at, _, _ in records:
        runs.setdefault(worker, set()).add(started_at)
    assert all(len(started) == 1 for started in runs.values()), runs  # one template per worker
    assert _server_databases(database_url) == set()


def test_templates_and_copies_left_by_a_killed_run_are_dropped(
    pytester: pytest.Pytester, database_url: str
) -> None:
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        pytest.skip("SQLite's templates are files in pytest's temporary folder")
    left = {f"{url.database}_pytest_0badc0de_main_t0", f"{url.database}_pytest_0badc0de_gw1_c3"}
    not_ours = f"{url.database}_pytest_0badc0de_main_x1"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for name in (*left, not_ours):
                connection.exec_driver_sql(f"CREATE DATABASE {name}")
        pytester.makepyfile(test_marked=MARKED_MODULE)
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--invoicegen-db-url", database_url, "-k", "first"
        )
        result.assert_outcomes(passed=1, deselected=3)
        assert _server_databases(database_url) == {not_ours}
    finally:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {not_ours}")
        engine.dispose()


DDL_MODULE = """
import pytest
import sqlalchemy as sa

from invoicegen.models import Invoice

pytestmark = pytest.mark.invoicegen(users=10, seed=5)


def test_code_that_runs_ddl(invoicegen_session):
    invoicegen_session.execute(sa.delete(Invoice))
    invoicegen_session.execute(sa.text("CREATE TABLE made_by_the_code (id INTEGER)"))
    invoicegen_session.commit()


def test_the_next_one_has_every_invoice(invoicegen_session, invoicegen_test_engine):
    assert invoicegen_session.scalar(sa.select(sa.func.count()).select_from(Invoice)) > 0
    assert not sa.inspect(invoicegen_test_engine).has_table("made_by_the_code")
"""


def test_ddl_that_ends_the_transaction_of_a_marked_test_reaches_no_other_test(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """MariaDB commits DDL implicitly: that test fails saying so (as unmarked ones do); the
    next test still gets a whole copy. Elsewhere the DDL is rolled back with the test."""
    pytester.makepyfile(test_ddl=DDL_MODULE)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--invoicegen-db-url", database_url
    )
    if sa.make_url(database_url).get_backend_name() == "mysql":
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*the code under test ended the test's transaction*"])
    else:
        result.assert_outcomes(passed=2)
    assert _server_databases(database_url) == set()
