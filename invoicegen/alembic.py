"""Filters for a host application's Alembic ``env.py``: invoicegen's tables are not the host's.

An application that keeps invoicegen's tables in its own database runs two Alembic
environments side by side: invoicegen's (``invoicegen migrate``, version table
``invoicegen_alembic_version``) and its own. Without a filter the host's
``alembic revision --autogenerate`` sees invoicegen's tables in the database and not in the
host's models, and proposes dropping them all. Pass both functions to ``context.configure``::

    import invoicegen.alembic

    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_name=invoicegen.alembic.include_name,
        include_object=invoicegen.alembic.include_object,
    )

They leave out invoicegen's data tables, its settings table, its run manifest and its version
table, with their columns, indexes and constraints, in the default schema (the one a host's
autogenerate compares unless it sets ``include_schemas``). A host table's own foreign key to
one of invoicegen's tables (``ForeignKey(Invoice.id)``) stays the host's: it is proposed with
its table. Both are plain functions of the signatures Alembic documents for
``EnvironmentContext.configure``; combine them with the host's own filters with ``and``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

__all__ = ["include_name", "include_object", "owns"]


@functools.cache
def _owned() -> frozenset[str]:
    from invoicegen.models import Base
    from invoicegen.schema import VERSION_TABLE

    return frozenset({*Base.metadata.tables, VERSION_TABLE})


def owns(table: str, schema: str | None = None) -> bool:
    """Whether the table ``table`` (in ``schema``, None = the default one) is invoicegen's."""
    return schema is None and table in _owned()


def include_name(name: str | None, type_: str, parent_names: Mapping[str, Any]) -> bool:
    """Alembic's ``include_name`` hook: False for invoicegen's tables and what belongs to them.

    ``type_`` is ``"schema"``, ``"table"``, ``"column"``, ``"index"``,
    ``"unique_constraint"`` or ``"foreign_key_constraint"``; ``parent_names`` holds
    ``schema_name`` and, below a table, ``table_name``.
    """
    if type_ == "schema":
        return True
    table = name if type_ == "table" else parent_names.get("table_name")
    return table is None or not owns(str(table), parent_names.get("schema_name"))


def include_object(
    object_: Any,
    name: str | None,
    type_: str,
    reflected: bool,
    compare_to: Any,
) -> bool:
    """Alembic's ``include_object`` hook: False for invoicegen's tables and their parts.

    Also keeps invoicegen's models out when a host lists invoicegen's ``MetaData`` in its
    ``target_metadata`` (to declare foreign keys to its tables by name).
    """
    table = object_ if type_ == "table" else getattr(object_, "table", None)
    if table is None or getattr(table, "name", None) is None:
        return True
    return not owns(str(table.name), getattr(table, "schema", None))
