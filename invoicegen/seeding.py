"""The seeding engine: plan -> rows (through the factories) -> batched writes.

Determinism: everything about user number ``p`` (how many children at each level, every value)
is derived from ``(seed, p)`` alone, so the same seed gives the same rows whatever the batch
size or number of workers, and ``--users 60`` holds the 50 user trees of ``--users 50``.
Ids are dense: a user tree's ids follow from the sizes of the trees before it, which the plan
computes cheaply without generating any values.

Each batch of whole user trees is written in one transaction, so the database only ever holds
whole trees.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import random
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from types import SimpleNamespace
from typing import Any

import factory
import factory.random
import faker.generator
from sqlalchemy.engine import Connection, Engine

from invoicegen import db, writers
from invoicegen.errors import RefusedError
from invoicegen.factories import (
    IsolatedClientFactory,
    IsolatedContractFactory,
    IsolatedInvoiceFactory,
    IsolatedUserFactory,
)
from invoicegen.rows import RowMaker
from invoicegen.settings import CountRange

TABLES = writers.TABLES  # users, clients, contracts, invoices


@dataclass(frozen=True)
class SeedPlan:
    """What to seed. ``seed`` None picks one (reported in the result); ``as_of`` None is today."""

    users: int
    clients_per_user: CountRange = CountRange(1, 3)
    contracts_per_client: CountRange = CountRange(1, 3)
    invoices_per_contract: CountRange = CountRange(1, 5)
    seed: int | None = None
    as_of: dt.date | None = None
    locale: str = "en_US"
    batch_size: int = 1000
    workers: int = 1


@dataclass(frozen=True)
class SeedResult:
    counts: dict[str, int]
    seconds: float
    seed: int
    as_of: dt.date
    revision: str
    batches: int
    workers: int

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Progress:
    """Reported after each committed batch."""

    users_done: int
    users_total: int
    rows_done: int


# --- the plan: tree shapes and id offsets, no values --------------------------------------------

Shape = list[list[int]]  # per client, per contract: the number of invoices


def stream_key(seed: int, position: int, stream: str) -> int:
    """A 64-bit seed for one random stream of one user tree: stable across processes,
    platforms, Python versions and PYTHONHASHSEED (BLAKE2b, not hash())."""
    digest = hashlib.blake2b(f"{seed}:{position}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _rng(seed: int, position: int, stream: str) -> random.Random:
    return random.Random(stream_key(seed, position, stream))


def _draw(rng: random.Random, counts: CountRange) -> int:
    return counts.low if counts.low == counts.high else rng.randint(counts.low, counts.high)


def tree_shape(plan: SeedPlan, seed: int, position: int) -> Shape:
    """How many clients, contracts and invoices user ``position`` has.

    Drawn level by level from one stream (all client counts, then all contract counts, then
    all invoice counts), so changing one level's range never changes the levels above it.
    """
    rng = _rng(seed, position, "shape")
    clients = _draw(rng, plan.clients_per_user)
    contracts = [_draw(rng, plan.contracts_per_client) for _ in range(clients)]
    return [[_draw(rng, plan.invoices_per_contract) for _ in range(n)] for n in contracts]


def shape_counts(shape: Shape) -> tuple[int, int, int, int]:
    return (1, len(shape), sum(len(c) for c in shape), sum(sum(c) for c in shape))


@dataclass(frozen=True)
class Batch:
    """Users ``first`` .. ``first + size - 1`` and the first id of each table for them."""

    first: int
    size: int
    first_ids: tuple[int, int, int, int]


def plan_batches(plan: SeedPlan, seed: int, *, start: int = 0) -> Iterator[Batch]:
    """Cut users ``start`` .. ``start + plan.users - 1`` into batches with their first ids."""
    next_ids = [1, 1, 1, 1]
    position = start
    end = start + plan.users
    while position < end:
        size = min(plan.batch_size, end - position)
        yield Batch(position, size, (next_ids[0], next_ids[1], next_ids[2], next_ids[3]))
        for p in range(position, position + size):
            for level, count in enumerate(shape_counts(tree_shape(plan, seed, p))):
                next_ids[level] += count
        position += size


# --- rows: values come from the factories ---------------------------------------------------------

Rows = list[tuple[Any, ...]]
BatchRows = tuple[Rows, Rows, Rows, Rows]


@dataclass(frozen=True)
class _Makers:
    user: RowMaker
    client: RowMaker
    contract: RowMaker
    invoice: RowMaker


@functools.cache
def _makers(locale: str) -> _Makers:
    return _Makers(
        RowMaker(IsolatedUserFactory, ("name", "email", "phone"), locale=locale),
        RowMaker(IsolatedClientFactory, ("name", "company_name", "email"), locale=locale),
        RowMaker(IsolatedContractFactory, ("summary", "start_date", "end_date"), locale=locale),
        RowMaker(IsolatedInvoiceFactory, ("period_start", "period_end", "amount"), locale=locale),
    )


class Row(SimpleNamespace):
    """A parent as the factories' declarations see it (``o.contract.start_date``)."""


def _reseed(seed: int, position: int, stream: str) -> None:
    # What factory.random.reseed_random() does (factory-boy's and Faker's generators in the
    # same state), for half its cost: seed both with one integer instead of copying a state.
    key = stream_key(seed, position, f"values:{stream}")
    factory.random.randgen.seed(key)
    faker.generator.random.seed(key)


def generate_batch(plan: SeedPlan, seed: int, as_of: dt.date, batch: Batch) -> BatchRows:
    """The rows of one batch of whole user trees, as tuples in ``writers.COLUMNS`` order."""
    makers = _makers(plan.locale)
    users: Rows = []
    clients: Rows = []
    contracts: Rows = []
    invoices: Rows = []
    user_id, client_id, contract_id, invoice_id = batch.first_ids
    for position in range(batch.first, batch.first + batch.size):
        shape = tree_shape(plan, seed, position)
        # One random stream per level: user and client names and emails do not move when
        # the contract or invoice ranges change.
        _reseed(seed, position, "people")
        users.append((user_id, *makers.user.make(number=position + 1)))
        client_ids = []
        for _ in shape:
            clients.append((client_id, *makers.client.make(user=None), user_id))
            client_ids.append(client_id)
            client_id += 1
        user_id += 1
        _reseed(seed, position, "contracts")
        contract_rows = []
        for owner, invoice_counts in zip(client_ids, shape, strict=True):
            for count in invoice_counts:
                row = makers.contract.make(client=None, as_of=as_of, invoice_count=count)
                contracts.append((contract_id, *row, owner))
                contract_rows.append((contract_id, Row(start_date=row[1], end_date=row[2]), count))
                contract_id += 1
        _reseed(seed, position, "invoices")
        for owner, contract, count in contract_rows:
            for index in range(count):
                row = makers.invoice.make(contract=contract, as_of=as_of, index=index, count=count)
                invoices.append((invoice_id, *row, owner))
                invoice_id += 1
    return users, clients, contracts, invoices


def _generate_for(
    plan: SeedPlan, seed: int, as_of: dt.date, batch: Batch, dialect: str
) -> BatchRows:
    """Generate and adapt in the same process: conversions happen once, off the writer."""
    users, clients, contracts, invoices = generate_batch(plan, seed, as_of, batch)
    adapt = writers.adapter(dialect)
    return adapt(users), adapt(clients), adapt(contracts), adapt(invoices)


def sync_sequences(connection: Connection) -> None:
    """Move id generators past the ids invoicegen wrote, so the application's inserts never collide.

    PostgreSQL's serial sequences do not follow explicit ids; MariaDB's AUTO_INCREMENT and
    SQLite's rowid do.
    """
    if connection.dialect.name != "postgresql":
        return
    for table in TABLES:
        connection.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        )


def count_rows(connection: Connection) -> dict[str, int]:
    return {
        table: int(connection.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one())
        for table in TABLES
    }


def _batch_rows(
    plan: SeedPlan,
    seed: int,
    as_of: dt.date,
    batches: Iterator[Batch],
    workers: int,
    dialect: str,
) -> Iterator[tuple[Batch, BatchRows]]:
    """Rows of each batch, in order; generated in ``workers`` processes when more than one."""
    if workers <= 1:
        for batch in batches:
            yield batch, _generate_for(plan, seed, as_of, batch, dialect)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        window: deque[tuple[Batch, Future[BatchRows]]] = deque()
        for batch in batches:
            window.append((batch, pool.submit(_generate_for, plan, seed, as_of, batch, dialect)))
            if len(window) > 2 * workers:
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()


def default_workers() -> int:
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


def seed(
    engine: Engine,
    plan: SeedPlan,
    *,
    on_progress: Callable[[Progress], None] | None = None,
) -> SeedResult:
    """Migrate, then write ``plan.users`` whole user trees in batches; returns what was written."""
    started = time.perf_counter()
    seed_value = plan.seed if plan.seed is not None else secrets.randbelow(2**31)
    as_of = plan.as_of or dt.date.today()
    plan = replace(plan, seed=seed_value, as_of=as_of)
    revision = db.upgrade(engine)
    with db.connect(engine) as connection:
        existing = count_rows(connection)["users"]
    if existing:
        raise RefusedError(
            f"{db.mask(engine.url)} already holds an invoicegen dataset ({existing:,} users); "
            "run `invoicegen reset` first"
        )
    n_batches = -(-plan.users // plan.batch_size) if plan.users else 0
    workers = max(1, min(plan.workers, n_batches))
    users_done = rows_done = 0
    with db.database_errors(engine.url):
        batches = plan_batches(plan, seed_value)
        dialect = engine.dialect.name
        for batch, rows in _batch_rows(plan, seed_value, as_of, batches, workers, dialect):
            with engine.begin() as connection:
                writers.write_batch(connection, rows)
            users_done += batch.size
            rows_done += sum(len(r) for r in rows)
            if on_progress is not None:
                on_progress(Progress(users_done, plan.users, rows_done))
        with engine.begin() as connection:
            sync_sequences(connection)
            counts = count_rows(connection)
    return SeedResult(
        counts=counts,
        seconds=time.perf_counter() - started,
        seed=seed_value,
        as_of=as_of,
        revision=revision,
        batches=n_batches,
        workers=workers,
    )
