"""Instructions per row of each table, generating on one core: counted by valgrind, so other
load on the machine changes nothing (CPU time does change under load).

    PYTHONHASHSEED=0 python benchmarks/instructions.py --users 300

Fix the hash seed when comparing two runs: string hashes decide dict and set layouts, and
without a fixed seed a level's count moves by about 4k instructions per row between runs.

Runs this script under ``valgrind --tool=callgrind`` once per level: imports and warm-up only,
then users only, users and clients, ... all four tables (each level below is cut off: it draws
nothing from the tree's random stream, whose draws go level by level). A level's instructions
are the difference from the run before it, divided by its rows. Slow: about 50 times Python's
own speed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

LEVELS = ("users", "clients", "contracts", "invoices")
AS_OF = dt.date(2026, 11, 25)


def generate_up_to(level: str, users: int) -> list[int]:
    """Generate ``users`` user trees down to ``level`` (``base``: nothing), after a warm-up."""
    from invoicegen.seeding import generate
    from invoicegen.seeding.plan import SHAPING_DEFAULTS, Batch, SeedPlan, default_since, resolved

    plan = resolved(
        SeedPlan(users=users, seed=1, as_of=AS_OF), **SHAPING_DEFAULTS, since=default_since(AS_OF)
    )
    generate.warm(plan.locale)
    generate.generate_batch(plan, Batch(10**6, 20, (1, 1, 1, 1)))  # caches, as a worker has
    if level == "base":
        return [0, 0, 0, 0]
    cut: dict[str, Any] = {
        "invoices": lambda *a: None,
        "contracts": lambda *a: [],
        "clients": lambda *a: [],
    }
    for lower in LEVELS[LEVELS.index(level) + 1 :]:
        setattr(generate, f"_{lower}", cut[lower])
    return [len(rows) for rows in generate.generate_batch(plan, Batch(0, users, (1, 1, 1, 1)))]


def count(level: str, users: int) -> tuple[int, list[int]]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             __file__, "--level", level, "--users", str(users)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    instructions = int(re.search(r"Collected : (\d+)", done.stderr).group(1))  # type: ignore[union-attr]
    rows = [int(n) for n in re.search(r"ROWS (.*)", done.stdout).group(1).split(",")]  # type: ignore[union-attr]
    return instructions, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--level", choices=("base", *LEVELS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.level:  # one run, under valgrind
        print("ROWS " + ",".join(map(str, generate_up_to(args.level, args.users))))
        return
    previous, _ = count("base", args.users)
    per_row, total, all_rows = {}, 0, 0
    for index, level in enumerate(LEVELS):
        instructions, rows = count(level, args.users)
        per_row[level] = (instructions - previous) / rows[index]
        total, all_rows, previous = total + instructions - previous, sum(rows), instructions
    print(f"instructions per row, one core, {args.users:,} users:")
    print("  " + ", ".join(f"{k} {v / 1000:,.1f}k" for k, v in per_row.items()), end="")
    print(f", all {total / all_rows / 1000:,.1f}k")


if __name__ == "__main__":
    main()
