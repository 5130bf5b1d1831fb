"""N shard processes at once into one target: rows/s per shard and in total.

    python benchmarks/scale_out.py --db postgresql --users-per-shard 20000 --shards 1 2 4 8
    python benchmarks/scale_out.py --db postgresql --seed-arg=--synchronous-commit=off
    python benchmarks/scale_out.py --db sqlite --users-per-shard 2000 --shards 1 2

For each N, a fresh database, then N concurrent ``invoicegen seed --shard K/N --workers 1``
processes, each with ``--users-per-shard`` users (weak scaling: every shard has the same work,
so on a machine with enough cores the total would grow with N). Reported per N: each shard's
rows/s (its own ``--json`` figure: generating and writing), the total (all rows over the wall
time from the first start to the last end, start-up and migration included), and the CPU the
shards used per row (user + system, their children included): the figure that says how many
cores a billion rows needs.

``--target`` chooses where the shards write: ``database`` (one database, as above) or
``export`` (``invoicegen export --shard K/N`` into one folder, as shards writing to shared
storage do; ``--format`` picks the file format, ``--db`` is then unused):

    python benchmarks/scale_out.py --target export --format parquet --shards 1 2 4 8
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from seed_speed import fresh_database  # noqa: E402 - the benchmarks' shared servers

INVOICEGEN = [sys.executable, "-m", "invoicegen"]


@dataclass(frozen=True)
class Job:
    """One shard's work: ``index`` of ``count`` shards of ``users`` users."""

    users: int
    index: int
    count: int
    extra: tuple[str, ...]


def database_command(where: str, job: Job) -> list[str]:
    """A shard seeding the database at ``where`` (a URL)."""
    command = [*INVOICEGEN, "seed", "-d", where, "--users", str(job.users), "--seed", "1"]
    command += ["--shard", f"{job.index}/{job.count}", "--workers", "1", "--json", "-q"]
    return command + list(job.extra)


@contextlib.contextmanager
def database_target(kind: str) -> Iterator[str]:
    with fresh_database(kind) as url:
        yield url


@contextlib.contextmanager
def folder_target(kind: str) -> Iterator[str]:  # for export targets: a fresh folder
    with tempfile.TemporaryDirectory(prefix="invoicegen-scale-") as folder:
        yield folder


def export_command(where: str, job: Job) -> list[str]:
    """A shard exporting its part of the dataset into the folder ``where``."""
    command = [*INVOICEGEN, "export", where, "--format", FILE_FORMAT[0], "--force"]
    command += ["--users", str(job.users), "--seed", "1", "--as-of", "2026-11-30"]
    command += ["--shard", f"{job.index}/{job.count}", "--workers", "1", "--json", "-q"]
    return command + list(job.extra)


FILE_FORMAT = ["csv"]  # --format of the export target

#: Where shards write: a fresh place per N, and a shard's command line for it.
TARGETS: dict[
    str,
    tuple[Callable[[str], contextlib.AbstractContextManager[str]], Callable[[str, Job], list[str]]],
] = {
    "database": (database_target, database_command),
    "export": (folder_target, export_command),
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Result:
    shards: int
    rows: int
    wall_seconds: float
    total: int  # rows/s of all shards together
    per_shard: list[int]  # rows/s of each shard, its own figure
    cpu_per_row: float  # µs of CPU (user + system) per row, all processes


def run(target: str, kind: str, count: int, users_per_shard: int, extra: list[str]) -> Result:
    """``count`` shards at once; their figures."""
    make, command = TARGETS[target]
    with make(kind) as where:
        jobs = [Job(users_per_shard * count, k, count, tuple(extra)) for k in range(count)]
        cpu_before, started = _children_cpu(), time.perf_counter()
        shards = [
            subprocess.Popen(
                command(where, job), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for job in jobs
        ]
        outputs = [shard.communicate() for shard in shards]
        wall, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
    failed = [
        err.strip() for shard, (_, err) in zip(shards, outputs, strict=True) if shard.returncode
    ]
    if failed:
        raise SystemExit(f"a shard failed: {failed[0]}")
    results = [json.loads(out) for out, _ in outputs]
    rows = sum(int(r["rows"]) for r in results)
    per_shard = [round(float(r["rows_per_second"])) for r in results]
    return Result(count, rows, wall, round(rows / wall), per_shard, cpu / rows * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", choices=sorted(TARGETS), default="database")
    parser.add_argument("--db", choices=["postgresql", "mariadb", "sqlite"], default="postgresql")
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--users-per-shard", type=int, default=20_000)
    parser.add_argument(
        "--seed-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument of each shard's command (repeat): --seed-arg=--batch-size=5000",
    )
    parser.add_argument(
        "--format",
        choices=["csv", "jsonl", "sql", "parquet"],
        default="csv",
        help="of --target export",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per N")
    args = parser.parse_args()
    FILE_FORMAT[0] = args.format
    if not args.json:
        extra = " ".join(args.seed_arg)
        where = args.format if args.target == "export" else args.db
        print(f"{args.target} ({where}), {args.users_per_shard:,} users per shard {extra}")
        print("shards  rows        wall s  total rows/s  per shard rows/s          CPU µs/row")
    for count in args.shards:
        result = run(args.target, args.db, count, args.users_per_shard, args.seed_arg)
        if args.json:
            print(json.dumps(dataclasses.asdict(result)))
            continue
        per_shard = ", ".join(f"{r:,}" for r in result.per_shard)
        print(
            f"{count:>6}  {result.rows:>10,}  {result.wall_seconds:>6.2f}  "
            f"{result.total:>12,}  {per_shard:<24}  {result.cpu_per_row:.1f}"
        )


if __name__ == "__main__":
    main()
