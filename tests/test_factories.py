"""The factories as a library: isolated vs full, counts, coherent values, sessions."""

from __future__ import annotations

import ast
import datetime as dt
import math
import random
import re
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import factory
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from invoicegen import schema
from invoicegen.currencies import CURRENCIES
from invoicegen.errors import FactoryValueError
from invoicegen.factories import (
    RATE_BOUNDS_USD,
    RATE_MEDIAN_USD,
    RATE_SIGMA,
    ClientFactory,
    ContractFactory,
    InvoiceFactory,
    IsolatedClientFactory,
    IsolatedContractFactory,
    IsolatedInvoiceFactory,
    IsolatedUserFactory,
    UserFactory,
    add_months,
    billing_periods,
    monthly_rate,
    price,
    session_bound,
)
from invoicegen.identities import slug
from invoicegen.models import Client, Contract, Invoice, User
from tests.invariants import expected_periods

AS_OF = dt.date(2026, 6, 15)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def session(engine: sa.Engine) -> Iterator[Session]:
    schema.upgrade(engine)
    with Session(engine) as session, session_bound(session):
        yield session
        session.rollback()


def _check_contract(contract: Contract, as_of: dt.date, *, whole: bool = True) -> None:
    """Coherent invoices; with ``whole``, they bill the contract to date, no more, no less."""
    assert contract.end_date is None or contract.end_date >= contract.start_date
    periods = [(i.period_start, i.period_end) for i in contract.invoices]
    expected = expected_periods(contract.start_date, contract.end_date, as_of)
    if not whole:
        expected = expected[: len(periods)]
    assert periods == [(first, last) for first, last, _days in expected]
    for invoice in contract.invoices:
        assert invoice.currency == contract.currency
        assert (invoice.status == "draft") == (invoice.number is None)
        if invoice.issued_on is not None:
            assert invoice.period_end <= invoice.issued_on <= as_of
    previous_end = None
    for invoice in sorted(contract.invoices, key=lambda i: i.period_start):
        assert contract.start_date <= invoice.period_start <= invoice.period_end <= as_of
        if contract.end_date is not None:
            assert invoice.period_end <= contract.end_date
        if previous_end is not None:
            assert invoice.period_start == previous_end + dt.timedelta(days=1)
        previous_end = invoice.period_end
        assert invoice.amount > 0 and invoice.amount == invoice.amount.quantize(Decimal("0.01"))


def test_build_needs_no_database_and_builds_the_whole_tree() -> None:
    user = UserFactory.build(clients=3, clients__contracts=2, clients__contracts__invoices=4)
    assert user.id is None
    assert len(user.clients) == 3
    assert all(len(client.contracts) == 2 for client in user.clients)
    assert all(len(contract.invoices) == 4 for c in user.clients for contract in c.contracts)


def test_isolated_factories_build_parents_but_no_children() -> None:
    invoice = IsolatedInvoiceFactory.build()
    assert isinstance(invoice.contract.client.user, User)
    assert invoice.contract.invoices == [invoice]
    assert IsolatedUserFactory.build().clients == []
    assert IsolatedClientFactory.build().contracts == []
    assert IsolatedContractFactory.build().invoices == []


@pytest.mark.parametrize("clients", [0, 1, 4, (2, 3), range(1, 3)])
def test_children_count_is_an_int_a_range_or_a_pair(clients: object) -> None:
    for _ in range(10):
        count = len(UserFactory.build(clients=clients).clients)
        if isinstance(clients, int):
            assert count == clients
        elif isinstance(clients, tuple):
            assert clients[0] <= count <= clients[1]
        else:
            assert count in clients  # type: ignore[operator]


def test_ready_children_are_attached_not_generated() -> None:
    ready = [IsolatedClientFactory.build(), IsolatedClientFactory.build()]
    user = UserFactory.build(clients=ready)
    assert user.clients == ready
    assert all(client.user is user for client in ready)


def test_bad_counts_fail_naming_the_factory_and_field() -> None:
    with pytest.raises(FactoryValueError, match=r"^UserFactory\.clients: cannot create \(3, 1\)"):
        UserFactory.build(clients=(3, 1))
    with pytest.raises(FactoryValueError, match=r"^UserFactory\.clients: expected .* got 'many'"):
        UserFactory.build(clients="many")
    with pytest.raises(FactoryValueError, match=r"^ClientFactory\.contracts: .* got True"):
        UserFactory.build(clients=1, clients__contracts=True)
    with pytest.raises(FactoryValueError, match=r"^ContractFactory\.invoices: cannot create -1"):
        ContractFactory.build(invoices=-1)


def test_an_unknown_field_names_the_factory_and_the_models_fields() -> None:
    with pytest.raises(
        FactoryValueError, match=r"^IsolatedUserFactory\.nmae: User has no such field"
    ):
        IsolatedUserFactory.build(nmae="Ada")
    with pytest.raises(FactoryValueError, match=r"^UserFactory\.nmae: .*\(fields: .*\bemail\b"):
        UserFactory.build(nmae="Ada")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: IsolatedContractFactory.build(
                start_date=dt.date(2026, 2, 1), end_date=dt.date(2026, 1, 1)
            ),
            r"^IsolatedContractFactory\.end_date: 2026-01-01 is before start_date 2026-02-01",
        ),
        (
            lambda: InvoiceFactory.build(
                period_start=dt.date(2026, 2, 1), period_end=dt.date(2026, 1, 1)
            ),
            r"^IsolatedInvoiceFactory\.period_end: 2026-01-01 is before period_start",
        ),
        (lambda: InvoiceFactory.build(amount=Decimal("-1.00")), r"^IsolatedInvoiceFactory\.amount"),
        (lambda: InvoiceFactory.build(amount=Decimal("1.005")), r"at most two decimals"),
        (lambda: ContractFactory.build(ongoing=True, ended=True), r"ongoing and ended"),
        (
            lambda: ContractFactory.build(ended=True, start_date=AS_OF, as_of=AS_OF),
            r"^ContractFactory\.end_date: a contract starting 2026-06-15 cannot have ended",
        ),
    ],
)
def test_values_that_cannot_be_coherent_name_the_factory_and_field(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(FactoryValueError, match=message):
        make()


def test_a_given_start_date_keeps_the_end_after_it() -> None:
    start = dt.date(2019, 3, 10)
    for _ in range(40):
        contract = IsolatedContractFactory.build(start_date=start, as_of=AS_OF)
        assert contract.start_date == start
        assert contract.end_date is None or contract.end_date >= start


def test_ended_trait_ends_before_as_of_with_room_for_the_invoices() -> None:
    for _ in range(40):
        contract = ContractFactory.build(ended=True, invoices=(1, 6), as_of=AS_OF)
        assert contract.end_date is not None and contract.end_date < AS_OF
        _check_contract(contract, AS_OF)
    plain = [ContractFactory.build(as_of=AS_OF).end_date for _ in range(40)]
    assert any(end is None or end >= AS_OF for end in plain)  # without it, some run on


def test_long_ago_trait_bills_a_period_a_year_or_more_back() -> None:
    for _ in range(40):
        invoice = InvoiceFactory.build(long_ago=True, as_of=AS_OF)
        assert invoice.period_end <= add_months(AS_OF, -12)
        _check_contract(invoice.contract, AS_OF, whole=False)
    recent = [InvoiceFactory.build(as_of=AS_OF).period_end for _ in range(40)]
    assert max(recent) > add_months(AS_OF, -12)


def test_a_user_with_no_clients() -> None:
    assert UserFactory.build(clients=0).clients == []
    assert IsolatedUserFactory.build().clients == []


def test_create_and_build_are_typed_for_editors_and_mypy(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "from invoicegen.factories import InvoiceFactory, UserFactory\n"
        "reveal_type(UserFactory.create(clients=2, clients__contracts=1))\n"
        "reveal_type(UserFactory.build_batch(2))\n"
        "reveal_type(InvoiceFactory.build().contract.client.user.email)\n"
        "reveal_type(UserFactory.create)\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", "--no-incremental"]
        + ["--cache-dir", str(tmp_path / "cache"), str(snippet)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    revealed = re.findall(r'Revealed type is "([^"]+)"', done.stdout)
    assert revealed == [
        "invoicegen.models.User",
        "list[invoicegen.models.User]",
        "str",
        "invoicegen.factory_signatures.MakeUser["
        "int | tuple[int, int] | range | list[invoicegen.models.Client]]",
    ]


INTERNAL = {
    "dates",
    "billed_by",
    "period",
    "lifecycle",
    "forced_status",
    "invoices__as_of",
    "person",
}  # derived, not for callers


def _signature_keywords() -> dict[str, set[str]]:
    """Each protocol in factory_signatures.py -> the keywords of its first overload."""
    tree = ast.parse((REPO / "invoicegen" / "factory_signatures.py").read_text("utf-8"))
    keywords = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            first = next(f for f in node.body if isinstance(f, ast.FunctionDef))
            keywords[node.name] = {arg.arg for arg in first.args.kwonlyargs}
    return keywords


@pytest.mark.parametrize(
    ("factory_class", "protocol", "children"),
    [
        (IsolatedUserFactory, "MakeUser[list[Client]]", "clients"),
        (UserFactory, "MakeUser[sig.Children[Client]]", "clients"),
        (IsolatedClientFactory, "MakeClient[list[Contract]]", "contracts"),
        (ClientFactory, "MakeClient[sig.Children[Contract]]", "contracts"),
        (IsolatedContractFactory, "MakeContract[list[Invoice]]", "invoices"),
        (ContractFactory, "MakeContract[sig.Children[Invoice]]", "invoices"),
        (IsolatedInvoiceFactory, "MakeInvoice", None),
    ],
)
def test_the_editor_signatures_list_every_keyword_a_factory_takes(
    factory_class: type[factory.Factory], protocol: str, children: str | None
) -> None:
    meta = factory_class._meta
    declared = (
        set(meta.pre_declarations.as_dict())
        | set(meta.post_declarations.as_dict())
        | set(meta.parameters)
    )
    expected = declared - INTERNAL | {"id"} | ({children} if children else set())
    assert _signature_keywords()[protocol.split("[")[0]] == expected
    annotations = factory_class.__annotations__
    assert annotations["create"] == annotations["build"] == f"ClassVar[sig.{protocol}]"


def test_values_are_coherent_over_many_trees() -> None:
    emails = set()
    for _ in range(40):
        user = UserFactory.build(clients__contracts__as_of=AS_OF)
        first, last = user.name.split(" ", 1)
        assert user.email.startswith(slug(f"{first} {last}") + ".")
        assert user.email.endswith((".example.com", "@example.com", "@example.net", "@example.org"))
        emails.add(user.email)
        for client in user.clients:
            assert 1 <= len(client.contracts) <= 3
            for contract in client.contracts:
                assert 1 <= len(contract.invoices) <= 5
                _check_contract(contract, AS_OF)
    assert len(emails) == 40


def test_contracts_leave_room_for_many_monthly_invoices() -> None:
    contract = ContractFactory.build(invoices=36, as_of=AS_OF)
    assert len(contract.invoices) == 36
    _check_contract(contract, AS_OF)
    assert contract.invoices[1].period_start == add_months(contract.start_date, 1)


def test_ongoing_param_and_zero_amount_trait() -> None:
    assert ContractFactory.build(ongoing=True).end_date is None
    assert InvoiceFactory.build(zero=True).amount == Decimal("0.00")


def test_next_invoice_takes_the_contracts_next_period() -> None:
    contract = IsolatedContractFactory.build(invoice_count=3, as_of=AS_OF)
    first = InvoiceFactory.build(contract=contract, as_of=AS_OF)
    second = InvoiceFactory.build(contract=contract, as_of=AS_OF)
    assert second.period_start == first.period_end + dt.timedelta(days=1)


def test_a_period_that_cannot_fit_names_factory_and_field() -> None:
    contract = IsolatedContractFactory.build(
        start_date=dt.date(2026, 1, 1), end_date=dt.date(2026, 1, 2)
    )
    with pytest.raises(FactoryValueError, match=r"InvoiceFactory\.period_start: .* bills 1 "):
        InvoiceFactory.build(contract=contract, index=1, count=5, as_of=AS_OF)


def test_billing_periods_are_monthly_and_a_short_last_one_ends_the_contract() -> None:
    start, end = dt.date(2026, 1, 31), dt.date(2026, 4, 10)
    assert billing_periods(start, end, AS_OF) == [
        (dt.date(2026, 1, 31), dt.date(2026, 2, 27), 28),
        (dt.date(2026, 2, 28), dt.date(2026, 3, 30), 31),
        (dt.date(2026, 3, 31), dt.date(2026, 4, 10), 30),
    ]
    # Still running: the period that is not complete on as_of is not billed yet.
    assert billing_periods(dt.date(2026, 5, 16), None, AS_OF) == [
        (dt.date(2026, 5, 16), dt.date(2026, 6, 15), 31)
    ]
    assert billing_periods(dt.date(2026, 5, 17), None, AS_OF) == []


def test_billing_periods_follow_the_rule_for_any_start_end_and_as_of() -> None:
    """The periods come from tables of whole months made once (a contract asks for a slice):
    the same as the rule worked out period by period, for starts on any day, running or
    ended, early or late, and months asked for in any order."""
    draw = random.Random(12)
    for _ in range(4000):
        as_of = dt.date(2020, 1, 1) + dt.timedelta(days=draw.randint(0, 4000))
        start = as_of - dt.timedelta(
            days=draw.choice([draw.randint(-60, 200), draw.randint(0, 9000)])
        )
        end = None if draw.random() < 0.3 else start + dt.timedelta(days=draw.randint(-40, 3000))
        assert billing_periods(start, end, as_of) == expected_periods(start, end, as_of), (
            start, end, as_of,
        )  # fmt: skip


class _Drawn(random.Random):
    """A generator whose random() is the number given: what a draw of it gives."""

    def __init__(self, number: float) -> None:
        super().__init__(0)
        self.number = number

    def random(self) -> float:
        return self.number


def test_a_monthly_rate_is_the_priced_log_normal_of_its_draw() -> None:
    """One uniform draw through the quantile function: the log-normal's (median
    RATE_MEDIAN_USD, sigma RATE_SIGMA) clamped to RATE_BOUNDS_USD, in the currency's units,
    priced to two significant figures."""
    normal = statistics.NormalDist(math.log(RATE_MEDIAN_USD), RATE_SIGMA)
    low, high = RATE_BOUNDS_USD
    draw = random.Random(3)
    for code, currency in CURRENCIES.items():
        for u in [draw.random() for _ in range(300)] + [0.0, 1e-9, 0.5, 1 - 1e-12]:
            usd = min(max(math.exp(normal.inv_cdf(max(u, 1e-300))), low), high)
            expected = Decimal(price(usd * currency.per_usd)).quantize(Decimal("0.01"))
            # Exactly on the edge between two prices either may come: floating point.
            edge = any(
                abs(price(usd * currency.per_usd * f) - price(usd * currency.per_usd)) > 0
                for f in (1 - 1e-9, 1 + 1e-9)
            )
            assert edge or monthly_rate(_Drawn(u), code) == expected, (code, u)
    assert monthly_rate(_Drawn(0.5), "USD") == Decimal("1500.00")  # the median


def test_create_without_a_session_says_how_to_bind_one() -> None:
    with pytest.raises(FactoryValueError, match="bind_session"):
        IsolatedUserFactory.create()


def test_create_flushes_through_the_callers_session_without_committing(
    session: Session, engine: sa.Engine
) -> None:
    user = UserFactory.create(clients=2, clients__contracts=2, clients__contracts__invoices=3)
    assert user.id is not None
    assert session.scalar(sa.select(sa.func.count()).select_from(Invoice)) == 12
    assert session.in_transaction()
    with engine.connect() as other:  # another connection sees nothing: not committed
        assert other.execute(sa.select(sa.func.count()).select_from(User)).scalar_one() == 0


def test_isolated_create_then_batch_as_in_the_article(session: Session) -> None:
    user = IsolatedUserFactory.create()
    IsolatedClientFactory.create_batch(3, user=user)
    assert len(user.clients) == 3
    assert {client.user_id for client in user.clients} == {user.id}
    assert session.scalar(sa.select(sa.func.count()).select_from(Client)) == 3
    assert session.scalar(sa.select(sa.func.count()).select_from(Contract)) == 0
    assert ClientFactory.create(user=user, contracts=0).contracts == []


def test_unique_user_emails_across_many_creates(session: Session) -> None:
    IsolatedUserFactory.create_batch(300)
    emails = session.scalars(sa.select(User.email)).all()
    assert len(emails) == len(set(emails)) == 300


def test_a_count_takes_the_text_of_a_count_option_a_mix_too() -> None:
    counts = Counter(len(UserFactory.build(clients="1:80,7:20").clients) for _ in range(100))
    assert set(counts) == {1, 7} and counts[1] > counts[7]
    assert {len(UserFactory.build(clients="2-3").clients) for _ in range(30)} == {2, 3}
    with pytest.raises(FactoryValueError, match=r"^UserFactory\.clients: the weight of '1-3:0'"):
        UserFactory.build(clients="1-3:0")


def test_a_contract_is_billed_coherently_in_its_currency() -> None:
    for _ in range(40):
        contract = ContractFactory.build(invoices=3, as_of=AS_OF)
        assert len(contract.invoices) == 3
        _check_contract(contract, AS_OF)
        assert contract.currency is not None and len(contract.currency) == 3
        assert contract.monthly_rate is not None and contract.monthly_rate > 0
        periods = expected_periods(contract.start_date, contract.end_date, AS_OF)
        for invoice, (first, last, full_days) in zip(contract.invoices, periods, strict=True):
            days = (last - first).days + 1
            if days == full_days:
                assert invoice.amount == contract.monthly_rate
            else:  # a short last period: prorated by days
                share = contract.monthly_rate * days / full_days
                assert abs(invoice.amount - share) <= 1
        statuses = [i.status for i in contract.invoices]
        assert "draft" not in statuses[:-1]
    assert ContractFactory.build(invoices=0, as_of=AS_OF).invoices == []


def test_clients_have_a_country_terms_and_mostly_the_locales_currency() -> None:
    with factory.Faker.override_default_locale("de_DE"):
        contracts = [ContractFactory.build(invoices=1) for _ in range(60)]
    countries = [c.client.country for c in contracts]
    assert countries.count("DE") > 40
    assert sum(c.currency == "EUR" for c in contracts) > 40
    assert {c.client.payment_terms_days for c in contracts} <= {7, 14, 30, 45, 60}
    with factory.Faker.override_default_locale("ja_JP"):
        yen = [
            c for c in (ContractFactory.build(invoices=1) for _ in range(40)) if c.currency == "JPY"
        ]
    assert yen and all(c.monthly_rate == c.monthly_rate.to_integral_value() for c in yen)
    assert all(c.monthly_rate >= 1000 for c in yen)  # yen prices are large numbers


@pytest.mark.parametrize(
    ("trait", "status"),
    [("overdue", "overdue"), ("paid_late", "paid"), ("draft", "draft"), ("void", "void")],
)
def test_invoice_status_traits(trait: str, status: str) -> None:
    for _ in range(20):
        invoice = InvoiceFactory.build(**{trait: True}, as_of=AS_OF)
        assert invoice.status == status
        if status == "draft":
            assert invoice.number is invoice.issued_on is invoice.due_on is invoice.paid_on is None
            continue
        assert invoice.number is not None
        assert invoice.issued_on is not None and invoice.due_on is not None
        assert invoice.period_end <= invoice.issued_on <= AS_OF
        terms = invoice.contract.client.payment_terms_days
        assert invoice.due_on == invoice.issued_on + dt.timedelta(days=terms)
        if trait == "overdue":
            assert invoice.paid_on is None and invoice.due_on < AS_OF
        elif trait == "paid_late":
            assert invoice.paid_on is not None and invoice.due_on < invoice.paid_on <= AS_OF
        else:
            assert invoice.paid_on is None


def test_an_overdue_invoice_on_a_recent_period_names_the_field() -> None:
    contract = IsolatedContractFactory.build(invoice_count=1, ongoing=True, as_of=AS_OF)
    contract.start_date = add_months(AS_OF, -1)
    with pytest.raises(FactoryValueError, match=r"InvoiceFactory\.status: .* not yet late"):
        InvoiceFactory.build(contract=contract, overdue=True, as_of=AS_OF, billed_by=AS_OF)


def test_a_client_that_stopped_paying_leaves_its_recent_invoices_unpaid() -> None:
    client = ClientFactory.build(
        stopped_paying=True,
        contracts=2,
        contracts__invoices=8,
        contracts__ongoing=True,
        contracts__as_of=AS_OF,
    )
    invoices = [i for c in client.contracts for i in c.invoices if i.issued_on is not None]
    recent = [i for i in invoices if i.issued_on > AS_OF - dt.timedelta(days=90)]
    assert recent and all(i.paid_on is None for i in recent)
    assert any(i.status == "overdue" for i in recent) or client.payment_terms_days > 60
    older = [i for i in invoices if i.issued_on <= AS_OF - dt.timedelta(days=150)]
    assert older and sum(i.status == "paid" for i in older) >= len(older) - 1


def test_created_invoices_are_numbered_per_user_by_issue_date(session: Session) -> None:
    user = UserFactory.create(
        clients=2,
        clients__contracts=2,
        clients__contracts__invoices=3,
        clients__contracts__as_of=AS_OF,
    )
    rows = session.execute(
        sa.select(Invoice.number, Invoice.issued_on, Invoice.id)
        .where(Invoice.issued_on.is_not(None))
        .order_by(Invoice.issued_on, Invoice.id)
    ).all()
    assert [number for number, _issued, _id in rows] == [
        f"INV-{user.id}-{n}" for n in range(1, len(rows) + 1)
    ]
    drafts = session.scalars(sa.select(Invoice.number).where(Invoice.status == "draft")).all()
    assert all(number is None for number in drafts)
    other = UserFactory.create(clients=1, clients__contracts=1, clients__contracts__invoices=2)
    assert {i.number for c in other.clients for k in c.contracts for i in k.invoices} <= {
        f"INV-{other.id}-1",
        f"INV-{other.id}-2",
        None,
    }
