"""What a test marked ``@pytest.mark.invoicegen(users=10000)`` costs: a fresh copy of the seeded
template (what the plugin does) versus seeding a new database for the test (what it saves).

    python benchmarks/template_copy.py                       # 10,000 users, all three databases
    python benchmarks/template_copy.py --db sqlite --users 2000 --copies 3

Per database, side by side in one process, through the plugin's own code
(:class:`invoicegen.pytest_templates.Templates`):

1. re-seeding: create a database and seed it with the plan (``invoicegen.seeding.seed``, the
   bulk engine, as ``invoicegen seed`` does): the template's own build, timed once;
2. a fresh copy: copy the template and drop the copy afterwards (what every marked test pays),
   ``--copies`` times; the median is reported.

Wall-clock seconds (the copy runs in the database server, so the client's CPU time says
little); run it on a quiet machine. Server URLs come from INVOICEGEN_TEST_POSTGRESQL_URL /
INVOICEGEN_TEST_MYSQL_URL (defaults: the local servers); the account must create databases.
Everything created is named like the plugin's own databases and dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from invoicegen import db, urls
from invoicegen.locks import run_lock
from invoicegen.models import DATA_TABLES
from invoicegen.pytest_templates import Templates, marker_plan
from invoicegen.seeding import SeedPlan

SERVERS = {
    "postgresql": os.environ.get(
        "INVOICEGEN_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get("INVOICEGEN_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}
AS_OF = dt.date(2026, 11, 25)


def measure(kind: str, users: int, copies: int, folder: Path) -> dict[str, float]:
    base = None if kind == "sqlite" else urls.parse(SERVERS[kind])
    # named as the plugin names a run's databases, under such a run's lock: a test run on the
    # same server leaves them alone, and drops them should the benchmark be killed
    token = secrets.token_hex(4)
    name = "run" if base is None else f"{str(base.database)[:30]}_pytest_{token}_main"
    templates = Templates(base, run_name=name, folder=folder)
    plan = marker_plan((), {"users": users, "seed": 42, "as_of": AS_OF})
    with contextlib.ExitStack() as stack:
        if base is not None:
            stack.enter_context(run_lock(templates.admin(), name=f"pytest database {name}"))
        return _measure(templates, plan, copies)


def _measure(templates: Templates, plan: SeedPlan, copies: int) -> dict[str, float]:
    try:
        started = time.perf_counter()
        template = templates.template(plan)
        seeding = time.perf_counter() - started
        engine = db.make_engine(templates.url(template))
        with engine.connect() as connection:
            rows = sum(
                connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0
                for table in DATA_TABLES
            )
        engine.dispose()
        timings = []
        for _ in range(copies):
            started = time.perf_counter()
            with templates.copy(plan):
                pass
            timings.append(time.perf_counter() - started)
        return {"rows": rows, "reseed": seeding, "copy": statistics.median(timings)}
    finally:
        templates.close()
        templates.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql", "mariadb"])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--copies", type=int, default=5, help="copies timed (median reported)")
    args = parser.parse_args()
    print(
        f"# {args.users:,} users, seed 42; median of {args.copies} copies; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )
    print("| database | rows | re-seed per test | fresh copy per test | copy is faster by |")
    print("| --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="invoicegen-bench-") as folder:
        for kind in args.db:
            result = measure(kind, args.users, args.copies, Path(folder))
            print(
                f"| {kind} | {result['rows']:,.0f} | {result['reseed']:.2f} s "
                f"| {result['copy']:.3f} s | {result['reseed'] / result['copy']:.0f}× |",
                flush=True,
            )


if __name__ == "__main__":
    main()
