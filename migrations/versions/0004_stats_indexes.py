"""An index for `stats --check`: invoices by contract, in period order.

The checks walk each contract's invoices in period order (a window over the contract's
invoices ordered by period_start, then id). The composite index gives that order: SQLite's and
InnoDB's secondary indexes end with the row id, so the window needs no sort at all there, and
PostgreSQL sorts only within each contract. It replaces the foreign key's own index on
``contract_id``, which it covers (same leading column), so seeding maintains no extra index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "ix_invoices_contract_id"
NEW = "ix_invoices_contract_id_period_start"


def upgrade() -> None:
    # created first: MariaDB keeps an index on the foreign key's column at every moment
    op.create_index(NEW, "invoices", ["contract_id", "period_start"])
    op.drop_index(OLD, table_name="invoices")


def downgrade() -> None:
    op.create_index(OLD, "invoices", ["contract_id"])
    op.drop_index(NEW, table_name="invoices")
