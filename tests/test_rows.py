"""The engine's row makers give exactly the values of the factories' own build()."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import factory
import factory.random
import faker.generator
import faker.providers.company
import pytest

from invoicegen.errors import FactoryValueError
from invoicegen.factories import (
    ON_TIME,
    STOPPED_PAYING,
    ContractFactory,
    IsolatedClientFactory,
    IsolatedContractFactory,
    IsolatedInvoiceFactory,
    IsolatedUserFactory,
    Payer,
    bill_contract,
    billing_periods,
    invoice_lifecycle,
    payer_of,
    period_amount,
)
from invoicegen.models import Client, Contract, User
from invoicegen.seeding import CLIENT_FIELDS, CONTRACT_FIELDS
from invoicegen.seeding.generate import (
    RowMaker,
    StockClients,
    StockContracts,
    StockUsers,
    client_maker,
    contract_maker,
    drawing,
    fast_faker,
    user_maker,
)

AS_OF = dt.date(2026, 5, 20)
# Unsaved, no randomness: what the engine passes in as parents.
CLIENT = Client(country="DE", payment_terms_days=14)
CONTRACT = Contract(
    start_date=dt.date(2024, 2, 29),
    end_date=None,
    currency="EUR",
    monthly_rate=Decimal("1200.00"),
    client=CLIENT,
)
CASES = [
    (IsolatedUserFactory, ("name", "email", "phone"), {"number": 41}),
    (IsolatedClientFactory, CLIENT_FIELDS, {"user": None, "number": "41-2"}),
    (
        IsolatedContractFactory,
        CONTRACT_FIELDS,
        {"client": CLIENT, "as_of": AS_OF, "since": dt.date(2024, 1, 1), "invoice_count": 4},
    ),
    (
        IsolatedInvoiceFactory,
        ("period_start", "period_end", "amount", "issued_on", "due_on", "paid_on", "status"),
        {"contract": CONTRACT, "as_of": AS_OF, "index": 3, "count": 7},
    ),
]


@contextlib.contextmanager
def one_generator(seed: int) -> Iterator[None]:
    """factory-boy draws from Faker's generator, seeded with ``seed``: one generator for
    both, as the engine draws them (one Mersenne Twister seeded per stream, not two)."""
    own, shared = factory.random.randgen, faker.generator.random
    factory.random.randgen = shared
    shared.seed(seed)
    try:
        yield
    finally:
        factory.random.randgen = own


def _built(
    factory_class: Any, fields: tuple[str, ...], given: dict[str, Any], seed: int
) -> tuple[Any, ...]:
    with one_generator(seed):
        obj = factory_class.build(**given)
    return tuple(payer_of(obj) if f == "payer" else getattr(obj, f) for f in fields)


@pytest.mark.parametrize("locale", ["en_US", "de_DE", "ja_JP"])
@pytest.mark.parametrize(
    ("factory_class", "fields", "given"), CASES, ids=lambda c: getattr(c, "__name__", "")
)
def test_row_maker_equals_factory_build(
    factory_class: Any, fields: tuple[str, ...], given: dict[str, Any], locale: str
) -> None:
    maker = RowMaker(factory_class, fields, locale=locale)
    with factory.Faker.override_default_locale(locale):
        for seed in range(60):
            expected = _built(factory_class, fields, given, seed)
            with drawing(seed):
                assert maker.make(**given) == expected, (factory_class.__name__, locale, seed)


CONTRACT_GIVEN = CASES[2][2]


@pytest.mark.parametrize("locale", ["en_US", "de_DE", "ja_JP"])
@pytest.mark.parametrize("invoice_count", [0, 1, 4, 30])
def test_the_engines_contracts_equal_factory_build(locale: str, invoice_count: int) -> None:
    """The engine makes contracts in one call (``StockContracts``), not declaration by
    declaration: the same rows as ``IsolatedContractFactory.build()``."""
    maker = contract_maker(IsolatedContractFactory, locale)
    assert isinstance(maker, StockContracts)
    given = {**CONTRACT_GIVEN, "invoice_count": invoice_count}
    with factory.Faker.override_default_locale(locale):
        for seed in range(150):
            expected = _built(IsolatedContractFactory, CONTRACT_FIELDS, given, seed)
            with drawing(seed):
                assert maker.make(**given) == expected, (locale, seed)


STOCK_PEOPLE = [
    (user_maker, StockUsers, CASES[0]),
    (client_maker, StockClients, CASES[1]),
]


@pytest.mark.parametrize("locale", ["en_US", "de_DE", "ja_JP", "zh_CN"])
@pytest.mark.parametrize(
    ("make_maker", "stock", "case"), STOCK_PEOPLE, ids=lambda c: getattr(c, "__name__", "")
)
def test_the_engines_users_and_clients_equal_factory_build(
    make_maker: Any, stock: type[Any], case: Any, locale: str
) -> None:
    """The engine makes users and clients in one call (``StockUsers``, ``StockClients``),
    not declaration by declaration: the same rows as their factory's ``build()``."""
    factory_class, fields, given = case
    maker = make_maker(factory_class, locale)
    assert isinstance(maker, stock)
    with factory.Faker.override_default_locale(locale):
        for seed in range(150):
            expected = _built(factory_class, fields, given, seed)
            with drawing(seed):
                assert maker.make(**given) == expected, (locale, seed)


def test_user_and_client_factories_declaring_otherwise_are_honoured() -> None:
    class OwnUsers(IsolatedUserFactory):
        phone = "+1 555 0100"

    class OwnClients(IsolatedClientFactory):
        company_name = factory.LazyFunction(lambda: "Own Ltd")

    for make_maker, own, fields, given, index, value in (
        (user_maker, OwnUsers, CASES[0][1], CASES[0][2], 2, "+1 555 0100"),
        (client_maker, OwnClients, CLIENT_FIELDS, CASES[1][2], 1, "Own Ltd"),
    ):
        maker = make_maker(own, "en_US")
        assert isinstance(maker, RowMaker)
        for seed in range(20):
            expected = _built(own, fields, given, seed)
            assert expected[index] == value
            with drawing(seed):
                assert maker.make(**given) == expected


def test_a_contract_factory_declaring_otherwise_is_honoured() -> None:
    class OwnContracts(IsolatedContractFactory):
        summary = factory.LazyFunction(lambda: "Own terms")
        currency = "CHF"

    maker = contract_maker(OwnContracts, "en_US")
    assert isinstance(maker, RowMaker)
    for seed in range(20):
        expected = _built(OwnContracts, CONTRACT_FIELDS, CONTRACT_GIVEN, seed)
        assert expected[0] == "Own terms" and expected[3] == "CHF"
        with drawing(seed):
            assert maker.make(**CONTRACT_GIVEN) == expected


def test_fast_faker_draws_what_faker_draws() -> None:
    reference = factory.Faker._get_faker("en_US")
    fast = fast_faker("en_US")
    for seed in range(200):
        with one_generator(seed):
            expected = [reference.first_name(), reference.last_name(), reference.company()]
        with drawing(seed):
            assert [fast.first_name(), fast.last_name(), fast.company()] == expected


def test_a_declaration_it_cannot_evaluate_is_refused_up_front() -> None:
    class Odd(IsolatedUserFactory):
        phone = factory.Iterator(["1", "2"])

    with pytest.raises(FactoryValueError, match=r"Odd\.phone: .* Iterator"):
        RowMaker(Odd, ("phone",), locale="en_US")


def test_a_missing_parent_is_an_error_naming_the_factory() -> None:
    maker = RowMaker(IsolatedClientFactory, ("name",), locale="en_US")
    with pytest.raises(FactoryValueError, match=r"IsolatedClientFactory\.user"):
        maker.make()


def test_models_are_untouched_by_row_makers() -> None:
    declarations = IsolatedUserFactory._meta.pre_declarations.as_dict()
    name, email = RowMaker(IsolatedUserFactory, ("name", "email"), locale="en_US").make(number=1)
    assert " " in name and "@" in email  # the declared values, picked in the order asked for
    assert IsolatedUserFactory._meta.pre_declarations.as_dict() == declarations
    user = IsolatedUserFactory.build()
    assert type(user) is User and " " in user.name and "@" in user.email


def test_a_faker_provider_added_to_factory_boy_is_honoured_not_compiled_away() -> None:
    """A user's own provider (here a company provider of en_IE) changes what build() gives;
    the engine's compiled Faker draws it too, instead of Faker's stock companies."""

    class OwnCompanies(faker.providers.company.Provider):  # type: ignore[misc]
        def company(self) -> str:
            return f"Own {self.random_int(1, 99)} Ltd"

    factory.Faker.add_provider(OwnCompanies, locale="en_IE")
    maker = RowMaker(IsolatedClientFactory, CLIENT_FIELDS, locale="en_IE")
    given = {"user": None, "number": "41-2"}
    with factory.Faker.override_default_locale("en_IE"):
        for seed in range(20):
            expected = _built(IsolatedClientFactory, CLIENT_FIELDS, given, seed)
            assert expected[1].startswith("Own ")
            with drawing(seed):
                assert maker.make(**given) == expected


# --- invoices: the engine bills a contract in one loop (bill_contract) ---------------------------


@pytest.mark.parametrize("traits", [{}, {"ongoing": True}, {"ended": True}])
def test_bill_contract_gives_the_invoices_contract_factory_builds(traits: dict[str, bool]) -> None:
    """``ContractFactory.build(invoices=N)`` makes each invoice through the invoice factory's
    own declarations; the engine's ``bill_contract``, from the same random state after the
    contract, gives the same rows."""
    fields = ("period_start", "period_end", "amount", "issued_on", "due_on", "paid_on")
    for seed in range(150):
        count = seed % 9 if not traits.get("ended") else 1 + seed % 8
        given = {"as_of": AS_OF, **traits}
        factory.random.reseed_random(seed)
        built = ContractFactory.build(invoices=count, **given)
        factory.random.reseed_random(seed)
        contract = IsolatedContractFactory.build(invoice_count=count, **given)
        client = contract.client
        bills = bill_contract(
            factory.random.randgen,
            contract.start_date,
            contract.end_date,
            AS_OF,
            contract.monthly_rate,
            contract.currency,
            client.payment_terms_days,
            payer_of(client),
        )
        expected = [
            (*(getattr(i, f) for f in fields), i.status, i.currency) for i in built.invoices
        ]
        assert bills == expected, seed


class _SlowPayer(Payer):
    def pays_after(self, rand: random.Random, issued: dt.date, terms: int, as_of: dt.date) -> int:
        return terms + rand.randint(100, 200)


def test_bill_contract_is_invoice_lifecycle_and_period_amount_per_period() -> None:
    """The one loop draws what the per-invoice functions draw, for any contract: starts late
    in the month, short final periods, every payer (one of a class of its own too), terms."""
    draw = random.Random(14)
    payers = [ON_TIME, Payer("late"), Payer("stopped", 0), STOPPED_PAYING, _SlowPayer("own")]
    for _ in range(3000):
        as_of = dt.date(2024, 1, 1) + dt.timedelta(days=draw.randint(0, 1500))
        start = as_of - dt.timedelta(days=draw.randint(-40, 1200))
        end = None if draw.random() < 0.3 else start + dt.timedelta(days=draw.randint(-5, 1300))
        rate = Decimal(draw.choice(["1.00", "7.00", "1500.00", "1234.57", "99999.00"]))
        currency = draw.choice(["USD", "JPY", "KRW", "EUR"])
        terms, payer = draw.choice([0, 7, 30, 60, 400]), draw.choice(payers)
        state = draw.getrandbits(32)
        periods = billing_periods(start, end, as_of)
        expected_rand = random.Random(state)
        expected = [
            (
                *period[:2],
                period_amount(rate, currency, period),
                *invoice_lifecycle(
                    expected_rand, period[1], as_of, terms, payer, latest=i == len(periods) - 1
                ),
                currency,
            )
            for i, period in enumerate(periods)
        ]
        rand = random.Random(state)
        assert bill_contract(rand, start, end, as_of, rate, currency, terms, payer) == expected
        assert rand.getstate() == expected_rand.getstate()
