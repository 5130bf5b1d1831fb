"""The run manifest: what produced the data in this database (table ``invoicegen_runs``).

Each seeding run (plain, ``--append`` or one ``--shard``) records its seed, as-of date, the
options that shape the values, the versions of the code that made them, which user positions
it covers, and how many of them are committed (updated in the same transaction as each batch,
so it is never ahead of the data).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from invoicegen.db import LOCK_TIMEOUT_SECONDS, connect, schema_of
from invoicegen.locks import lock_is_free, wait_for
from invoicegen.models import Base

RUNS = Base.metadata.tables["invoicegen_runs"]


def versions() -> dict[str, str]:
    """The versions whose output the data depends on."""

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "unknown"

    return {"invoicegen": of("invoicegen"), "faker": of("faker"), "factory-boy": of("factory-boy")}


@dataclass(frozen=True)
class RunRecord:
    id: int
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    seed: int
    as_of: dt.date
    first_user: int
    users: int
    users_done: int
    shard: str | None
    # JSON columns, decoded; text that is not JSON (another version's?) is kept as it is.
    options: Any
    versions: Any
    counts: Any

    @property
    def positions(self) -> range:
        """The user positions this run was asked for."""
        return range(self.first_user, self.first_user + self.users)


def _decode(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def runs(connection: Connection, *, limit: int | None = None) -> list[RunRecord]:
    """The recorded runs (the newest ``limit`` of them), oldest first; none before the
    manifest table exists."""
    if not sa.inspect(connection).has_table(RUNS.name, schema=schema_of(connection)):
        return []
    newest = sa.select(RUNS).order_by(RUNS.c.id.desc()).limit(limit).subquery()
    records = []
    for row in connection.execute(sa.select(newest).order_by(newest.c.id)).mappings():
        records.append(
            RunRecord(
                id=row["id"],
                status=row["status"],
                started_at=row["started_at"],
                finished_at=row["finished_at"],
                seed=int(row["seed"]),
                as_of=row["as_of"],
                first_user=row["first_user"],
                users=row["users"],
                users_done=row["users_done"],
                shard=row["shard"],
                options=_decode(row["options"]),
                versions=_decode(row["versions"]),
                counts=_decode(row["counts"]),
            )
        )
    return records


def start(
    connection: Connection,
    *,
    seed: int,
    as_of: dt.date,
    first_user: int,
    users: int,
    shard: str | None,
    options: dict[str, Any],
) -> int:
    """Record a run that is about to write; returns its id."""
    result = connection.execute(
        RUNS.insert().values(
            status="running",
            started_at=dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
            seed=seed,
            as_of=as_of,
            first_user=first_user,
            users=users,
            users_done=0,
            shard=shard,
            options=json.dumps(options, sort_keys=True),
            versions=json.dumps(versions(), sort_keys=True),
        )
    )
    primary_key = result.inserted_primary_key
    assert primary_key is not None
    return int(primary_key[0])


def committed(
    connection: Connection, run_id: int, users_done: int, *, finished: dict[str, int] | None = None
) -> None:
    """Inside a batch's transaction: this many of the run's users are now written. The run's
    last batch gives ``finished`` (the rows the run wrote per table): the run is recorded
    ``done`` by the same statement, so that ending it costs no transaction of its own."""
    values: dict[str, Any] = {"users_done": users_done}
    if finished is not None:
        values |= _ended("done", finished)
    connection.execute(RUNS.update().where(RUNS.c.id == run_id).values(**values))


def finish(connection: Connection, run_id: int, status: str, counts: dict[str, int] | None) -> None:
    connection.execute(RUNS.update().where(RUNS.c.id == run_id).values(**_ended(status, counts)))


def _ended(status: str, counts: dict[str, int] | None) -> dict[str, Any]:
    """The columns that record how a run ended."""
    return {
        "status": status,
        "finished_at": dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
        "counts": json.dumps(counts, sort_keys=True) if counts is not None else None,
    }


def live_shard_runs(engine: Engine) -> list[str]:
    """The shards still writing ("K/N"), by the run manifest and their locks.

    Call with the database's lock held: a run that is not a shard holds it while it runs, so
    one the manifest still calls running died without saying so (kill -9, a lost machine),
    and so did a shard whose own lock is free. Those are marked interrupted.
    """
    runs = RUNS
    with connect(engine) as connection:
        if not sa.inspect(connection).has_table(runs.name, schema=schema_of(connection)):
            return []
        running = connection.execute(
            sa.select(runs.c.id, runs.c.shard).where(runs.c.status == "running")
        ).all()
        server = engine.url.get_backend_name() != "sqlite"
        alive: list[str] = []
        dead: list[int] = []
        for run_id, shard in running:
            if shard and server and not lock_is_free(engine, f"shard {shard}"):
                alive.append(shard)
            else:
                dead.append(run_id)
        if dead:
            connection.execute(
                runs.update().where(runs.c.id.in_(dead)).values(status="interrupted")
            )
    return alive


def wait_for_shards(engine: Engine, *, timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
    """With the database's lock held: wait until no shard is writing, or raise LockTimeout."""
    wait_for(lambda: not live_shard_runs(engine), engine.url, timeout)
