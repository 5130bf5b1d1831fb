"""What a run writes, before any value exists: the request, the resolved plan, tree shapes,
batches and the ids each batch starts at.

Determinism: everything about user number ``p`` (how many children at each level, every value)
is derived from ``(seed, p)`` alone, so the same seed gives the same rows whatever the batch
size or number of workers, and ``--users 60`` holds the 50 user trees of ``--users 50``.
Ids are dense: a user tree's ids follow from the sizes of the trees before it, which the plan
computes from whole blocks of counts without generating any values, in the same time at any
position (so shard 99/100 of 100 million users starts as soon as shard 0).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import itertools
import random
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from invoicegen import settings
from invoicegen.errors import UsageError
from invoicegen.seeding import workers
from invoicegen.settings import CountMix, Shard, check_as_of

#: What the options that shape the values default to in a new dataset (from settings.OPTIONS).
SHAPING_DEFAULTS: dict[str, Any] = {
    key: settings.default(key)
    for key in ("clients_per_user", "contracts_per_client", "invoices_per_contract", "locale")
}


#: Below this many users to write, one worker is faster than several (starting worker processes
#: and shipping rows between them costs more than it saves; measured in the README).
SMALL_RUN_USERS = 2_500

#: The command's first batch is this part of --batch-size (when that leaves at least one user).
FIRST_BATCH_PART = 10

#: With worker processes, each batch after the first is at most this many times the one
#: before, up to --batch-size: the writer writes a batch while the next one is made, and a
#: batch is made a little faster than the servers take it (PostgreSQL, MariaDB), so batches
#: growing by this much are ready as the writer wants them, where a full one after the first
#: kept the server waiting for it (~0.1 s of a 10,000-user run).
BATCH_GROWTH = 1.5


def workers_for(users: int, shard: Shard | None) -> int:
    """The generating processes of a run of ``users`` (or a shard of them) by default, the
    writing process included (one: it generates alone; N: it and N - 1 worker processes)."""
    to_write = len(shard.positions(users)) if shard else users
    return 1 if to_write < SMALL_RUN_USERS else workers.default_workers()


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
    batch_size: int = settings.default("batch_size")
    #: Users in the first batch, so that progress shows sooner (None: ``batch_size``). Batches
    #: never change the data: every value derives from (seed, user position).
    first_batch_size: int | None = None
    workers: int = 1
    append: bool = False
    shard: Shard | None = None
    force: bool = False
    #: PostgreSQL: commit without waiting for the WAL to reach the disk (SET LOCAL
    #: synchronous_commit = off per batch): a server crash loses the last batches, whole.
    synchronous_commit: bool = True
    #: PostgreSQL: the tables this run creates are UNLOGGED (emptied by a server crash).
    unlogged: bool = False

    def __post_init__(self) -> None:
        if self.as_of is not None:
            check_as_of(self.as_of, name="as_of")
        if self.append and self.shard is not None:
            raise UsageError("--append and --shard do not go together: a shard is a fixed slice")
        if self.since is not None and self.as_of is not None and self.since >= self.as_of:
            raise UsageError(f"--since {self.since} must come before --as-of {self.as_of}")

    @classmethod
    def from_settings(
        cls,
        config: settings.Settings,
        *,
        shard: Shard | None,
        append: bool,
        force: bool,
        unlogged: bool = False,
        synchronous_commit: bool = True,
    ) -> SeedPlan:
        """The request a command's resolved settings make: the shaping options left unset
        follow the dataset when adding to one (their defaults make a new one)."""
        shaping = {key: config.given(key) for key in SHAPING_DEFAULTS}
        return cls(
            users=config.users,
            seed=config.seed,
            as_of=config.as_of,
            since=config.since,
            batch_size=config.batch_size,
            # the first rows (and the first progress) come sooner; the data is the same
            first_batch_size=config.batch_size // FIRST_BATCH_PART or None,
            workers=config.workers or workers_for(config.users, shard),
            append=append,
            shard=shard,
            force=force,
            synchronous_commit=synchronous_commit,
            unlogged=unlogged,
            **shaping,
        )

    def shaping(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in SHAPING_DEFAULTS}

    @property
    def users_to_write(self) -> int:
        """User trees this run writes: ``users``, or a shard's slice of them."""
        return len(self.shard.positions(self.users)) if self.shard else self.users


@dataclass(frozen=True)
class Plan:
    """A :class:`SeedPlan` with every option resolved (from the dataset or the defaults)."""

    users: int
    clients_per_user: CountMix
    contracts_per_client: CountMix
    invoices_per_contract: CountMix
    seed: int
    as_of: dt.date
    locale: str
    since: dt.date
    batch_size: int
    first_batch_size: int | None
    workers: int
    append: bool
    shard: Shard | None
    force: bool
    synchronous_commit: bool = True
    unlogged: bool = False

    def shaping(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in SHAPING_DEFAULTS}

    @property
    def users_to_write(self) -> int:
        return len(self.shard.positions(self.users)) if self.shard else self.users


def resolved(request: SeedPlan, **values: Any) -> Plan:
    """``request`` with its unset options taken from ``values``; set ones stay."""
    given = {k: getattr(request, k) for k in Plan.__dataclass_fields__}
    merged = {k: values[k] if v is None and k in values else v for k, v in given.items()}
    return Plan(**merged)


def default_since(as_of: dt.date) -> dt.date:
    """Where the history of ended contracts starts unless ``--since`` says: 3 years back."""
    # Here, not at the top: a command resolves its plan and starts its generating workers
    # (:func:`generating_workers`) before this process loads the factories and SQLAlchemy.
    from invoicegen.factories import HISTORY_MONTHS, add_months

    return add_months(as_of, -HISTORY_MONTHS)


# --- tree shapes and id offsets, no values --------------------------------------------------------
#
# Each level's counts come in blocks: the users' client counts in blocks of users, the clients'
# contract counts in blocks of clients (by the clients' place in the whole dataset: their id - 1),
# the contracts' invoice counts in blocks of contracts. A block holds the mix's quantiles, one
# per member, in an order shuffled from (seed, level, block): every block of a level holds the
# same counts, so its total is known without drawing anything, and the ids at any position are
# whole blocks times that total plus a part of one block (:func:`first_ids_at`, the same work at
# position 0 and at position 100 million). Within a block the counts follow the mix exactly (its
# shares, rounded to the block's members), in a random order.

Shape = list[list[int]]  # per client, per contract: the number of invoices
Ids = tuple[int, int, int, int]  # users, clients, contracts, invoices

#: Members of a block: at least this many, more when a mix has a part with a small share, so
#: that each part gets its share (a part whose share is below 1 in 2 x MAX_SHAPE_BLOCK never
#: shows: its count rounds to none in every block).
MIN_SHAPE_BLOCK = 1024
MAX_SHAPE_BLOCK = 65_536

#: How the tree shapes are drawn, as the manifest records it: a dataset drawn otherwise (per
#: user, by invoicegen before 2026-12) takes no shard of this one, nor a plain append.
SHAPES = "blocks"

#: The random streams of each level's blocks (the names are part of the data: do not rename).
LEVELS = ("clients per user", "contracts per client", "invoices per contract")


def stream_key(seed: int, position: int, stream: str) -> int:
    """A 64-bit seed for one random stream of one user tree: stable across processes,
    platforms, Python versions and PYTHONHASHSEED (BLAKE2b, not hash())."""
    digest = hashlib.blake2b(f"{seed}:{position}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _quantiles(mix: CountMix) -> tuple[int, ...]:
    """The counts of one block of ``mix``: its quantiles at the middle of equal strata, in
    whole numbers (so the same on every platform), smallest first."""
    parts = sorted(mix.parts, key=lambda part: part[0].low)
    total = sum(weight for _, weight in parts)
    size = MIN_SHAPE_BLOCK
    while size < MAX_SHAPE_BLOCK and size * min(weight for _, weight in parts) < 2 * total:
        size *= 2
    counts: list[int] = []
    below, index = 0, 0  # the weight of the parts before parts[index]
    for j in range(size):  # the quantile at (j + 1/2) / size, scaled by 2 * size * total
        point = (2 * j + 1) * total
        while point >= 2 * size * (below + parts[index][1]):
            below += parts[index][1]
            index += 1
        part, weight = parts[index]
        counts.append(
            part.low
            + (point - 2 * size * below) * (part.high - part.low + 1) // (2 * size * weight)
        )
    return tuple(counts)


def _shuffle_by_bits(rand: random.Random, items: list[int]) -> None:
    """``rand.shuffle(items)`` with ``_randbelow`` inlined: the same order from the same state
    when this Python's shuffle is the ``getrandbits`` loop (checked once, below)."""
    getrandbits = rand.getrandbits
    for i in reversed(range(1, len(items))):
        n = i + 1
        k = n.bit_length()
        j = getrandbits(k)
        while j >= n:
            j = getrandbits(k)
        items[i], items[j] = items[j], items[i]


def _inline_shuffle_matches() -> bool:
    for seed, size in ((1, 1), (2, 2), (3, 7), (4, 1024), (5, 3000)):
        reference, inline = random.Random(seed), random.Random(seed)
        expected, drawn = list(range(size)), list(range(size))
        reference.shuffle(expected)
        _shuffle_by_bits(inline, drawn)
        if drawn != expected or reference.getstate() != inline.getstate():
            return False
    return True


def _python_shuffle(rand: random.Random, items: list[int]) -> None:
    rand.shuffle(items)


#: How a block's counts are shuffled: ``random.shuffle``'s order, in fewer Python calls.
_shuffle = _shuffle_by_bits if _inline_shuffle_matches() else _python_shuffle


class _Level:
    """The counts of one level (clients per user, contracts per client, invoices per
    contract) for one seed, block by block; keeps the last blocks it made."""

    def __init__(self, mix: CountMix, seed: int, level: int) -> None:
        self.constant = mix.low if mix.low == mix.high else None
        self.quantiles = _quantiles(mix) if self.constant is None else (mix.low,)
        self.size, self.total = len(self.quantiles), sum(self.quantiles)
        self.stream = LEVELS[level]
        self.seed = seed
        self.blocks: dict[int, tuple[list[int], list[int]]] = {}

    def block(self, number: int) -> tuple[list[int], list[int]]:
        """Block ``number``'s counts in their shuffled order, and the running totals."""
        made = self.blocks.get(number)
        if made is None:
            counts = list(self.quantiles)
            _shuffle(random.Random(stream_key(self.seed, number, self.stream)), counts)
            if len(self.blocks) >= 4:
                self.blocks.clear()
            made = self.blocks[number] = (counts, [0, *itertools.accumulate(counts)])
        return made

    def count(self, index: int) -> int:
        """The count of member ``index`` (0-based, in the whole dataset)."""
        if self.constant is not None:
            return self.constant
        return self.block(index // self.size)[0][index % self.size]

    def counts(self, first: int, n: int) -> list[int]:
        """The counts of members ``first`` .. ``first + n - 1``: :meth:`count` of each."""
        if self.constant is not None:
            return [self.constant] * n
        number, offset = divmod(first, self.size)
        counts = self.block(number)[0][offset : offset + n]
        while len(counts) < n:
            number += 1
            counts += self.block(number)[0][: n - len(counts)]
        return counts

    def before(self, index: int) -> int:
        """The children of members 0 .. ``index`` - 1: whole blocks, then part of one."""
        if self.constant is not None:
            return index * self.constant
        whole, rest = divmod(index, self.size)
        return whole * self.total + (self.block(whole)[1][rest] if rest else 0)


@functools.lru_cache(maxsize=2)
def _levels(
    clients: CountMix, contracts: CountMix, invoices: CountMix, seed: int
) -> tuple[_Level, _Level, _Level]:
    return _Level(clients, seed, 0), _Level(contracts, seed, 1), _Level(invoices, seed, 2)


def _plan_levels(plan: Plan) -> tuple[_Level, _Level, _Level]:
    mixes = plan.clients_per_user, plan.contracts_per_client, plan.invoices_per_contract
    return _levels(*mixes, plan.seed)


def first_ids_at(plan: Plan, position: int) -> Ids:
    """The ids user ``position``'s tree starts at when users 0 .. position-1 come before it:
    the same few blocks' work at any position."""
    clients, contracts, invoices = _plan_levels(plan)
    client = clients.before(position)
    contract = contracts.before(client)
    return position + 1, client + 1, contract + 1, invoices.before(contract) + 1


def tree_shape(plan: Plan, position: int) -> Shape:
    """How many clients, contracts and invoices user ``position`` has.

    Each level's counts come from its own blocks, so changing one level's range or mix never
    changes the levels above it.
    """
    return _shape(_plan_levels(plan), position)


def tree_shapes(plan: Plan, positions: range) -> Iterator[Shape]:
    """:func:`tree_shape` of each of ``positions`` (consecutive): each level's counts for all
    of them read at once, then cut per user."""
    clients, contracts, invoices = _plan_levels(plan)
    if not positions:
        return
    client = clients.before(positions.start)
    per_user = clients.counts(positions.start, len(positions))
    per_client = contracts.counts(client, sum(per_user))
    per_contract = invoices.counts(contracts.before(client), sum(per_client))
    client = contract = 0
    for count in per_user:
        shape: Shape = []
        for invoice_count in per_client[client : client + count]:
            shape.append(per_contract[contract : contract + invoice_count])
            contract += invoice_count
        client += count
        yield shape


def _shape(levels: tuple[_Level, _Level, _Level], position: int) -> Shape:
    clients, contracts, invoices = levels
    client = clients.before(position)
    contract = contracts.before(client)
    shape: Shape = []
    for count in contracts.counts(client, clients.count(position)):
        shape.append(invoices.counts(contract, count))
        contract += count
    return shape


def shape_counts(shape: Shape) -> Ids:
    return (1, len(shape), sum(len(c) for c in shape), sum(sum(c) for c in shape))


@dataclass(frozen=True)
class Batch:
    """Users ``first`` .. ``first + size - 1`` and the first id of each table for them."""

    first: int
    size: int
    first_ids: Ids


def plan_batches(plan: Plan, positions: range, first_ids: Ids = (1, 1, 1, 1)) -> Iterator[Batch]:
    """Cut the users at ``positions`` into batches of whole trees, each with its first ids."""
    position, end = positions.start, positions.stop
    # ids after a forced append of other counts start where the database's are: keep that gap
    offset = [
        given - planned
        for given, planned in zip(first_ids, first_ids_at(plan, position), strict=True)
    ]
    sizes = batch_sizes(plan)
    while position < end:
        size = min(next(sizes), end - position)
        ids = [
            planned + gap for planned, gap in zip(first_ids_at(plan, position), offset, strict=True)
        ]
        yield Batch(position, size, (ids[0], ids[1], ids[2], ids[3]))
        position += size


def batch_sizes(plan: Plan) -> Iterator[int]:
    """The users of a run's batches, in order, without end: the first batch's, then, with
    worker processes, each :data:`BATCH_GROWTH` times the one before until ``batch_size``,
    then ``batch_size``. The rows are the same whatever the batches are."""
    size = plan.first_batch_size or plan.batch_size
    while True:
        yield size
        growing = plan.workers > 1 and size < plan.batch_size
        size = min(plan.batch_size, int(size * BATCH_GROWTH) + 1) if growing else plan.batch_size


def batch_count(plan: Plan, users: int) -> int:
    """How many batches :func:`plan_batches` cuts ``users`` users into."""
    count, sizes = 0, batch_sizes(plan)
    while users > 0:
        if (size := next(sizes)) == plan.batch_size:
            return count + -(-users // size)
        users, count = users - size, count + 1
    return count


def worker_count(plan: SeedPlan | Plan) -> int:
    """Workers worth starting: no more than there are batches."""
    return max(1, min(plan.workers, -(-plan.users_to_write // plan.batch_size)))


#: What a generating worker runs first ("module:function"): the row makers of the most common
#: locale, made before its first batch.
WARM_UP = ("invoicegen.seeding.generate:warm", SHAPING_DEFAULTS["locale"])


def generating_workers(plan: SeedPlan | Plan) -> AbstractContextManager[workers.Pool | None]:
    """The generating worker processes of ``plan`` (:func:`worker_count`, the calling process
    included), started on entering. A worker takes a few tenths of a second of CPU to import
    the factories and warm up: a caller that starts them before its own imports and migration
    has them ready for the first batches."""
    return workers.optional_pool(worker_count(plan), *WARM_UP)
