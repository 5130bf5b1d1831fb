"""factory-boy factories for invoicegen's models: what a plausible row looks like.

Two kinds per model, as in the article that started invoicegen:

* ``Isolated*Factory`` builds one object and its parents, never its children;
* ``*Factory`` also builds the "many" side, e.g. ``UserFactory.create(clients=3)``,
  ``clients=(1, 3)`` for a random count in a range, or ``clients=[client_a, client_b]``.
  Deeper levels take the ``__`` syntax: ``UserFactory(clients=2, clients__contracts=1)``.

Values are coherent: names are in the locale's order, first and last name of one gender; emails
derive from the name (an explicit ``name=`` too), in ASCII, and are unique (``number`` is part
of them); phone numbers have no extensions (see :mod:`invoicegen.identities`);
contracts start before they end; invoices are consecutive, non-overlapping periods inside their
contract and never in the future relative to ``as_of``; amounts are positive with two decimals.

Situations tests often need: ``ContractFactory(ongoing=True)`` (no end date),
``ContractFactory(ended=True)`` (ended before ``as_of``), ``InvoiceFactory(zero=True)``
(amount 0.00), ``InvoiceFactory(long_ago=True)`` (its period ended a year or more before
``as_of``), and a user with no clients: ``IsolatedUserFactory()`` or ``UserFactory(clients=0)``.

``build()`` needs no database. ``create()`` adds and flushes through the session bound with
:func:`bind_session` (the pytest plugin does this); the caller owns the transaction. A value that
cannot be made coherent raises :class:`~invoicegen.errors.FactoryValueError` naming the factory and
the field. ``create()``/``build()`` are typed: ``UserFactory.create()`` is a ``User``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar, cast

import factory
import factory.random
import sqlalchemy as sa
from factory.alchemy import SQLAlchemyModelFactory
from sqlalchemy.orm import Session

from invoicegen import factory_signatures as sig
from invoicegen.errors import FactoryValueError
from invoicegen.identities import (
    FromLocale,
    client_email,
    draw_person,
    draw_phone,
    user_email,
)
from invoicegen.models import Client, Contract, Invoice, User

#: Children per parent when a full factory is not told otherwise (the article's ranges).
DEFAULT_CLIENTS = (1, 3)
DEFAULT_CONTRACTS = (1, 3)
DEFAULT_INVOICES = (1, 5)

MAX_AMOUNT = Decimal("9999999999.99")  # NUMERIC(12, 2)
LONG_AGO_MONTHS = 12

M = TypeVar("M")
_session: ContextVar[Session | None] = ContextVar("invoicegen_factory_session", default=None)


def bind_session(session: Session | None) -> None:
    """Make every invoicegen factory's ``create()`` use ``session`` (None unbinds)."""
    _session.set(session)


@contextlib.contextmanager
def session_bound(session: Session) -> Iterator[Session]:
    """``with session_bound(session): UserFactory.create()`` and the binding is undone after."""
    token = _session.set(session)
    try:
        yield session
    finally:
        _session.reset(token)


def _current_session() -> Session:
    session = _session.get()
    if session is None:
        raise FactoryValueError(
            "no SQLAlchemy session is bound to invoicegen's factories: call "
            "invoicegen.factories.bind_session(session), use the pytest fixture "
            "invoicegen_session, or build() instead of create()"
        )
    return session


# --- value helpers (pure functions of their inputs and factory-boy's random generator) ---------


@functools.lru_cache(maxsize=1 << 16)  # invoice periods ask for the same month boundaries often
def add_months(day: dt.date, months: int) -> dt.date:
    """The same day-of-month ``months`` later (clamped to the month's last day)."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    month += 1
    last_day = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last_day))


def contract_dates(as_of: dt.date, invoice_count: int) -> tuple[dt.date, dt.date | None]:
    """A start (and maybe an end) leaving room for ``invoice_count`` monthly periods before as_of.

    25% of contracts are still running (no end date); the others end on or after the last
    period, possibly after ``as_of`` (an end already agreed).
    """
    rand = factory.random.randgen
    months = max(invoice_count, 1)
    back = rand.randint(months + 1, months + 24)
    month_start = add_months(as_of.replace(day=1), -back)
    start = month_start.replace(day=rand.randint(1, 28))
    if rand.random() < 0.25:
        return start, None
    end = add_months(start, months + rand.randint(0, 6)) - dt.timedelta(days=1)
    return start, end


def invoice_period(
    start: dt.date, end: dt.date | None, as_of: dt.date, index: int, count: int
) -> tuple[dt.date, dt.date]:
    """Period ``index`` of ``count`` consecutive periods inside the contract, none after as_of.

    Monthly periods from the contract's start when ``count`` of them fit; otherwise the
    billable span is cut into ``count`` equal periods. Raises ValueError when even one day each
    does not fit.
    """
    last = min(end, as_of) if end is not None else as_of
    if not 0 <= index < count:
        raise ValueError(f"index {index} is outside 0..{count - 1}")
    if add_months(start, count) - dt.timedelta(days=1) <= last:
        return add_months(start, index), add_months(start, index + 1) - dt.timedelta(days=1)
    length = ((last - start).days + 1) // count
    if length < 1:
        raise ValueError(
            f"{count} periods do not fit between {start} and {last} "
            "(build the contract with invoice_count=N to leave room)"
        )
    period_start = start + dt.timedelta(days=index * length)
    return period_start, period_start + dt.timedelta(days=length - 1)


def random_amount() -> Decimal:
    """A positive amount with exactly two decimals, 20.00 to 15,000.00."""
    return Decimal(factory.random.randgen.randint(20_00, 15_000_00)).scaleb(-2)


def count_from(value: Any, *, name: str) -> int:
    """A child count from an int, a (low, high) pair or range, or a list of ready objects.

    ``name`` is the factory and field the value was given for, e.g. ``UserFactory.clients``.
    """
    rand = factory.random.randgen
    expected = f"{name}: expected a count, a (low, high) range or a list of objects, got {value!r}"
    if isinstance(value, bool):
        raise FactoryValueError(expected)
    if isinstance(value, int):
        count = value
    elif isinstance(value, range):
        count = rand.choice(value) if len(value) else -1
    elif isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        low, high = value
        count = rand.randint(low, high) if low <= high else -1
    elif isinstance(value, list):
        return len(value)
    else:
        raise FactoryValueError(expected)
    if count < 0:
        raise FactoryValueError(f"{name}: cannot create {value!r} children")
    return count


# --- factories ----------------------------------------------------------------------------------


class InvoicegenFactory(SQLAlchemyModelFactory, Generic[M]):
    """Base of invoicegen's factories: flushes through the bound session, never commits.

    The classmethods below add types (``UserFactory.create()`` is a ``User`` to mypy and to
    editors) and check the final values before the object is made, so a mistake names the
    factory and the field instead of surfacing later as a database error.
    """

    class Meta:
        abstract = True
        sqlalchemy_session_factory = _current_session
        sqlalchemy_session_persistence = "flush"

    #: (earlier, later) field pairs: the later may not come before the earlier.
    _ordered: tuple[tuple[str, str], ...] = ()

    @classmethod
    def build(cls, **kwargs: Any) -> M:
        """One object in memory, with its parents (and children, for full factories)."""
        return cast(M, super().build(**kwargs))

    @classmethod
    def create(cls, **kwargs: Any) -> M:
        """One object added and flushed through the bound session (never committed)."""
        return cast(M, super().create(**kwargs))

    @classmethod
    def build_batch(cls, size: int, **kwargs: Any) -> list[M]:
        return cast(list[M], super().build_batch(size, **kwargs))

    @classmethod
    def create_batch(cls, size: int, **kwargs: Any) -> list[M]:
        return cast(list[M], super().create_batch(size, **kwargs))

    @classmethod
    def _build(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        cls._check(model_class, kwargs)
        return super()._build(model_class, *args, **kwargs)

    @classmethod
    def _create(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        cls._check(model_class, kwargs)
        return super()._create(model_class, *args, **kwargs)

    @classmethod
    def _check(cls, model_class: type[Any], values: dict[str, Any]) -> None:
        """Refuse values the model cannot take; subclasses add their own coherence rules."""
        mapper = sa.inspect(model_class, raiseerr=False)
        if mapper is None:  # not a mapped class (seeding builds plain rows)
            return
        unknown = sorted(set(values) - set(mapper.attrs.keys()))
        if unknown:
            known = ", ".join(mapper.attrs.keys())
            raise FactoryValueError(
                f"{cls.__name__}.{unknown[0]}: {model_class.__name__} has no such field "
                f"(fields: {known})"
            )
        for first, second in cls._ordered:
            start, end = values.get(first), values.get(second)
            if start is not None and end is not None and end < start:
                raise FactoryValueError(f"{cls.__name__}.{second}: {end} is before {first} {start}")


class IsolatedUserFactory(InvoicegenFactory[User]):
    """A user with no clients."""

    # Only annotations (the classmethods stay factory-boy's): keywords for editors and mypy.
    create: ClassVar[sig.MakeUser[list[Client]]]
    build: ClassVar[sig.MakeUser[list[Client]]]

    class Meta:
        model = User

    class Params:
        number = factory.Sequence(lambda n: n + 1)  # in the email: unique per user
        person = FromLocale(draw_person)
        first_name = factory.LazyAttribute(lambda o: o.person.first_name)
        last_name = factory.LazyAttribute(lambda o: o.person.last_name)

    name = factory.LazyAttribute(lambda o: o.person.full_name(o.first_name, o.last_name))
    email = factory.LazyAttribute(
        lambda o: user_email(o.person.email_words(o.name, o.first_name, o.last_name), o.number)
    )
    phone = FromLocale(draw_phone)


class IsolatedClientFactory(InvoicegenFactory[Client]):
    """A client, with its user (an isolated one unless given), and no contracts."""

    # Only annotations (the classmethods stay factory-boy's): keywords for editors and mypy.
    create: ClassVar[sig.MakeClient[list[Contract]]]
    build: ClassVar[sig.MakeClient[list[Contract]]]

    class Meta:
        model = Client

    class Params:
        # In the email: unique per client; the seeding engine gives "<user number>-<index>".
        number = factory.Sequence(lambda n: str(n + 1))
        person = FromLocale(draw_person)
        first_name = factory.LazyAttribute(lambda o: o.person.first_name)
        last_name = factory.LazyAttribute(lambda o: o.person.last_name)

    user = factory.SubFactory("invoicegen.factories.IsolatedUserFactory")
    name = factory.LazyAttribute(lambda o: o.person.full_name(o.first_name, o.last_name))
    company_name = factory.Faker("company")
    email = factory.LazyAttribute(
        lambda o: client_email(
            o.person.email_words(o.name, o.first_name, o.last_name), o.company_name, o.number
        )
    )


def _contract_dates(o: Any) -> tuple[dt.date, dt.date | None]:
    if o.ongoing and o.ended:
        raise FactoryValueError("ContractFactory.end_date: a contract cannot be ongoing and ended")
    start, end = contract_dates(o.as_of, o.invoice_count)
    if o.ongoing:
        end = None
    elif o.ended:  # the dates leave room for the invoices before as_of, so this stays >= start
        day_before = o.as_of - dt.timedelta(days=1)
        end = day_before if end is None else min(end, day_before)
    return start, end


def _contract_end(o: Any) -> dt.date | None:
    """The drawn end; when the caller gave ``start_date``, the same length from that start."""
    start: dt.date = o.dates[0]
    end: dt.date | None = o.dates[1]
    given_start: dt.date = o.start_date
    if end is None or given_start == start:
        return end
    end = given_start + (end - start)
    if o.ended and end >= o.as_of:
        raise FactoryValueError(
            f"ContractFactory.end_date: a contract starting {o.start_date} cannot have ended "
            f"before as_of {o.as_of}; give end_date too, or an earlier start_date"
        )
    return end


class IsolatedContractFactory(InvoicegenFactory[Contract]):
    """A contract, with its client, and no invoices.

    ``invoice_count`` is the number of monthly periods the dates leave room for;
    ``ongoing=True`` gives a contract with no end date, ``ended=True`` one that ended before
    ``as_of``. Given only a ``start_date``, the end keeps the drawn length from that start.
    """

    # Only annotations (the classmethods stay factory-boy's): keywords for editors and mypy.
    create: ClassVar[sig.MakeContract[list[Invoice]]]
    build: ClassVar[sig.MakeContract[list[Invoice]]]

    class Meta:
        model = Contract

    class Params:
        as_of = factory.LazyFunction(dt.date.today)
        invoice_count = DEFAULT_INVOICES[1]
        ongoing = False
        ended = False
        dates = factory.LazyAttribute(_contract_dates)

    client = factory.SubFactory("invoicegen.factories.IsolatedClientFactory")
    summary = factory.Maybe(
        factory.LazyFunction(lambda: factory.random.randgen.random() < 0.9),
        yes_declaration=factory.Faker("catch_phrase"),
        no_declaration=None,
    )
    start_date = factory.LazyAttribute(lambda o: o.dates[0])
    end_date = factory.LazyAttribute(_contract_end)

    _ordered = (("start_date", "end_date"),)


def _period(o: Any) -> tuple[dt.date, dt.date]:
    contract = o.contract
    index = o.index
    count = o.count if o.count is not None else index + 1
    try:
        return invoice_period(contract.start_date, contract.end_date, o.billed_by, index, count)
    except ValueError as exc:
        raise FactoryValueError(f"InvoiceFactory.period_start: {exc}") from None


def _existing_invoices(o: Any) -> int:
    return len(getattr(o.contract, "invoices", None) or ())


class IsolatedInvoiceFactory(InvoicegenFactory[Invoice]):
    """An invoice, with its contract: the contract's next free period unless ``index`` is given.

    ``count`` is how many invoices the contract gets in all (they share one cadence);
    ``zero=True`` gives a zero-amount invoice; ``long_ago=True`` one whose period ended
    ``LONG_AGO_MONTHS`` or more before ``as_of`` (its own contract is dated to match; a contract
    you pass must have room for it that early).
    """

    # Only annotations (the classmethods stay factory-boy's): keywords for editors and mypy.
    create: ClassVar[sig.MakeInvoice]
    build: ClassVar[sig.MakeInvoice]

    class Meta:
        model = Invoice

    class Params:
        as_of = factory.LazyFunction(dt.date.today)
        index = factory.LazyAttribute(_existing_invoices)
        count = None
        long_ago = False
        # Periods end on or before this day.
        billed_by = factory.LazyAttribute(
            lambda o: add_months(o.as_of, -LONG_AGO_MONTHS) if o.long_ago else o.as_of
        )
        period = factory.LazyAttribute(_period)
        zero = factory.Trait(amount=Decimal("0.00"))

    contract = factory.SubFactory(
        "invoicegen.factories.IsolatedContractFactory", as_of=factory.SelfAttribute("..billed_by")
    )
    period_start = factory.LazyAttribute(lambda o: o.period[0])
    period_end = factory.LazyAttribute(lambda o: o.period[1])
    amount = factory.LazyFunction(random_amount)

    _ordered = (("period_start", "period_end"),)

    @classmethod
    def _check(cls, model_class: type[Any], values: dict[str, Any]) -> None:
        super()._check(model_class, values)
        amount = values.get("amount")
        if amount is not None and not (
            0 <= amount <= MAX_AMOUNT
            and Decimal(amount) == Decimal(amount).quantize(Decimal("0.01"))
        ):
            raise FactoryValueError(
                f"{cls.__name__}.amount: {amount!r} is not an amount from 0.00 to {MAX_AMOUNT} "
                "with at most two decimals"
            )


# --- full factories: the "many" side too ---------------------------------------------------------


def _children(
    child_factory: type[factory.Factory],
    parent: Any,
    field: str,
    create: bool,
    extracted: Any,
    kwargs: dict[str, Any],
) -> None:
    """Attach ready objects, or build/create the requested number of children."""
    parent_field = type(parent).__name__.lower()
    if isinstance(extracted, list):
        for child in extracted:
            setattr(child, parent_field, parent)
        return
    count = count_from(extracted, name=field)
    strategy = factory.CREATE_STRATEGY if create else factory.BUILD_STRATEGY
    for index in range(count):
        extra = {"index": index, "count": count} if child_factory is IsolatedInvoiceFactory else {}
        child_factory.generate(strategy, **{parent_field: parent, **extra, **kwargs})


class UserFactory(IsolatedUserFactory):
    """A user with clients, their contracts and invoices: ``UserFactory(clients=3)``.

    ``clients=0`` gives a user with no clients (as ``IsolatedUserFactory`` does).
    """

    # Only annotations (the classmethods stay factory-boy's): keywords for editors and mypy.
    create: ClassVar[sig.MakeUser[sig.Children[Client]]]
    build: ClassVar[sig.MakeUser[sig.Children[Client]]]

    @classmethod
    def _generate(cls, strategy: str, params: dict[str, Any]) -> Any:
        params.setdefault("clients", DEFAULT_CLIENTS)
        return super()._generate(strategy, params)

    @factory.post_generation
    def clients(obj: User, create: bool, extracted: Any, **kwargs: Any) -> None:
        _children(ClientFactory, obj, "UserFactory.clients", create, extracted, kwargs)


class ClientFactory(IsolatedClientFactory):
    """A client with contracts and their invoices: ``ClientFactory(contracts=(1, 3))``."""

    # Only annotations (the classmethods stay factory-boy's): keywords for editors and mypy.
    create: ClassVar[sig.MakeClient[sig.Children[Contract]]]
    build: ClassVar[sig.MakeClient[sig.Children[Contract]]]

    @classmethod
    def _generate(cls, strategy: str, params: dict[str, Any]) -> Any:
        params.setdefault("contracts", DEFAULT_CONTRACTS)
        return super()._generate(strategy, params)

    @factory.post_generation
    def contracts(obj: Client, create: bool, extracted: Any, **kwargs: Any) -> None:
        _children(ContractFactory, obj, "ClientFactory.contracts", create, extracted, kwargs)


class ContractFactory(IsolatedContractFactory):
    """A contract with invoices: ``ContractFactory(invoices=4)``; its dates leave room for them."""

    # Only annotations (the classmethods stay factory-boy's): keywords for editors and mypy.
    create: ClassVar[sig.MakeContract[sig.Children[Invoice]]]
    build: ClassVar[sig.MakeContract[sig.Children[Invoice]]]

    @classmethod
    def _generate(cls, strategy: str, params: dict[str, Any]) -> Any:
        # The count is decided here, before the dates, so the dates can leave room for it.
        invoices = params.get("invoices", DEFAULT_INVOICES)
        if not isinstance(invoices, list):
            invoices = count_from(invoices, name="ContractFactory.invoices")
        params["invoices"] = invoices
        if not isinstance(invoices, list):
            params.setdefault("invoice_count", invoices)
        return super()._generate(strategy, params)

    @factory.post_generation
    def invoices(obj: Contract, create: bool, extracted: Any, **kwargs: Any) -> None:
        _children(
            IsolatedInvoiceFactory, obj, "ContractFactory.invoices", create, extracted, kwargs
        )

    # Invoices are dated relative to the same "today" as their contract.
    invoices__as_of = factory.SelfAttribute("..as_of")


#: Full factories keep the names people expect; Invoice has no children.
InvoiceFactory = IsolatedInvoiceFactory

__all__: Sequence[str] = (
    "ClientFactory",
    "ContractFactory",
    "IsolatedClientFactory",
    "IsolatedContractFactory",
    "IsolatedInvoiceFactory",
    "IsolatedUserFactory",
    "InvoiceFactory",
    "UserFactory",
    "bind_session",
    "session_bound",
)
