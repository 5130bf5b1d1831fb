"""Write invoicegen's run manifest by SQL, as a seeding run (of any invoicegen version) would."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa


def replace_manifest(
    engine: sa.Engine,
    *,
    options: Any,
    as_of: dt.date,
    seed: int = 3,
    users: int = 12,
    shard: str | None = None,
    versions: str = "{}",
    counts: str | None = None,
) -> None:
    """Make the manifest one finished run; ``options`` as JSON (or as text, kept verbatim)."""
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM invoicegen_runs"))
        connection.execute(
            sa.text(
                "INSERT INTO invoicegen_runs (status, started_at, finished_at, seed, as_of, "
                "first_user, users, users_done, shard, options, versions, counts) VALUES "
                "('done', :t, :t, :seed, :as_of, 0, :users, :users, :shard, :o, :v, :c)"
            ),
            {
                "t": dt.datetime(2026, 3, 31, 12, 0),
                "seed": seed,
                "as_of": as_of,
                "users": users,
                "shard": shard,
                "o": options if isinstance(options, str) else json.dumps(options),
                "v": versions,
                "c": counts,
            },
        )


def record_versions(engine: sa.Engine, **versions: str) -> None:
    """Make every recorded run say it was made with these versions (pip names as keywords:
    ``faker="30.0.0"``); the others as this invoicegen records them."""
    from invoicegen.manifest import versions as installed

    recorded = {**installed(), **{name.replace("_", "-"): v for name, v in versions.items()}}
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE invoicegen_runs SET versions = :v"), {"v": json.dumps(recorded)}
        )
