"""A shard's first ids: from whole blocks of counts, the same work at any position, and equal
to the prefix sums of every tree before it (the computation they replace, kept here as the
oracle)."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from invoicegen import db
from invoicegen.errors import RefusedError
from invoicegen.seeding import SeedPlan, plan, seed
from invoicegen.seeding.plan import (
    Ids,
    Plan,
    first_ids_at,
    plan_batches,
    shape_counts,
    tree_shape,
    tree_shapes,
)
from invoicegen.settings import CountMix, Shard

AS_OF = dt.date(2026, 4, 30)

MIXES = [
    ("1-3", "1-3", "1-5"),  # the defaults
    ("1-3:80,4-20:15,21-100:5", "1-2", "0-12"),
    ("0-7", "2", "0-2:50,6-9:50"),
    ("1-2:70,5-8:30", "1:60,2-3:40", "3"),
    ("1-3:999,40:1", "1-3", "1-3"),  # a part too rare for the smallest block
    ("0", "1-3", "1-5"),  # no clients at all
]


def _plan(mix: tuple[str, str, str], seed: int, users: int = 10**8) -> Plan:
    clients, contracts, invoices = (CountMix.parse(text) for text in mix)
    return Plan(
        users=users,
        clients_per_user=clients,
        contracts_per_client=contracts,
        invoices_per_contract=invoices,
        seed=seed,
        as_of=AS_OF,
        locale="en_US",
        since=dt.date(2023, 4, 30),
        batch_size=1000,
        first_batch_size=None,
        workers=1,
        append=False,
        shard=None,
        force=False,
    )


def _prefix_sums(a_plan: Plan, positions: range) -> list[Ids]:
    """The oracle, as invoicegen computed first ids before: the shapes of every tree before
    the position, added up one user at a time."""
    next_ids = [1, 1, 1, 1]
    found = []
    for position in range(positions.stop):
        if position in positions:
            found.append((next_ids[0], next_ids[1], next_ids[2], next_ids[3]))
        for level, count in enumerate(shape_counts(tree_shape(a_plan, position))):
            next_ids[level] += count
    return found


@pytest.mark.parametrize("mix", MIXES, ids=lambda mix: " ".join(mix))
@pytest.mark.parametrize("seed_", [0, 7, 2024, 2**31 - 1])
def test_first_ids_are_the_prefix_sums_of_the_trees_before(
    mix: tuple[str, str, str], seed_: int
) -> None:
    a_plan = _plan(mix, seed_)
    positions = range(2200 if seed_ == 7 else 1100)  # past the users' first block (or two)
    assert [first_ids_at(a_plan, p) for p in positions] == _prefix_sums(a_plan, positions)


@pytest.mark.parametrize("mix", MIXES, ids=lambda mix: " ".join(mix))
def test_far_positions_follow_on_from_their_neighbours(mix: tuple[str, str, str]) -> None:
    """Ids at any position are the ids before plus the tree there; whole blocks add up."""
    a_plan = _plan(mix, 99)
    rng = random.Random(5)
    for position in [10**8 - 2, 10**7, 10**6 + 1023, *rng.sample(range(10**8 - 1), 20)]:
        here, after = first_ids_at(a_plan, position), first_ids_at(a_plan, position + 1)
        counts = shape_counts(tree_shape(a_plan, position))
        assert [b - a for a, b in zip(here, after, strict=True)] == list(counts)


@pytest.mark.parametrize("mix", MIXES)
def test_a_batchs_shapes_are_each_trees_own(mix: tuple[str, str, str]) -> None:
    """The generator reads a batch's shapes level by level (tree_shapes): the same shapes as
    each tree's own, wherever the batch starts and ends against the blocks."""
    a_plan = _plan(mix, 5)
    for first, size in ((0, 1), (0, 700), (1023, 3), (5_000_000, 2500), (77, 0)):
        positions = range(first, first + size)
        assert list(tree_shapes(a_plan, positions)) == [tree_shape(a_plan, p) for p in positions]


def test_batches_start_at_the_first_ids_of_their_position() -> None:
    a_plan = _plan(MIXES[1], 3)
    batches = list(
        plan_batches(a_plan, range(5_000_000, 5_003_500), first_ids_at(a_plan, 5_000_000))
    )
    assert [b.first for b in batches] == [5_000_000, 5_001_000, 5_002_000, 5_003_000]
    assert all(b.first_ids == first_ids_at(a_plan, b.first) for b in batches)


def test_a_far_shard_draws_a_few_blocks_not_every_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The work of the first ids at user 100 million: one shuffled block per level."""
    streams: list[tuple[int, str]] = []
    drawn = plan.stream_key

    def counting(seed: int, position: int, stream: str) -> int:
        streams.append((position, stream))
        return drawn(seed, position, stream)

    monkeypatch.setattr(plan, "stream_key", counting)
    ids = first_ids_at(_plan(MIXES[1], 424242), 99_999_999)
    assert len(streams) == 3, streams
    assert ids[0] == 100_000_000 and ids[1] > ids[0]


def test_every_block_holds_the_mix_shares() -> None:
    """The users' client counts in each block of 1,024 follow the mix's weights exactly."""
    a_plan = _plan(("1-3:80,4-20:15,21-100:5", "1", "1"), 11)
    for block in (0, 1, 97_000):
        counts = [len(tree_shape(a_plan, p)) for p in range(block * 1024, (block + 1) * 1024)]
        shares = [
            sum(low <= c <= high for c in counts) for low, high in ((1, 3), (4, 20), (21, 100))
        ]
        assert shares == [819, 154, 51]  # 80, 15 and 5 % of 1,024, rounded by strata
        assert set(range(1, 21)) <= set(counts)  # each count of the first two parts shows
        assert min(c for c in counts if c > 20) <= 23 and max(counts) >= 99  # spread over 21-100
    first, second = (
        [len(tree_shape(a_plan, p)) for p in range(b * 1024, b * 1024 + 50)] for b in (0, 1)
    )
    assert first != second  # each block in its own order


def test_a_lower_level_never_moves_the_levels_above() -> None:
    one, two = _plan(("1-3", "1-4", "1-5"), 8), _plan(("1-3", "1-4", "6-12"), 8)
    for position in (0, 1, 5000, 10**7):
        a, b = tree_shape(one, position), tree_shape(two, position)
        assert [len(c) for c in a] == [len(c) for c in b]
        assert first_ids_at(one, position)[:3] == first_ids_at(two, position)[:3]
        assert first_ids_at(one, position)[3] != first_ids_at(two, position)[3] or position == 0


def _dense(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        return {
            table: connection.execute(sa.text(f"SELECT COUNT(*), MAX(id) FROM {table}")).one()
            for table in ("users", "clients", "contracts", "invoices")
        }


def test_a_forced_append_of_other_counts_keeps_ids_dense(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'forced.db'}")
    seed(engine, SeedPlan(users=30, seed=4, as_of=AS_OF, batch_size=7))
    more = CountMix.range(6, 12)
    result = seed(
        engine,
        SeedPlan(users=25, append=True, force=True, batch_size=7, invoices_per_contract=more),
    )
    assert result.first_user == 30
    dense = _dense(engine)
    assert all(count == highest for count, highest in dense.values()), dense
    assert dense["users"][0] == 55


def _as_made_before_blocks(engine: sa.Engine) -> None:
    """The manifest as invoicegen wrote it before shapes came in blocks: no ``shapes``."""
    with engine.begin() as connection:
        for run_id, options in connection.exec_driver_sql(
            "SELECT id, options FROM invoicegen_runs"
        ):
            recorded = json.loads(options)
            assert recorded.pop("shapes") == "blocks"
            connection.exec_driver_sql(
                "UPDATE invoicegen_runs SET options = ? WHERE id = ?",
                (json.dumps(recorded), run_id),
            )


def test_a_dataset_drawn_per_user_takes_no_shard_even_forced(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'older.db'}")
    seed(engine, SeedPlan(users=20, seed=4, as_of=AS_OF, shard=Shard(0, 2)))
    _as_made_before_blocks(engine)
    for force in (False, True):
        with pytest.raises(RefusedError, match=r"tree shapes drawn in blocks \(dataset: per user"):
            seed(engine, SeedPlan(users=20, shard=Shard(1, 2), force=force))
    assert _dense(engine)["users"] == (10, 10)


def test_a_dataset_drawn_per_user_takes_an_append_only_forced(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'older.db'}")
    seed(engine, SeedPlan(users=20, seed=4, as_of=AS_OF))
    _as_made_before_blocks(engine)
    with pytest.raises(RefusedError, match=r"made differently: tree shapes drawn in blocks"):
        seed(engine, SeedPlan(users=5, append=True))
    seed(engine, SeedPlan(users=5, append=True, force=True))
    assert all(count == highest for count, highest in _dense(engine).values())
