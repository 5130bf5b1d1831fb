"""Alembic environment for invoicegen's own schema.

invoicegen passes a live connection in ``config.attributes["connection"]``. Developers who run
``alembic upgrade head`` from the repo root get the URL from invoicegen's settings instead
(``INVOICEGEN_DATABASE_URL``, ``[tool.invoicegen]``, or ``sqlite:///invoicegen.db``), and the
schema from ``INVOICEGEN_SCHEMA`` or the file.
No ``fileConfig``: invoicegen needs no alembic.ini.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from invoicegen.db import create_schema, make_engine
from invoicegen.models import Base
from invoicegen.schema import VERSION_TABLE, version_table
from invoicegen.settings import resolve
from invoicegen.urls import parse


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=Base.metadata,
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def run_with(connection: Connection) -> None:
    # The whole upgrade is one transaction wherever the database can roll back DDL: SQLite can
    # (invoicegen's engines let it; Alembic assumes not), PostgreSQL does; MariaDB cannot.
    sqlite = connection.dialect.name == "sqlite"
    _configure(
        connection=connection,
        **version_table(connection),  # in invoicegen's schema (--schema), when it has one
        render_as_batch=sqlite,
        transaction_per_migration=False,
        **({"transactional_ddl": True} if sqlite else {}),
    )
    with context.begin_transaction():
        context.run_migrations()


config = context.config
if context.is_offline_mode():
    settings = resolve({})
    _configure(
        url=parse(settings.database_url),
        literal_binds=True,
        version_table=VERSION_TABLE,
        version_table_schema=settings.schema,
    )
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    run_with(config.attributes["connection"])
else:
    settings = resolve({})
    engine = make_engine(settings.database_url, schema=settings.schema)
    create_schema(engine)
    with engine.begin() as connection:
        run_with(connection)
    engine.dispose()
