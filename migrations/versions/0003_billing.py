"""Billing: client country and terms, contract currency and rate, an invoice's lifecycle.

Every new column is NULL-able: rows written before this revision keep NULL there, which means
"predates the billing columns".

SQLite cannot add a CHECK constraint by ALTER, and Alembic's batch mode would re-create the
tables (a DROP TABLE of a parent fires the cascades when foreign keys are on). So on SQLite each
checked column is added with its constraint inline, which SQLite's ADD COLUMN accepts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, SQL type, type, check name, check condition)
CHECKED = (
    ("clients", "payment_terms_days", "INTEGER", sa.Integer(), "payment_terms_positive",
     "payment_terms_days > 0"),
    ("contracts", "monthly_rate", "NUMERIC(12, 2)", sa.Numeric(precision=12, scale=2),
     "monthly_rate_positive", "monthly_rate > 0"),
    ("invoices", "status", "VARCHAR(8)", sa.String(length=8), "status_valid",
     "status IN ('draft', 'open', 'paid', 'overdue', 'void')"),
)
PLAIN = (
    ("clients", "country", sa.String(length=2)),
    ("contracts", "currency", sa.String(length=3)),
    ("invoices", "number", sa.String(length=32)),
    ("invoices", "issued_on", sa.Date()),
    ("invoices", "due_on", sa.Date()),
    ("invoices", "paid_on", sa.Date()),
    ("invoices", "currency", sa.String(length=3)),
)


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    for table, column, type_ in PLAIN:
        op.add_column(table, sa.Column(column, type_, nullable=True))
    for table, column, sql_type, type_, name, condition in CHECKED:
        check_name = f"ck_{table}_{name}"
        if _is_sqlite():
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN {column} {sql_type} "
                f"CONSTRAINT {check_name} CHECK ({condition})"
            )
        else:
            op.add_column(table, sa.Column(column, type_, nullable=True))
            op.create_check_constraint(check_name, table, condition)
    op.create_index(op.f("ix_invoices_number"), "invoices", ["number"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_invoices_number"), table_name="invoices")
    for table, column, _sql_type, _type, name, _condition in reversed(CHECKED):
        if not _is_sqlite():  # SQLite drops a column's own inline CHECK with the column
            op.drop_constraint(f"ck_{table}_{name}", table, type_="check")
        op.drop_column(table, column)
    for table, column, _type in reversed(PLAIN):
        op.drop_column(table, column)
