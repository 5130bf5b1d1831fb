"""`--shard auto`: the slice a CI runner or a Kubernetes Indexed Job says this process is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from invoicegen import db
from invoicegen.errors import UsageError
from invoicegen.settings import Shard, resolve_shard
from tests.invariants import dump

AS_OF = "2026-01-31"


@pytest.mark.parametrize(
    ("environ", "shards", "expected"),
    [
        ({"JOB_COMPLETION_INDEX": "2"}, 4, Shard(2, 4)),
        ({"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"}, None, Shard(0, 3)),  # GitLab counts from 1
        ({"CI_NODE_INDEX": "3", "CI_NODE_TOTAL": "3"}, 3, Shard(2, 3)),
        ({"CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "2"}, None, Shard(0, 2)),
        ({"BUILDKITE_PARALLEL_JOB": "4", "BUILDKITE_PARALLEL_JOB_COUNT": "5"}, None, Shard(4, 5)),
        ({"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "1"}, None, None),  # a total of 1: no shards
        ({"JOB_COMPLETION_INDEX": "0"}, 1, None),
    ],
)
def test_auto_reads_the_runners_variables(
    environ: dict[str, str], shards: int | None, expected: Shard | None
) -> None:
    assert resolve_shard("auto", shards=shards, environ=environ).shard == expected


@pytest.mark.parametrize(
    ("environ", "shards", "message"),
    [
        ({}, None, "no runner index in the environment"),
        ({"JOB_COMPLETION_INDEX": "1"}, None, "JOB_COMPLETION_INDEX=1 gives no total"),
        ({"CI_NODE_TOTAL": "3"}, None, "CI_NODE_TOTAL is set but CI_NODE_INDEX is not"),
        ({"CI_NODE_INDEX": "2"}, None, "CI_NODE_INDEX=2 gives no total"),
        ({"CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "3"}, None, "CI_NODE_INDEX: must be between 1"),
        ({"CI_NODE_INDEX": "4", "CI_NODE_TOTAL": "3"}, None, "K must be below N"),
        ({"CIRCLE_NODE_INDEX": "1", "CIRCLE_NODE_TOTAL": "2"}, 3, "--shards 3 disagrees"),
        ({"JOB_COMPLETION_INDEX": "x"}, 2, "JOB_COMPLETION_INDEX: expected a whole number"),
    ],
)
def test_auto_refuses_what_does_not_add_up(
    environ: dict[str, str], shards: int | None, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_shard("auto", shards=shards, environ=environ)


def _seed(url: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INVOICEGEN_")}
    command = [sys.executable, "-m", "invoicegen", "seed", "-n", "12", "--seed", "3",
               "--as-of", AS_OF, "--workers", "1", "--json", "-d", url, *extra]  # fmt: skip
    return subprocess.run(
        command, env=clean | env, capture_output=True, text=True, timeout=120, check=False
    )


def test_an_indexed_job_seeds_the_same_dataset_as_one_run(tmp_path: Path) -> None:
    """Three processes with JOB_COMPLETION_INDEX 0, 1, 2 and INVOICEGEN_SHARDS=3, as a
    Kubernetes Indexed Job with completions: 3 runs them, make the single run's data."""
    shards_url = f"sqlite:///{tmp_path / 'shards.db'}"
    single_url = f"sqlite:///{tmp_path / 'single.db'}"
    for index in (2, 0, 1):
        env = {"JOB_COMPLETION_INDEX": str(index), "INVOICEGEN_SHARDS": "3"}
        done = _seed(shards_url, env, "--shard", "auto")
        assert done.returncode == 0, done.stderr
        assert (
            done.stderr.strip() == f"shard {index}/3, from JOB_COMPLETION_INDEX={index}, 3 shards"
        )
        assert json.loads(done.stdout)["shard"] == f"{index}/3"
    assert _seed(single_url, {}).returncode == 0
    sharded = dump(db.make_engine(shards_url))
    assert sharded == dump(db.make_engine(single_url))
    assert len(sharded["users"]) == 12


def test_auto_from_the_environment_variable_and_a_total_of_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    done = _seed(url, {"INVOICEGEN_SHARD": "auto", "CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "1"})
    assert done.returncode == 0, done.stderr
    assert "shard none (a total of 1), from CI_NODE_INDEX=1, CI_NODE_TOTAL=1" in done.stderr
    assert json.loads(done.stdout)["shard"] is None


def test_auto_without_a_runner_is_a_usage_error_before_anything_is_written(tmp_path: Path) -> None:
    done = _seed(f"sqlite:///{tmp_path / 'never.db'}", {}, "--shard", "auto")
    assert done.returncode == 2
    assert done.stderr.startswith("error: --shard auto: no runner index in the environment")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "never.db").exists()
