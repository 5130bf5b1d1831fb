"""Seeding through the library API, checked by SQL on the resulting database."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from invoicegen import db
from invoicegen.errors import RefusedError
from invoicegen.seeding import SeedPlan, seed
from invoicegen.settings import CountMix
from tests.helpers import table_counts
from tests.invariants import billing_violations, children_range, dump, scalar, violations

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
    billing = billing_violations(engine, AS_OF)
    assert billing == dict.fromkeys(billing, 0)
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


def test_the_last_batch_ends_the_run_and_counts_follow_appends(engine: sa.Engine) -> None:
    """Each batch commits in one transaction and the last one records the run's end too: no
    commit after the last batch's progress. The counts reported are the database's, after a
    plain run and after an append."""
    events: list[str] = []
    sa.event.listen(engine, "commit", lambda connection: events.append("commit"))
    plan = SeedPlan(users=25, seed=3, as_of=AS_OF, batch_size=10)
    first = seed(engine, plan, on_progress=lambda progress: events.append("batch"))
    assert events[events.index("batch") - 1 :] == ["commit", "batch"] * 3
    with engine.connect() as connection:
        run = connection.execute(
            sa.text("SELECT status, users_done, counts, finished_at FROM invoicegen_runs")
        ).one()
    assert (run.status, run.users_done, json.loads(run.counts)) == ("done", 25, first.written)
    assert run.finished_at is not None
    assert first.counts == table_counts(engine)
    appended = seed(engine, SeedPlan(users=6, append=True))
    assert appended.counts == table_counts(engine)
    assert appended.counts["users"] == 31


def test_different_seeds_give_different_rows(sqlite_url: str) -> None:
    first = db.make_engine(sqlite_url)
    second = db.make_engine(sqlite_url.replace("invoicegen-test.db", "other.db"))
    seed(first, SeedPlan(users=5, seed=1, as_of=AS_OF))
    seed(second, SeedPlan(users=5, seed=2, as_of=AS_OF))
    assert dump(first)["users"] != dump(second)["users"]


def test_a_seed_is_chosen_and_reported_when_none_is_given(sqlite_url: str) -> None:
    chosen = db.make_engine(sqlite_url)
    result = seed(chosen, SeedPlan(users=2, as_of=AS_OF))
    replayed = db.make_engine(sqlite_url.replace("invoicegen-test.db", "replayed.db"))
    assert seed(replayed, SeedPlan(users=2, seed=result.seed, as_of=AS_OF)).seed == result.seed
    assert dump(replayed) == dump(chosen)  # the reported seed is the one that was used


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


def test_contracts_are_billed_to_date_and_invoices_have_a_lifecycle(engine: sa.Engine) -> None:
    """The issue's invariant, by SQL: every contract billed for exactly its life to as-of."""
    plan = SeedPlan(
        users=150,
        invoices_per_contract=CountMix.range(0, 24),
        seed=12,
        as_of=AS_OF,
        since=dt.date(2024, 1, 1),
        locale="ja_JP",
        batch_size=40,
    )
    seed(engine, plan)
    billing = billing_violations(engine, AS_OF)
    assert billing == dict.fromkeys(billing, 0)
    assert violations(engine, AS_OF) == dict.fromkeys(violations(engine, AS_OF), 0)
    # --invoices-per-contract is the number of billed periods, 0 included.
    low, high = children_range(engine, "contracts", "invoices", "contract_id")
    assert (low, high) == (0, 24)
    ended = "end_date IS NOT NULL AND end_date <= :as_of"
    assert scalar(engine, f"SELECT MIN(end_date) FROM contracts WHERE {ended}", as_of=AS_OF) >= (
        "2024-01-01" if engine.dialect.name == "sqlite" else dt.date(2024, 1, 1)
    )
    assert scalar(engine, "SELECT COUNT(*) FROM contracts WHERE end_date > :as_of", as_of=AS_OF)
    assert scalar(engine, "SELECT COUNT(*) FROM contracts WHERE end_date IS NULL")
    for status in ("draft", "open", "paid", "overdue", "void"):
        assert scalar(engine, "SELECT COUNT(*) FROM invoices WHERE status = :s", s=status), status
    # Mostly the locale's country and currency; yen without cents.
    assert (
        scalar(engine, "SELECT AVG(CASE WHEN country = 'JP' THEN 1.0 ELSE 0 END) FROM clients")
        > 0.8
    )
    assert scalar(engine, "SELECT COUNT(*) FROM contracts WHERE currency <> 'JPY'") > 0
    assert not scalar(
        engine,
        "SELECT COUNT(*) FROM invoices WHERE currency = 'JPY' AND amount <> ROUND(amount, 0)",
    )


def test_overdue_clusters_in_few_clients_and_recent_months(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    seed(
        engine,
        SeedPlan(users=600, invoices_per_contract=CountMix.range(1, 36), seed=5, as_of=AS_OF),
    )
    clients = scalar(engine, "SELECT COUNT(*) FROM clients")
    overdue_clients = scalar(
        engine,
        "SELECT COUNT(DISTINCT k.client_id) FROM invoices i JOIN contracts k "
        "ON k.id = i.contract_id WHERE i.status = 'overdue'",
    )
    assert 0 < overdue_clients < 0.3 * clients
    year_ago = "2025-03-31"
    old_paid = scalar(
        engine,
        "SELECT AVG(CASE WHEN status = 'paid' THEN 1.0 ELSE 0 END) FROM invoices "
        "WHERE issued_on < :d",
        d=year_ago,
    )
    assert old_paid > 0.9
    recent_overdue = scalar(
        engine,
        "SELECT COUNT(*) FROM invoices WHERE status = 'overdue' AND issued_on >= :d",
        d=year_ago,
    )
    assert recent_overdue > scalar(
        engine,
        "SELECT COUNT(*) FROM invoices WHERE status = 'overdue' AND issued_on < :d",
        d=year_ago,
    )
    # Rates: log-normal, most small, a long tail.
    rates = sorted(
        float(r)
        for (r,) in engine.connect().exec_driver_sql(
            "SELECT monthly_rate FROM contracts WHERE currency = 'USD'"
        )
    )
    median, p99 = rates[len(rates) // 2], rates[int(len(rates) * 0.99)]
    assert 500 <= median <= 4000 and p99 > 5 * median
    assert all(rate == int(rate) for rate in rates)


def test_billing_invariants_catch_a_broken_row(tmp_path: Path) -> None:
    """The checks above can fail: each breakage is counted."""
    breakages = {
        "periods do not tile the contract": "DELETE FROM invoices WHERE id = 2",
        "amount is not the (prorated) rate": "UPDATE invoices SET amount = amount + 1 WHERE id = 1",
        "currency differs from the contract's": "UPDATE invoices SET currency = 'XXX' WHERE id = 1",
        "numbers not 1..n per user by issue date": "UPDATE invoices SET number = 'INV-x' WHERE id = 1",
        "status does not match the dates": "UPDATE invoices SET status = 'open', paid_on = NULL "
        "WHERE id = (SELECT MIN(id) FROM invoices WHERE status = 'paid')",
        "due date is not issue date + terms": "UPDATE clients SET payment_terms_days = 99",
        "draft that is not the latest invoice": "UPDATE invoices SET status = 'draft', "
        "number = NULL, issued_on = NULL, due_on = NULL, paid_on = NULL WHERE id = 1",
    }
    for n, (name, statement) in enumerate(breakages.items()):
        engine = db.make_engine(f"sqlite:///{tmp_path / f'{n}.db'}")
        seed(
            engine,
            SeedPlan(users=5, invoices_per_contract=CountMix.range(3, 3), seed=3, as_of=AS_OF),
        )
        assert billing_violations(engine, AS_OF)[name] == 0
        with engine.begin() as connection:
            connection.exec_driver_sql(statement)
        assert billing_violations(engine, AS_OF)[name] > 0, name
        engine.dispose()
