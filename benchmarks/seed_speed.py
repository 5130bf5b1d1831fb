"""How fast invoicegen seeds, next to the article's pattern and the database's own write floor.

    python benchmarks/seed_speed.py --db sqlite --users 10000
    python benchmarks/seed_speed.py --db postgresql --users 10000 100000 --repeat 5

Everything runs in one process tree against the same database server, side by side:

1. invoicegen: the real ``invoicegen seed`` command, in a subprocess, as a user runs it;
2. the article: SQLAlchemyModelFactory with SubFactory parents and post_generation children,
   one ``create()`` per user, each object committed as it is made (the article's pattern,
   its bugs fixed), for the same tree shape;
3. the write floor: as many rows as (1) wrote, with cheap pre-computed values, written by the
   fastest raw path of that database (invoicegen's own writers: COPY, LOAD DATA LOCAL, or
   executemany where the server refuses LOAD DATA LOCAL), one transaction per batch. On
   MariaDB it also prints the floor of executemany (multi-row INSERTs), the path before
   LOAD DATA, for comparison; the ratio is to the fastest.

It prints rows/s for each, the ratios 1/2 and 1/3, and invoicegen's peak RSS (its processes),
and how busy (1) kept the cores: the CPU time (user + sys) of all its processes over the wall
time, and the writing process's own CPU time (on a quiet machine, the rest of its wall time
is idle: start-up, waiting for a batch, waiting for the disk). With the server on this machine
it also prints the CPU the rest of the machine (the server, on a quiet machine) spent over
invoicegen's run and over the floor's: on two cores the generating processes and the server
share them.

Each user count is measured ``--repeat`` times (5 by default), invoicegen and the floor
alternated (invoicegen first, then the floor first, ...), each from a settled server (see
:func:`settle`), then the median of the ratios to the floor and each of them: on a shared
2-core machine a single floor moves by up to a quarter from run to run, and the server's CPU
for the same rows by up to twice (1.14 and 2.20 s for one 10,000-user seed's rows on MariaDB,
two minutes apart on 2026-12-04): a single ratio is a sample of the host as much as of the code.
First it prints the CPU time per row of each table, generating on one core in this process
(``time.process_time``: what other load on the machine does not inflate much), and what
adapting rows for each writer and shipping them between processes cost per row:

    python benchmarks/seed_speed.py --cpu-only --cpu-users 2000

and, apart, what each table's rows cost SQLite to write, invoicegen's against the floor's:

    python benchmarks/seed_speed.py --sqlite-write-cost 100000
Server URLs come from INVOICEGEN_TEST_POSTGRESQL_URL / INVOICEGEN_TEST_MYSQL_URL (defaults:
the local servers); each measurement gets a fresh database that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import pickle
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from functools import partial
from pathlib import Path

import factory
import sqlalchemy as sa
from sqlalchemy.orm import Session

from invoicegen import db, schema, urls
from invoicegen.factories import (
    IsolatedClientFactory,
    IsolatedContractFactory,
    IsolatedInvoiceFactory,
    IsolatedUserFactory,
)
from invoicegen.seeding import generate, workers, writers
from invoicegen.seeding.plan import (
    SHAPING_DEFAULTS,
    Batch,
    SeedPlan,
    default_since,
    plan_batches,
    resolved,
)

AS_OF = dt.date(2026, 11, 25)
SERVERS = {
    "postgresql": os.environ.get(
        "INVOICEGEN_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get("INVOICEGEN_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}


@contextlib.contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    name = f"invoicegen_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(urls.parse(SERVERS[kind]), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield urls.parse(SERVERS[kind]).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            force = " WITH (FORCE)" if kind == "postgresql" else ""
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
        admin.dispose()


def _machine_busy() -> float | None:
    """CPU seconds this machine's cores have spent busy since it booted (``/proc/stat``: user,
    nice, system, irq and softirq time), or None where there is no ``/proc/stat``."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = map(int, first[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """CPU seconds of this process and of the processes it started and waited for."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextlib.contextmanager
def server_cpu_spent(kind: str) -> Iterator[dict[str, float]]:
    """``{"server_cpu": seconds}`` after the block: the CPU the rest of the machine spent over
    it, all but this process and the processes it ran (invoicegen's, waited for): with the
    database server on this machine and nothing else running, the server's. Read from the
    machine's totals, not from the server's processes: a PostgreSQL backend that has exited
    and is not reaped yet shows no CPU at all, so a run's own backend could go uncounted.
    Absent for SQLite (written in this process) and where ``/proc/stat`` is not."""
    spent: dict[str, float] = {}
    busy, own = _machine_busy(), _own_cpu()
    yield spent
    busy_after = _machine_busy()
    if kind != "sqlite" and busy is not None and busy_after is not None:
        spent["server_cpu"] = max(0.0, busy_after - busy - (_own_cpu() - own))


def settle(kind: str, timeout: float = 60.0) -> None:
    """Bring the server to the same state before each measurement: what the one before left
    to write out is written first, not during the next. PostgreSQL: a ``CHECKPOINT`` (a run of
    100,000 users writes about a gigabyte of WAL: without it a measurement pays, or not, for
    the checkpoints the previous one started, and the same pre-generated rows took 17.0 or
    24.0 s to COPY). MariaDB: InnoDB's dirty pages flushed (waited for, up to ``timeout``).
    SQLite: nothing (a fresh file)."""
    if kind == "sqlite":
        return
    admin = sa.create_engine(urls.parse(SERVERS[kind]), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            if kind == "postgresql":
                connection.exec_driver_sql("CHECKPOINT")
                return
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                dirty = connection.exec_driver_sql(
                    "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                    "WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'"
                ).scalar_one()
                if int(dirty) == 0:
                    return
                time.sleep(0.2)
    finally:
        admin.dispose()


# --- 1. invoicegen, as a user runs it ------------------------------------------------------------

_RUN_AND_MEASURE = """
import resource, subprocess, sys, time
from pathlib import Path
started = time.perf_counter()
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
stat, own = Path(f"/proc/{process.pid}/stat"), 0.0
while process.poll() is None:  # the writing process's own CPU, sampled until it ends
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    except (OSError, IndexError, ValueError):
        pass
    time.sleep(0.01)
out, err = process.communicate()
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = usage.ru_utime + usage.ru_stime  # every process of the run
sys.stdout.write(f"{process.returncode}\\n{wall}\\n{usage.ru_maxrss}\\n{cpu}\\n{own}\\n{out}")
sys.stderr.write(err)
""".replace("TICKS", str(os.sysconf("SC_CLK_TCK")))


def run_invoicegen(url: str, users: int, workers: int | None) -> dict[str, float]:
    command = [sys.executable, "-m", "invoicegen", "seed", "--users", str(users), "--seed", "1"]
    command += ["--as-of", AS_OF.isoformat(), "-d", url, "--json", "--quiet"]
    if workers:
        command += ["--workers", str(workers)]
    # A wrapper process per run, so RUSAGE_CHILDREN is the peak of this run's processes only.
    measured = subprocess.run(
        [sys.executable, "-c", _RUN_AND_MEASURE, *command], capture_output=True, text=True
    )
    code, wall, rss, cpu, own, *rest = measured.stdout.split("\n", 5)
    if code != "0":
        raise SystemExit(f"invoicegen failed: {measured.stderr.strip()}")
    result = json.loads(rest[0])
    return {
        "rows": result["rows"],
        "seconds": result["seconds"],
        "wall": float(wall),
        "rows_per_second": result["rows"] / result["seconds"],
        "peak_rss_mib": int(rss) / 1024,
        "workers": result["workers"],
        "counts": result["counts"],
        # user + sys CPU seconds: all of the run's processes, and the writing one alone
        "cpu": float(cpu),
        "writer_cpu": float(own),
    }


# --- 2. the article's pattern, bugs fixed ---------------------------------------------------


class _Article:
    session: Session | None = None


def _session() -> Session:
    assert _Article.session is not None
    return _Article.session


class _ArticleMeta:
    """The article's persistence: every object committed as it is made."""

    sqlalchemy_session_factory = _session
    sqlalchemy_session_persistence = "commit"


# The values are invoicegen's own declarations (the isolated factories); what makes this the
# article's pattern is the persistence and the post_generation children, one create() each.
class ArticleUserFactory(IsolatedUserFactory):
    Meta = _ArticleMeta

    @factory.post_generation
    def clients(obj, create, extracted, **kwargs):  # noqa: N805 - factory-boy's signature
        for _ in range(random.randint(1, 3)):
            ArticleClientFactory.create(user=obj)


class ArticleClientFactory(IsolatedClientFactory):
    Meta = _ArticleMeta

    @factory.post_generation
    def contracts(obj, create, extracted, **kwargs):  # noqa: N805
        for _ in range(random.randint(1, 3)):
            count = random.randint(1, 5)
            contract = ArticleContractFactory.create(client=obj, as_of=AS_OF, invoice_count=count)
            for index in range(count):
                ArticleInvoiceFactory.create(
                    contract=contract, as_of=AS_OF, index=index, count=count
                )


class ArticleContractFactory(IsolatedContractFactory):
    Meta = _ArticleMeta


class ArticleInvoiceFactory(IsolatedInvoiceFactory):
    Meta = _ArticleMeta


def run_article(url: str, users: int) -> dict[str, float]:
    engine = db.make_engine(url)
    schema.upgrade(engine)
    started = time.perf_counter()
    with Session(engine) as session:
        _Article.session = session
        for _ in range(users):
            ArticleUserFactory.create()
        _Article.session = None
    seconds = time.perf_counter() - started
    with engine.connect() as connection:
        rows = sum(
            connection.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar_one()
            for t in writers.TABLES
        )
    engine.dispose()
    return {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds}


# --- 3. the write floor ----------------------------------------------------------------------


def floor_batches(
    counts: dict[str, int], batches: int, adapt: Callable[[list[tuple[object, ...]]], object]
) -> list[list[object]]:
    """The floor's rows: ``counts`` rows per table in ``batches`` batches, cheap constant
    values, ids counted up, each batch's children spread over its parents."""
    day, money = AS_OF - dt.timedelta(days=400), Decimal("123.45")
    values = {
        "users": lambda i, _parent: (i, "Jane Doe", f"jane.{i}@example.com", "555-0100"),
        "clients": lambda i, p: (i, "John Roe", "Acme Inc", "john@acme.example", "US", 30, p),
        "contracts": lambda i, p: (i, "Consulting", day, None, "USD", money, p),
        "invoices": lambda i, p: (
            i,
            day,
            day + dt.timedelta(days=30),
            money,
            f"INV-{p}-{i}",
            day,
            day,
            day,
            "paid",
            "USD",
            p,
        ),
    }
    prepared = []
    first = dict.fromkeys(values, 1)
    for number in range(batches):
        batch, parent_range = [], range(0)
        for table, make in values.items():
            last = counts[table] * (number + 1) // batches + 1
            ids = range(first[table], last)
            # children spread evenly over this batch's parents, so every parent exists already
            batch.append(
                adapt(
                    [
                        make(
                            i,
                            parent_range[k * len(parent_range) // len(ids)]
                            if parent_range
                            else None,
                        )
                        for k, i in enumerate(ids)
                    ]
                )
            )
            parent_range, first[table] = ids, last
        prepared.append(batch)
    return prepared


def run_floor(
    url: str, counts: dict[str, int], batch_users: int, users: int, path: str | None = None
) -> dict[str, float]:
    """Cheap constant values, ids counted up, written by invoicegen's writers per batch
    (through the database's own write path, or ``path``)."""
    engine = db.make_engine(url)
    schema.upgrade(engine)
    with engine.connect() as connection:
        adapt = writers.adapter(path or writers.write_path(connection))
    # values computed before the clock starts: only the writes are timed
    prepared = floor_batches(counts, max(1, -(-users // batch_users)), adapt)
    started = time.perf_counter()
    for batch in prepared:
        with engine.begin() as connection:
            writers.write_batch(connection, batch)
    seconds = time.perf_counter() - started
    engine.dispose()
    rows = sum(counts.values())
    return {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds}


def sqlite_write_cost(users: int, rounds: int = 2) -> None:
    """The CPU each table's rows cost SQLite to write (in this process, by invoicegen's
    writer, a transaction per batch of 1,000 users), invoicegen's rows against the floor's of
    the same counts, alternated ``rounds`` times: what the writing process pays per table at
    this dataset size, whatever generating costs."""
    plan = resolved(
        SeedPlan(users=users, seed=1, as_of=AS_OF), **SHAPING_DEFAULTS, since=default_since(AS_OF)
    )
    generate.warm(plan.locale)
    adapt = writers.adapter("sqlite")
    ours: list[list[writers.Prepared]] = []
    with workers.collector_paused():
        for batch in plan_batches(plan, range(users)):  # --batch-size's default, 1,000 users
            ours.append([adapt(table_rows) for table_rows in generate.generate_batch(plan, batch)])
    counts = {
        table: sum(writers.row_count(batch[index]) for batch in ours)
        for index, table in enumerate(writers.TABLES)
    }
    floor = floor_batches(counts, len(ours), adapt)
    for _ in range(rounds):
        for name, batches in (("invoicegen", ours), ("floor", floor)):
            spent = _write_per_table(batches)
            print(
                f"  SQLite write CPU, {name:<10} {users:,} users: "
                + ", ".join(f"{table} {seconds:.2f} s" for table, seconds in spent.items())
                + f", all {sum(spent.values()):.2f} s",
                flush=True,
            )


def _write_per_table(batches: list[list[object]]) -> dict[str, float]:
    """CPU seconds per table writing ``batches`` into a fresh SQLite database."""
    spent = dict.fromkeys(writers.TABLES, 0.0)
    with fresh_database("sqlite") as url:
        engine = db.make_engine(url)
        schema.upgrade(engine)
        with workers.frozen_heap():  # as the writing process writes
            for batch in batches:
                with engine.begin() as connection:
                    for index, table in enumerate(writers.TABLES):
                        alone = [rows if k == index else [] for k, rows in enumerate(batch)]
                        started = time.process_time()
                        writers.write_batch(connection, alone)
                        spent[table] += time.process_time() - started
        engine.dispose()
    return spent


# --- 0. CPU per row and table, one core ---------------------------------------------------------


def cpu_per_row(users: int, locale: str = "en_US", repeats: int = 3) -> dict[str, float]:
    """CPU µs per row of each table, generating ``users`` user trees in this process (the best
    of ``repeats``), and adapting them for each writer (the best of ``repeats``), both with
    the garbage collector paused as in a generating process. A user's share holds its random
    stream's seeding and its tree's bookkeeping; a client's, contract's and invoice's share is
    its level's whole loop."""
    plan = resolved(
        SeedPlan(users=users, seed=1, as_of=AS_OF, locale=locale),
        **{**SHAPING_DEFAULTS, "locale": locale},
        since=default_since(AS_OF),
    )
    generate.warm(locale)
    generate.generate_batch(plan, Batch(users * repeats + 1, 100, (1, 1, 1, 1)))  # caches
    spent = dict.fromkeys(("clients", "contracts", "invoices"), 0)
    originals = {level: getattr(generate, f"_{level}") for level in spent}

    def timed(level: str) -> object:
        function = originals[level]

        def run(*args: object) -> object:
            started = time.process_time_ns()
            try:
                return function(*args)
            finally:
                spent[level] += time.process_time_ns() - started

        return run

    best: tuple[int, dict[str, int], tuple[list[object], ...]] | None = None
    try:
        for level in spent:
            setattr(generate, f"_{level}", timed(level))
        for repeat in range(repeats):
            spent.update(dict.fromkeys(spent, 0))
            started = time.process_time_ns()
            with workers.collector_paused():  # as the generating processes make a batch
                rows = generate.generate_batch(plan, Batch(repeat * users, users, (1, 1, 1, 1)))
            total = time.process_time_ns() - started
            if best is None or total < best[0]:
                best = (total, dict(spent), rows)
    finally:
        for level, function in originals.items():
            setattr(generate, f"_{level}", function)
    assert best is not None
    total, levels, rows = best
    counts = dict(zip(writers.TABLES, map(len, rows), strict=True))
    levels["users"] = total - sum(levels.values())
    result = {table: levels[table] / counts[table] / 1000 for table in writers.TABLES}
    all_rows = sum(counts.values())
    result["all"] = total / all_rows / 1000
    for dialect, path in (("sqlite", "sqlite"), ("postgresql", "copy")):
        adapting = partial(_adapted, writers.adapter(path), rows)
        result[f"adapt {dialect}"] = _best(adapting, repeats) / all_rows / 1000
        prepared = adapting()
        shipped = pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL)
        # As the processes do it: the objects alive before are out of the collector's sight
        # (a worker's after its warm-up, the writer's in workers.frozen_heap), so its passes
        # while a batch is pickled or unpickled do not walk this process's whole heap.
        with workers.frozen_heap():
            result[f"pickle {dialect}"] = (
                _best(partial(pickle.dumps, prepared, protocol=pickle.HIGHEST_PROTOCOL), repeats)
                / all_rows
                / 1000
            )
            result[f"unpickle {dialect}"] = (
                _best(partial(pickle.loads, shipped), repeats) / all_rows / 1000
            )
        if dialect == "sqlite":  # the writer's own share: in-process C, so CPU time is it
            result["write sqlite"] = _sqlite_write_cpu(prepared) / all_rows / 1000
    return result


def _adapted(
    adapt: Callable[[writers.Rows], writers.Prepared], rows: Sequence[writers.Rows]
) -> list[writers.Prepared]:
    """``rows`` adapted for a writer, with the collector paused, as a worker adapts them."""
    with workers.collector_paused():
        return [adapt(table_rows) for table_rows in rows]


def _best(call: Callable[[], object], repeats: int) -> int:
    """The least CPU time (ns) of ``repeats`` calls."""

    def once() -> int:
        started = time.process_time_ns()
        call()
        return time.process_time_ns() - started

    return min(once() for _ in range(repeats))


def _sqlite_write_cpu(prepared: list[writers.Prepared]) -> int:
    with fresh_database("sqlite") as url:
        engine = db.make_engine(url)
        schema.upgrade(engine)
        started = time.process_time_ns()
        with engine.begin() as connection:
            writers.write_batch(connection, prepared)
        spent = time.process_time_ns() - started
        engine.dispose()
    return spent


def python_speed() -> float:
    """CPU seconds of a fixed pure-Python loop (ten million additions), the best of three: how
    fast this machine runs Python right now. A shared host's speed varies from hour to hour
    (0.34-0.49 s within one minute on 2026-12-03), and generating is Python
    while the floor is mostly C and the server: compare ratios between runs only at a like
    speed."""
    best = float("inf")
    for _ in range(3):
        started, total = time.process_time(), 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.process_time() - started)
    return best


def print_cpu(users: int, locale: str) -> None:
    print(f"Python speed: ten million additions in {python_speed():.2f} CPU s")
    figures = cpu_per_row(users, locale)
    print(f"CPU per row, one core, {users:,} users, {locale}:")
    print("  " + ", ".join(f"{key} {value:.2f} µs" for key, value in figures.items()))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=("sqlite", "postgresql", "mariadb"), default="sqlite")
    parser.add_argument("--users", type=int, nargs="+", default=[10_000])
    parser.add_argument(
        "--article-users", type=int, default=200, help="users for the (slow) article run"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="invoicegen --workers (default: its own)"
    )
    parser.add_argument(
        "--cpu-users", type=int, default=2000, help="users for the CPU-per-row figures"
    )
    parser.add_argument("--locale", default="en_US", help="locale of the CPU-per-row figures")
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="runs of invoicegen and of the floor per user count, alternated (default 5)",
    )
    parser.add_argument(
        "--cpu-only", action="store_true", help="only the CPU-per-row figures, no database"
    )
    parser.add_argument(
        "--sqlite-write-cost",
        type=int,
        metavar="USERS",
        help="only the CPU SQLite spends writing each table, invoicegen's rows against the "
        "floor's, for USERS users (no generating in the timing)",
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; db: {args.db}"
    )
    if args.sqlite_write_cost:
        sqlite_write_cost(args.sqlite_write_cost)
        return
    print_cpu(args.cpu_users, args.locale)
    if args.cpu_only:
        return
    with fresh_database(args.db) as url:
        article = run_article(url, args.article_users)
    print(
        f"article pattern   {args.article_users:>9,} users {article['rows']:>10,} rows "
        f"{article['rows_per_second']:>10,.0f} rows/s"
    )
    for users in args.users:
        ratios, counts = [], None
        for number in range(args.repeat):
            # Alternated: invoicegen first in the first round (its counts size the floor), then
            # the floor first, and so on, so that neither always follows the other.
            order = ("invoicegen", "floor") if number % 2 == 0 else ("floor", "invoicegen")
            measured: dict[str, dict[str, float]] = {}
            for which in order:
                with fresh_database(args.db) as url:
                    settle(args.db)
                    with server_cpu_spent(args.db) as server:
                        if which == "invoicegen":
                            measured[which] = run_invoicegen(url, users, args.workers)
                            counts = measured[which]["counts"]
                        else:
                            assert counts is not None
                            measured[which] = run_floor(url, counts, 1000, users)
                measured[which].update(server)
            ratios.append(report_pair(args.db, users, measured, article, first=number == 0))
        if len(ratios) > 1:
            print(
                f"  invoicegen / write floor at {users:,} users, {len(ratios)} alternated runs: "
                f"median {statistics.median(ratios):.2f} "
                f"(each: {', '.join(f'{ratio:.2f}' for ratio in ratios)})"
            )


def report_pair(
    kind: str,
    users: int,
    measured: dict[str, dict[str, float]],
    article: dict[str, float],
    first: bool,
) -> float:
    """Print one run of invoicegen and of the floor side by side; their ratio."""
    ours, floor = measured["invoicegen"], measured["floor"]
    print(
        f"invoicegen        {users:>9,} users {ours['rows']:>10,} rows "
        f"{ours['rows_per_second']:>10,.0f} rows/s  peak RSS {ours['peak_rss_mib']:,.0f} MiB "
        f"({ours['workers']} workers)"
    )
    # On a quiet machine: how many cores the run kept busy, and how long the writing
    # process (which generates too, when no result is ready) had nothing to do.
    print(
        f"  process CPU (user+sys): {ours['cpu']:.2f} s in {ours['wall']:.2f} s wall = "
        f"{ours['cpu'] / ours['wall']:.2f} of {os.cpu_count()} cores; the writing process "
        f"{ours['writer_cpu']:.2f} s (idle {max(0.0, ours['wall'] - ours['writer_cpu']):.2f} s,"
        " start-up included)"
    )
    print(
        f"write floor       {users:>9,} users {floor['rows']:>10,} rows "
        f"{floor['rows_per_second']:>10,.0f} rows/s"
    )
    if ours.get("server_cpu") and floor.get("server_cpu"):  # a server here: what each cost it
        print(
            f"  server CPU: {ours['server_cpu']:.2f} s for invoicegen's rows, "
            f"{floor['server_cpu']:.2f} s for the floor's "
            f"({ours['server_cpu'] / floor['server_cpu']:.2f}x); both with "
            f"invoicegen's process CPU: {ours['cpu'] + ours['server_cpu']:.2f} s of "
            f"{os.cpu_count()} x {ours['wall']:.2f} s"
        )
    if kind == "mariadb" and first:  # the path before LOAD DATA, for comparison, once
        with fresh_database(kind) as url:
            settle(kind)
            inserts = run_floor(url, ours["counts"], 1000, users, path="executemany")
        print(
            f"  floor by executemany {inserts['rows_per_second']:>10,.0f} rows/s "
            f"(LOAD DATA / executemany = "
            f"{floor['rows_per_second'] / inserts['rows_per_second']:.2f})"
        )
    ratio = ours["rows_per_second"] / floor["rows_per_second"]
    print(
        f"  ratios at {users:,} users: invoicegen / article = "
        f"{ours['rows_per_second'] / article['rows_per_second']:,.0f}x, "
        f"invoicegen / write floor = {ratio:.2f}"
    )
    return ratio


if __name__ == "__main__":
    main()
