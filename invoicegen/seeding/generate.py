"""The rows of a batch of user trees, from the factories' own declarations.

:func:`generate_batch` walks each user tree of a batch (its shape from :mod:`.plan`) and asks
one :class:`RowMaker` per factory for the values, from one random stream per user tree.


factory-boy's ``build()`` runs a general-purpose builder per object (declaration parsing,
context unrolling, resolver objects): about 100 µs of bookkeeping per row, more than the
database spends storing it. :class:`RowMaker` reads a factory's declarations once and
evaluates the same declarations, in the same order, against the same random generators, so a
row holds exactly the values ``Factory.build()`` would give (``tests/test_rows.py`` proves it
for every factory) at a fraction of the cost. The factories stay the one definition of what a
row looks like; a declaration kind this module does not know is refused when the maker is
created, never silently approximated.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import operator
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from types import SimpleNamespace
from typing import Any

import factory
import factory.random
import faker
from factory.declarations import SKIP, BaseDeclaration

from invoicegen.errors import FactoryValueError
from invoicegen.factories import (
    STOCK_CLIENT_DECLARATIONS,
    STOCK_CONTRACT_DECLARATIONS,
    STOCK_USER_DECLARATIONS,
    ClientRow,
    ContractRow,
    InvoiceRow,
    IsolatedClientFactory,
    IsolatedContractFactory,
    IsolatedUserFactory,
    UserRow,
    bill_rows,
    client_row,
    contract_row,
    invoice_number_prefix,
    prepare_monthly_rates,
    user_row,
)
from invoicegen.identities import FromLocale
from invoicegen.seeding import compiled, writers
from invoicegen.seeding.plan import Batch, Plan, Shape, stream_key, tree_shapes

Evaluator = Callable[["_Draft"], Any]
_MISSING = object()


class _Draft:
    """The object LazyAttribute functions see: declared values, computed on first access.

    Each :class:`RowMaker` has a subclass of its own with one :class:`_Lazy` per declaration,
    so a value not computed yet is found on the class (no failed lookup, no AttributeError)."""

    _maker: RowMaker


class _Lazy:
    """A declaration on a maker's draft class: evaluates on first access, then the value in
    the instance's ``__dict__`` hides it (a non-data descriptor, like ``cached_property``)."""

    __slots__ = ("evaluate", "name")

    def __init__(self, name: str, evaluate: Evaluator) -> None:
        self.name, self.evaluate = name, evaluate

    def __get__(self, draft: _Draft | None, owner: type[_Draft]) -> Any:
        if draft is None:
            return self
        values = draft.__dict__
        values[self.name] = _MISSING  # a cycle shows up as this marker, not a RecursionError
        value = values[self.name] = self.evaluate(draft)
        return value


class RowMaker:
    """Evaluates ``factory_class``'s declarations into a tuple of ``fields``."""

    def __init__(self, factory_class: type[Any], fields: Sequence[str], *, locale: str) -> None:
        self.name = factory_class.__name__
        self.fields = tuple(fields)
        self.locale = locale
        declarations = factory_class._meta.pre_declarations.as_dict()
        self.evaluators: dict[str, Evaluator] = {
            name: self._compile(name, declaration) for name, declaration in declarations.items()
        }
        # Plain values draw nothing: they start in every draft (given values override them).
        self._constants = {
            name: value
            for name, value in declarations.items()
            if not isinstance(value, BaseDeclaration)
        }
        self._steps = tuple(
            (name, evaluate)
            for name, evaluate in self.evaluators.items()
            if name not in self._constants
        )
        lazy = {name: _Lazy(name, evaluate) for name, evaluate in self._steps}
        self._draft = type(f"{self.name}Draft", (_Draft,), {**lazy, "_maker": self})
        pick = operator.itemgetter(*self.fields)
        self._pick = pick if len(self.fields) > 1 else lambda values: (pick(values),)
        self._sequence = 0

    def make(self, **given: Any) -> tuple[Any, ...]:
        draft = self._draft()
        values = draft.__dict__
        values.update(self._constants)
        values.update(given)
        for name, evaluate in self._steps:  # factory-boy resolves every declaration, in order
            if name not in values:
                values[name] = _MISSING  # a cycle shows up as this marker
                values[name] = evaluate(draft)
        return self._pick(values)

    def _compile(self, name: str, declaration: Any) -> Evaluator:
        if not isinstance(declaration, BaseDeclaration):
            return lambda _draft: declaration
        if isinstance(declaration, FromLocale | factory.Faker):
            return self._compile_faker(name, declaration)
        if isinstance(declaration, factory.LazyAttribute):
            lazy_attribute: Evaluator = declaration.function  # it takes the draft itself
            return lazy_attribute
        if isinstance(declaration, factory.LazyFunction):
            function = declaration.function
            return lambda _draft: function()
        if isinstance(declaration, factory.SelfAttribute):
            if declaration.depth > 1:
                raise self._refuse(name, "SelfAttribute of a parent factory")
            path = declaration.attribute_name.split(".")
            default = declaration.default
            return lambda draft: _deep_get(draft, path, default)
        if isinstance(declaration, factory.Sequence):
            return self._compile_sequence(declaration.function)
        if isinstance(declaration, factory.Maybe):
            return self._compile_maybe(name, declaration)
        if isinstance(declaration, factory.SubFactory):
            return self._needs_parent(name)
        raise self._refuse(name, type(declaration).__name__)

    def _compile_faker(self, name: str, declaration: Any) -> Evaluator:
        if isinstance(declaration, FromLocale):
            sample = declaration.sampler(fast_faker(self.locale))
            return lambda _draft: sample()
        options = dict(declaration._defaults)
        locale = options.pop("locale", None) or self.locale
        if any(isinstance(v, BaseDeclaration) for v in options.values()):
            raise self._refuse(name, "Faker with lazy arguments")
        provider = getattr(fast_faker(locale), declaration.provider)
        if not options:  # the common case: no keyword arguments to unpack per row
            return lambda _draft: provider()
        return lambda _draft: provider(**options)

    def _compile_sequence(self, function: Callable[[int], Any]) -> Evaluator:
        def sequence(_draft: _Draft) -> Any:
            self._sequence += 1
            return function(self._sequence - 1)

        return sequence

    def _compile_maybe(self, name: str, declaration: Any) -> Evaluator:
        decide = self._compile(name, declaration.decider)
        yes = self._compile(name, declaration.yes)
        no = self._compile(name, declaration.no)
        if declaration.yes is SKIP or declaration.no is SKIP:
            raise self._refuse(name, "Maybe with a skipped branch")
        return lambda draft: yes(draft) if decide(draft) else no(draft)

    def _needs_parent(self, name: str) -> Evaluator:
        def missing(_draft: _Draft) -> Any:
            raise FactoryValueError(f"{self.name}.{name}: the seeding engine passes parents in")

        return missing

    def _refuse(self, name: str, kind: str) -> FactoryValueError:
        return FactoryValueError(f"{self.name}.{name}: the seeding engine cannot evaluate {kind}")


def _deep_get(draft: _Draft, path: list[str], default: Any) -> Any:
    head = path[0]
    if head not in draft.__dict__ and head not in draft._maker.evaluators:
        return default  # an unset trait flag: answer without raising AttributeError
    value: Any = draft
    for part in path:
        value = getattr(value, part, _MISSING)
        if value is _MISSING:
            return default
    return value


def fast_faker(locale: str) -> faker.Faker:
    """The engine's Faker of ``locale``: see :func:`_fast_faker`. Providers a user added to
    factory-boy's Faker of the locale (``factory.Faker.add_provider``) are added to it too,
    so the engine draws what ``Factory.build()`` draws, never Faker's stock values instead."""
    added = tuple(
        type(provider)
        for provider in reversed(factory.Faker._get_faker(locale).get_providers())
        if type(provider) not in _stock_providers(locale)
    )
    return _fast_faker(locale, added)


@functools.cache
def _stock_providers(locale: str) -> frozenset[type]:
    return frozenset(type(provider) for provider in faker.Faker(locale).get_providers())


@functools.cache
def _fast_faker(locale: str, added: tuple[type, ...]) -> faker.Faker:
    """A Faker of its own whose table-driven providers are compiled, and whose other weighted
    draws cache their cumulative weights.

    Names, companies, catch phrases and phone numbers draw through :mod:`.compiled`'s
    samplers; the rest of Faker rebuilds the weights of a table such as en_US's ~7,000 first
    names on every draw, where ``random.choices`` with precomputed ``cum_weights`` draws the
    same element from the same random number. Either way the values are unchanged. It draws
    from the engine's one generator (:data:`RANDOM`), factory-boy's too while a batch is made.
    """
    fake = faker.Faker(locale)
    fake.get_providers()[0].generator.random = RANDOM  # the locale's one generator
    for provider_class in added:  # in the order they were added: the last one wins
        fake.add_provider(provider_class)
    for provider in fake.get_providers():
        provider.random_elements = _cached_weights(provider, provider.random_elements)
    compiled.compile_faker(fake)
    return fake


def _cached_weights(provider: Any, original: Callable[..., Any]) -> Callable[..., Any]:
    cache: dict[int, tuple[OrderedDict[Any, float], tuple[Any, ...], list[float]]] = {}

    def random_elements(
        elements: Any = ("a", "b", "c"),
        length: int | None = None,
        unique: bool = False,
        use_weighting: bool | None = None,
    ) -> Any:
        weighted = use_weighting if use_weighting is not None else provider.__use_weighting__
        if not (isinstance(elements, OrderedDict) and weighted and not unique and length):
            return original(elements, length, unique, use_weighting)
        cached = cache.get(id(elements))
        if cached is None or cached[0] is not elements:
            cached = (elements, tuple(elements), list(accumulate(elements.values())))
            cache[id(elements)] = cached
        return provider.generator.random.choices(cached[1], cum_weights=cached[2], k=length)

    return random_elements


# --- a batch of user trees ------------------------------------------------------------------------

Rows = list[tuple[Any, ...]]
BatchRows = tuple[Rows, Rows, Rows, Rows]
Prepared = tuple[writers.Prepared, writers.Prepared, writers.Prepared, writers.Prepared]

USER_FIELDS = ("name", "email", "phone")
CLIENT_FIELDS = ("name", "company_name", "email", "country", "payment_terms_days", "payer")
CONTRACT_FIELDS = ("summary", "start_date", "end_date", "currency", "monthly_rate")


@dataclass(frozen=True)
class _Makers:
    user: RowMaker | StockUsers
    client: RowMaker | StockClients
    contract: RowMaker | StockContracts


@functools.cache
def _makers(locale: str) -> _Makers:
    return _Makers(
        user_maker(IsolatedUserFactory, locale),
        client_maker(IsolatedClientFactory, locale),
        contract_maker(IsolatedContractFactory, locale),
    )


# The stock makers: a factory's own declarations in one call (``user_row``, ``client_row``,
# ``contract_row`` in invoicegen.factories), the same rows as a RowMaker of it without
# evaluating declaration by declaration. Used only while the factory declares exactly what
# invoicegen's does (a subclass that changes nothing too); tests/test_rows.py proves each
# equal to Factory.build().


class StockUsers:
    """``IsolatedUserFactory``'s own declarations in one call (:func:`user_row`)."""

    fields = USER_FIELDS

    def __init__(self, locale: str) -> None:
        fake = fast_faker(locale)
        self.person = STOCK_USER_DECLARATIONS["person"].sampler(fake)
        self.phone = STOCK_USER_DECLARATIONS["phone"].sampler(fake)

    def make(self, *, number: int) -> UserRow:
        return self.row(number)

    def row(self, number: int) -> UserRow:
        return user_row(self.person, self.phone, number)


class StockClients:
    """``IsolatedClientFactory``'s own declarations in one call (:func:`client_row`)."""

    fields = CLIENT_FIELDS

    def __init__(self, locale: str) -> None:
        fake = fast_faker(locale)
        self.person = STOCK_CLIENT_DECLARATIONS["person"].sampler(fake)
        self.company = fake.company  # the company_name's provider
        self.home_country = fake.current_country_code()  # draws nothing, the same every row

    def make(self, *, user: Any, number: int | str) -> ClientRow:
        return self.row(number)

    def row(self, number: int | str) -> ClientRow:
        return client_row(
            factory.random.randgen, self.person, self.company, self.home_country, number
        )


class StockContracts:
    """``IsolatedContractFactory``'s own declarations in one call (:func:`contract_row`)."""

    fields = CONTRACT_FIELDS

    def __init__(self, locale: str) -> None:
        self.catch_phrase = fast_faker(locale).catch_phrase  # the summary's provider

    def make(self, *, client: Any, as_of: Any, since: Any, invoice_count: int) -> ContractRow:
        country = getattr(client, "country", None)
        rand = factory.random.randgen
        return contract_row(rand, self.catch_phrase, country, as_of, since, invoice_count)

    def rows(self, as_of: dt.date, since: dt.date) -> ContractRows:
        """:meth:`make` of a client in ``country`` for ``count`` invoices, positional."""
        catch_phrase = self.catch_phrase
        return lambda country, count: contract_row(
            factory.random.randgen, catch_phrase, country, as_of, since, count
        )


def user_maker(factory_class: type[Any], locale: str) -> RowMaker | StockUsers:
    """The users' row maker: :class:`StockUsers` while ``factory_class`` declares what
    invoicegen's user factory declares, else a :class:`RowMaker` of its declarations."""
    if _declarations(factory_class) == STOCK_USER_DECLARATIONS:
        return StockUsers(locale)
    return RowMaker(factory_class, USER_FIELDS, locale=locale)


def client_maker(factory_class: type[Any], locale: str) -> RowMaker | StockClients:
    """The clients' row maker, as :func:`user_maker` (a locale without a country, whose
    ``home_country`` cannot be drawn, gets the row maker and its error per row)."""
    if _declarations(factory_class) == STOCK_CLIENT_DECLARATIONS:
        with contextlib.suppress(AttributeError):
            return StockClients(locale)
    return RowMaker(factory_class, CLIENT_FIELDS, locale=locale)


def contract_maker(factory_class: type[Any], locale: str) -> RowMaker | StockContracts:
    """The contracts' row maker, as :func:`user_maker`."""
    if _declarations(factory_class) == STOCK_CONTRACT_DECLARATIONS:
        return StockContracts(locale)
    return RowMaker(factory_class, CONTRACT_FIELDS, locale=locale)


def _declarations(factory_class: type[Any]) -> dict[str, Any]:
    return factory_class._meta.pre_declarations.as_dict()  # type: ignore[no-any-return]


def warm(locale: str) -> None:
    """In a worker: the most common locale's row makers, and the monthly rates its contracts
    draw from, made before the first batch."""
    client = _makers(locale).client
    if isinstance(client, StockClients):
        prepare_monthly_rates(client.home_country)


class Row(SimpleNamespace):
    """A parent as the factories' declarations see it (``o.contract.start_date``)."""


def _reseed(seed: int, position: int) -> None:
    # One generator for the whole tree, factory-boy's and Faker's alike, seeded once: seeding
    # a Mersenne Twister costs ~4 µs (~37,000 instructions), more than a client row. The
    # factories draw the same when they share one (tests/test_rows.py).
    RANDOM.reseed(stream_key(seed, position, "values:tree"))


#: A contract row of a client in a country (or None), with its invoice count.
ContractRows = Callable[[Any, int], ContractRow]


class _Tables:
    """The rows of a batch so far, the next id of each table, and each table's row function
    (positional: a keyword call costs more than some rows' values)."""

    def __init__(self, plan: Plan, makers: _Makers, first_ids: tuple[int, int, int, int]) -> None:
        self.users: Rows = []
        self.clients: Rows = []
        self.contracts: Rows = []
        self.invoices: Rows = []
        self.user_id, self.client_id, self.contract_id, self.invoice_id = first_ids
        self.as_of = plan.as_of
        user, client, contract = makers.user, makers.client, makers.contract
        self.user_row: Callable[[int], tuple[Any, ...]] = (
            user.row if isinstance(user, StockUsers) else lambda n: user.make(number=n)
        )
        self.client_row: Callable[[str], tuple[Any, ...]] = (
            client.row
            if isinstance(client, StockClients)
            else lambda n: client.make(user=None, number=n)
        )
        as_of, since = plan.as_of, plan.since
        self.contract_row: ContractRows = (
            contract.rows(as_of, since)
            if isinstance(contract, StockContracts)
            else lambda country, count: contract.make(  # the parent its declarations see
                client=Row(country=country), as_of=as_of, since=since, invoice_count=count
            )
        )

    def rows(self) -> BatchRows:
        return self.users, self.clients, self.contracts, self.invoices


# A client as its contracts need it: (id, country, terms, payer).
_Client = tuple[int, Any, Any, Any]
# A contract as its invoices need it: (id, start, end, currency, rate, terms, payer).
_Contract = tuple[int, Any, Any, Any, Any, Any, Any]


def generate_batch(plan: Plan, batch: Batch) -> BatchRows:
    """The rows of one batch of whole user trees, as tuples in ``writers.COLUMNS`` order."""
    tables = _Tables(plan, _makers(plan.locale), batch.first_ids)
    with drawing():
        positions = range(batch.first, batch.first + batch.size)
        for position, shape in zip(positions, tree_shapes(plan, positions), strict=True):
            _user_tree(plan, tables, position, shape)
    return tables.rows()


#: The engine's random generator: its Fakers draw from it, and factory-boy's draws while a
#: batch is made (:func:`drawing`); a :class:`~.compiled.FastRandom`, the same draws cheaper.
RANDOM = compiled.FastRandom()


@contextlib.contextmanager
def drawing(seed: int | None = None) -> Iterator[None]:
    """factory-boy's generator is the engine's :data:`RANDOM` (seeded with ``seed``, when
    given) in the block, so factory-boy's and its Fakers' draws come from one generator (as
    ``Factory.build()``'s do when factory-boy's generator is Faker's, see
    ``tests/test_rows.py``); the caller's own afterwards, its state untouched."""
    own = factory.random.randgen
    factory.random.randgen = RANDOM
    if seed is not None:
        RANDOM.seed(seed)
    try:
        yield
    finally:
        factory.random.randgen = own


def _user_tree(plan: Plan, tables: _Tables, position: int, shape: Shape) -> None:
    # One random stream per tree, drawn level by level: users, then clients, then contracts,
    # then invoices. The people are its first draws, so user and client names and emails do
    # not move when the contract or invoice ranges change; a contract's dates depend on its
    # invoice count anyway, so its draws come before its invoices' on the same stream.
    _reseed(plan.seed, position)
    name, email, phone = tables.user_row(position + 1)
    tables.users.append((tables.user_id, name, email, phone))
    clients = _clients(tables, position, len(shape))
    contracts = _contracts(tables, clients, shape)
    _invoices(tables, contracts)
    tables.user_id += 1


def _clients(tables: _Tables, position: int, count: int) -> list[_Client]:
    make, rows, user_id, client_id = (
        tables.client_row,
        tables.clients,
        tables.user_id,
        tables.client_id,
    )
    clients: list[_Client] = []
    prefix = f"{position + 1}-"  # a client's number follows from its place in the tree
    for index in range(1, count + 1):
        name, company, email, country, terms, payer = make(prefix + str(index))
        rows.append((client_id, name, company, email, country, terms, user_id))
        clients.append((client_id, country, terms, payer))
        client_id += 1
    tables.client_id = client_id
    return clients


def _contracts(tables: _Tables, clients: list[_Client], shape: Shape) -> list[_Contract]:
    make, rows, contract_id = tables.contract_row, tables.contracts, tables.contract_id
    contracts: list[_Contract] = []
    for (owner, country, terms, payer), invoice_counts in zip(clients, shape, strict=True):
        for count in invoice_counts:
            summary, start, end, currency, rate = make(country, count)
            rows.append((contract_id, summary, start, end, currency, rate, owner))
            contracts.append((contract_id, start, end, currency, rate, terms, payer))
            contract_id += 1
    tables.contract_id = contract_id
    return contracts


_NEVER = dt.date.max  # a draft's place among issue days: after every issued invoice


def _invoices(tables: _Tables, contracts: list[_Contract]) -> None:
    rand, as_of = factory.random.randgen, tables.as_of
    rows: list[InvoiceRow] = []  # each built once, its id and number filled in below
    for owner, start, end, currency, rate, terms, payer in contracts:
        bill_rows(rows, rand, start, end, as_of, rate, currency, terms, payer, owner)
    # Numbers count the user's issued invoices by issue date, then id (= list order: the
    # sort is stable); drafts, never issued, come last and get none.
    issued_on = [row[5] or _NEVER for row in rows]
    order = sorted(range(len(rows)), key=issued_on.__getitem__)
    issued = len(rows) - issued_on.count(_NEVER)
    prefix = invoice_number_prefix(tables.user_id)  # invoice_number(user_id, n)
    for n, index in enumerate(order[:issued], 1):  # the drafts at the end of order get none
        rows[index][4] = prefix + str(n)
    invoice_id = tables.invoice_id
    for row in rows:
        row[0] = invoice_id
        invoice_id += 1
    tables.invoice_id = invoice_id
    tables.invoices += map(tuple, rows)  # as writers.COLUMNS


def generate_prepared(plan: Plan, path: str, batch: Batch) -> Prepared:
    """Generate and adapt for the write path ``path`` (:func:`writers.write_path`) in the same
    process: conversions happen once, off the writer."""
    users, clients, contracts, invoices = generate_batch(plan, batch)
    adapt = writers.adapter(path)
    return adapt(users), adapt(clients), adapt(contracts), adapt(invoices)
