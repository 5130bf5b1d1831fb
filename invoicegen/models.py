"""The schema invoicegen owns: users -> clients -> contracts -> invoices.

Table and column names are part of the public contract: scripts and other tools query them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """A contractor: the person who bills clients."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    phone: Mapped[str] = mapped_column(String(50))

    clients: Mapped[list[Client]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, email={self.email!r})"


class Client(Base):
    """Someone a user works for.

    ``country`` and ``payment_terms_days`` are NULL on rows written before schema 0003.
    """

    __tablename__ = "clients"
    __table_args__ = (CheckConstraint("payment_terms_days > 0", name="payment_terms_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    company_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    country: Mapped[str | None] = mapped_column(String(2))  # ISO 3166 alpha-2
    payment_terms_days: Mapped[int | None] = mapped_column(Integer)

    user: Mapped[User] = relationship(back_populates="clients")
    contracts: Mapped[list[Contract]] = relationship(
        back_populates="client", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"Client(id={self.id!r}, company_name={self.company_name!r})"


class Contract(Base):
    """A piece of work for a client, billed monthly from ``start_date``.

    ``end_date`` is NULL while it runs with no agreed end. ``currency`` and ``monthly_rate`` are
    NULL on rows written before schema 0003.
    """

    __tablename__ = "contracts"
    __table_args__ = (
        CheckConstraint("end_date >= start_date", name="end_after_start"),
        CheckConstraint("monthly_rate > 0", name="monthly_rate_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    summary: Mapped[str | None] = mapped_column(Text)
    # indexed for stats: the first and last start, the contracts running on a date (0006)
    start_date: Mapped[dt.date] = mapped_column(Date, index=True)
    end_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    currency: Mapped[str | None] = mapped_column(String(3))  # ISO 4217
    monthly_rate: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))

    client: Mapped[Client] = relationship(back_populates="contracts")
    invoices: Mapped[list[Invoice]] = relationship(
        back_populates="contract", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"Contract(id={self.id!r}, start_date={self.start_date!r})"


class Invoice(Base):
    """One billed period of a contract.

    ``status`` is draft (not issued: no number or dates), open, paid, overdue or void, as of the
    dataset's as-of date. The lifecycle columns are NULL on rows written before schema 0003.
    """

    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint("period_end >= period_start", name="period_end_after_start"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint(
            "status IN ('draft', 'open', 'paid', 'overdue', 'void')", name="status_valid"
        ),
        # the foreign key's index, in period order: stats --check walks a contract's invoices so;
        # with the periods' ends and the amounts, stats reads them from the index alone (0005)
        Index(
            "ix_invoices_contract_id_periods_amount",
            "contract_id",
            "period_start",
            "period_end",
            "amount",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    number: Mapped[str | None] = mapped_column(String(32), unique=True, index=True)
    issued_on: Mapped[dt.date | None] = mapped_column(Date)
    due_on: Mapped[dt.date | None] = mapped_column(Date)
    paid_on: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str | None] = mapped_column(String(8))
    currency: Mapped[str | None] = mapped_column(String(3))  # ISO 4217, the contract's

    contract: Mapped[Contract] = relationship(back_populates="invoices")

    def __repr__(self) -> str:
        return f"Invoice(id={self.id!r}, period_start={self.period_start!r})"


class Setting(Base):
    """invoicegen's own key/value facts about this database (e.g. ``protected``)."""

    __tablename__ = "invoicegen_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Run(Base):
    """The manifest: one row per seeding run (or shard) that wrote into this database."""

    __tablename__ = "invoicegen_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # running, done, interrupted
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    seed: Mapped[int] = mapped_column(BigInteger)
    as_of: Mapped[dt.date] = mapped_column(Date)
    first_user: Mapped[int] = mapped_column(Integer)  # position of the run's first user tree
    users: Mapped[int] = mapped_column(Integer)  # user trees the run was asked for
    users_done: Mapped[int] = mapped_column(Integer)  # user trees committed
    shard: Mapped[str | None] = mapped_column(String(32))  # "K/N" of a sharded run
    options: Mapped[str] = mapped_column(Text)  # JSON: the options that shape the values
    versions: Mapped[str] = mapped_column(Text)  # JSON: invoicegen, Faker, factory-boy
    counts: Mapped[str | None] = mapped_column(Text)  # JSON: rows written per table


#: The data tables, parents first (the order rows are written in).
DATA_TABLES = tuple(
    Base.metadata.tables[name] for name in ("users", "clients", "contracts", "invoices")
)
#: Their names: users, clients, contracts, invoices.
DATA_TABLE_NAMES = tuple(table.name for table in DATA_TABLES)
