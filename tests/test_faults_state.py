"""Issue 10, defects 6 and 7: what a kill or an interrupt leaves in the database.

6. A migration killed at any moment leaves SQLite with none of invoicegen's tables or all of
   them at the newest revision, and the next seed continues.
7. After an interrupted run, the application's own inserts (no explicit id) get ids past every
   committed one: PostgreSQL's sequences follow each committed batch, never moving backwards.

Real `python -m invoicegen` processes, real SIGKILL and SIGINT; the state is read by SQL.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from invoicegen import db, schema
from invoicegen.errors import Interrupted
from invoicegen.models import Client, Contract, Invoice, User
from invoicegen.seeding import TABLES, Progress, SeedPlan, seed
from invoicegen.settings import Shard
from tests.conftest import fresh_database
from tests.test_cli import invoke
from tests.test_safety import cli, users_in

AS_OF = dt.date(2026, 3, 31)
SEED = 11


# --- 6. a killed migration leaves nothing or everything ---------------------------------------


def invoicegen_tables(url: str) -> tuple[set[str], str | None]:
    """invoicegen's tables in the database, and the recorded revision.

    Connecting rolls back what a killed process left: a SQLite file's hot journal, a
    server's transaction of a connection that is gone.
    """
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            names = set(sa.inspect(connection).get_table_names())
            present = names & set(schema.owned_table_names())
            revision = (
                schema.current_revision(connection) if schema.VERSION_TABLE in present else None
            )
    finally:
        engine.dispose()
    return present, revision


def assert_nothing_or_everything(url: str) -> bool:
    """The database holds none of invoicegen's tables, or all of them at the newest revision;
    True for nothing. Then a seed continues from there."""
    present, revision = invoicegen_tables(url)
    if present:
        assert (present, revision) == (set(schema.owned_table_names()), schema.head_revision())
    result = invoke("seed", "--users", "5", "--workers", "1", "-q", "-d", url)
    assert result.exit_code == 0, result.stderr
    assert users_in(url) == 5
    return not present


def start_migrate(url: str) -> subprocess.Popen[str]:
    return cli("migrate", "-q", "-d", url)


def kill_migrate_when(path: Path, moment: Callable[[], bool]) -> None:
    """Run `invoicegen migrate` on the file and SIGKILL it as soon as ``moment()`` is true."""
    process = start_migrate(f"sqlite:///{path}")
    deadline = time.monotonic() + 60
    while not moment() and process.poll() is None:
        assert time.monotonic() < deadline, "the migration never got there"
        time.sleep(0.0005)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["first write", "first commit"])
def test_a_killed_migration_leaves_nothing_or_everything(tmp_path: Path, moment: str) -> None:
    """SIGKILL the moment the migrating process starts writing (its rollback journal appears),
    or the moment its first write is committed to the file: every table, index and the revision
    are one transaction, so the file holds nothing of it, or all of it."""
    outcomes = []
    for attempt in range(5):
        path = tmp_path / f"killed-{attempt}.db"
        journal = path.with_name(path.name + "-journal")
        if moment == "first write":
            kill_migrate_when(path, journal.exists)
        else:
            kill_migrate_when(path, lambda file=path: file.exists() and file.stat().st_size > 0)
        hot_journal = journal.exists()
        outcomes.append((assert_nothing_or_everything(f"sqlite:///{path}"), hot_journal))
    if moment == "first write":  # killed inside the transaction: rolled back
        assert (True, True) in outcomes, outcomes


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])  # MariaDB cannot roll back DDL
def test_migrate_killed_at_any_moment_then_seed_continues(tmp_path: Path, kind: str) -> None:
    """SIGKILL after delays sweeping the process's whole life (start-up, migration, exit),
    as long as a migrate that is not killed takes here and now."""
    attempts = 16
    outcomes = {"nothing": 0, "everything": 0}
    for attempt in range(-1, attempts):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        for url in fresh_database(kind, folder):
            process = start_migrate(url)
            if attempt < 0:  # not killed: how long a whole migrate takes
                started = time.monotonic()
                process.communicate(timeout=120)
                lifetime = time.monotonic() - started
                continue
            time.sleep(lifetime * 1.2 * attempt / (attempts - 1))
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
            outcomes["nothing" if assert_nothing_or_everything(url) else "everything"] += 1
    assert outcomes["nothing"] and outcomes["everything"], outcomes


# --- 7. the application's inserts after an interrupted run --------------------------------------


def assert_application_inserts_follow(engine: sa.Engine) -> None:
    """An application's INSERT without an id gets one past every committed id, in every table
    (rolled back afterwards; a sequence keeps its step, which is how sequences work)."""
    with engine.connect() as connection:
        highest = {
            table: connection.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {table}").scalar()
            for table in TABLES
        }
        user = connection.execute(
            sa.insert(User).values(name="App User", email="app@example.invalid", phone="1")
        ).inserted_primary_key[0]
        client = connection.execute(
            sa.insert(Client).values(
                name="App Client", company_name="App Ltd", email="c@example.invalid", user_id=user
            )
        ).inserted_primary_key[0]
        contract = connection.execute(
            sa.insert(Contract).values(start_date=AS_OF, client_id=client)
        ).inserted_primary_key[0]
        invoice = connection.execute(
            sa.insert(Invoice).values(
                period_start=AS_OF, period_end=AS_OF, amount=1, contract_id=contract
            )
        ).inserted_primary_key[0]
        connection.rollback()
    got = dict(zip(TABLES, (user, client, contract, invoice), strict=True))
    assert all(got[table] > highest[table] for table in TABLES), (got, highest)


def interrupted_after(engine: sa.Engine, plan: SeedPlan, batches: int) -> int:
    """Seed through the library, asking it to stop once ``batches`` batches are committed;
    returns the user trees committed."""
    committed: list[Progress] = []
    with pytest.raises(Interrupted):
        seed(engine, plan, on_progress=committed.append, stop=lambda: len(committed) >= batches)
    return committed[-1].users_done


def test_after_an_interrupted_seed_the_applications_inserts_get_new_ids(
    engine: sa.Engine,
) -> None:
    plan = SeedPlan(users=40, seed=SEED, as_of=AS_OF, batch_size=5)
    assert interrupted_after(engine, plan, 2) == 10
    assert users_in(engine.url.render_as_string(hide_password=False)) == 10
    assert_application_inserts_follow(engine)


def test_interrupted_shards_never_move_a_sequence_backwards(engine: sa.Engine) -> None:
    """The upper shard commits first; the lower shard's batches, committed later, have lower
    ids: its sequence updates must not pull the sequence back below the upper shard's rows."""
    upper = SeedPlan(users=40, seed=SEED, as_of=AS_OF, batch_size=5, shard=Shard(1, 2))
    assert interrupted_after(engine, upper, 2) == 10
    assert_application_inserts_follow(engine)
    lower = SeedPlan(users=40, seed=SEED, as_of=AS_OF, batch_size=5, shard=Shard(0, 2))
    assert interrupted_after(engine, lower, 3) == 15
    assert_application_inserts_follow(engine)


def shards_committed(engine: sa.Engine) -> dict[str, int]:
    """Users each shard has committed so far, by the run manifest."""
    with engine.connect() as connection:
        if "invoicegen_runs" not in sa.inspect(connection).get_table_names():
            return {}
        rows = connection.exec_driver_sql("SELECT shard, users_done FROM invoicegen_runs")
        return {str(shard): int(done) for shard, done in rows}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_concurrent_shards_stopped_by_sigint_leave_ids_free(kind: str, tmp_path: Path) -> None:
    """Two shards write interleaved id ranges at once; both are stopped by a real SIGINT."""
    for url in fresh_database(kind, tmp_path):
        engine = db.make_engine(url)
        args = ("seed", "-n", "40000", "--seed", str(SEED), "--as-of", str(AS_OF))
        args += ("--batch-size", "20", "--workers", "1", "-q", "-d", url)
        processes = [cli(*args, "--shard", f"{k}/2") for k in range(2)]
        try:
            deadline = time.monotonic() + 120
            while sum(done > 0 for done in shards_committed(engine).values()) < 2:
                assert all(p.poll() is None for p in processes), [
                    p.communicate() for p in processes
                ]
                assert time.monotonic() < deadline, "the shards committed nothing in time"
                time.sleep(0.05)
            time.sleep(0.5)  # both keep committing for a while, interleaved
        finally:
            for process in processes:
                process.send_signal(signal.SIGINT)
            codes = [(p.wait(timeout=60), p.communicate()[1]) for p in processes]
        assert [code for code, _ in codes] == [130, 130], codes
        assert_application_inserts_follow(engine)
        engine.dispose()
