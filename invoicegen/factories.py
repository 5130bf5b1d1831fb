"""factory-boy factories for invoicegen's models: what a plausible row looks like.

Two kinds per model, as in the article that started invoicegen:

* ``Isolated*Factory`` builds one object and its parents, never its children;
* ``*Factory`` also builds the "many" side, e.g. ``UserFactory.create(clients=3)``,
  ``clients=(1, 3)`` for a random count in a range, or ``clients=[client_a, client_b]``.
  Deeper levels take the ``__`` syntax: ``UserFactory(clients=2, clients__contracts=1)``.

Values are coherent, by the same rules as the seeding engine: names are in the locale's order,
first and last name of one gender; emails derive from the name (an explicit ``name=`` too), in
ASCII, and are unique (``number`` is part of them); phone numbers have no extensions (see
:mod:`invoicegen.identities`); a contract is billed monthly from its start, and
``ContractFactory(invoices=N)`` places its dates so that exactly N periods are billed by
``as_of``; an invoice's amount is the contract's monthly rate (prorated by days for a short
final period) in the contract's currency; its lifecycle (issued, due, paid, status) follows
its client's payment terms and payer profile, as of ``as_of``; invoice numbers count each
user's issued invoices, in order of issue, without gaps.

Situations tests often need: ``ContractFactory(ongoing=True)`` (no end date),
``ContractFactory(ended=True)`` (ended before ``as_of``), ``InvoiceFactory(zero=True)``
(amount 0.00), ``InvoiceFactory(long_ago=True)`` (its period ended a year or more before
``as_of``), ``InvoiceFactory(overdue=True)``, ``InvoiceFactory(paid_late=True)``,
``InvoiceFactory(draft=True)``, ``InvoiceFactory(void=True)``,
``ClientFactory(stopped_paying=True)`` (pays nothing issued in the last 90 days), and a user
with no clients: ``IsolatedUserFactory()`` or ``UserFactory(clients=0)``.

``build()`` needs no database. ``create()`` adds and flushes through the session bound with
:func:`bind_session` (the pytest plugin does this); the caller owns the transaction. A value that
cannot be made coherent raises :class:`~invoicegen.errors.FactoryValueError` naming the factory and
the field. ``create()``/``build()`` are typed: ``UserFactory.create()`` is a ``User``.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import functools
import math
import random
import statistics
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from itertools import accumulate, pairwise
from typing import Any, ClassVar, Generic, TypeVar, cast

import factory
import factory.random
import sqlalchemy as sa
from factory.alchemy import SQLAlchemyModelFactory
from sqlalchemy.orm import Session, object_session

from invoicegen import factory_signatures as sig
from invoicegen.currencies import (
    CENT,
    COUNTRY_CURRENCY,
    CURRENCIES,
    FALLBACK_CURRENCY,
    currency_of,
)
from invoicegen.errors import FactoryValueError, UsageError
from invoicegen.identities import (
    FromLocale,
    Person,
    client_email,
    draw_person,
    draw_phone,
    user_email,
)
from invoicegen.models import Client, Contract, Invoice, User
from invoicegen.settings import CountMix, default


def _default_range(key: str) -> tuple[int, int]:
    mix: CountMix = default(key)
    return mix.low, mix.high


#: Children per parent when a full factory is not told otherwise: the seed command's defaults.
DEFAULT_CLIENTS = _default_range("clients_per_user")
DEFAULT_CONTRACTS = _default_range("contracts_per_client")
DEFAULT_INVOICES = _default_range("invoices_per_contract")

MAX_AMOUNT = Decimal("9999999999.99")  # NUMERIC(12, 2)
LONG_AGO_MONTHS = 12
HISTORY_MONTHS = 36  # contracts that ended spread over this window before as_of by default
LATE_DAYS = 75  # an overdue or late-paid invoice's period ends this long before as_of

M = TypeVar("M")
T = TypeVar("T")
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
            "invoicegen_session (invoicegen_async_session), or build() instead of create()"
        )
    return session


@contextlib.contextmanager
def _sync_io(factory: str, method: str) -> Iterator[None]:
    """A sync ``create()`` on an ``AsyncSession``'s session, outside its ``run_sync``, says
    what to call instead of SQLAlchemy's "greenlet_spawn has not been called"."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        cause = exc.orig if isinstance(exc, sa.exc.StatementError) else exc
        if not isinstance(cause, sa.exc.MissingGreenlet):
            raise
        raise FactoryValueError(
            f"{factory}.{method}(): the bound session is an AsyncSession's; in async code "
            f"use `await {factory}.{method}_async(...)`"
        ) from None


async def _run_sync(create: Callable[[], T]) -> T:
    """Run a factory call where its session can do I/O: an ``AsyncSession``'s ``run_sync``
    when the bound session is one's ``sync_session``, else directly."""
    from sqlalchemy.ext.asyncio import async_session

    proxy = async_session(_current_session())
    if proxy is None:
        return create()
    return await proxy.run_sync(lambda _session: create())


# --- value helpers (pure functions of their inputs and factory-boy's random generator) ---------


@functools.lru_cache(maxsize=1 << 16)  # invoice periods ask for the same month boundaries often
def add_months(day: dt.date, months: int) -> dt.date:
    """The same day-of-month ``months`` later (clamped to the month's last day)."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    month += 1
    last_day = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last_day))


def _on_day(day: dt.date, day_of_month: int, months: int) -> dt.date:
    """Day ``day_of_month`` (at most 28: no clamping) of the month ``months`` after ``day``'s."""
    month_index = day.year * 12 + day.month - 1 + months
    return dt.date(month_index // 12, month_index % 12 + 1, day_of_month)


_ONE_DAY = dt.timedelta(days=1)
#: Day counts as timedeltas: adding one of these to a date needs no timedelta made per call.
_DAYS = tuple(dt.timedelta(days=n) for n in range(512))


def _days(n: int) -> dt.timedelta:
    return _DAYS[n] if 0 <= n < 512 else dt.timedelta(days=n)


#: How a drawn contract runs: no end date, an agreed end after as_of, or ended before as_of.
CONTRACT_KINDS = ("running", "agreed", "ended")


def contract_dates(
    rand: random.Random,
    as_of: dt.date,
    billed: int,
    since: dt.date,
    *,
    kind: str | None = None,
) -> tuple[dt.date, dt.date | None]:
    """A start and end such that exactly ``billed`` monthly periods are billed by ``as_of``.

    A running contract (no end, 30%; or an agreed end after as_of, 20%) started ``billed``
    periods ago; an ended one (50%) ends on a day from ``since`` to before as_of (when the
    window is at least a month long), after ``billed``
    periods, its last one full or cut short by the end date. ``billed`` 0 is a contract signed
    this month. Start days are 1 to 28, so every period starts on the same day of its month.
    """
    if kind is None:
        draw = rand.random()
        kind = "running" if billed == 0 or draw < 0.3 else "agreed" if draw < 0.5 else "ended"
    day = 1 + int(rand.random() * 28)
    if kind == "ended":
        if billed < 1:
            raise ValueError("an ended contract has billed at least one period")
        window = max((as_of - since).days, 1)
        target = as_of - _days(1 + int(rand.random() * window))
        full = rand.random() < 0.6
        cut = rand.random()
        # Months by index (year * 12 + month - 1): the day is at most 28, nothing to clamp.
        first = target.year * 12 + target.month - 1 - billed  # the start's month
        date = dt.date
        moved_back = False  # ending before as_of comes first, inside the window second
        while True:
            last = first + billed - 1  # the last billed period's month
            last_start = date(last // 12, last % 12 + 1, day)
            last_days = (date((last + 1) // 12, (last + 1) % 12 + 1, day) - last_start).days
            kept = last_days if full else 1 + int(cut * (last_days - 1))
            end = last_start + _DAYS[kept - 1]
            if end >= as_of:
                first, moved_back = first - 1, True
            elif end < since and not moved_back:
                first += 1
            else:
                return date(first // 12, first % 12 + 1, day), end
    tomorrow = as_of + _ONE_DAY
    start = _on_day(tomorrow, day, -billed if day <= tomorrow.day else -billed - 1)
    start = min(start, as_of)  # signed this month, not yet started: it starts today
    if kind == "running":
        return start, None
    return start, add_months(start, billed + 1 + int(rand.random() * 12)) - _ONE_DAY


#: One billed period: its first and last day, and the days of the full month it belongs to.
Period = tuple[dt.date, dt.date, int]


def billing_periods(start: dt.date, end: dt.date | None, as_of: dt.date) -> list[Period]:
    """The periods a contract is billed for by ``as_of``: they tile ``[start, billed_to]``.

    Period i runs from start + i months to the day before start + i + 1 months. ``billed_to``
    is ``end`` when the contract ended on or before as_of (the last period ends on it, maybe
    short), else the end of the last period complete on as_of.
    """
    return list(_periods(start, end, as_of))


def _periods(start: dt.date, end: dt.date | None, as_of: dt.date) -> Sequence[Period]:
    day = start.day
    if day > 28:  # a start late in the month: later periods start on the month's last day
        return _clamped_periods(start, end, as_of)
    # Period m (a month index, year * 12 + month - 1) runs from day `day` of month m to the
    # day before day `day` of month m + 1: the same few periods come back for every contract.
    first = start.year * 12 + start.month - 1
    if end is None or end > as_of:  # still running: the periods complete on as_of
        tomorrow = as_of + _ONE_DAY  # period m is complete when month m + 1's starts by then
        stop = tomorrow.year * 12 + tomorrow.month - 1 - (day > tomorrow.day)
        return _monthly_periods(day, first, stop) if stop > first else []
    # ended: the periods that start by the end, the last one cut short on it
    last = end.year * 12 + end.month - 1 - (day > end.day)
    if last < first:
        return []
    periods = _monthly_periods(day, first, last + 1)
    final = periods[-1]
    if final[1] != end:
        periods[-1] = (final[0], end, final[2])
    return periods


class _MonthlyPeriods:
    """The full monthly periods starting on one day (1 to 28) of their month, by month index,
    made once for the months asked for so far (a few hundred at most in a seed run)."""

    LIMIT = 2400  # months kept (200 years); wider asks are computed, not kept
    ROOM = 24  # months made beyond those asked for, each side

    def __init__(self, day: int) -> None:
        self.day, self.base, self.periods = day, 0, cast(list[Period], [])

    def between(self, first: int, stop: int) -> list[Period]:
        """Periods ``first`` .. ``stop - 1`` (month indexes), a list of the caller's own."""
        base = self.base
        if first < base or stop > base + len(self.periods):
            if first < _FIRST_MONTH or stop > _LAST_MONTH:
                return self._made(first, stop)  # beyond dt.date's years: its error
            # Made again with room on both sides: a few times per day, not per contract.
            first_kept = max(first - self.ROOM, _FIRST_MONTH)
            stop_kept = min(stop + self.ROOM, _LAST_MONTH)
            if self.periods:
                first_kept = min(first_kept, base)
                stop_kept = max(stop_kept, base + len(self.periods))
            if stop_kept - first_kept > self.LIMIT:
                return self._made(first, stop)
            self.base, self.periods = first_kept, self._made(first_kept, stop_kept)
            base = first_kept
        return self.periods[first - base : stop - base]

    def _made(self, first: int, stop: int) -> list[Period]:
        day, date = self.day, dt.date
        starts = [date(m // 12, m % 12 + 1, day) for m in range(first, stop + 1)]
        return [(a, b - _ONE_DAY, (b - a).days) for a, b in pairwise(starts)]


_MONTHLY = [_MonthlyPeriods(day) for day in range(29)]  # by start day; 0 unused
_FIRST_MONTH, _LAST_MONTH = 1 * 12, 9999 * 12 + 11  # month indexes dt.date can start on


def _monthly_periods(day: int, first: int, stop: int) -> list[Period]:
    return _MONTHLY[day].between(first, stop)


def _clamped_periods(start: dt.date, end: dt.date | None, as_of: dt.date) -> list[Period]:
    ended = end is not None and end <= as_of
    periods: list[Period] = []
    index, first = 0, start  # add_months(start, 0) is start
    while True:
        following = add_months(start, index + 1)
        last = following - _ONE_DAY
        if ended:
            assert end is not None
            if first > end:
                return periods
            periods.append((first, min(last, end), (following - first).days))
        elif last > as_of:
            return periods
        else:
            periods.append((first, last, (following - first).days))
        index, first = index + 1, following  # the next period starts where this one ends


#: Where the few clients abroad are, and the currencies of the few contracts not in the
#: client's own.
ABROAD = ("US", "GB", "DE", "FR", "NL", "CH", "JP", "CA", "IE", "SE")
ABROAD_SHARE = 0.08
OTHER_CURRENCIES = ("USD", "EUR", "GBP")
OTHER_CURRENCY_SHARE = 0.08


def client_country(rand: random.Random, home: str) -> str:
    """Mostly the locale's own country, a few clients abroad."""
    if rand.random() >= ABROAD_SHARE:
        return home
    return rand.choice([country for country in ABROAD if country != home])


def contract_currency(rand: random.Random, country: str | None) -> str:
    """Mostly the client's country's currency, a few contracts in another."""
    home = COUNTRY_CURRENCY.get(country or "", FALLBACK_CURRENCY)
    if rand.random() >= OTHER_CURRENCY_SHARE:
        return home
    return rand.choice([code for code in OTHER_CURRENCIES if code != home])


#: Monthly rates, log-normal in US dollars: a median of 1,500, most small, a long tail.
RATE_MEDIAN_USD = 1500.0
RATE_SIGMA = 1.0
RATE_BOUNDS_USD = (50.0, 150_000.0)


_LOG_RATE_MEDIAN = math.log(RATE_MEDIAN_USD)
_PER_USD = {code: currency.per_usd for code, currency in CURRENCIES.items()}


def monthly_rate(rand: random.Random, currency: str) -> Decimal:
    """A log-normal monthly rate priced as people price: two significant figures, whole units.

    One uniform draw through the rate's quantile function: the log-normal's, clamped to
    :data:`RATE_BOUNDS_USD`, in the currency's units and priced, is a step function of it
    (:func:`_rate_steps`), so a draw is a bisection of the steps' edges."""
    edges, rates = _RATE_STEPS.get(currency) or _currency_steps(currency)
    return rates[bisect.bisect_right(edges, rand.random())]


def prepare_monthly_rates(home: str) -> None:
    """Work out the monthly rates of every currency a contract of a client of a locale at
    home in ``home`` (a country code) can be in (:func:`contract_currency`), before the first
    draw: a few tenths of a millisecond each."""
    countries = (home, *ABROAD)
    for currency in {COUNTRY_CURRENCY.get(c, FALLBACK_CURRENCY) for c in countries}:
        _currency_steps(currency)
    for currency in OTHER_CURRENCIES:
        _currency_steps(currency)


def _currency_steps(currency: str) -> tuple[list[float], list[Decimal]]:
    per_usd = _PER_USD.get(currency)
    steps = _RATE_STEPS[currency] = _rate_steps(
        per_usd if per_usd is not None else currency_of(currency).per_usd
    )
    return steps


def price(local: float) -> int:
    """``local`` priced as people price: two significant figures, whole units (at least 1)."""
    step: int = 10 ** max(int(math.log10(local)) - 1, 0)
    return max(round(local / step), 1) * step


@functools.cache
def _rate_steps(per_usd: float) -> tuple[list[float], list[Decimal]]:
    """The monthly rates of a currency worth ``per_usd`` to the dollar, and the uniform draws
    where one gives way to the next: where :func:`price` changes (half-way between two
    neighbouring prices), mapped through the log-normal's distribution function."""
    low, high = (bound * per_usd for bound in RATE_BOUNDS_USD)
    halves = [m + 0.5 for m in range(1, 10)]  # below 10 a price is a whole unit
    halves += [(m + 0.5) * 10**decade for decade in range(20) for m in range(10, 100)]
    inside = [half for half in halves if low < half < high]
    bounds = [low, *inside, high]
    normal = statistics.NormalDist(_LOG_RATE_MEDIAN, RATE_SIGMA)
    edges = [normal.cdf(math.log(local / per_usd)) for local in bounds]
    # The bounds themselves (every draw beyond one is clamped to it), and between them each
    # step's price, read at its middle.
    prices = [price(math.sqrt(a * b)) for a, b in pairwise(bounds)]
    rates = [Decimal(p).quantize(CENT) for p in (price(low), *prices, price(high))]
    return edges, rates


_RATE_STEPS: dict[str, tuple[list[float], list[Decimal]]] = {}


def period_amount(rate: Decimal, currency: str | None, period: Period) -> Decimal:
    """The rate for a full period, prorated by days for a short one, rounded to the currency's
    minor unit (and written with two decimals, as the column holds them)."""
    first, last, full_days = period
    days = (last - first).days + 1
    if days >= full_days:
        return rate.quantize(CENT)
    return _prorated(rate, currency_of(currency).exponent, days, full_days)


@functools.lru_cache(maxsize=1 << 14)  # rates are round numbers: the same few come back often
def _prorated(rate: Decimal, exponent: int, days: int, full_days: int) -> Decimal:
    unit = Decimal(1).scaleb(-exponent)
    return (rate * days / full_days).quantize(unit, rounding=ROUND_HALF_UP).quantize(CENT)


#: Payment terms in days, and how often clients have each.
TERMS = (7, 14, 30, 45, 60)
_TERMS_CUMULATIVE = tuple(accumulate((10, 20, 45, 10, 15)))


def payment_terms(rand: random.Random) -> int:
    return TERMS[bisect.bisect_right(_TERMS_CUMULATIVE, rand.random() * _TERMS_CUMULATIVE[-1])]


@dataclass(frozen=True)
class Payer:
    """How a client pays: ``on_time`` (within terms, rarely a little late), ``late`` (after the
    due date, habitually), or ``stopped`` (pays nothing issued in its last ``stopped_days``
    before as_of; on time before that)."""

    kind: str = "on_time"
    stopped_days: int = 0

    def pays_after(self, rand: random.Random, issued: dt.date, terms: int, as_of: dt.date) -> int:
        """Days from issue to payment; -1 for never."""
        late_share, late_first, late_days, stopped_days = self.rules
        if (as_of - issued).days < stopped_days:
            return -1
        if rand.random() < late_share:
            return terms + late_first + int(rand.random() * late_days)
        return int(rand.random() * (terms + 1))  # 0 to terms days

    @functools.cached_property  # frozen: a payer's rules are read once, per contract after
    def rules(self) -> tuple[float, int, int, int]:
        """How :meth:`pays_after` draws, as numbers: the share of invoices paid late, the
        first day late and how many days late ones spread over (uniform), and the days
        before as_of in which nothing issued is paid (0: none)."""
        late = _LATENESS.get(self.kind, _LATENESS["on_time"])
        return (*late, self.stopped_days if self.kind == "stopped" else 0)


#: By payer kind: the share of invoices paid after the due date, the first day late, and how
#: many days late ones spread over. On time: rarely, a little; late: always, 3 to 60 days.
_LATENESS = {"on_time": (0.05, 1, 20), "late": (1.0, 3, 58)}


ON_TIME = Payer()
PAYER_SHARES = (0.84, 0.96)  # cumulative: on time, late, then stopped
STOPPED_PAYING = Payer("stopped", 90)  # ClientFactory(stopped_paying=True)


def payer_profile(rand: random.Random) -> Payer:
    draw = rand.random()
    if draw < PAYER_SHARES[0]:
        return ON_TIME
    if draw < PAYER_SHARES[1]:
        return Payer("late")
    return Payer("stopped", rand.randint(30, 365))


#: Days from a period's end to the invoice's issue ("a few days after").
ISSUE_DELAYS = (0, 1, 1, 2, 2, 3, 3, 4, 5, 7)
_ISSUE_AFTER = tuple(map(_days, ISSUE_DELAYS))
VOID_SHARE = 0.015
STATUSES = ("draft", "open", "paid", "overdue", "void")

Lifecycle = tuple[dt.date | None, dt.date | None, dt.date | None, str]


def invoice_lifecycle(
    rand: random.Random,
    period_end: dt.date,
    as_of: dt.date,
    terms: int,
    payer: Payer,
    *,
    latest: bool,
    status: str | None = None,
) -> Lifecycle:
    """(issued_on, due_on, paid_on, status) of an invoice as of ``as_of``.

    Issued a few days after its period ends; a contract's latest invoice that would be issued
    after as_of is still a draft. Paid when the payer's payment day has come by as_of; else
    open until due, then overdue; a small share is void. ``status`` forces one outcome
    (``draft``, ``void``, ``overdue``, ``paid_late``) and raises ValueError when the dates
    cannot give it.
    """
    issued = period_end + dt.timedelta(days=ISSUE_DELAYS[int(rand.random() * 10)])
    if status == "draft" or (status is None and latest and issued > as_of):
        return None, None, None, "draft"
    issued = min(issued, as_of)
    due = issued + dt.timedelta(days=terms)
    if status == "void" or (status is None and rand.random() < VOID_SHARE):
        return issued, due, None, "void"
    if status in ("overdue", "paid_late") and due >= as_of:
        raise ValueError(f"an invoice due on {due} is not yet late on {as_of}")
    if status == "overdue":
        return issued, due, None, "overdue"
    if status == "paid_late":
        return issued, due, min(due + dt.timedelta(days=rand.randint(1, 30)), as_of), "paid"
    delay = payer.pays_after(rand, issued, terms, as_of)
    if delay >= 0 and (paid := issued + dt.timedelta(days=delay)) <= as_of:
        return issued, due, paid, "paid"
    return issued, due, None, "open" if due >= as_of else "overdue"


#: An invoice row of the seeding engine, before its number: period_start, period_end, amount,
#: issued_on, due_on, paid_on, status, currency.
Bill = tuple[dt.date, dt.date, Decimal, dt.date | None, dt.date | None, dt.date | None, str, str]

#: An invoice row in the writers' column order (id, period_start, period_end, amount, number,
#: issued_on, due_on, paid_on, status, currency, contract_id), a list so that the seeding
#: engine fills in the id and number in place once the user's invoices are all billed.
InvoiceRow = list[Any]


def bill_contract(
    rand: random.Random,
    start: dt.date,
    end: dt.date | None,
    as_of: dt.date,
    rate: Decimal,
    currency: str,
    terms: int,
    payer: Payer,
) -> list[Bill]:
    """Every invoice of a contract as of ``as_of``, by the rules the invoice factory follows.

    The same values and draws as :func:`invoice_lifecycle` and :func:`period_amount` per
    billed period (``tests/test_rows.py`` compares them, and ``ContractFactory``'s
    invoices): :func:`bill_rows`' rows without the id, number and contract id.
    """
    rows: list[InvoiceRow] = []
    bill_rows(rows, rand, start, end, as_of, rate, currency, terms, payer, None)
    return [(r[1], r[2], r[3], r[5], r[6], r[7], r[8], r[9]) for r in rows]


def bill_rows(
    rows: list[InvoiceRow],
    rand: random.Random,
    start: dt.date,
    end: dt.date | None,
    as_of: dt.date,
    rate: Decimal,
    currency: str,
    terms: int,
    payer: Payer,
    contract_id: int | None,
) -> None:
    """:func:`bill_contract`'s invoices appended to ``rows`` as the writers' rows, id and
    number None: the seeding engine builds each invoice row once (not a bill, then the row).

    One loop: the amount of a full period and the day counts are worked out once per
    contract, not per invoice. When a payer pays is :meth:`Payer.pays_after`'s.
    """
    periods = _periods(start, end, as_of)
    if not periods:
        return
    draw = rand.random
    amount = rate.quantize(CENT)
    issue_after, days, void = _ISSUE_AFTER, _DAYS, VOID_SHARE
    due_after = days[terms] if 0 <= terms < 512 else dt.timedelta(days=terms)
    # When the payer pays: Payer.pays_after, its rules read once per contract (as numbers);
    # a payer class of its own is asked per invoice.
    own = None if type(payer).pays_after is Payer.pays_after else payer.pays_after
    late_share, late_first, late_days, stopped_days = payer.rules
    late_first += terms
    # issued after it: never paid
    unpaid_after = as_of - dt.timedelta(days=stopped_days) if stopped_days else as_of
    append = rows.append
    last_end = periods[-1][1]
    for period_start, period_end, _full_days in periods:
        issued = period_end + issue_after[int(draw() * 10)]
        if issued > as_of:
            if period_end == last_end:  # the contract's latest invoice: not issued yet
                append(
                    [None, period_start, period_end, amount, None,
                     None, None, None, "draft", currency, contract_id]
                )  # fmt: skip
                break
            issued = as_of
        due = issued + due_after
        if draw() < void:
            append(
                [None, period_start, period_end, amount, None,
                 issued, due, None, "void", currency, contract_id]
            )  # fmt: skip
            continue
        if own is not None:
            delay = own(rand, issued, terms, as_of)
        elif issued > unpaid_after:
            delay = -1
        elif draw() < late_share:
            delay = late_first + int(draw() * late_days)
        else:
            delay = int(draw() * (terms + 1))
        if delay >= 0:
            paid = issued + (days[delay] if delay < 512 else dt.timedelta(days=delay))
            if paid <= as_of:
                append(
                    [None, period_start, period_end, amount, None,
                     issued, due, paid, "paid", currency, contract_id]
                )  # fmt: skip
                continue
        status = "open" if due >= as_of else "overdue"
        append(
            [None, period_start, period_end, amount, None,
             issued, due, None, status, currency, contract_id]
        )  # fmt: skip
    last = periods[-1]
    ended = end is not None and end <= as_of  # only an ended contract's last period is short
    if ended and (last[1] - last[0]).days + 1 < last[2]:  # a short final period: prorated
        rows[-1][3] = period_amount(rate, currency, last)


def invoice_number(user_id: int | None, n: int) -> str:
    """``INV-<user id>-<n>``: n counts the user's issued invoices by issue date, then id.

    A user with no id yet (``build()``) numbers as user 0.
    """
    return f"{invoice_number_prefix(user_id)}{n}"


def invoice_number_prefix(user_id: int | None) -> str:
    """``INV-<user id>-``: an invoice number without its count (the seeding engine appends
    the count to it for each of a user's invoices)."""
    return f"INV-{user_id if user_id is not None else 0}-"


def random_amount() -> Decimal:
    """A positive amount with exactly two decimals, 20.00 to 15,000.00."""
    return Decimal(factory.random.randgen.randint(20_00, 15_000_00)).scaleb(-2)


def count_from(value: Any, *, name: str) -> int:
    """A child count from an int, a (low, high) pair or range, the text of a count option
    (``"2-4"``, a mix ``"1-3:80,21-30:20"``), or a list of ready objects.

    ``name`` is the factory and field the value was given for, e.g. ``UserFactory.clients``.
    """
    rand = factory.random.randgen
    expected = (
        f"{name}: expected a count, a (low, high) range, a mix like '1-3:80,21-30:20' "
        f"or a list of objects, got {value!r}"
    )
    if isinstance(value, bool):
        raise FactoryValueError(expected)
    if isinstance(value, str):
        try:
            return CountMix.parse(value, name=name).draw(rand)
        except UsageError as exc:
            raise FactoryValueError(exc.problem, option=exc.option) from None
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
        with _sync_io(cls.__name__, "create"):
            return cast(M, super().create(**kwargs))

    @classmethod
    def build_batch(cls, size: int, **kwargs: Any) -> list[M]:
        return cast(list[M], super().build_batch(size, **kwargs))

    @classmethod
    def create_batch(cls, size: int, **kwargs: Any) -> list[M]:
        with _sync_io(cls.__name__, "create_batch"):
            return cast(list[M], super().create_batch(size, **kwargs))

    @classmethod
    async def create_async(cls, **kwargs: Any) -> M:
        """``create()`` for async code: ``await UserFactory.create_async(clients=2)``.

        Through the bound session: the ``AsyncSession`` whose ``sync_session`` is bound (as
        ``invoicegen_async_session`` does) runs the factory in its ``run_sync``.
        """
        return await _run_sync(functools.partial(cls.create, **kwargs))

    @classmethod
    async def create_batch_async(cls, size: int, **kwargs: Any) -> list[M]:
        """``create_batch()`` for async code: ``await UserFactory.create_batch_async(3)``."""
        return await _run_sync(functools.partial(cls.create_batch, size, **kwargs))

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


#: The user's declarations as defined here: :func:`user_row` evaluates exactly these.
STOCK_USER_DECLARATIONS = IsolatedUserFactory._meta.pre_declarations.as_dict()

#: A user row of the seeding engine: name, email, phone.
UserRow = tuple[str, str, str]


def user_row(person: Callable[[], Person], phone: Callable[[], str], number: int) -> UserRow:
    """What ``IsolatedUserFactory`` declares, for user ``number``, in one call: the same
    values from the same draws, in the declarations' order (``tests/test_rows.py`` compares
    them with ``build()``). ``person`` and ``phone`` are the locale's draws its ``person``
    and ``phone`` declarations make (:meth:`FromLocale.sampler`)."""
    drawn = person()
    name = drawn.full_name(drawn.first_name, drawn.last_name)
    # the email words of a name made of the drawn names: their own readings (email_words)
    words = drawn.first_reading, drawn.last_reading
    return name, user_email(words, number), phone()


def payer_of(client: Any) -> Payer:
    """A client's payer profile: the one its factory drew, else on time (e.g. a loaded row)."""
    payer = getattr(client, "_invoicegen_payer", None)
    return payer if isinstance(payer, Payer) else ON_TIME


def _client_payer(o: Any) -> Payer:
    return STOPPED_PAYING if o.stopped_paying else payer_profile(factory.random.randgen)


class IsolatedClientFactory(InvoicegenFactory[Client]):
    """A client, with its user (an isolated one unless given), and no contracts.

    Most clients are in the locale's country, a few abroad. ``payer`` is how the client pays
    (not a column: kept on the object for its invoices); ``stopped_paying=True`` gives one
    that pays nothing issued in the last 90 days before as_of.
    """

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
        home_country = factory.Faker("current_country_code")  # the locale's; draws nothing
        stopped_paying = False

    user = factory.SubFactory("invoicegen.factories.IsolatedUserFactory")
    name = factory.LazyAttribute(lambda o: o.person.full_name(o.first_name, o.last_name))
    company_name = factory.Faker("company")
    email = factory.LazyAttribute(
        lambda o: client_email(
            o.person.email_words(o.name, o.first_name, o.last_name), o.company_name, o.number
        )
    )
    country = factory.LazyAttribute(
        lambda o: client_country(factory.random.randgen, o.home_country)
    )
    payment_terms_days = factory.LazyFunction(lambda: payment_terms(factory.random.randgen))
    payer = factory.LazyAttribute(_client_payer)

    @classmethod
    def _build(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        payer = kwargs.pop("payer", ON_TIME)
        client = super()._build(model_class, *args, **kwargs)
        client._invoicegen_payer = payer
        return client

    @classmethod
    def _create(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        payer = kwargs.pop("payer", ON_TIME)
        client = super()._create(model_class, *args, **kwargs)
        client._invoicegen_payer = payer
        return client


#: The client's declarations as defined here: :func:`client_row` evaluates exactly these.
STOCK_CLIENT_DECLARATIONS = IsolatedClientFactory._meta.pre_declarations.as_dict()

#: A client row of the seeding engine: name, company_name, email, country,
#: payment_terms_days, and its payer (not a column: how its invoices are paid).
ClientRow = tuple[str, str, str, str, int, Payer]


def client_row(
    rand: random.Random,
    person: Callable[[], Person],
    company: Callable[[], str],
    home_country: str,
    number: int | str,
) -> ClientRow:
    """What ``IsolatedClientFactory`` declares, for client ``number`` of a locale whose
    country is ``home_country``, in one call: the same values from the same draws, in the
    declarations' order (``tests/test_rows.py`` compares them with ``build()``). ``person``
    and ``company`` are the locale's draws its ``person`` and ``company_name`` declarations
    make."""
    drawn = person()
    name = drawn.full_name(drawn.first_name, drawn.last_name)
    company_name = company()
    words = drawn.first_reading, drawn.last_reading  # as in user_row
    email = client_email(words, company_name, number)
    country = client_country(rand, home_country)
    terms = payment_terms(rand)
    return name, company_name, email, country, terms, payer_profile(rand)


def _contract_dates(o: Any) -> tuple[dt.date, dt.date | None]:
    if o.ongoing and o.ended:
        raise FactoryValueError("ContractFactory.end_date: a contract cannot be ongoing and ended")
    kind = "running" if o.ongoing else "ended" if o.ended else None
    if kind is None and o.invoice_count == 0:
        kind = "running"
    try:
        start, end = contract_dates(
            factory.random.randgen, o.as_of, o.invoice_count, o.since, kind=kind
        )
    except ValueError as exc:
        raise FactoryValueError(f"ContractFactory.end_date: {exc}") from None
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

    ``invoice_count`` is the number of monthly periods billed by ``as_of``: a running contract
    started that many periods ago, an ended one (ending between ``since`` and as_of) after that
    many. ``ongoing=True`` gives a contract with no end date, ``ended=True`` one that ended
    before ``as_of``. Given only a ``start_date``, the end keeps the drawn length from that
    start. The currency is mostly the client's country's; the monthly rate is log-normal.
    """

    # Only annotations (the classmethods stay factory-boy's): keywords for editors and mypy.
    create: ClassVar[sig.MakeContract[list[Invoice]]]
    build: ClassVar[sig.MakeContract[list[Invoice]]]

    class Meta:
        model = Contract

    class Params:
        as_of = factory.LazyFunction(dt.date.today)
        since = factory.LazyAttribute(lambda o: add_months(o.as_of, -HISTORY_MONTHS))
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
    currency = factory.LazyAttribute(
        lambda o: contract_currency(factory.random.randgen, getattr(o.client, "country", None))
    )
    monthly_rate = factory.LazyAttribute(lambda o: monthly_rate(factory.random.randgen, o.currency))

    _ordered = (("start_date", "end_date"),)


#: The contract's declarations as defined here: :func:`contract_row` evaluates exactly these.
STOCK_CONTRACT_DECLARATIONS = IsolatedContractFactory._meta.pre_declarations.as_dict()

#: A contract row of the seeding engine: summary, start_date, end_date, currency, monthly_rate.
ContractRow = tuple[str | None, dt.date, dt.date | None, str, Decimal]


def contract_row(
    rand: random.Random,
    catch_phrase: Callable[[], str],
    country: str | None,
    as_of: dt.date,
    since: dt.date,
    invoice_count: int,
) -> ContractRow:
    """What ``IsolatedContractFactory`` declares, for a client in ``country`` and the other
    keywords given, in one call: the same values from the same draws, in the declarations'
    order (``tests/test_rows.py`` compares them with ``build()``). ``catch_phrase`` is the
    Faker provider the ``summary`` declaration names, in the locale.
    """
    summary = catch_phrase() if rand.random() < 0.9 else None
    start, end = contract_dates(
        rand, as_of, invoice_count, since, kind="running" if invoice_count == 0 else None
    )
    currency = contract_currency(rand, country)
    return summary, start, end, currency, monthly_rate(rand, currency)


def _period(o: Any) -> Period:
    contract = o.contract
    index: int = o.index
    periods = billing_periods(contract.start_date, contract.end_date, o.billed_by)
    if index >= len(periods):
        raise FactoryValueError(
            f"InvoiceFactory.period_start: the contract from {contract.start_date} to "
            f"{contract.end_date or 'no end'} bills {len(periods)} periods by {o.billed_by}, "
            f"not {index + 1} (build the contract with invoice_count=N to leave room)"
        )
    return periods[index]


def _existing_invoices(o: Any) -> int:
    return len(getattr(o.contract, "invoices", None) or ())


def _amount(o: Any) -> Decimal:
    rate = getattr(o.contract, "monthly_rate", None)
    if rate is None:  # a contract that predates the billing columns
        return random_amount()
    return period_amount(rate, o.currency, o.period)


def _lifecycle(o: Any) -> Lifecycle:
    client = getattr(o.contract, "client", None)
    terms = getattr(client, "payment_terms_days", None) or 30
    count = o.count if o.count is not None else o.index + 1
    try:
        return invoice_lifecycle(
            factory.random.randgen,
            o.period[1],
            o.as_of,
            terms,
            payer_of(client),
            latest=o.index == count - 1,
            status=o.forced_status,
        )
    except ValueError as exc:
        raise FactoryValueError(f"InvoiceFactory.status: {exc}") from None


def _billed_by(o: Any) -> dt.date:
    as_of: dt.date = o.as_of
    if o.long_ago:
        return add_months(as_of, -LONG_AGO_MONTHS)
    if o.forced_status in ("overdue", "paid_late"):
        return as_of - dt.timedelta(days=LATE_DAYS)
    return as_of


class IsolatedInvoiceFactory(InvoicegenFactory[Invoice]):
    """An invoice, with its contract: the contract's next billed period unless ``index`` is given.

    ``count`` is how many invoices the contract gets in all (the last may be a draft);
    ``zero=True`` gives a zero-amount invoice; ``long_ago=True`` one whose period ended
    ``LONG_AGO_MONTHS`` or more before ``as_of`` (its own contract is dated to match; a contract
    you pass must have room for it that early). ``overdue=True``, ``paid_late=True``,
    ``draft=True`` and ``void=True`` give that status (the first two on a period that ended
    long enough ago). Its number counts among its user's issued invoices by issue date.
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
        forced_status = None
        # Periods end on or before this day.
        billed_by = factory.LazyAttribute(_billed_by)
        period = factory.LazyAttribute(_period)
        lifecycle = factory.LazyAttribute(_lifecycle)
        zero = factory.Trait(amount=Decimal("0.00"))
        overdue = factory.Trait(forced_status="overdue")
        paid_late = factory.Trait(forced_status="paid_late")
        draft = factory.Trait(forced_status="draft")
        void = factory.Trait(forced_status="void")

    contract = factory.SubFactory(
        "invoicegen.factories.IsolatedContractFactory", as_of=factory.SelfAttribute("..billed_by")
    )
    period_start = factory.LazyAttribute(lambda o: o.period[0])
    period_end = factory.LazyAttribute(lambda o: o.period[1])
    currency = factory.LazyAttribute(
        lambda o: getattr(o.contract, "currency", None) or FALLBACK_CURRENCY
    )
    amount = factory.LazyAttribute(_amount)
    issued_on = factory.LazyAttribute(lambda o: o.lifecycle[0])
    due_on = factory.LazyAttribute(lambda o: o.lifecycle[1])
    paid_on = factory.LazyAttribute(lambda o: o.lifecycle[2])
    status = factory.LazyAttribute(lambda o: o.lifecycle[3])
    number = None  # given by _renumber once the invoice is made

    _ordered = (("period_start", "period_end"), ("issued_on", "paid_on"))

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
        status = values.get("status")
        if status is not None and status not in STATUSES:
            raise FactoryValueError(
                f"{cls.__name__}.status: {status!r} is not one of {', '.join(STATUSES)}"
            )

    @classmethod
    def _build(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        invoice = super()._build(model_class, *args, **kwargs)
        if isinstance(invoice, Invoice):
            _renumber(invoice, None)
        return invoice

    @classmethod
    def _create(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        invoice = super()._create(model_class, *args, **kwargs)
        _renumber(invoice, object_session(invoice))
        return invoice


def _renumber(invoice: Invoice, session: Session | None) -> None:
    """Number the issued invoices of ``invoice``'s user 1, 2, 3 ... by issue date, then id.

    An invoice given a ``number`` by the caller keeps it. In a session, numbers that move are
    cleared and flushed first, so the unique index never sees two invoices with one number.
    """
    if invoice.number is not None:
        return
    contract = invoice.contract
    user = contract.client.user if contract is not None and contract.client is not None else None
    if user is None:
        mine = [invoice] if invoice.issued_on is not None else []
    else:
        mine = [
            other
            for client in user.clients
            for each in client.contracts
            for other in each.invoices
            if other.issued_on is not None
        ]
        if invoice not in mine and invoice.issued_on is not None:
            mine.append(invoice)
    mine.sort(key=lambda i: (i.issued_on, i.id if i.id is not None else math.inf))
    user_id = user.id if user is not None else None
    wanted = {i: invoice_number(user_id, n) for n, i in enumerate(mine, 1)}
    moving = [i for i, number in wanted.items() if i.number != number]
    if session is not None and any(i.number is not None for i in moving):
        for other in moving:
            other.number = None
        session.flush()
    for other in moving:
        other.number = wanted[other]
    if session is not None and moving:
        session.flush()


# --- full factories: the "many" side too ---------------------------------------------------------


#: The child counts a full factory makes when none is given.
_DEFAULT_CHILDREN = {
    "UserFactory.clients": DEFAULT_CLIENTS,
    "ClientFactory.contracts": DEFAULT_CONTRACTS,
    "ContractFactory.invoices": DEFAULT_INVOICES,
}


def _has_children(factory_class: type[factory.Factory], field: str) -> bool:
    """Whether ``field`` is still a post-generation declaration of ``factory_class``.

    pytest-factoryboy's model fixtures generate through a subclass without its
    post-generation declarations (they run later, as fixtures): a default count set then would
    reach the model as a plain value.
    """
    return field in factory_class._meta.post_declarations.declarations


def _children(
    child_factory: type[factory.Factory],
    parent: Any,
    field: str,
    create: bool,
    extracted: Any,
    kwargs: dict[str, Any],
) -> None:
    """Attach ready objects, or build/create the requested number of children.

    ``extracted`` is None when pytest-factoryboy's ``register()`` calls the declaration (its
    model fixtures pass the ``<model>__<field>`` fixture's value, None unless set): the default.
    """
    parent_field = type(parent).__name__.lower()
    if extracted is None:
        extracted = _DEFAULT_CHILDREN[field]
        # pytest-factoryboy also passes declarations of the parent it could not evaluate, such
        # as ``invoices__as_of = SelfAttribute("..as_of")``: a child cannot reach the parent's.
        kwargs = {
            key: value
            for key, value in kwargs.items()
            if not (isinstance(value, factory.SelfAttribute) and value.depth > 1)
        }
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
        if _has_children(cls, "clients"):
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
        if _has_children(cls, "contracts"):
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
        if not _has_children(cls, "invoices"):  # pytest-factoryboy: room for the most
            return super()._generate(strategy, params)
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
