"""The replay line `invoicegen seed` prints writes the same rows again: run for real, in a
fresh SQLite database, and compared row by row with the original."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import sqlalchemy as sa

from invoicegen import db
from tests.helpers import assert_one_line_error, invoke
from tests.invariants import dump
from tests.manifest import record_versions


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


# --- what a replay needs: the versions that made the rows -----------------------------------


def test_seed_and_stats_name_the_faker_and_factory_boy_that_made_the_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'made.db'}"
    faker, factory_boy = version("faker"), version("factory-boy")
    shown = invoke("seed", "-n", "2", "--seed", "5", "-d", url)
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    replay = next(i for i, line in enumerate(lines) if line.startswith("  invoicegen seed"))
    assert lines[replay + 1] == (
        f"made with Faker {faker}, factory-boy {factory_boy} (install the same for the same "
        f"rows: pip install Faker=={faker} factory-boy=={factory_boy})"
    )
    document = json.loads(invoke("seed", "-n", "1", "--append", "-d", url, "--json").stdout)
    assert document["versions"] == {
        "invoicegen": version("invoicegen"),
        "faker": faker,
        "factory-boy": factory_boy,
    }
    assert document["version_differences"] == []
    stats = invoke("stats", "-d", url)
    assert f"\nmade with Faker {faker}, factory-boy {factory_boy}\n" in stats.stdout
    runs = json.loads(invoke("stats", "-d", url, "--json").stdout)["runs"]
    assert [run["versions"] for run in runs] == [document["versions"]] * 2


def test_a_forced_append_across_faker_versions_warns_in_one_line(database_url: str) -> None:
    engine = db.make_engine(database_url)
    try:
        assert invoke("seed", "-n", "2", "--seed", "5", "-d", database_url).exit_code == 0
        forced = invoke("seed", "-n", "1", "--append", "--force", "-d", database_url, "--json")
        assert forced.exit_code == 0 and forced.stderr == ""  # same versions: nothing to say
        record_versions(engine, faker="30.0.0")
        refused = invoke("seed", "-n", "1", "--append", "-d", database_url)
        assert "faker " in assert_one_line_error(refused, 3)
        forced = invoke("seed", "-n", "1", "--append", "--force", "-d", database_url, "--json")
        assert forced.exit_code == 0, forced.stderr
        (line,) = forced.stderr.strip().splitlines()
        difference = f"faker {version('faker')} (dataset: 30.0.0)"
        assert line.startswith("warning: added with --force across versions: ")
        assert difference in line and "phones" in line and "factory-boy" not in line
        assert json.loads(forced.stdout)["version_differences"] == [difference]
        stats = invoke("stats", "-d", database_url).stdout
        assert "runs 1, 2 made with Faker 30.0.0, factory-boy" in stats
        assert f"run 3 made with Faker {version('faker')}, factory-boy" in stats
    finally:
        engine.dispose()
