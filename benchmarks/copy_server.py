"""Where PostgreSQL's time goes during a seed: the write floor's rows against invoicegen's,
through the same writer, each batch in one transaction, with and without invoicegen's own
per-batch work (the manifest's progress and the id sequences).

    python benchmarks/copy_server.py --users 10000 --rounds 2

The rows are generated and encoded before the clock starts; it prints rows/s, the client's
CPU and the server backend's CPU per row (``/proc/PID/stat`` of the connection's backend: the
server must run on this machine) and the WAL written per row (server-wide: other sessions'
writes count too). Variants alternate, round after round, in a fresh database each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from invoicegen import db, manifest, schema, urls
from invoicegen.seeding import generate, writers
from invoicegen.seeding.plan import (
    SHAPING_DEFAULTS,
    Batch,
    SeedPlan,
    default_since,
    plan_batches,
    resolved,
)

AS_OF = dt.date(2026, 11, 25)
SERVER = os.environ.get(
    "INVOICEGEN_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
Batches = list[tuple[Batch, Sequence[writers.Prepared]]]


def invoicegen_batches(users: int) -> Batches:
    plan = resolved(
        SeedPlan(users=users, seed=1, as_of=AS_OF),
        **SHAPING_DEFAULTS,
        since=default_since(AS_OF),
    )
    generate.warm(plan.locale)
    return [
        (batch, generate.generate_prepared(plan, "postgresql", batch))
        for batch in plan_batches(plan, range(users))
    ]


def floor_batches(real: Batches) -> Batches:
    """The write floor's cheap rows (as ``seed_speed.py`` makes them), in the same batches."""
    day, money = AS_OF - dt.timedelta(days=400), Decimal("123.45")
    values: dict[str, Callable[[int, Any], tuple[Any, ...]]] = {
        "users": lambda i, _p: (i, "Jane Doe", f"jane.{i}@example.com", "555-0100"),
        "clients": lambda i, p: (i, "John Roe", "Acme Inc", "john@acme.example", "US", 30, p),
        "contracts": lambda i, p: (i, "Consulting", day, None, "USD", money, p),
        "invoices": lambda i, p: (
            *(i, day, day + dt.timedelta(days=30), money, f"INV-{p}-{i}"),
            *(day, day, day, "paid", "USD", p),
        ),
    }
    first = dict.fromkeys(values, 1)
    batches: Batches = []
    for batch, prepared in real:
        encoded, parents = [], range(0)
        for (table, make), rows in zip(values.items(), prepared, strict=True):
            n = writers.row_count(rows)
            ids = range(first[table], first[table] + n)
            made = [
                make(i, parents[k * len(parents) // n] if parents else None)
                for k, i in enumerate(ids)
            ]
            encoded.append(writers.encode_copy(made))
            parents, first[table] = ids, first[table] + n
        batches.append((batch, encoded))
    return batches


def backend_cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(batches: Batches, per_batch_work: bool) -> dict[str, float]:
    name = f"invoicegen_copy_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(urls.parse(SERVER), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        url = urls.parse(SERVER).set(database=name).render_as_string(hide_password=False)
        engine = db.make_engine(url)
        schema.upgrade(engine)
        with engine.begin() as connection:
            run_id = manifest.start(
                connection, seed=1, as_of=AS_OF, first_user=0, users=0, shard=None, options={}
            )
        with engine.connect() as connection:  # the pool's one connection: every batch's
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            lsn = connection.exec_driver_sql("SELECT pg_current_wal_lsn()").scalar_one()
        server, client, wall = backend_cpu(pid), time.process_time(), time.perf_counter()
        users_done = 0
        for batch, rows in batches:
            users_done += batch.size
            with engine.begin() as connection:
                writers.write_batch(connection, rows)
                if per_batch_work:
                    manifest.committed(connection, run_id, users_done)
                    highest = writers.highest_ids(batch.first_ids, rows)
                    writers.sync_sequences(connection, highest)
        wall = time.perf_counter() - wall
        client = time.process_time() - client
        server = backend_cpu(pid) - server
        with engine.connect() as connection:
            wal = connection.exec_driver_sql(
                f"SELECT pg_current_wal_lsn() - '{lsn}'::pg_lsn"
            ).scalar_one()
        engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
    rows = sum(writers.row_count(p) for _, prepared in batches for p in prepared)
    return {
        "rows/s": rows / wall,
        "server µs/row": server / rows * 1e6,
        "client µs/row": client / rows * 1e6,
        "WAL B/row": int(wal) / rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    real = invoicegen_batches(args.users)
    variants = {
        "write floor's rows": (floor_batches(real), False),
        "invoicegen's rows": (real, False),
        "invoicegen's rows + manifest + sequences": (real, True),
    }
    print(f"{args.users:,} users, {len(real)} batches, load {os.getloadavg()[0]:.1f}")
    for _ in range(args.rounds):
        for label, (batches, per_batch_work) in variants.items():
            figures = run(batches, per_batch_work)
            print(f"{label:42} " + ", ".join(f"{k} {v:,.2f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
