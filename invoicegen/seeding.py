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

import contextlib
import datetime as dt
import functools
import hashlib
import os
import random
import secrets
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import factory
import factory.random
import faker.generator
from sqlalchemy.engine import Connection, Engine

from invoicegen import db, interrupts, manifest, writers
from invoicegen import workers as worker_processes
from invoicegen.errors import Interrupted, RefusedError, UsageError, WorkerDied
from invoicegen.factories import (
    HISTORY_MONTHS,
    IsolatedClientFactory,
    IsolatedContractFactory,
    IsolatedUserFactory,
    add_months,
    bill_contract,
    invoice_number,
)
from invoicegen.rows import RowMaker
from invoicegen.settings import CountMix, Shard, check_as_of

TABLES = db.TABLES  # users, clients, contracts, invoices


#: What the options that shape the values default to in a new dataset.
SHAPING_DEFAULTS: dict[str, Any] = {
    "clients_per_user": CountMix.range(1, 3),
    "contracts_per_client": CountMix.range(1, 3),
    "invoices_per_contract": CountMix.range(1, 5),
    "locale": "en_US",
}


@dataclass(frozen=True)
class SeedPlan:
    """What to seed.

    Options left at None take the dataset's values when adding to one (``append``, ``shard``),
    else the defaults: a random seed (reported in the result), today, the article's ranges.
    With ``shard``, ``users`` is the total of all shards and this run writes its slice.
    """

    users: int
    clients_per_user: CountMix | None = None
    contracts_per_client: CountMix | None = None
    invoices_per_contract: CountMix | None = None
    seed: int | None = None
    as_of: dt.date | None = None
    locale: str | None = None
    since: dt.date | None = None  # ended contracts end after this day; default: as_of - 3 years
    batch_size: int = 1000
    #: Users in the first batch, so that progress shows sooner (None: ``batch_size``). Batches
    #: never change the data: every value derives from (seed, user position).
    first_batch_size: int | None = None
    workers: int = 1
    append: bool = False
    shard: Shard | None = None
    force: bool = False

    def __post_init__(self) -> None:
        if self.as_of is not None:
            check_as_of(self.as_of, name="as_of")
        if self.append and self.shard is not None:
            raise UsageError("--append and --shard do not go together: a shard is a fixed slice")
        if self.since is not None and self.as_of is not None and self.since >= self.as_of:
            raise UsageError(f"--since {self.since} must come before --as-of {self.as_of}")

    def shaping(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in SHAPING_DEFAULTS}

    @property
    def users_to_write(self) -> int:
        """User trees this run writes: ``users``, or a shard's slice of them."""
        return len(self.shard.positions(self.users)) if self.shard else self.users


@dataclass(frozen=True)
class SeedResult:
    counts: dict[str, int]  # rows in the database after the run
    written: dict[str, int]  # rows this run wrote
    seconds: float  # generating and writing them
    seed: int
    as_of: dt.date
    revision: str
    batches: int
    workers: int
    first_user: int  # position of the first user tree this run wrote
    users: int  # user trees this run wrote
    run_id: int
    plan: SeedPlan  # with every option resolved

    @property
    def rows(self) -> int:
        return sum(self.written.values())

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


def tree_shape(plan: SeedPlan, seed: int, position: int) -> Shape:
    """How many clients, contracts and invoices user ``position`` has.

    Drawn level by level from one stream (all client counts, then all contract counts, then
    all invoice counts), so changing one level's range or mix never changes the levels above it.
    """
    per_user, per_client, per_contract = (
        plan.clients_per_user,
        plan.contracts_per_client,
        plan.invoices_per_contract,
    )
    assert per_user and per_client and per_contract, "the plan's ranges are resolved"
    rng = _rng(seed, position, "shape")
    clients = per_user.draw(rng)
    contracts = [per_client.draw(rng) for _ in range(clients)]
    return [[per_contract.draw(rng) for _ in range(n)] for n in contracts]


def shape_counts(shape: Shape) -> tuple[int, int, int, int]:
    return (1, len(shape), sum(len(c) for c in shape), sum(sum(c) for c in shape))


@dataclass(frozen=True)
class Batch:
    """Users ``first`` .. ``first + size - 1`` and the first id of each table for them."""

    first: int
    size: int
    first_ids: tuple[int, int, int, int]


def _add_trees(next_ids: list[int], plan: SeedPlan, seed: int, positions: range) -> None:
    """Move ``next_ids`` past the trees of the users at ``positions`` (shapes only)."""
    for p in positions:
        for level, count in enumerate(shape_counts(tree_shape(plan, seed, p))):
            next_ids[level] += count


def first_ids_at(plan: SeedPlan, seed: int, position: int) -> tuple[int, int, int, int]:
    """The ids user ``position``'s tree starts at when users 0 .. position-1 come before it."""
    next_ids = [1, 1, 1, 1]
    _add_trees(next_ids, plan, seed, range(position))
    return next_ids[0], next_ids[1], next_ids[2], next_ids[3]


def plan_batches(
    plan: SeedPlan,
    seed: int,
    positions: range,
    first_ids: tuple[int, int, int, int] = (1, 1, 1, 1),
) -> Iterator[Batch]:
    """Cut the users at ``positions`` into batches of whole trees, each with its first ids."""
    next_ids = list(first_ids)
    position, end = positions.start, positions.stop
    while position < end:
        first = position == positions.start and plan.first_batch_size
        size = min(first or plan.batch_size, end - position)
        yield Batch(position, size, (next_ids[0], next_ids[1], next_ids[2], next_ids[3]))
        _add_trees(next_ids, plan, seed, range(position, position + size))
        position += size


# --- rows: values come from the factories ---------------------------------------------------------

Rows = list[tuple[Any, ...]]
BatchRows = tuple[Rows, Rows, Rows, Rows]
Prepared = tuple[writers.Prepared, writers.Prepared, writers.Prepared, writers.Prepared]


@dataclass(frozen=True)
class _Makers:
    user: RowMaker
    client: RowMaker
    contract: RowMaker


CLIENT_FIELDS = ("name", "company_name", "email", "country", "payment_terms_days", "payer")
CONTRACT_FIELDS = ("summary", "start_date", "end_date", "currency", "monthly_rate")


@functools.cache
def _makers(locale: str) -> _Makers:
    return _Makers(
        RowMaker(IsolatedUserFactory, ("name", "email", "phone"), locale=locale),
        RowMaker(IsolatedClientFactory, CLIENT_FIELDS, locale=locale),
        RowMaker(IsolatedContractFactory, CONTRACT_FIELDS, locale=locale),
    )


def default_since(as_of: dt.date) -> dt.date:
    """Where the history of ended contracts starts unless ``--since`` says: 3 years back."""
    return add_months(as_of, -HISTORY_MONTHS)


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
    assert plan.locale is not None, "the plan's locale is resolved"
    makers = _makers(plan.locale)
    since = plan.since or default_since(as_of)
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
        client_rows = []
        for index in range(len(shape)):  # a client's number follows from its place in the tree
            *values, payer = makers.client.make(user=None, number=f"{position + 1}-{index + 1}")
            clients.append((client_id, *values, user_id))
            client_rows.append((client_id, Row(country=values[3]), values[4], payer))
            client_id += 1
        _reseed(seed, position, "contracts")
        contract_rows = []
        for (owner, client, terms, payer), invoice_counts in zip(client_rows, shape, strict=True):
            for count in invoice_counts:
                row = makers.contract.make(
                    client=client, as_of=as_of, since=since, invoice_count=count
                )
                contracts.append((contract_id, *row, owner))
                contract_rows.append((contract_id, row, terms, payer))
                contract_id += 1
        _reseed(seed, position, "invoices")
        rand = factory.random.randgen
        bills = []
        for owner, (_summary, start, end, currency, rate), terms, payer in contract_rows:
            for bill in bill_contract(rand, start, end, as_of, rate, currency, terms, payer):
                bills.append((invoice_id, bill, owner))
                invoice_id += 1
        # Numbers count the user's issued invoices by issue date, then id (= list order).
        issued = sorted((bill[3], index) for index, (_id, bill, _o) in enumerate(bills) if bill[3])
        numbers: list[str | None] = [None] * len(bills)
        for n, (_issued_on, index) in enumerate(issued, 1):
            numbers[index] = invoice_number(user_id, n)
        for (id_, bill, owner), number in zip(bills, numbers, strict=True):
            invoices.append((id_, *bill[:3], number, *bill[3:], owner))  # as writers.COLUMNS
        user_id += 1
    return users, clients, contracts, invoices


def _generate_for(
    plan: SeedPlan, seed: int, as_of: dt.date, batch: Batch, *, dialect: str
) -> Prepared:
    """Generate and adapt in the same process: conversions happen once, off the writer."""
    users, clients, contracts, invoices = generate_batch(plan, seed, as_of, batch)
    adapt = writers.adapter(dialect)
    return adapt(users), adapt(clients), adapt(contracts), adapt(invoices)


# One transaction at a time moves the sequences: the key of a transaction-level advisory lock.
_SEQUENCES_LOCK = int.from_bytes(
    hashlib.blake2b(b"invoicegen sequences", digest_size=8).digest(), "big", signed=True
)


def sync_sequences(connection: Connection, highest: Mapping[str, int]) -> None:
    """Move id generators past the ids just written (``highest``: table -> largest id), inside
    the caller's transaction, so the application's own inserts never collide; never backwards.

    PostgreSQL's serial sequences do not follow explicit ids; MariaDB's AUTO_INCREMENT and
    SQLite's rowid do. Shards write interleaved id ranges at once, so a sequence only ever moves
    forward, and one transaction at a time moves them (a transaction-level advisory lock):
    ``setval`` is not transactional, and reading then setting a sequence is two steps.
    """
    if connection.dialect.name != "postgresql" or not highest:
        return
    tables = list(highest)
    names = ", ".join(f"pg_get_serial_sequence('{table}', 'id')" for table in tables)
    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SEQUENCES_LOCK})")
    sequences = connection.exec_driver_sql(f"SELECT {names}").one()
    # The next id a sequence gives is its last_value, plus one once that has been given.
    moves = ", ".join(
        f"setval('{sequence}', GREATEST({int(highest[table]) + 1}, "
        f"(SELECT last_value + is_called::int FROM {sequence})), false)"
        for table, sequence in zip(tables, sequences, strict=True)
    )
    connection.exec_driver_sql(f"SELECT {moves}")


def _batch_rows(
    plan: SeedPlan,
    seed: int,
    as_of: dt.date,
    batches: Iterator[Batch],
    pool: worker_processes.Pool | None,
    dialect: str,
) -> Generator[tuple[Batch, Prepared], None, None]:
    """Rows of each batch, in order; generated by the ``pool``'s workers when there is one."""
    if pool is None:
        for batch in batches:
            yield batch, _generate_for(plan, seed, as_of, batch, dialect=dialect)
        return
    generate = functools.partial(_generate_for, plan, seed, as_of, dialect=dialect)
    yield from pool.map(generate, batches)


@contextlib.contextmanager
def _worker_pool(workers: int) -> Iterator[worker_processes.Pool | None]:
    """Generating processes, started at once so their start-up (imports, Faker) overlaps the
    migration and planning the writing process does meanwhile. None for one worker."""
    if workers <= 1:
        yield None
        return
    locale = SHAPING_DEFAULTS["locale"]
    with worker_processes.pool(workers, f"{__name__}:_warm", locale) as pool:
        yield pool


def _warm(locale: str) -> None:
    """In a worker: the most common locale's row makers, made before the first batch."""
    _makers(locale)


def default_workers() -> int:
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


@dataclass(frozen=True)
class _Target:
    """Where a run writes: its resolved plan and user positions."""

    plan: SeedPlan
    positions: range


def _resolve(
    plan: SeedPlan, runs: list[manifest.RunRecord], users_in_db: int, where: str
) -> _Target:
    """Check the run against the dataset already there; fill unset options from it."""
    identity = next((r for r in runs if r.users_done > 0 or r.status == "running"), None)
    if identity is None or (not plan.append and plan.shard is None):
        if users_in_db:
            raise RefusedError(
                f"{where} already holds an invoicegen dataset ({users_in_db:,} users); add to it "
                "with `invoicegen seed --append`, or drop it with `invoicegen reset`"
            )
        as_of = plan.as_of or dt.date.today()
        resolved = replace(
            plan,
            seed=plan.seed if plan.seed is not None else secrets.randbelow(2**31),
            as_of=as_of,
            since=plan.since or default_since(as_of),
            **{k: v if v is not None else SHAPING_DEFAULTS[k] for k, v in plan.shaping().items()},
        )
        if resolved.shard is None:
            return _Target(resolved, range(resolved.users))
        return _Target(resolved, resolved.shard.positions(resolved.users))

    options = identity.options if isinstance(identity.options, dict) else {}
    recorded = _recorded(identity.id, options, force=plan.force)
    since = _recorded_since(options, identity.as_of)
    wanted = {"seed": plan.seed, "as_of": plan.as_of, "since": plan.since, **plan.shaping()}
    have = {"seed": identity.seed, "as_of": identity.as_of, "since": since, **recorded}
    differences = [
        f"{key} {wanted[key]} (dataset: {have[key]})"
        for key in wanted
        if wanted[key] is not None and wanted[key] != have[key]
    ]
    resolved = replace(
        plan,
        seed=identity.seed if plan.seed is None else plan.seed,
        as_of=identity.as_of if plan.as_of is None else plan.as_of,
        since=since if plan.since is None else plan.since,
        **{k: recorded[k] if v is None else v for k, v in plan.shaping().items()},
    )
    current = manifest.versions()
    made_with = identity.versions if isinstance(identity.versions, dict) else {}
    version_differences = [
        f"{name} {current.get(name)} (dataset: {made_with.get(name, 'unknown')})"
        for name in current
        if current.get(name) != made_with.get(name)
    ]
    if plan.shard is not None:
        if options.get("shards") not in (None, plan.shard.count) or (
            options.get("users_total") not in (None, plan.users)
        ):
            differences.append(
                f"--users {plan.users} --shard {plan.shard} (dataset: "
                f"{options.get('users_total')} users in {options.get('shards')} shards)"
            )
        if differences:  # ids of a shard follow from these: --force cannot mix them
            raise RefusedError(f"this shard does not match the dataset: {'; '.join(differences)}")
        positions = plan.shard.positions(plan.users)
        for run in runs:
            overlap = range(
                max(run.first_user, positions.start), min(run.positions.stop, positions.stop)
            )
            if len(overlap) and (run.users_done or run.status == "running"):
                raise RefusedError(
                    f"users {positions.start + 1:,}–{positions.stop:,} (shard {plan.shard}) were "
                    f"already seeded by run {run.id} ({run.status}); nothing written"
                )
        differences = version_differences
        target = _Target(resolved, positions)
    else:
        differences += version_differences
        done = sum(run.users_done for run in runs)
        start = max(run.first_user + run.users_done for run in runs)
        if done != start or users_in_db != start:
            raise RefusedError(
                f"the dataset in {where} has gaps ({users_in_db:,} users, runs cover {start:,}); "
                "finish its shards before appending"
            )
        target = _Target(resolved, range(start, start + plan.users))
    if differences and not plan.force:
        raise RefusedError(
            f"the dataset was made differently: {'; '.join(differences)}; "
            "use the same options, or --force to add to it anyway"
        )
    return target


def _recorded_since(options: dict[str, Any], as_of: dt.date) -> dt.date:
    """The dataset's --since; a run recorded before the option existed used the default."""
    try:
        return dt.date.fromisoformat(str(options["since"]))
    except (KeyError, ValueError):
        return default_since(as_of)


def _recorded(run_id: int, options: dict[str, Any], *, force: bool) -> dict[str, Any]:
    """The shaping options the dataset's first run recorded; unreadable ones are refused,
    or with ``force`` taken as the defaults."""
    recorded: dict[str, Any] = {}
    for key, default in SHAPING_DEFAULTS.items():
        try:
            value = options[key]
            recorded[key] = CountMix.parse(value) if key != "locale" else str(value)
        except (KeyError, UsageError):
            if not force:
                raise RefusedError(
                    f"run {run_id} of the manifest does not record {key} in a form this "
                    "invoicegen reads; --force takes the default, `invoicegen reset` starts over"
                ) from None
            recorded[key] = default
    return recorded


def seed(
    engine: Engine,
    plan: SeedPlan,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    lock_timeout: float = db.LOCK_TIMEOUT_SECONDS,
    stop: Callable[[], bool] | None = None,
) -> SeedResult:
    """Migrate, then write ``plan.users`` whole user trees in batches; returns what was written.

    Holds the database's run lock (:func:`db.run_lock`) throughout, except a shard, which
    holds it while it records its run and then writes under its own lock beside the other
    shards. A stop request (``stop()`` true, checked between batches) or a KeyboardInterrupt
    (the CLI's Ctrl-C or SIGTERM, see :mod:`invoicegen.interrupts`) rolls back the batch in
    progress and raises :class:`Interrupted` saying how many user trees were committed. A
    generating worker that dies raises :class:`WorkerDied`; the other workers are stopped.
    """
    committed = Progress(0, plan.users_to_write, 0)

    def track(event: Progress) -> None:
        nonlocal committed
        committed = event
        if on_progress is not None:
            on_progress(event)

    try:
        with contextlib.ExitStack() as held, contextlib.ExitStack() as database_lock:
            database_lock.enter_context(db.run_lock(engine, timeout=lock_timeout))

            def registered(shard: Shard | None) -> None:
                # A shard writes beside the other shards: once its run is in the manifest it
                # takes its own lock, then lets the database's go. SQLite has one writer: it
                # keeps the database's lock.
                if shard is not None and engine.url.get_backend_name() != "sqlite":
                    held.enter_context(
                        db.run_lock(engine, timeout=lock_timeout, name=f"shard {shard}")
                    )
                    database_lock.close()

            workers = max(1, min(plan.workers, -(-plan.users_to_write // plan.batch_size)))
            with _worker_pool(workers) as pool:
                return _run(
                    engine,
                    plan,
                    pool,
                    workers,
                    on_progress=track,
                    stop=stop or _never,
                    registered=registered,
                    lock_timeout=lock_timeout,
                )
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: {committed.users_done:,} of {committed.users_total:,} user trees "
            f"({committed.rows_done:,} rows) are committed in {db.mask(engine.url)}, whole; "
            "the batch in progress was rolled back"
        ) from None
    except BrokenProcessPool:
        raise WorkerDied(
            "a generating worker process died (killed, or out of memory?): "
            f"{committed.users_done:,} of {committed.users_total:,} user trees "
            f"({committed.rows_done:,} rows) are committed in {db.mask(engine.url)}, whole; "
            "`invoicegen seed --append` continues"
        ) from None


def _never() -> bool:
    return False


def _run(
    engine: Engine,
    plan: SeedPlan,
    pool: worker_processes.Pool | None,
    workers: int,
    *,
    on_progress: Callable[[Progress], None] | None,
    stop: Callable[[], bool],
    registered: Callable[[Shard | None], None],
    lock_timeout: float,
) -> SeedResult:
    """Migrate, check the run against the dataset, record it, then write whole user trees in
    batches, one transaction each. A plain run needs an empty dataset; ``plan.append``
    continues the dataset's user positions; ``plan.shard`` writes one slice."""
    revision = db.upgrade(engine)
    where = db.mask(engine.url)
    if plan.shard is None:  # a run that is not a shard waits for the shards to finish
        db.wait_for_shards(engine, timeout=lock_timeout)
    else:  # a shard writes beside the others; dead runs are marked interrupted
        db.live_shard_runs(engine)
    with db.connect(engine) as connection:
        target = _resolve(
            plan, manifest.runs(connection), db.count_rows(connection)["users"], where
        )
        plan = target.plan
        assert plan.seed is not None and plan.as_of is not None
        positions = target.positions
        # An append continues after what is there; any other run follows the plan.
        appended_ids = _next_ids(connection) if plan.append else None
        run_id = manifest.start(
            connection,
            seed=plan.seed,
            as_of=plan.as_of,
            first_user=positions.start,
            users=len(positions),
            shard=str(plan.shard) if plan.shard else None,
            options=_recorded_options(plan),
        )
    first_batch = min(len(positions), plan.first_batch_size or plan.batch_size)
    n_batches = (1 if first_batch else 0) + -(-(len(positions) - first_batch) // plan.batch_size)
    users_done = 0
    written = dict.fromkeys(TABLES, 0)
    status = "interrupted"
    try:
        registered(plan.shard)
        first_ids = appended_ids or first_ids_at(plan, plan.seed, positions.start)
        started = time.perf_counter()  # rows/s covers generating and writing, not migrating
        with db.database_errors(engine.url):
            batches = plan_batches(plan, plan.seed, positions, first_ids)
            dialect = engine.dialect.name
            generated = _batch_rows(plan, plan.seed, plan.as_of, batches, pool, dialect)
            with contextlib.closing(generated):  # stops the workers however the loop ends
                for batch, rows in generated:
                    if stop():  # asked to stop: nothing of this batch is written
                        raise KeyboardInterrupt
                    # A stop signal while the batch is written and counted waits for its end.
                    with interrupts.deferred():
                        with engine.begin() as connection:
                            writers.write_batch(connection, rows)
                            manifest.committed(connection, run_id, users_done + batch.size)
                            sync_sequences(connection, _highest_ids(batch, rows))
                            if stop() or interrupts.requested():  # roll this batch back
                                raise KeyboardInterrupt
                        users_done += batch.size
                        for table, table_rows in zip(TABLES, rows, strict=True):
                            written[table] += writers.row_count(table_rows)
                        if on_progress is not None:
                            done = sum(written.values())
                            on_progress(Progress(users_done, len(positions), done))
            with engine.connect() as connection:
                counts = db.count_rows(connection)
            status = "done"
    finally:
        with contextlib.suppress(Exception), engine.begin() as connection:
            manifest.finish(connection, run_id, status, written)
    return SeedResult(
        counts=counts,
        written=written,
        seconds=time.perf_counter() - started,
        seed=plan.seed,
        as_of=plan.as_of,
        revision=revision,
        batches=n_batches,
        workers=workers,
        first_user=positions.start,
        users=len(positions),
        run_id=run_id,
        plan=plan,
    )


def _highest_ids(batch: Batch, rows: Prepared) -> dict[str, int]:
    """Table -> the largest id of the batch's rows (ids are consecutive from the first)."""
    return {
        table: first + writers.row_count(table_rows) - 1
        for table, first, table_rows in zip(TABLES, batch.first_ids, rows, strict=True)
        if writers.row_count(table_rows)
    }


def _recorded_options(plan: SeedPlan) -> dict[str, Any]:
    options: dict[str, Any] = {k: str(v) for k, v in plan.shaping().items()}
    if plan.since is not None:
        options["since"] = plan.since.isoformat()
    if plan.shard is not None:
        options.update(shards=plan.shard.count, users_total=plan.users)
    return options


def _next_ids(connection: Connection) -> tuple[int, int, int, int]:
    ids = [
        int(connection.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {table}").scalar_one())
        + 1
        for table in TABLES
    ]
    return ids[0], ids[1], ids[2], ids[3]
