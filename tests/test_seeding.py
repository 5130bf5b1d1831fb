"""Seeding through the library API, checked by SQL on the resulting database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from invoicegen import db
from invoicegen.errors import RefusedError
from invoicegen.seeding import SeedPlan, seed
from invoicegen.settings import CountMix
from tests.invariants import children_range, dump, scalar, violations

AS_OF = dt.date(2026, 3, 31)


def test_seeded_data_keeps_every_invariant(engine: sa.Engine) -> None:
    plan = SeedPlan(
        users=120,
        clients_per_user=CountMix.range(1, 3),
        contracts_per_client=CountMix.range(2, 4),
        invoices_per_contract=CountMix.range(1, 12),
        seed=11,
        as_of=AS_OF,
        batch_size=50,
    )
    result = seed(engine, plan)
    assert result.counts["users"] == 120
    assert scalar(engine, "SELECT COUNT(*) FROM invoices") == result.counts["invoices"]
    assert violations(engine, AS_OF) == dict.fromkeys(violations(engine, AS_OF), 0)
    assert children_range(engine, "users", "clients", "user_id") == (1, 3)
    assert children_range(engine, "clients", "contracts", "client_id") == (2, 4)
    low, high = children_range(engine, "contracts", "invoices", "contract_id")
    assert 1 <= low and high <= 12


def test_exact_counts_give_exact_totals(engine: sa.Engine) -> None:
    plan = SeedPlan(
        users=7,
        clients_per_user=CountMix.range(2, 2),
        contracts_per_client=CountMix.range(3, 3),
        invoices_per_contract=CountMix.range(4, 4),
        seed=1,
        as_of=AS_OF,
    )
    assert seed(engine, plan).counts == {
        "users": 7,
        "clients": 14,
        "contracts": 42,
        "invoices": 168,
    }


def test_same_seed_same_rows_on_every_engine(engine: sa.Engine, tmp_path: Path) -> None:
    plan = SeedPlan(users=30, seed=99, as_of=AS_OF, batch_size=7)
    seed(engine, plan)
    reference = db.make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    seed(reference, SeedPlan(users=30, seed=99, as_of=AS_OF, batch_size=1000))
    assert dump(engine) == dump(reference)


def test_different_seeds_give_different_rows(sqlite_url: str) -> None:
    first = db.make_engine(sqlite_url)
    second = db.make_engine(sqlite_url.replace("invoicegen-test.db", "other.db"))
    seed(first, SeedPlan(users=5, seed=1, as_of=AS_OF))
    seed(second, SeedPlan(users=5, seed=2, as_of=AS_OF))
    assert dump(first)["users"] != dump(second)["users"]


def test_a_seed_is_chosen_and_reported_when_none_is_given(sqlite_url: str) -> None:
    result = seed(db.make_engine(sqlite_url), SeedPlan(users=2, as_of=AS_OF))
    assert isinstance(result.seed, int) and result.seed >= 0


def test_seeding_a_database_that_holds_a_dataset_is_refused(engine: sa.Engine) -> None:
    seed(engine, SeedPlan(users=3, seed=1, as_of=AS_OF))
    with pytest.raises(RefusedError, match="reset"):
        seed(engine, SeedPlan(users=3, seed=1, as_of=AS_OF))
    assert scalar(engine, "SELECT COUNT(*) FROM users") == 3


def test_applications_own_inserts_after_a_seed_do_not_collide(engine: sa.Engine) -> None:
    seed(engine, SeedPlan(users=4, seed=3, as_of=AS_OF))
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO users (name, email, phone) VALUES ('App User', 'app@example.com', '1')"
        )
    assert scalar(engine, "SELECT MAX(id) FROM users") == 5


def test_workers_give_the_same_rows_as_one_process(sqlite_url: str) -> None:
    one = db.make_engine(sqlite_url)
    two = db.make_engine(sqlite_url.replace("invoicegen-test.db", "two.db"))
    seed(one, SeedPlan(users=40, seed=5, as_of=AS_OF, batch_size=10, workers=1))
    result = seed(two, SeedPlan(users=40, seed=5, as_of=AS_OF, batch_size=10, workers=2))
    assert result.workers == 2
    assert dump(one) == dump(two)
