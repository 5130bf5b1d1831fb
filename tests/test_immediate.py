"""Seeding that feels immediate: a small first batch (same data), one worker for small runs."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from invoicegen import db
from invoicegen.seeding import SeedPlan, seed

AS_OF = "2026-11-01"


QUERIES = {
    "users": "SELECT id, email FROM users ORDER BY id",
    "clients": "SELECT id, user_id, company_name FROM clients ORDER BY id",
    "contracts": "SELECT id, client_id FROM contracts ORDER BY id",
    "invoices": "SELECT id, contract_id FROM invoices ORDER BY id",
}


def dump(url: str) -> dict[str, list[tuple[object, ...]]]:
    with db.make_engine(url).connect() as connection:
        return {
            table: [tuple(row) for row in connection.execute(sa.text(sql))]
            for table, sql in QUERIES.items()
        }


def test_a_small_first_batch_writes_the_same_rows(database_url: str, tmp_path: Path) -> None:
    plan = SeedPlan(users=23, seed=11, as_of=dt.date.fromisoformat(AS_OF), batch_size=10)
    small_first = seed(
        db.make_engine(database_url), SeedPlan(**{**plan.__dict__, "first_batch_size": 1})
    )
    assert small_first.batches == 1 + 3  # 1, then 10, 10, 2
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    assert seed(db.make_engine(reference), plan).batches == 3
    assert dump(database_url) == dump(reference)


def test_with_workers_the_batches_grow_to_the_batch_size_and_write_the_same_rows(
    database_url: str, tmp_path: Path
) -> None:
    """With worker processes each batch after the first is at most 1.5 times the one before
    (the next batch is made while one is written, and is ready as the writer wants it)."""
    plan = SeedPlan(users=40, seed=11, as_of=dt.date.fromisoformat(AS_OF), batch_size=10)
    growing = seed(
        db.make_engine(database_url),
        SeedPlan(**{**plan.__dict__, "first_batch_size": 1, "workers": 2}),
    )
    assert (growing.batches, growing.workers) == (7, 2)  # 1, 2, 4, 7, 10, 10, 6
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    assert seed(db.make_engine(reference), SeedPlan(**{**plan.__dict__, "workers": 1})).batches == 4
    assert dump(database_url) == dump(reference)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoicegen", *args],
        capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_the_first_progress_comes_after_a_tenth_of_a_batch(sqlite_url: str) -> None:
    done = cli("seed", "-d", sqlite_url, "--users", "250", "--batch-size", "100", "--seed", "4",
               "--as-of", AS_OF, "--progress", "plain", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("seeding ")]
    assert lines[0].startswith("seeding 10/250 users"), lines
    document = json.loads(done.stdout)
    assert document["batches"] == 4  # 10, 100, 100, 40
    assert document["workers"] == 1  # a small run: one worker is faster than two


def test_a_large_run_defaults_to_every_core(sqlite_url: str) -> None:
    """The counterpart: from SMALL_RUN_USERS users every core works (a shard counts the users
    it writes); read from the plan's rule rather than by seeding that many."""
    from invoicegen.seeding import default_workers
    from invoicegen.seeding.plan import SMALL_RUN_USERS, workers_for
    from invoicegen.settings import Shard

    assert workers_for(SMALL_RUN_USERS - 1, None) == 1
    assert workers_for(SMALL_RUN_USERS, None) == default_workers()
    assert workers_for(SMALL_RUN_USERS * 2, Shard(0, 4)) == 1  # this shard writes 10,000
