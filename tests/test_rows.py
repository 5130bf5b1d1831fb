"""The engine's row makers give exactly the values of the factories' own build()."""

from __future__ import annotations

import contextlib
import datetime as dt
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
    IsolatedClientFactory,
    IsolatedContractFactory,
    IsolatedInvoiceFactory,
    IsolatedUserFactory,
    payer_of,
)
from invoicegen.models import Client, Contract, User
from invoicegen.seeding import CLIENT_FIELDS, CONTRACT_FIELDS
from invoicegen.seeding.generate import RowMaker, drawing, fast_faker

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
