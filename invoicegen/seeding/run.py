"""One seeding run: start it (migrate, check it against the dataset, record it), write its
batches, finish it (record how it ended).

Each batch of whole user trees is written in one transaction, so the database only ever holds
whole trees.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shlex
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from invoicegen import db, interrupts, manifest, settings
from invoicegen.errors import Interrupted, RefusedError, UsageError, WorkerDied
from invoicegen.locks import run_lock
from invoicegen.schema import count_rows, upgrade
from invoicegen.seeding import generate, workers, writers
from invoicegen.seeding.dataset import reconcile, recorded_options
from invoicegen.seeding.plan import (
    SHAPING_DEFAULTS,
    Batch,
    Plan,
    SeedPlan,
    batch_count,
    first_ids_at,
    generating_workers,
    plan_batches,
    worker_count,
)
from invoicegen.urls import mask

TABLES = writers.TABLES  # users, clients, contracts, invoices


@dataclass(frozen=True)
class SeedResult:
    counts: dict[str, int]  # rows in the database after the run
    written: dict[str, int]  # rows this run wrote
    seconds: float  # generating and writing them
    seed: int
    as_of: dt.date
    revision: str
    batches: int
    workers: int
    first_user: int  # position of the first user tree this run wrote
    users: int  # user trees this run wrote
    run_id: int
    plan: Plan  # with every option resolved
    database: str  # the database's URL, password masked
    #: The versions this run's rows were made with (as the manifest records them)
    versions: dict[str, str]
    #: With ``--force``: the versions that differ from the dataset's, as "faker X (dataset: Y)"
    version_differences: tuple[str, ...] = ()
    #: How the batches were written (:func:`writers.write_path`): ``copy``, ``load_data``,
    #: ``executemany`` (MariaDB/MySQL whose server refuses LOAD DATA LOCAL), ``sqlite``
    write_path: str = ""

    @property
    def rows(self) -> int:
        return sum(self.written.values())

    def replay_args(self) -> list[str]:
        """The arguments of ``invoicegen`` that write this run's rows again, into an empty
        database (an append or a shard: after the runs before it)."""
        plan = self.plan
        args = ["seed", "--users", str(plan.users), "--seed", str(plan.seed)]
        args += ["--as-of", str(plan.as_of), "--since", str(plan.since)]
        args += ["--clients-per-user", str(plan.clients_per_user)]
        args += ["--contracts-per-client", str(plan.contracts_per_client)]
        args += ["--invoices-per-contract", str(plan.invoices_per_contract)]
        if plan.locale != SHAPING_DEFAULTS["locale"]:
            args += ["--locale", plan.locale]
        args += ["--append"] if plan.append else []
        args += ["--shard", str(plan.shard)] if plan.shard else []
        return args + (["--force"] if plan.force else [])

    def replay(self) -> str:
        """:meth:`replay_args` as a shell command line."""
        return shlex.join(["invoicegen", *self.replay_args()])

    def version_warning(self) -> str | None:
        """One line on what a forced run across versions may have changed; None when the
        versions match the dataset's."""
        if not self.version_differences:
            return None
        only_faker = all(d.startswith("faker ") for d in self.version_differences)
        what = "names, companies, addresses, phones and emails" if only_faker else "any value"
        return (
            f"added with --force across versions: {'; '.join(self.version_differences)}; "
            f"in these rows {what} may differ from what the dataset's versions would give, "
            "and a replay gives the same rows only with these versions"
        )

    def to_json(self) -> dict[str, Any]:
        """The run as ``invoicegen seed --json`` prints it."""
        return {
            "database": self.database,
            "counts": self.counts,
            "written": self.written,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "seed": self.seed,
            "as_of": self.as_of.isoformat(),
            "since": self.plan.since.isoformat(),
            "first_user": self.first_user + 1,
            "users": self.users,
            "shard": str(self.plan.shard) if self.plan.shard else None,
            "run": self.run_id,
            "revision": self.revision,
            "workers": self.workers,
            "batches": self.batches,
            "write_path": self.write_path,
            "replay": self.replay(),
            "versions": self.versions,
            "version_differences": list(self.version_differences),
        }

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Progress:
    """Reported after each committed batch."""

    users_done: int
    users_total: int
    rows_done: int


def seed(
    engine: Engine,
    plan: SeedPlan,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    lock_timeout: float = settings.default("lock_timeout"),
    stop: Callable[[], bool] | None = None,
    pool: workers.Pool | None | Literal["own"] = "own",
) -> SeedResult:
    """Migrate, then write ``plan.users`` whole user trees in batches; returns what was written.

    ``pool``: the generating workers, when the caller started them already
    (:func:`~invoicegen.seeding.plan.generating_workers` of the same plan, entered before its
    own imports and connection, so that they start up meanwhile); by default the run starts
    its own.

    Holds the database's run lock (:func:`run_lock`) throughout, except a shard, which
    holds it while it records its run and then writes under its own lock beside the other
    shards. A stop request (``stop()`` true, checked between batches) or a KeyboardInterrupt
    (the CLI's Ctrl-C or SIGTERM, see :mod:`invoicegen.interrupts`) rolls back the batch in
    progress and raises :class:`Interrupted` saying how many user trees were committed. A
    generating worker that dies raises :class:`WorkerDied`; the other workers are stopped.
    """
    _check_postgresql_options(engine, plan)
    run = Run(engine, plan, lock_timeout=lock_timeout, on_progress=on_progress, stop=stop)
    count = worker_count(plan)
    started = generating_workers(plan) if pool == "own" else contextlib.nullcontext(pool)
    try:
        with run, started as generating:
            run.start()
            return run.write(generating, count)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: {run.committed_text()}; the batch in progress was rolled back"
            f"{run.rest_hint()}"
        ) from None
    except BrokenProcessPool:
        raise WorkerDied(
            "a generating worker process died (killed, or out of memory?): "
            f"{run.committed_text()}{run.rest_hint() or '; `invoicegen seed --append` continues'}"
        ) from None


def _never() -> bool:
    return False


def _check_postgresql_options(engine: Engine, plan: SeedPlan) -> None:
    """``--synchronous-commit off`` and ``--unlogged`` are PostgreSQL's: refused elsewhere,
    before anything is written."""
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        return
    for asked, option in (
        (not plan.synchronous_commit, "--synchronous-commit off"),
        (plan.unlogged, "--unlogged"),
    ):
        if asked:
            raise UsageError(f"PostgreSQL only; {backend} has no such setting", option=option)


#: Children first: a permanent table may not reference an unlogged one.
_UNLOGGED_ORDER = tuple(reversed(TABLES))


def _persistence(engine: Engine) -> dict[str, str]:
    """PostgreSQL: the data tables there and their persistence (``p`` logged, ``u`` unlogged)."""
    query = sa.text("SELECT relpersistence FROM pg_class WHERE oid = to_regclass(:name)")
    with engine.connect() as connection:
        found = {table: connection.scalar(query, {"name": table}) for table in TABLES}
    return {table: str(kind) for table, kind in found.items() if kind is not None}


def _start_unlogged(engine: Engine) -> bool:
    """With ``--unlogged``: True when this run creates the tables (make them unlogged after
    migrating); a dataset whose tables are all unlogged already is fine; logged ones refuse."""
    persistence = _persistence(engine)
    if not persistence:
        return True
    if set(persistence.values()) != {"u"} or len(persistence) != len(TABLES):
        raise RefusedError(
            f"--unlogged: the tables in {mask(engine.url)} exist and are logged; invoicegen "
            "makes tables unlogged only when it creates them (`invoicegen reset` first)"
        )
    return False


def _set_unlogged(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in _UNLOGGED_ORDER:
            connection.exec_driver_sql(f"ALTER TABLE {table} SET UNLOGGED")


class Run:
    """A run under the database's run lock (held from ``with run:`` to its end, or handed
    over to a shard's own lock once the shard's run is recorded)."""

    def __init__(
        self,
        engine: Engine,
        request: SeedPlan,
        *,
        lock_timeout: float,
        on_progress: Callable[[Progress], None] | None,
        stop: Callable[[], bool] | None,
    ) -> None:
        self.engine = engine
        self.request = request
        self.lock_timeout = lock_timeout
        self.on_progress = on_progress
        self.stop = stop or _never
        self.committed = Progress(0, request.users_to_write, 0)
        self.written = dict.fromkeys(TABLES, 0)
        self.ended = False  # the run's end is recorded (by its last batch, or by finish())
        self._lock = contextlib.ExitStack()

    def __enter__(self) -> Run:
        db.create_schema(self.engine)  # --schema: MariaDB's lock needs its database to exist
        self._lock.enter_context(run_lock(self.engine, timeout=self.lock_timeout))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.__exit__(kind, error, traceback)

    def committed_text(self) -> str:
        done = self.committed
        return (
            f"{done.users_done:,} of {done.users_total:,} user trees ({done.rows_done:,} rows) "
            f"are committed in {mask(self.engine.url)}, whole"
        )

    def rest_hint(self) -> str:
        """How to write the user trees this run did not: an append of that many, which takes
        the dataset's seed and options (a shard is run again whole, so no hint)."""
        done = self.committed
        if self.request.shard is not None or not done.users_done:
            return ""
        rest = done.users_total - done.users_done
        return f"; `invoicegen seed --append --users {rest}` adds the rest" if rest else ""

    def start(self) -> None:
        """Migrate, check the run against the dataset and record it in the manifest. A plain
        run needs an empty dataset; an append continues the dataset's user positions; a shard
        writes one slice."""
        creates_unlogged = self.request.unlogged and _start_unlogged(self.engine)
        self.revision = upgrade(self.engine)
        if creates_unlogged:
            _set_unlogged(self.engine)
        if self.request.shard is None:  # a run that is not a shard waits for the shards
            manifest.wait_for_shards(self.engine, timeout=self.lock_timeout)
        else:  # a shard writes beside the others; dead runs are marked interrupted
            manifest.live_shard_runs(self.engine)
        with db.connect(self.engine) as connection:
            self.counts_at_start = count_rows(connection)
            target = reconcile(
                self.request,
                manifest.runs(connection),
                self.counts_at_start["users"],
                mask(self.engine.url),
            )
            self.plan, self.positions = target.plan, target.positions
            self.version_differences = target.version_differences
            # An append continues after what is there; any other run follows the plan.
            self.appended_ids = writers.next_ids(connection) if self.plan.append else None
            self.write_path = writers.write_path(connection)
            self.run_id = manifest.start(
                connection,
                seed=self.plan.seed,
                as_of=self.plan.as_of,
                first_user=self.positions.start,
                users=len(self.positions),
                shard=str(self.plan.shard) if self.plan.shard else None,
                options=recorded_options(self.plan),
            )

    def _hand_over_lock(self) -> None:
        """A shard writes beside the other shards: once its run is in the manifest it takes
        its own lock, then lets the database's go. SQLite has one writer: it keeps the
        database's lock."""
        if self.plan.shard is None or self.engine.url.get_backend_name() == "sqlite":
            return
        shard_lock = contextlib.ExitStack()
        name = f"shard {self.plan.shard}"
        shard_lock.enter_context(run_lock(self.engine, timeout=self.lock_timeout, name=name))
        self._lock.close()
        self._lock = shard_lock

    def write(self, pool: workers.Pool | None, count: int) -> SeedResult:
        """Write the run's batches, each in one transaction, then finish the run."""
        status = "interrupted"
        try:
            self._hand_over_lock()
            first_ids = self.appended_ids or first_ids_at(self.plan, self.positions.start)
            started = time.perf_counter()  # rows/s covers generating and writing, not migrating
            with db.database_errors(self.engine.url):
                batches = plan_batches(self.plan, self.positions, first_ids)
                generated = workers.ordered(
                    pool,
                    generate.generate_prepared,
                    batches,
                    self.plan,
                    self.write_path,
                    # a batch made here would keep the next one from a server that parses
                    beside=self.write_path not in writers.SERVER_PARSES,
                )
                # stops the workers however the loop ends
                with contextlib.closing(generated), workers.frozen_heap():
                    for batch, rows in generated:
                        self._write_batch(batch, rows)
                status = "done"
        finally:
            self.finish(status)
        seconds = time.perf_counter() - started
        return self._result(self._counts(), seconds, count)

    def _counts(self) -> dict[str, int]:
        """Rows per table after the run. A run other than a shard held the database's run lock
        from its start, when it counted them: no other run wrote since, so counting again
        (a scan of every table on the servers) is not needed; shards write beside each other."""
        if self.plan.shard is None:
            return {table: self.counts_at_start[table] + self.written[table] for table in TABLES}
        with self.engine.connect() as connection:
            return count_rows(connection)

    def _write_batch(self, batch: Batch, rows: generate.Prepared) -> None:
        if self.stop():  # asked to stop: nothing of this batch is written
            raise KeyboardInterrupt
        users_done = self.committed.users_done + batch.size
        written = {
            table: self.written[table] + writers.row_count(table_rows)
            for table, table_rows in zip(TABLES, rows, strict=True)
        }
        # The last batch records the run's end too: one transaction less.
        last = users_done == len(self.positions)
        # A stop signal while the batch is written and counted waits for its end.
        with interrupts.deferred():
            with self.engine.begin() as connection:
                if not self.plan.synchronous_commit:  # this transaction only
                    connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                writers.write_batch(connection, rows)
                manifest.committed(
                    connection, self.run_id, users_done, finished=written if last else None
                )
                writers.sync_sequences(connection, writers.highest_ids(batch.first_ids, rows))
                if self.stop() or interrupts.requested():  # roll this batch back
                    raise KeyboardInterrupt
            self.written, self.ended = written, last
            self.committed = Progress(users_done, len(self.positions), sum(written.values()))
            if self.on_progress is not None:
                self.on_progress(self.committed)

    def finish(self, status: str) -> None:
        """Record how the run ended and what it wrote, unless its last batch did; never
        raises."""
        if self.ended:
            return
        with contextlib.suppress(Exception), self.engine.begin() as connection:
            manifest.finish(connection, self.run_id, status, self.written)

    def _result(self, counts: dict[str, int], seconds: float, count: int) -> SeedResult:
        return SeedResult(
            counts=counts,
            written=self.written,
            seconds=seconds,
            seed=self.plan.seed,
            as_of=self.plan.as_of,
            revision=self.revision,
            batches=batch_count(self.plan, len(self.positions)),
            workers=count,
            first_user=self.positions.start,
            users=len(self.positions),
            run_id=self.run_id,
            plan=self.plan,
            database=mask(self.engine.url),
            versions=manifest.versions(),
            version_differences=self.version_differences,
            write_path=self.write_path,
        )
