"""How fast invoicegen seeds, next to the article's pattern and the database's own write floor.

    python benchmarks/seed_speed.py --db sqlite --users 10000
    python benchmarks/seed_speed.py --db postgresql --users 10000 100000

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
it also prints the server's CPU (all its processes, from ``/proc``) over invoicegen's run and
over the floor's: the same rows cost the server more CPU as invoicegen's varied values than as
the floor's constants, and on two cores the generating processes and the server share them.
First it prints the CPU time per row of each table, generating on one core in this process
(``time.process_time``: what other load on the machine does not inflate much), and what
adapting rows for each writer and shipping them between processes cost per row:

    python benchmarks/seed_speed.py --cpu-only --cpu-users 2000
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
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
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
from invoicegen.seeding import generate, writers
from invoicegen.seeding.plan import SHAPING_DEFAULTS, Batch, SeedPlan, default_since, resolved

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


#: The server's processes, by the name the kernel gives them (``/proc/PID/stat``).
_SERVER_PROCESSES = {"postgresql": {"postgres"}, "mariadb": {"mariadbd", "mysqld"}}


def server_cpu(kind: str) -> float | None:
    """CPU seconds (user + sys) the database server's processes have used so far, all of them
    (backends, writers, InnoDB's threads): what a run made the server do, as the difference
    of two readings. None when no such process is readable (SQLite, or a server elsewhere)."""
    names, ticks, found = _SERVER_PROCESSES.get(kind, set()), 0, False
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()
        if name in names:
            # utime + stime, and cutime + cstime: the backends that ended (PostgreSQL's
            # connections are processes), reaped by the postmaster
            ticks, found = ticks + sum(map(int, fields[11:15])), True
    return ticks / os.sysconf("SC_CLK_TCK") if found else None


@contextlib.contextmanager
def server_cpu_spent(kind: str) -> Iterator[dict[str, float]]:
    """``{"server_cpu": seconds}`` after the block: the server's CPU over the block (absent
    when :func:`server_cpu` cannot read it)."""
    spent: dict[str, float] = {}
    before = server_cpu(kind)
    yield spent
    after = server_cpu(kind)
    if before is not None and after is not None:
        spent["server_cpu"] = after - before


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


def run_floor(
    url: str, counts: dict[str, int], batch_users: int, users: int, path: str | None = None
) -> dict[str, float]:
    """Cheap constant values, ids counted up, written by invoicegen's writers per batch
    (through the database's own write path, or ``path``)."""
    engine = db.make_engine(url)
    schema.upgrade(engine)
    with engine.connect() as connection:
        adapt = writers.adapter(path or writers.write_path(connection))
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
    batches = max(1, -(-users // batch_users))
    prepared = []  # values computed before the clock starts: only the writes are timed
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
    started = time.perf_counter()
    for batch in prepared:
        with engine.begin() as connection:
            writers.write_batch(connection, batch)
    seconds = time.perf_counter() - started
    engine.dispose()
    rows = sum(counts.values())
    return {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds}


# --- 0. CPU per row and table, one core ---------------------------------------------------------


def cpu_per_row(users: int, locale: str = "en_US", repeats: int = 3) -> dict[str, float]:
    """CPU µs per row of each table, generating ``users`` user trees in this process (the best
    of ``repeats``). A user's share holds its random stream's seeding and its tree's
    bookkeeping; a client's, contract's and invoice's share is its level's whole loop."""
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
        adapt = writers.adapter(path)
        started = time.process_time_ns()
        prepared = [adapt(table_rows) for table_rows in rows]
        result[f"adapt {dialect}"] = (time.process_time_ns() - started) / all_rows / 1000
        started = time.process_time_ns()
        shipped = pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL)
        result[f"pickle {dialect}"] = (time.process_time_ns() - started) / all_rows / 1000
        started = time.process_time_ns()
        pickle.loads(shipped)
        result[f"unpickle {dialect}"] = (time.process_time_ns() - started) / all_rows / 1000
        if dialect == "sqlite":  # the writer's own share: in-process C, so CPU time is it
            result["write sqlite"] = _sqlite_write_cpu(prepared) / all_rows / 1000
    return result


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
        "--cpu-only", action="store_true", help="only the CPU-per-row figures, no database"
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; db: {args.db}"
    )
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
        with fresh_database(args.db) as url, server_cpu_spent(args.db) as ours_server:
            ours = run_invoicegen(url, users, args.workers)
        with fresh_database(args.db) as url, server_cpu_spent(args.db) as floor_server:
            floor = run_floor(url, ours["counts"], 1000, users)
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
        if ours_server and floor_server.get("server_cpu"):  # a server here: what each cost it
            print(
                f"  server CPU: {ours_server['server_cpu']:.2f} s for invoicegen's rows, "
                f"{floor_server['server_cpu']:.2f} s for the floor's "
                f"({ours_server['server_cpu'] / floor_server['server_cpu']:.2f}x); both with "
                f"invoicegen's process CPU: {ours['cpu'] + ours_server['server_cpu']:.2f} s of "
                f"{os.cpu_count()} x {ours['wall']:.2f} s"
            )
        if args.db == "mariadb":  # the path before LOAD DATA, for comparison
            with fresh_database(args.db) as url:
                inserts = run_floor(url, ours["counts"], 1000, users, path="executemany")
            print(
                f"  floor by executemany {inserts['rows_per_second']:>10,.0f} rows/s "
                f"(LOAD DATA / executemany = "
                f"{floor['rows_per_second'] / inserts['rows_per_second']:.2f})"
            )
        print(
            f"  ratios at {users:,} users: invoicegen / article = "
            f"{ours['rows_per_second'] / article['rows_per_second']:,.0f}x, "
            f"invoicegen / write floor = {ours['rows_per_second'] / floor['rows_per_second']:.2f}"
        )


if __name__ == "__main__":
    main()
