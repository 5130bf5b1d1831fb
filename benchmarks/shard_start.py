"""How long a shard takes to its first row, by where its slice starts.

    python benchmarks/shard_start.py                      # the plan, then real shards on SQLite
    python benchmarks/shard_start.py --db postgresql      # real shards into PostgreSQL
    python benchmarks/shard_start.py --plan-only

Two measurements, side by side in one run:

1. the plan: CPU time of the first ids at user 0, 1M, 10M and 100M (``first_ids_at``: whole
   blocks of counts), next to the computation it replaced (every tree's shape before the
   position, drawn and added up): measured up to ``--old-up-to`` users and extrapolated
   linearly beyond (it is a loop over users: its time is linear by construction);
2. a real ``invoicegen seed --users 100000000 --shard K/100 --workers 1`` into a fresh
   database, K = 0, 1, 10, 99 (its slice starts at user 0, 1M, 10M, 99M): the wall time and
   the process's CPU time until its first batch is committed (read from the manifest), then
   the shard is stopped (SIGTERM: it rolls back the batch in progress and records itself
   interrupted).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from invoicegen import db
from invoicegen.seeding.plan import Plan, first_ids_at
from invoicegen.settings import CountMix

sys.path.insert(0, str(Path(__file__).parent))
from seed_speed import fresh_database  # noqa: E402 - the benchmarks' shared servers

POSITIONS = (0, 1_000_000, 10_000_000, 100_000_000)
TOTAL = 100_000_000  # users of the sharded dataset (invoicegen's most)
SHARDS = 100
TICKS = os.sysconf("SC_CLK_TCK")


def _plan(seed: int) -> Plan:
    return Plan(
        users=TOTAL,
        clients_per_user=CountMix.range(1, 3),
        contracts_per_client=CountMix.range(1, 3),
        invoices_per_contract=CountMix.range(1, 5),
        seed=seed,
        as_of=dt.date(2026, 11, 25),
        locale="en_US",
        since=dt.date(2023, 11, 25),
        batch_size=1000,
        first_batch_size=100,
        workers=1,
        append=False,
        shard=None,
        force=False,
    )


def _old_tree_counts(a_plan: Plan, position: int) -> tuple[int, int, int]:
    """The tree shape as invoicegen drew it before blocks: one hashed stream per user."""
    digest = hashlib.blake2b(f"{a_plan.seed}:{position}:shape".encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(digest, "big"))
    clients = a_plan.clients_per_user.draw(rng)
    contracts = [a_plan.contracts_per_client.draw(rng) for _ in range(clients)]
    invoices = sum(a_plan.invoices_per_contract.draw(rng) for n in contracts for _ in range(n))
    return clients, sum(contracts), invoices


def _old_first_ids(a_plan: Plan, position: int) -> tuple[int, int, int, int]:
    """The replaced computation: every tree before ``position``, drawn and added up."""
    ids = [position + 1, 1, 1, 1]
    for p in range(position):
        for level, count in enumerate(_old_tree_counts(a_plan, p), 1):
            ids[level] += count
    return ids[0], ids[1], ids[2], ids[3]


def measure_plan(old_up_to: int) -> None:
    print("first ids (CPU seconds): position, blocks (now), prefix sums (before)")
    per_user = None
    for position in POSITIONS:
        seed = random.randrange(2**31)  # a fresh seed: no cached block helps
        started = time.process_time()
        first_ids_at(_plan(seed), position)
        now = time.process_time() - started
        if position <= old_up_to:
            started = time.process_time()
            _old_first_ids(_plan(seed), position)
            before = time.process_time() - started
            per_user = before / position if position else per_user
            label = f"{before:.3f}"
        else:
            label = f"~{per_user * position:.0f} (extrapolated)" if per_user else "?"
        print(f"  {position:>11,}  {now:.6f}  {label}")


def _users_done(url: str) -> int:
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            done = connection.execute(sa.text("SELECT MAX(users_done) FROM invoicegen_runs"))
            return int(done.scalar() or 0)
    except sa.exc.DBAPIError:  # not migrated yet
        return 0
    finally:
        engine.dispose()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def measure_shard(kind: str, index: int) -> tuple[float, float]:
    """Wall and CPU seconds of ``seed --shard index/100`` until its first batch commits."""
    with fresh_database(kind) as url:
        command = [sys.executable, "-m", "invoicegen", "seed", "-d", url, "--seed", "1", "-q"]
        command += ["--users", str(TOTAL), "--shard", f"{index}/{SHARDS}", "--workers", "1"]
        started = time.perf_counter()
        shard = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while _users_done(url) == 0:
                if shard.poll() is not None:
                    raise SystemExit(f"the shard ended early: {shard.communicate()[1].decode()}")
                time.sleep(0.02)
            wall, cpu = time.perf_counter() - started, _cpu_seconds(shard.pid)
        finally:
            shard.send_signal(signal.SIGTERM)
            try:
                shard.wait(timeout=120)
            except subprocess.TimeoutExpired:
                shard.kill()
                shard.wait()
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "mariadb"], default="sqlite")
    parser.add_argument("--old-up-to", type=int, default=1_000_000, metavar="USERS")
    parser.add_argument("--plan-only", action="store_true")
    args = parser.parse_args()
    measure_plan(args.old_up_to)
    if args.plan_only:
        return
    print(f"seed --shard K/{SHARDS} of {TOTAL:,} users into {args.db}: to the first committed row")
    for index in (0, 1, 10, 99):
        wall, cpu = measure_shard(args.db, index)
        start = index * TOTAL // SHARDS
        print(
            f"  shard {index:>2}/{SHARDS} (from user {start:>11,}): {wall:.2f} s, CPU {cpu:.2f} s"
        )


if __name__ == "__main__":
    main()
