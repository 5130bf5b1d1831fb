"""The README's "Past one machine": its commands run (with fewer users) and make the database
of a single run; the benchmarks behind its figures run."""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from invoicegen import db
from invoicegen.seeding import SeedPlan, seed
from tests.helpers import invoke
from tests.invariants import dump

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- scale-out-example -->\n```bash\n(.*?)```", re.DOTALL)


def _commands() -> list[list[str]]:
    block = BLOCK.search((ROOT / "README.md").read_text("utf-8"))
    assert block, "README has no <!-- scale-out-example --> block"
    lines = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [shlex.split(line) for line in lines if line]


def _readme_shards(url: str, slices: list[int], tmp_path: Path) -> None:
    """Run the README's command for ``slices`` of its 64 (one user tree each, 64 users), then
    compare the database with a single run of the users those slices hold."""
    (command,) = _commands()
    assert command[:2] == ["invoicegen", "seed"] and "K/64" in command
    users = command.index("--users") + 1
    assert int(command[users]) * 19 >= 1_000_000_000  # the billion rows of the projection
    for k in slices:
        args = [url if a == "$DATABASE_URL" else a.replace("K/64", f"{k}/64") for a in command]
        args[users] = "64"
        result = invoke(*args[1:])
        assert result.exit_code == 0, result.stderr
    single = db.make_engine(f"sqlite:///{tmp_path / 'single.db'}")
    as_of = dt.date.fromisoformat(command[command.index("--as-of") + 1])
    seed_ = int(command[command.index("--seed") + 1])
    seed(single, SeedPlan(users=max(slices) + 1, seed=seed_, as_of=as_of))
    assert dump(db.make_engine(url)) == dump(single)


def test_the_readme_shards_make_the_single_run(postgresql_url: str, tmp_path: Path) -> None:
    """The first 4 slices of 64, last first: the first 4 user trees of one run."""
    _readme_shards(postgresql_url, [3, 2, 1, 0], tmp_path)


@pytest.mark.slow  # 64 seed commands
def test_all_64_readme_shards_make_the_single_run(postgresql_url: str, tmp_path: Path) -> None:
    _readme_shards(postgresql_url, [(k * 37) % 64 for k in range(64)], tmp_path)


def _run(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_scale_out_benchmark_runs(tmp_path: Path) -> None:
    lines = _run("benchmarks/scale_out.py", "--db", "sqlite", "--users-per-shard", "20",
                 "--shards", "1", "2", "--json")  # fmt: skip
    one, two = (json.loads(line) for line in lines)
    assert (one["shards"], two["shards"]) == (1, 2)
    assert len(two["per_shard"]) == 2 and all(rate > 0 for rate in two["per_shard"])
    assert one["rows"] < two["rows"] and one["cpu_per_row"] > 0


def test_the_scale_out_benchmark_exports_shards_into_one_folder() -> None:
    lines = _run("benchmarks/scale_out.py", "--target", "export", "--format", "parquet",
                 "--users-per-shard", "20", "--shards", "1", "3", "--json")  # fmt: skip
    one, three = (json.loads(line) for line in lines)
    assert len(three["per_shard"]) == 3 and all(rate > 0 for rate in three["per_shard"])
    assert three["rows"] > one["rows"] > 0


def test_the_shard_start_benchmark_runs() -> None:
    lines = _run("benchmarks/shard_start.py", "--plan-only", "--old-up-to", "0")
    positions = [line.split()[0] for line in lines[1:]]
    assert positions == ["0", "1,000,000", "10,000,000", "100,000,000"]


@pytest.mark.slow  # a shard of 100 million users, started four times to its first row
def test_a_far_shard_reaches_its_first_row() -> None:
    lines = _run("benchmarks/shard_start.py", "--old-up-to", "0")
    assert lines[-1].startswith("  shard 99/100 (from user  99,000,000):")
