"""The billing view of `invoicegen stats` and the billing invariants of `stats --check`.

A small dataset is written by SQL here, from rules computed independently of invoicegen's code
(monthly periods with the day clamped to a shorter month's end, numbering, lifecycle dates);
each invariant is then broken by hand and must be caught.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from typer.testing import CliRunner

from invoicegen import db
from invoicegen.cli import app
from invoicegen.errors import CheckFailed
from invoicegen.models import Base

runner = CliRunner()
AS_OF = dt.date(2026, 3, 31)
ENV = {"INVOICEGEN_AS_OF": AS_OF.isoformat(), "INVOICEGEN_CLIENTS_PER_USER": "1-10"}
ENV |= {"INVOICEGEN_CONTRACTS_PER_CLIENT": "0-10", "INVOICEGEN_INVOICES_PER_CONTRACT": "0-100"}
DAY = dt.timedelta(days=1)


def add_months(day: dt.date, months: int) -> dt.date:
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass
class Contract:
    id: int
    client: int
    start: dt.date
    end: dt.date | None
    currency: str
    rate: Decimal


#: user, client -> (user, payment terms)
CLIENTS = {1: (1, 30), 2: (2, 14), 3: (1, 7)}
CONTRACTS = [
    # from Jan 31: Feb 28 starts the second period (clamped), Mar 31 the third
    Contract(1, 1, dt.date(2025, 1, 31), None, "EUR", Decimal("1000.00")),
    # ended before as-of: a short final period, prorated
    Contract(2, 2, dt.date(2025, 10, 15), dt.date(2026, 1, 20), "USD", Decimal("500.00")),
    # signed this month: nothing to bill yet
    Contract(3, 3, dt.date(2026, 3, 10), None, "EUR", Decimal("80.00")),
    # ends after as-of; its period ending on as-of is complete, and a draft
    Contract(4, 3, dt.date(2025, 12, 1), dt.date(2026, 12, 31), "JPY", Decimal("50000.00")),
]
#: invoice ids (see _invoices) with a status other than paid or draft
VOID, OPEN, OVERDUE_C2, OVERDUE_C4 = 6, 13, 18, 21


def _invoices() -> list[dict[str, Any]]:
    rows = []
    for contract in CONTRACTS:
        billed_to = contract.end if contract.end and contract.end <= AS_OF else None
        n = 0
        while True:
            start, full_end = add_months(contract.start, n), add_months(contract.start, n + 1) - DAY
            end = min(full_end, contract.end) if contract.end else full_end
            if (billed_to and start > billed_to) or (not billed_to and full_end > AS_OF):
                break
            amount = contract.rate
            if end < full_end:
                share = Decimal((end - start).days + 1) / Decimal((full_end - start).days + 1)
                amount = (contract.rate * share).quantize(Decimal("0.01"), ROUND_HALF_UP)
            rows.append(
                {"id": len(rows) + 1, "contract_id": contract.id, "period_start": start,
                 "period_end": end, "amount": amount, "currency": contract.currency}
            )  # fmt: skip
            n += 1
    for row in rows:
        contract = CONTRACTS[row["contract_id"] - 1]
        terms = CLIENTS[contract.client][1]
        issued = row["period_end"] + 2 * DAY
        if issued > AS_OF:
            row |= {"status": "draft", "issued_on": None, "due_on": None, "paid_on": None}
            continue
        row |= {"issued_on": issued, "due_on": issued + terms * DAY, "paid_on": None}
        if row["id"] == VOID:
            row["status"] = "void"
        elif row["id"] in (OPEN, OVERDUE_C2, OVERDUE_C4):
            row["status"] = "open" if row["due_on"] >= AS_OF else "overdue"
        else:
            row |= {"status": "paid", "paid_on": min(issued + 5 * DAY, AS_OF)}
    per_user: dict[int, int] = {}
    for row in sorted(rows, key=lambda r: (r["issued_on"] or dt.date.max, r["id"])):
        user = CLIENTS[CONTRACTS[row["contract_id"] - 1].client][0]
        if row["status"] != "draft":
            per_user[user] = per_user.get(user, 0) + 1
            row["number"] = f"INV-{user}-{per_user[user]}"
        else:
            row["number"] = None
    return rows


INVOICES = _invoices()


def _by_id(invoice: int) -> dict[str, Any]:
    return INVOICES[invoice - 1]


def test_the_dataset_is_what_the_tests_assume() -> None:
    """The hand-built data has every situation the checks distinguish."""
    c1 = [r for r in INVOICES if r["contract_id"] == 1]
    assert [(r["period_start"], r["period_end"]) for r in c1[:2]] == [
        (dt.date(2025, 1, 31), dt.date(2025, 2, 27)),
        (dt.date(2025, 2, 28), dt.date(2025, 3, 30)),
    ]
    assert c1[-1]["period_end"] == dt.date(2026, 3, 30) and c1[-1]["status"] == "draft"
    c2 = [r for r in INVOICES if r["contract_id"] == 2]
    assert c2[-1]["period_end"] == dt.date(2026, 1, 20) and c2[-1]["amount"] == Decimal("96.77")
    assert not [r for r in INVOICES if r["contract_id"] == 3]
    assert [r["status"] for r in INVOICES if r["contract_id"] == 4][-1] == "draft"
    statuses = {r["id"]: r["status"] for r in INVOICES}
    assert (statuses[VOID], statuses[OPEN]) == ("void", "open")
    assert statuses[OVERDUE_C2] == statuses[OVERDUE_C4] == "overdue"


def build(url: str, *, revision: str = "head") -> sa.Engine:
    engine = db.make_engine(url)
    with engine.begin() as connection:
        command.upgrade(db.alembic_config(connection), revision)
    tables = Base.metadata.tables
    with engine.begin() as connection:
        users = sorted({u for u, _ in CLIENTS.values()})
        connection.execute(
            sa.insert(tables["users"]),
            [{"id": u, "name": "u", "email": f"u{u}@example.com", "phone": "1"} for u in users],
        )
        connection.execute(
            sa.insert(tables["clients"]),
            [
                {"id": client, "name": "c", "company_name": "co", "email": "c@example.com",
                 "user_id": user, "country": "DE", "payment_terms_days": terms}
                for client, (user, terms) in CLIENTS.items()
            ],
        )  # fmt: skip
        connection.execute(
            sa.insert(tables["contracts"]),
            [
                {"id": k.id, "start_date": k.start, "end_date": k.end, "client_id": k.client,
                 "currency": k.currency, "monthly_rate": k.rate}
                for k in CONTRACTS
            ],
        )  # fmt: skip
        connection.execute(sa.insert(tables["invoices"]), INVOICES)
    return engine


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args), env=ENV)


def report(url: str, *, code: int) -> dict[str, Any]:
    result = cli("stats", "--check", "--json", "-d", url)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def failures(data: dict[str, Any]) -> dict[str, tuple[int, list[int]]]:
    return {c["name"]: (c["violations"], c["examples"]) for c in data["checks"] if not c["ok"]}


def test_a_coherent_dataset_passes(database_url: str) -> None:
    build(database_url)
    data = report(database_url, code=0)
    billing = [c for c in data["checks"] if "invoice" in c["name"] or "contract" in c["name"]]
    assert all(c["violations"] == 0 for c in billing), billing
    assert not [c for c in data["checks"] if c["violations"] is None]


COVERAGE = "contracts not billed exactly to billed_to"


def _breakages() -> tuple[list[str], dict[str, tuple[int, list[int]]]]:
    """SQL breaking each billing invariant on rows of its own, and what the check must say."""
    c1 = [r["id"] for r in INVOICES if r["contract_id"] == 1]
    c2 = [r["id"] for r in INVOICES if r["contract_id"] == 2]
    c4 = [r["id"] for r in INVOICES if r["contract_id"] == 4]
    shifted, following = c1[2], c1[3]  # both paid: one day moved from one to the next
    new_end = _by_id(shifted)["period_end"] - DAY
    early = _by_id(c2[1])["period_end"] - DAY  # issued before its period ends
    terms = CLIENTS[2][1]
    statements = [
        f"UPDATE invoices SET period_end = '{new_end}' WHERE id = {shifted}",
        f"UPDATE invoices SET period_start = '{new_end + DAY}' WHERE id = {following}",
        f"DELETE FROM invoices WHERE id = {c4[-1]}",  # the draft of contract 4
        f"UPDATE invoices SET amount = amount + 1 WHERE id = {c1[4]}",
        f"UPDATE invoices SET currency = 'GBP' WHERE id = {c1[6]}",
        f"UPDATE invoices SET number = 'INV-1-999' WHERE id = {c1[7]}",
        f"UPDATE invoices SET issued_on = '{AS_OF}' WHERE id = {c1[-1]}",  # a draft
        f"UPDATE invoices SET issued_on = '{early}', "
        f"due_on = '{early + terms * DAY}' WHERE id = {c2[1]}",
        f"UPDATE invoices SET due_on = '{_by_id(c1[8])['due_on'] + DAY}' WHERE id = {c1[8]}",
        f"UPDATE invoices SET paid_on = '{_by_id(c1[9])['issued_on'] - DAY}' WHERE id = {c1[9]}",
        f"UPDATE invoices SET status = 'open' WHERE id = {OVERDUE_C2}",
        f"UPDATE invoices SET status = 'overdue' WHERE id = {c1[10]}",
        f"UPDATE invoices SET paid_on = issued_on WHERE id = {VOID}",
    ]
    assert VOID == c1[5] and OPEN in c1 and OVERDUE_C2 == c2[-1]
    caught = {
        "invoices off their contract's monthly periods": (2, [shifted, following]),
        COVERAGE: (1, [4]),
        "invoice amounts off their contract's rate": (1, [c1[4]]),
        "invoices in another currency than their contract": (1, [c1[6]]),
        "invoice numbers not INV-<user>-<n> in issue order": (1, [c1[7]]),
        "drafts with a number or dates, or not the latest": (1, [c1[-1]]),
        "issue dates before the period's end or after as-of": (1, [c2[1]]),
        "due dates other than issue date + payment terms": (1, [c1[8]]),
        "paid invoices not paid between issue and as-of": (1, [c1[9]]),
        "open invoices paid or past due": (1, [OVERDUE_C2]),
        "overdue invoices paid or not past due": (1, [c1[10]]),
        "void invoices with a payment date": (1, [VOID]),
    }
    return statements, caught


def test_each_broken_billing_invariant_is_caught(database_url: str) -> None:
    engine = build(database_url)
    statements, caught = _breakages()
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))
    data = report(database_url, code=CheckFailed.exit_code)
    assert failures(data) == caught
    text = cli("stats", "--check", "-d", database_url)
    assert text.exit_code == CheckFailed.exit_code
    assert f"error: {len(caught)} of {len(data['checks'])} checks failed: " in text.stderr
    assert "void invoices with a payment date (1)" in text.stderr
    assert f"invoices #{VOID}" in text.stdout


@pytest.mark.parametrize("end", [dt.date(2026, 1, 19), dt.date(2026, 1, 21)])
def test_an_ended_contract_billed_short_of_or_past_its_end_is_caught(
    sqlite_url: str, end: dt.date
) -> None:
    engine = build(sqlite_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE contracts SET end_date = :e WHERE id = 2"), {"e": end})
    assert COVERAGE in failures(report(sqlite_url, code=CheckFailed.exit_code))


def test_a_contract_without_its_due_invoices_is_caught(sqlite_url: str) -> None:
    engine = build(sqlite_url)
    with engine.begin() as connection:  # signed three months earlier, still nothing billed
        connection.execute(sa.text("UPDATE contracts SET start_date = '2025-12-10' WHERE id = 3"))
    assert failures(report(sqlite_url, code=CheckFailed.exit_code)) == {COVERAGE: (1, [3])}
