"""Settings that matter at scale: ``--synchronous-commit off`` and ``--unlogged`` (PostgreSQL
only; refused with one line elsewhere, before anything is written)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from invoicegen import db
from invoicegen.seeding import SeedPlan, seed
from invoicegen.settings import Shard
from tests.helpers import assert_one_line_error, invoke
from tests.invariants import dump

AS_OF = dt.date(2026, 4, 30)


def _commit_settings(engine: sa.Engine) -> list[str]:
    """``synchronous_commit`` as it stands each time a batch records its progress (inside
    the batch's transaction), read on the same connection."""
    seen: list[str] = []

    def after(connection: Any, cursor: Any, statement: str, *_: Any) -> None:
        # each batch's progress (the last one's ends the run too: more columns, in their order)
        if statement.startswith("UPDATE invoicegen_runs SET") and "users_done=" in statement:
            probe = connection.connection.dbapi_connection.cursor()
            probe.execute("SHOW synchronous_commit")
            seen.append(probe.fetchone()[0])
            probe.close()

    sa.event.listen(engine, "after_cursor_execute", after)
    return seen


@pytest.mark.parametrize(("asked", "expected"), [(False, "off"), (True, "on")])
def test_synchronous_commit_off_holds_in_each_batch_only(
    postgresql_url: str, asked: bool, expected: str
) -> None:
    engine = db.make_engine(postgresql_url)
    seen = _commit_settings(engine)
    plan = SeedPlan(users=30, seed=3, as_of=AS_OF, batch_size=7, synchronous_commit=asked)
    result = seed(engine, plan)
    assert seen == [expected] * result.batches and result.batches == 5
    with engine.connect() as connection:  # the session's own setting is left alone
        assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"


def test_synchronous_commit_off_writes_the_same_data(postgresql_url: str, tmp_path: Path) -> None:
    fast = db.make_engine(postgresql_url)
    seed(fast, SeedPlan(users=20, seed=9, as_of=AS_OF, synchronous_commit=False))
    plain = db.make_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    seed(plain, SeedPlan(users=20, seed=9, as_of=AS_OF))
    assert dump(fast) == dump(plain)


def test_synchronous_commit_from_the_command_line(postgresql_url: str) -> None:
    result = invoke("seed", "-n", "5", "--synchronous-commit", "off", "-d", postgresql_url, "-q")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    ("args", "env", "option"),
    [
        (["--synchronous-commit", "off"], {}, "--synchronous-commit off"),
        ([], {"INVOICEGEN_SYNCHRONOUS_COMMIT": "off"}, "--synchronous-commit off"),
        (["--unlogged"], {}, "--unlogged"),
    ],
)
@pytest.mark.parametrize("kind", ["sqlite", "mariadb"])
def test_postgresql_options_are_refused_elsewhere(
    kind: str, args: list[str], env: dict[str, str], option: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{kind}_url")
    result = invoke("seed", "-n", "5", *args, "-d", url, env=env)
    line = assert_one_line_error(result, 2)
    engine = db.make_engine(url)
    backend = engine.url.get_backend_name()  # mysql for a mysql:// URL to MariaDB
    assert line == f"error: {option}: PostgreSQL only; {backend} has no such setting"
    assert not sa.inspect(engine).has_table("invoicegen_runs")  # nothing migrated or written


def test_a_synchronous_commit_that_is_not_on_or_off_is_a_usage_error(sqlite_url: str) -> None:
    result = invoke("seed", "--synchronous-commit", "maybe", "-d", sqlite_url)
    line = assert_one_line_error(result, 2)
    assert line == "error: --synchronous-commit: expected on or off, got 'maybe'"


def _persistence(engine: sa.Engine) -> dict[str, str]:
    query = "SELECT relname, relpersistence FROM pg_class WHERE relname = ANY(%(names)s)"
    names = ["users", "clients", "contracts", "invoices", "invoicegen_runs"]
    with engine.connect() as connection:
        return dict(connection.exec_driver_sql(query, {"names": names}).all())  # type: ignore[arg-type]


def test_unlogged_tables_when_invoicegen_creates_them(postgresql_url: str) -> None:
    engine = db.make_engine(postgresql_url)
    for index in (1, 0):  # the first shard creates the tables, the second finds them unlogged
        seed(engine, SeedPlan(users=20, seed=2, as_of=AS_OF, shard=Shard(index, 2), unlogged=True))
    assert _persistence(engine) == {
        "users": "u",
        "clients": "u",
        "contracts": "u",
        "invoices": "u",
        "invoicegen_runs": "p",  # the manifest stays logged
    }
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM users").scalar() == 20


def test_unlogged_is_refused_over_logged_tables(postgresql_url: str) -> None:
    assert invoke("migrate", "-d", postgresql_url).exit_code == 0
    result = invoke("seed", "-n", "5", "--unlogged", "-d", postgresql_url)
    line = assert_one_line_error(result, 3)
    assert line.startswith("error: --unlogged: the tables in postgresql")
    assert line.endswith(
        "invoicegen makes tables unlogged only when it creates them (`invoicegen reset` first)"
    )
    engine = db.make_engine(postgresql_url)
    assert set(_persistence(engine).values()) == {"p"}
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM users").scalar() == 0
