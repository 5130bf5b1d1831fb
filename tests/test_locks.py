"""One run at a time per database: concurrent runs and threads take turns through the run lock,
a waiting run gives up after --lock-timeout, and a locked SQLite file is a clear error.

Concurrent runs are real `python -m invoicegen` processes; the result is checked by SQL.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from invoicegen import db, urls
from invoicegen.seeding import SeedPlan, seed
from tests.helpers import (
    AS_OF,
    SEED,
    assert_one_line_error,
    assert_whole_trees,
    cli,
    invoke,
    one_line_error,
    seed_args,
    table_counts,
    users_in,
    wait_for_users,
)


@pytest.mark.slow  # two processes, one of them seeds 600 users
def test_two_runs_at_once_write_one_dataset(database_url: str, tmp_path: Path) -> None:
    runs = [
        cli(*seed_args(database_url, 600, "--batch-size", "200", "--json", seed_value=s))
        for s in (1, 2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    codes = [run.returncode for run in runs]
    assert sorted(codes) == [0, 3], outputs
    winner = codes.index(0)
    loser_line = one_line_error(outputs[1 - winner][1])
    assert "already holds an invoicegen dataset" in loser_line
    engine = db.make_engine(database_url)
    assert table_counts(engine) == json.loads(outputs[winner][0])["counts"]
    assert_whole_trees(engine, tmp_path, seed_value=(1, 2)[winner])


def test_two_threads_of_one_process_take_turns_too(database_url: str, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    plan = SeedPlan(users=400, seed=SEED, as_of=dt.date.fromisoformat(AS_OF), batch_size=200)
    engine = db.make_engine(database_url)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(seed, engine, plan) for _ in range(2)]
    outcomes = sorted(type(f.exception()).__name__ for f in futures)
    assert outcomes == ["NoneType", "RefusedError"]
    assert assert_whole_trees(engine, tmp_path) == 400


@pytest.mark.slow  # waits for two lock timeouts beside a running seed
def test_a_second_run_gives_up_after_the_lock_timeout(database_url: str, tmp_path: Path) -> None:
    first = cli(*seed_args(database_url, 20_000, "--batch-size", "20"))
    try:
        wait_for_users(database_url, 20, first)
        for args in (seed_args(database_url, 5), ["reset", "--yes", "-d", database_url]):
            started = time.monotonic()
            second = cli(*args, "--lock-timeout", "1")
            _, err = second.communicate(timeout=60)
            assert second.returncode == 6, err
            # reset says which database it is about to act on before it waits for the lock
            lines = err.strip().splitlines()
            assert lines[-1] == one_line_error(lines[-1])
            assert "another invoicegen run is using" in lines[-1] and len(lines) <= 2
            assert time.monotonic() - started < 20
            assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 130
    assert_whole_trees(db.make_engine(database_url), tmp_path)


def test_a_locked_sqlite_file_is_a_clear_error_after_the_busy_timeout(sqlite_url: str) -> None:
    assert invoke("migrate", "-d", sqlite_url).exit_code == 0
    holder = sqlite3.connect(str(db.sqlite_path(urls.parse(sqlite_url))), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        result = invoke(*seed_args(sqlite_url, 2, "--lock-timeout", "1"))
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    line = assert_one_line_error(result, 6)
    assert "locked" in line
    assert elapsed < 10
    assert users_in(sqlite_url) == 0
