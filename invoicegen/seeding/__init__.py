"""The seeding engine: plan -> rows (through the factories) -> batched writes.

- :mod:`.plan`: the request (:class:`SeedPlan`), the resolved :class:`Plan`, tree shapes,
  batches and first ids; no values.
- :mod:`.dataset`: a run against the dataset already there (new, append, shard, versions).
- :mod:`.generate`: the rows of a batch, from the factories' declarations (:class:`RowMaker`).
- :mod:`.workers`: generating processes and their results in order (standard library only).
- :mod:`.writers`: bulk writes per database, and PostgreSQL's sequences.
- :mod:`.run`: :func:`seed` and the :class:`Run` it starts, writes and finishes.
- :mod:`.encoders`: how rows are encoded (COPY text, CSV, JSON lines, INSERTs, Parquet).
- :mod:`.exports`: :func:`export`, the same rows as files in a folder.

Names are exported lazily: a generating worker imports :mod:`.workers` through this package
before anything heavy is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from invoicegen.seeding.exports import ExportResult as ExportResult
    from invoicegen.seeding.exports import export as export
    from invoicegen.seeding.generate import CLIENT_FIELDS as CLIENT_FIELDS
    from invoicegen.seeding.generate import CONTRACT_FIELDS as CONTRACT_FIELDS
    from invoicegen.seeding.plan import Plan as Plan
    from invoicegen.seeding.plan import SeedPlan as SeedPlan
    from invoicegen.seeding.plan import generating_workers as generating_workers
    from invoicegen.seeding.run import TABLES as TABLES
    from invoicegen.seeding.run import Progress as Progress
    from invoicegen.seeding.run import Run as Run
    from invoicegen.seeding.run import SeedResult as SeedResult
    from invoicegen.seeding.run import seed as seed
    from invoicegen.seeding.workers import default_workers as default_workers

_EXPORTS = {
    "CLIENT_FIELDS": "generate",
    "CONTRACT_FIELDS": "generate",
    "ExportResult": "exports",
    "export": "exports",
    "Plan": "plan",
    "SeedPlan": "plan",
    "generating_workers": "plan",
    "TABLES": "run",
    "Progress": "run",
    "Run": "run",
    "SeedResult": "run",
    "seed": "run",
    "default_workers": "workers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
