"""The keywords of the factories' ``create()`` and ``build()``, spelled out for editors.

factory-boy takes ``**kwargs``; these protocols give each factory's ``create``/``build`` a first
overload naming its fields, parameters and traits, so an editor completes
``UserFactory.create(cl`` to ``clients=``. A second overload still takes any keyword, for
factory-boy's ``__`` paths (``clients__contracts__invoices=3``). Each protocol serves both
factories of a model: the full one takes ``Children`` for the "many" side, the isolated one a
list of ready objects. ``tests/test_factories.py`` checks that every keyword is listed here.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Protocol, TypeAlias, TypeVar, overload

from invoicegen.models import Client, Contract, Invoice, User

T = TypeVar("T")
C_contra = TypeVar("C_contra", contravariant=True)
#: How many children a full factory makes: exactly N, a random count in (low, high) or in a
#: range, or these ready objects.
Children: TypeAlias = int | tuple[int, int] | range | list[T]


class MakeUser(Protocol[C_contra]):
    @overload
    def __call__(
        self,
        *,
        id: int = ...,
        name: str = ...,
        email: str = ...,
        phone: str = ...,
        first_name: str = ...,
        last_name: str = ...,
        number: int = ...,
        clients: C_contra = ...,
    ) -> User: ...
    @overload
    def __call__(self, **kwargs: Any) -> User: ...


class MakeClient(Protocol[C_contra]):
    @overload
    def __call__(
        self,
        *,
        id: int = ...,
        user: User = ...,
        name: str = ...,
        company_name: str = ...,
        email: str = ...,
        country: str | None = ...,
        payment_terms_days: int | None = ...,
        payer: Any = ...,
        first_name: str = ...,
        last_name: str = ...,
        home_country: str = ...,
        stopped_paying: bool = ...,
        number: str = ...,
        contracts: C_contra = ...,
    ) -> Client: ...
    @overload
    def __call__(self, **kwargs: Any) -> Client: ...


class MakeContract(Protocol[C_contra]):
    @overload
    def __call__(
        self,
        *,
        id: int = ...,
        client: Client = ...,
        summary: str | None = ...,
        start_date: dt.date = ...,
        end_date: dt.date | None = ...,
        currency: str | None = ...,
        monthly_rate: Decimal | None = ...,
        as_of: dt.date = ...,
        since: dt.date = ...,
        invoice_count: int = ...,
        ongoing: bool = ...,
        ended: bool = ...,
        invoices: C_contra = ...,
    ) -> Contract: ...
    @overload
    def __call__(self, **kwargs: Any) -> Contract: ...


class MakeInvoice(Protocol):
    @overload
    def __call__(
        self,
        *,
        id: int = ...,
        contract: Contract = ...,
        period_start: dt.date = ...,
        period_end: dt.date = ...,
        amount: Decimal = ...,
        number: str | None = ...,
        issued_on: dt.date | None = ...,
        due_on: dt.date | None = ...,
        paid_on: dt.date | None = ...,
        status: str | None = ...,
        currency: str | None = ...,
        as_of: dt.date = ...,
        index: int = ...,
        count: int | None = ...,
        zero: bool = ...,
        long_ago: bool = ...,
        overdue: bool = ...,
        paid_late: bool = ...,
        draft: bool = ...,
        void: bool = ...,
    ) -> Invoice: ...
    @overload
    def __call__(self, **kwargs: Any) -> Invoice: ...
