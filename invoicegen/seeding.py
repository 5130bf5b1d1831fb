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
from sqlalchemy.engine import Connection, Engine

from invoicegen import db
from invoicegen.errors import Interrupted, RefusedError
from invoicegen.factories import (
    IsolatedClientFactory,
    IsolatedContractFactory,
    IsolatedInvoiceFactory,
    IsolatedUserFactory,
)
from invoicegen.models import DATA_TABLES
from invoicegen.settings import CountRange

TABLES = tuple(table.name for table in DATA_TABLES)  # users, clients, contracts, invoices


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


def _rng(seed: int, position: int, stream: str) -> random.Random:
    # String seeds are hashed with SHA-512: stable across processes, platforms and PYTHONHASHSEED.
    return random.Random(f"invoicegen:{seed}:{position}:{stream}")


def _draw(rng: random.Random, counts: CountRange) -> int:
    return counts.low if counts.low == counts.high else rng.randint(counts.low, counts.high)


def tree_shape(plan: SeedPlan, seed: int, position: int) -> Shape:
    """How many clients, contracts and invoices user ``position`` has: one stream per level,
    so changing one level's range leaves the counts of the levels above it as they were."""
    clients = _draw(_rng(seed, position, "clients"), plan.clients_per_user)
    contracts_rng = _rng(seed, position, "contracts")
    contracts = [_draw(contracts_rng, plan.contracts_per_client) for _ in range(clients)]
    invoices_rng = _rng(seed, position, "invoices")
    return [[_draw(invoices_rng, plan.invoices_per_contract) for _ in range(n)] for n in contracts]


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


class Row(SimpleNamespace):
    """What a factory builds for the engine: the declared values, no ORM machinery."""


def _row_factory(factory_class: type[factory.Factory]) -> Any:
    meta = type("Meta", (), {"model": Row})
    return type(f"{factory_class.__name__}Rows", (factory_class,), {"Meta": meta})


_UserRows = _row_factory(IsolatedUserFactory)
_ClientRows = _row_factory(IsolatedClientFactory)
_ContractRows = _row_factory(IsolatedContractFactory)
_InvoiceRows = _row_factory(IsolatedInvoiceFactory)

BatchRows = tuple[
    list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]
]

#: Column order of the tuples each table's rows are written with.
COLUMNS = {
    "users": ("id", "name", "email", "phone"),
    "clients": ("id", "name", "company_name", "email", "user_id"),
    "contracts": ("id", "summary", "start_date", "end_date", "client_id"),
    "invoices": ("id", "period_start", "period_end", "amount", "contract_id"),
}


def _reseed(seed: int, position: int, stream: str) -> None:
    factory.random.reseed_random(f"invoicegen:{seed}:{position}:values:{stream}")


def generate_batch(plan: SeedPlan, seed: int, as_of: dt.date, batch: Batch) -> BatchRows:
    """The rows of one batch of whole user trees, as tuples in :data:`COLUMNS` order."""
    users: list[tuple[Any, ...]] = []
    clients: list[tuple[Any, ...]] = []
    contracts: list[tuple[Any, ...]] = []
    invoices: list[tuple[Any, ...]] = []
    user_id, client_id, contract_id, invoice_id = batch.first_ids
    with factory.Faker.override_default_locale(plan.locale):
        for position in range(batch.first, batch.first + batch.size):
            shape = tree_shape(plan, seed, position)
            # Users and clients first, from their own stream: their names and emails do not
            # move when the contract or invoice ranges change.
            _reseed(seed, position, "people")
            user = _UserRows.build(id=user_id, number=position + 1)
            users.append((user.id, user.name, user.email, user.phone))
            user_id += 1
            client_rows = []
            for _ in shape:
                client = _ClientRows.build(id=client_id, user=user)
                clients.append((client.id, client.name, client.company_name, client.email, user.id))
                client_rows.append(client)
                client_id += 1
            _reseed(seed, position, "contracts")
            contract_rows = []
            for client, invoice_counts in zip(client_rows, shape, strict=True):
                for count in invoice_counts:
                    contract = _ContractRows.build(
                        id=contract_id, client=client, as_of=as_of, invoice_count=count
                    )
                    contracts.append(
                        (
                            contract.id,
                            contract.summary,
                            contract.start_date,
                            contract.end_date,
                            client.id,
                        )
                    )
                    contract_rows.append((contract, count))
                    contract_id += 1
            _reseed(seed, position, "invoices")
            for contract, count in contract_rows:
                for index in range(count):
                    invoice = _InvoiceRows.build(
                        id=invoice_id, contract=contract, as_of=as_of, index=index, count=count
                    )
                    invoices.append(
                        (
                            invoice.id,
                            invoice.period_start,
                            invoice.period_end,
                            invoice.amount,
                            contract.id,
                        )
                    )
                    invoice_id += 1
    return users, clients, contracts, invoices


# --- writing ----------------------------------------------------------------------------------


def _insert_sql(connection: Connection, table: str) -> str:
    columns = COLUMNS[table]
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))})"
    )


def _adapt_for_sqlite(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    # sqlite3's default date adapters are deprecated; Decimal is not supported at all.
    return [
        tuple(
            v.isoformat() if isinstance(v, dt.date) else str(v) if hasattr(v, "as_tuple") else v
            for v in row
        )
        for row in rows
    ]


def write_batch(connection: Connection, rows: BatchRows) -> None:
    """Insert one batch's rows, parents first, with one executemany per table."""
    sqlite = connection.dialect.name == "sqlite"
    for table, table_rows in zip(TABLES, rows, strict=True):
        if table_rows:
            params = _adapt_for_sqlite(table_rows) if sqlite else table_rows
            connection.exec_driver_sql(_insert_sql(connection, table), params)


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
    plan: SeedPlan, seed: int, as_of: dt.date, batches: Iterator[Batch], workers: int
) -> Iterator[tuple[Batch, BatchRows]]:
    """Rows of each batch, in order; generated in ``workers`` processes when more than one."""
    if workers <= 1:
        for batch in batches:
            yield batch, generate_batch(plan, seed, as_of, batch)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        window: deque[tuple[Batch, Future[BatchRows]]] = deque()
        for batch in batches:
            window.append((batch, pool.submit(generate_batch, plan, seed, as_of, batch)))
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
    lock_timeout: float = db.LOCK_TIMEOUT_SECONDS,
) -> SeedResult:
    """Migrate, then write ``plan.users`` whole user trees in batches; returns what was written.

    Holds the database's run lock throughout (:func:`db.run_lock`). Ctrl-C (or SIGTERM turned
    into KeyboardInterrupt) rolls back the batch in progress and raises :class:`Interrupted`
    saying how many user trees were committed.
    """
    committed = Progress(0, plan.users, 0)

    def track(event: Progress) -> None:
        nonlocal committed
        committed = event
        if on_progress is not None:
            on_progress(event)

    try:
        with db.run_lock(engine, timeout=lock_timeout):
            return _seed(engine, plan, on_progress=track)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: {committed.users_done:,} of {plan.users:,} user trees "
            f"({committed.rows_done:,} rows) are committed in {db.mask(engine.url)}, whole; "
            "the batch in progress was rolled back"
        ) from None


def _seed(
    engine: Engine,
    plan: SeedPlan,
    *,
    on_progress: Callable[[Progress], None] | None = None,
) -> SeedResult:
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
        for batch, rows in _batch_rows(
            plan, seed_value, as_of, plan_batches(plan, seed_value), workers
        ):
            with engine.begin() as connection:
                write_batch(connection, rows)
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
