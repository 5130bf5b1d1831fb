"""The invoices' contract index covers what `stats` reads per contract: period end and amount.

0004's ``invoices (contract_id, period_start)`` gave each contract's invoices in period order,
but the checks also read each invoice's ``period_end`` and the top clients its ``amount``: on
MariaDB every one of them was a lookup in the table (2 million, most of the pages of a table
bigger than the default buffer pool). With both in the index, those passes read the index alone
(index-only scans on PostgreSQL too). It replaces 0004's index, which it covers (same leading
columns), so seeding still maintains one index on ``contract_id``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "ix_invoices_contract_id_period_start"
NEW = "ix_invoices_contract_id_periods_amount"
COLUMNS = ["contract_id", "period_start", "period_end", "amount"]


def upgrade() -> None:
    # created first: MariaDB keeps an index on the foreign key's column at every moment
    op.create_index(NEW, "invoices", COLUMNS)
    op.drop_index(OLD, table_name="invoices")


def downgrade() -> None:
    op.create_index(OLD, "invoices", ["contract_id", "period_start"])
    op.drop_index(NEW, table_name="invoices")
