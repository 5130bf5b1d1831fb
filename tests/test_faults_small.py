"""Smaller truths (issue 10, defect 9): a drifted schema, an ASCII-only terminal, a full disk,
and a file that is not a database, each through a real process or the CLI.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from invoicegen import db
from tests.invariants import scalar
from tests.test_cli import _assert_one_line_error, invoke

AS_OF = "2026-03-31"


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


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


# --- stats --check refuses what seed and migrate refuse ---------------------------------------


def test_stats_refuses_a_dropped_column_with_exit_5_like_seed_and_migrate(
    database_url: str,
) -> None:
    result = invoke("seed", "-n", "3", "--as-of", AS_OF, "-q", "-d", database_url)
    assert result.exit_code == 0, result.stderr
    engine = db.make_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE users DROP COLUMN phone")
    for command in (["stats", "--check"], ["stats"], ["migrate"], ["seed", "--append", "-n", "1"]):
        line = _assert_one_line_error(invoke(*command, "-d", database_url), 5)
        assert "differ from its migrations" in line and "users.phone" in line, command
    assert scalar(engine, "SELECT COUNT(*) FROM users") == 3
    engine.dispose()


# --- output degrades on a terminal that cannot show it -----------------------------------------


@pytest.mark.slow  # three real processes
def test_an_ascii_only_output_does_not_fail_a_committed_seed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ascii.db'}"
    ascii_only = {"PYTHONIOENCODING": "ascii"}
    seeded = run("seed", "-n", "4", "--seed", "2", "--as-of", AS_OF, "-d", url, env=ascii_only)
    assert seeded.returncode == 0, seeded.stderr
    assert "Seeded users 1" in seeded.stdout and "rows/s" in seeded.stdout  # degraded, not gone
    assert scalar(db.make_engine(url), "SELECT COUNT(*) FROM users") == 4
    shown = run("stats", "-d", url, env=ascii_only)
    assert shown.returncode == 0, shown.stderr
    assert "invoices per month" in shown.stdout
    failed = run("stats", "-d", f"sqlite:///{tmp_path / 'missing.db'}", env=ascii_only)
    assert failed.returncode == 5 and "no database at" in one_line_error(failed.stderr)


# --- a full disk --------------------------------------------------------------------------------


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs (needs root, or a mount namespace); skipped where it cannot be made."""
    mountpoint = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_a_full_disk_says_disk_full_and_exits_1(tiny_filesystem: Path) -> None:
    path = tiny_filesystem / "full.db"
    done = run("seed", "-n", "20000", "--batch-size", "50", "--workers", "1", "-q",
               "-d", f"sqlite:///{path}")  # fmt: skip
    assert done.returncode == 1, done.stderr
    line = one_line_error(done.stderr)
    assert "disk full" in line and str(path) in line
    assert "cannot connect" not in line
    assert scalar(db.make_engine(f"sqlite:///{path}"), "PRAGMA integrity_check") == "ok"


# --- a file that is not a database --------------------------------------------------------------


@pytest.mark.parametrize("command", [["stats"], ["stats", "--check"], ["seed", "-n", "1"]])
def test_a_file_that_is_not_sqlite_is_named_as_such_and_left_alone(
    command: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 20)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    line = _assert_one_line_error(invoke(*command, "-d", f"sqlite:///{path}"), 4)
    assert f"{path} is not an SQLite database" in line
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_sqlalchemy_sees_the_same_file_as_not_a_database(tmp_path: Path) -> None:
    # The fault above is the driver's own verdict, not a guess from the file's name.
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 20)
    with pytest.raises(sa.exc.DatabaseError, match="not a database"):
        with sa.create_engine(f"sqlite:///{path}").connect() as connection:
            connection.exec_driver_sql("SELECT * FROM sqlite_master")
