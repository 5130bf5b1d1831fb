"""The replay line `invoicegen seed` prints writes the same rows again: run for real, in a
fresh SQLite database, and compared row by row with the original."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from tests.invariants import dump


def _invoicegen(*args: str) -> dict[str, object]:
    """`python -m invoicegen ARGS --json` as a real process; its JSON document."""
    done = subprocess.run(
        [sys.executable, "-m", "invoicegen", *args, "--json", "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    document: dict[str, object] = json.loads(done.stdout)
    return document


def _replay(document: dict[str, object], url: str) -> dict[str, object]:
    program, *args = shlex.split(str(document["replay"]))
    assert program == "invoicegen"
    return _invoicegen(*args, "--database-url", url)


def _dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        return dump(engine)
    finally:
        engine.dispose()


def test_the_replay_line_writes_the_same_rows(tmp_path: Path) -> None:
    original, replayed = tmp_path / "original.db", tmp_path / "replayed.db"
    run = _invoicegen(
        "seed", "--users", "40", "--database-url", f"sqlite:///{original}",
        "--as-of", "2026-04-30", "--since", "2024-02-01", "--locale", "de_DE",
        "--clients-per-user", "1-2:70,3-6:30", "--invoices-per-contract", "0-4",
    )  # fmt: skip
    replay = _replay(run, f"sqlite:///{replayed}")
    assert replay["replay"] == run["replay"]
    assert replay["counts"] == run["counts"]
    assert _dump(replayed) == _dump(original)


def test_a_forced_append_replays_with_force(tmp_path: Path) -> None:
    original, replayed = tmp_path / "original.db", tmp_path / "replayed.db"
    url = f"sqlite:///{original}"
    first = _invoicegen("seed", "--users", "20", "--seed", "5", "--database-url", url)
    forced = _invoicegen(
        "seed", "--users", "15", "--append", "--database-url", url,
        "--contracts-per-client", "2-4", "--force",
    )  # fmt: skip
    assert shlex.split(str(forced["replay"]))[-1] == "--force"
    _replay(first, f"sqlite:///{replayed}")
    _replay(forced, f"sqlite:///{replayed}")  # refused without --force
    assert _dump(replayed) == _dump(original)
