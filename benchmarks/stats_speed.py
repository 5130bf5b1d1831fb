"""How long each step of ``invoicegen stats`` and ``stats --check`` takes, per database, and
next to the released version's queries on a copy of the same data, in one run.

    python benchmarks/stats_speed.py URL [URL ...]
    python benchmarks/stats_speed.py NEW_URL --old OLD_URL --old-python /tmp/old/bin/python
    python benchmarks/stats_speed.py ... --repeat 3 --markdown

Each measurement runs in a fresh subprocess (this file again, in ``--inner`` mode) calling the
library's ``stats.collect`` and ``stats.check`` as the CLI does. Every SQL statement is timed:
wall time, and the CPU time of whoever did the work: this process for SQLite, the server
backend process for PostgreSQL (``/proc/<backend pid>/stat``; parallel workers are turned off
for the session, so one process does all of it; ``--parallel`` keeps the server's setting), the
connection's server thread for MariaDB (``/proc/<mariadbd>/task/<TID of PROCESSLIST>/stat``).
That needs the server on this machine, readable by this user; elsewhere CPU shows 0. On a loaded
machine, compare CPU seconds and the old/new ratios; wall seconds there mostly measure the wait
for a core.

The new version labels its statements with the progress steps it reports; the released one
(``--old-python``: an interpreter with the released invoicegen installed, e.g. a venv made
from a checkout of the release) has no progress callback, so its statements are labelled by
the ``stats.py`` function that ran them and mapped onto the same steps.

Build the data once per database with the released version (165,000 users: about 2.0 million
invoices, 3.2 million rows), copy it (``CREATE DATABASE ... TEMPLATE``, ``mariadb-dump``, ``cp``)
and ``invoicegen migrate`` the copy the new version reads; README "stats on 2 million invoices"
gives the commands.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

AS_OF_FALLBACK = "2026-11-01"
RANGES = {"clients_per_user": "1-3", "contracts_per_client": "1-3", "invoices_per_contract": "1-5"}

# --- inner mode: runs under either version's interpreter, imports only what both have ---------


def _inner(url: str, what: str, parallel: bool) -> None:  # pragma: no cover - a subprocess
    import datetime as dt
    import inspect

    from sqlalchemy import event

    from invoicegen import db, stats
    from invoicegen.settings import CountMix

    engine = db.make_engine(url, must_exist=True)
    dialect = engine.dialect.name
    records: list[list[Any]] = []
    current = ["connecting"]
    state: dict[str, Any] = {}

    @event.listens_for(engine, "connect")
    def _setup(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if dialect == "postgresql":
            if not parallel:
                cursor.execute("SET max_parallel_workers_per_gather = 0")
            cursor.execute("SELECT pg_backend_pid()")
            state["stat"] = f"/proc/{cursor.fetchone()[0]}/stat"
        elif dialect != "sqlite":  # the connection's server thread, in the server's process
            cursor.execute(
                "SELECT TID FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"
            )
            tid = cursor.fetchone()[0]
            found = glob.glob(f"/proc/[0-9]*/task/{tid}/stat")
            if found:
                state["stat"] = found[0]
        cursor.close()

    def backend_cpu() -> float:
        with open(state["stat"]) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def label() -> str:
        if state.get("steps"):
            return current[0]
        frame = sys._getframe(2)
        while frame is not None:  # the released version: the stats.py function that runs it
            code = frame.f_code
            if code.co_filename.endswith("stats.py"):
                if code.co_name == "_run_check":
                    return "check: " + str(frame.f_locals.get("name"))
                if code.co_name == "_distribution":
                    return "distribution: " + str(frame.f_locals.get("child"))
                if code.co_name not in ("collect", "check", "_billing", "_billing_results"):
                    return code.co_name
            if code.co_filename.endswith("schema.py") and code.co_name == "count_rows":
                return "count_rows"
            frame = frame.f_back
        return "collect"

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        cpu = time.process_time() if dialect == "sqlite" else None
        if "stat" in state:
            cpu = backend_cpu()
        conn.info["started"] = (time.perf_counter(), cpu)

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        started, cpu_before = conn.info.pop("started")
        wall = time.perf_counter() - started
        if dialect == "sqlite":
            cpu = time.process_time() - cpu_before
        else:  # 0 where the server's threads cannot be read (another machine)
            cpu = backend_cpu() - cpu_before if cpu_before is not None else 0.0
        records.append([label(), wall, cpu, " ".join(statement.split())[:160]])

    def progress(step: Any) -> None:
        current[0] = step.name

    function: Callable[..., Any] = stats.collect if what == "stats" else stats.check
    kwargs: dict[str, Any] = {}
    if what == "check":
        kwargs["fallback"] = stats.Expectations(
            {key: CountMix.parse(value) for key, value in RANGES.items()},
            dt.date.fromisoformat(AS_OF_FALLBACK),
            "benchmark",
        )
    if "progress" in inspect.signature(function).parameters:
        state["steps"] = True
        kwargs["progress"] = progress
    started = time.perf_counter()
    result = function(engine, **kwargs)
    total = time.perf_counter() - started
    if what == "check" and not result.ok:
        raise SystemExit(f"check failed on {url}: {[r.name for r in result.failed]}")
    print(json.dumps({"total": total, "records": records}))


# --- outer mode -------------------------------------------------------------------------------


def _old_step(label: str, statement: str, check_steps: dict[str, str]) -> str:
    """The new version's step for a statement of the released one."""
    from invoicegen import stats

    if label.startswith("check: "):
        name = label.removeprefix("check: ")
        if name.startswith("invoices after the as-of date"):
            name = "invoices after the as-of date"
        return check_steps.get(name, "other")
    if label.startswith("distribution: "):
        child = label.removeprefix("distribution: ")
        levels = [level[1] for level in stats.LEVELS]
        return stats.COLLECT_STEPS[levels.index(child) + 1]
    if label in ("_months", "_receivables", "_billed_months", "_billing", "_dataset_as_of"):
        return "invoices by month, status and currency" if "invoices" in statement else "other"
    if label == "_predating":
        return stats.SOURCE_STEPS["invoices"]
    if label == "_top_clients":
        return "top clients"
    if label == "count_rows":
        return "row counts (released version only)"
    if label == "collect":
        return (
            "contract dates"
            if "start_date" in statement
            else ("invoices by month, status and currency")
        )
    return "schema and runs"


def _check_steps() -> dict[str, str]:
    """Each check's name (as-of date left out) -> the new version's step that counts it."""
    import datetime as dt

    from invoicegen import stats
    from invoicegen.settings import CountMix

    expect = stats.Expectations(
        {key: CountMix.parse(value) for key, value in RANGES.items()}, dt.date(2026, 1, 1), ""
    )
    rules = stats._checks("sqlite", expect) + stats._billing_checks("sqlite", expect.as_of)
    steps = {}
    for rule in rules:
        name = rule.name
        if name.startswith("invoices after the as-of date"):
            name = "invoices after the as-of date"
        # the released version's range checks name the ranges it read from the manifest
        steps[name] = stats.SOURCE_STEPS[rule.source]
        if " outside " in name:
            steps[name.split(" outside ")[0]] = stats.SOURCE_STEPS[rule.source]
    return steps


def _measure(python: str, url: str, what: str, parallel: bool) -> dict[str, Any]:
    command = [python, __file__, "--inner", url, what] + ["--parallel"] * parallel
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _by_step(run: dict[str, Any], old: bool, check_steps: dict[str, str]) -> dict[str, list[float]]:
    steps: dict[str, list[float]] = {}
    for label, wall, cpu, statement in run["records"]:
        if old:
            if label.startswith("check: ") and " outside " in label:
                label = label.split(" outside ")[0]
            label = _old_step(label, statement, check_steps)
        totals = steps.setdefault(label, [0.0, 0.0])
        totals[0] += wall
        totals[1] += cpu
    return steps


def _best(runs: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Per step, the smallest wall and the smallest CPU time over the repeats."""
    best: dict[str, list[float]] = {}
    for run in runs:
        for step, (wall, cpu) in run.items():
            if step in best:
                best[step] = [min(best[step][0], wall), min(best[step][1], cpu)]
            else:
                best[step] = [wall, cpu]
    return best


def _dialect(url: str) -> str:
    scheme = url.split(":", 1)[0].split("+")[0]
    return {"postgres": "postgresql", "mysql": "mariadb"}.get(scheme, scheme)


def _ratio(old: float | None, new: float) -> str:
    if old is None:
        return ""
    return f"{old / new:.1f}x" if new > 0.005 else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("urls", nargs="+", help="databases the new version reads")
    parser.add_argument(
        "--old",
        action="append",
        default=[],
        help="the same data for the released version, one per URL, in order",
    )
    parser.add_argument("--old-python", help="an interpreter with the released invoicegen")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the best counts")
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="keep PostgreSQL's parallel workers (their CPU is not counted)",
    )
    parser.add_argument("--markdown", action="store_true", help="also print README tables")
    args = parser.parse_args()  # fmt: skip
    if args.old and (len(args.old) != len(args.urls) or not args.old_python):
        parser.error("--old once per URL, with --old-python")
    check_steps = _check_steps()
    summary = []
    for index, url in enumerate(args.urls):
        old_url = args.old[index] if args.old else None
        for what in ("stats", "check"):
            new_runs, old_runs, new_totals, old_totals = [], [], [], []
            for _ in range(args.repeat):  # alternately, so both see the same load
                if old_url:
                    run = _measure(args.old_python, old_url, what, args.parallel)
                    old_runs.append(_by_step(run, True, check_steps))
                    old_totals.append(run["total"])
                run = _measure(sys.executable, url, what, args.parallel)
                new_runs.append(_by_step(run, False, check_steps))
                new_totals.append(run["total"])
            new, old = _best(new_runs), _best(old_runs) if old_runs else {}
            command = "stats" if what == "stats" else "stats --check"
            print(f"\n{_dialect(url)}: {command}" + (" (released -> new)" if old else ""))
            print(f"  {'step':44} {'wall s':>15} {'CPU s':>15} {'CPU ratio':>9}")
            for step in list(dict.fromkeys([*old, *new])):
                n_wall, n_cpu = new.get(step, [0.0, 0.0])
                o = old.get(step)
                wall = f"{o[0]:.2f} -> {n_wall:.2f}" if o else f"{n_wall:.2f}"
                cpu = f"{o[1]:.2f} -> {n_cpu:.2f}" if o else f"{n_cpu:.2f}"
                print(f"  {step:44} {wall:>15} {cpu:>15} {_ratio(o and o[1], n_cpu):>9}")
            row = {
                "database": _dialect(url),
                "command": command,
                "new_wall": min(new_totals),
                "new_cpu": sum(cpu for _, cpu in new.values()),
                "old_wall": min(old_totals) if old_totals else None,
                "old_cpu": sum(cpu for _, cpu in old.values()) if old else None,
                "steps": new,
            }
            summary.append(row)
            print(f"  {'total':44} {_pair(row, 'wall'):>15} {_pair(row, 'cpu'):>15} "
                  f"{_ratio(row['old_cpu'], row['new_cpu']):>9}")  # fmt: skip
    if args.markdown:
        _markdown(summary)


def _pair(row: dict[str, Any], what: str) -> str:
    new = row[f"new_{what}"]
    old = row[f"old_{what}"]
    return f"{old:.2f} -> {new:.2f}" if old is not None else f"{new:.2f}"


def _markdown(summary: list[dict[str, Any]]) -> None:
    print("\n| database | command | released: wall s (CPU s) | now: wall s (CPU s) | CPU ratio |")
    print("| --- | --- | ---: | ---: | ---: |")
    for row in summary:
        old = (
            f"{row['old_wall']:.1f} ({row['old_cpu']:.1f})" if row["old_wall"] is not None else "-"
        )
        print(f"| {row['database']} | `{row['command']}` | {old} | "
              f"{row['new_wall']:.1f} ({row['new_cpu']:.1f}) | "
              f"{_ratio(row['old_cpu'], row['new_cpu'])} |")  # fmt: skip
    databases = list(dict.fromkeys(row["database"] for row in summary))
    print("\n| step (CPU s) | " + " | ".join(databases) + " |")
    print("| --- |" + " ---: |" * len(databases))
    for command in ("stats", "stats --check"):
        rows = [r for r in summary if r["command"] == command]
        steps = list(dict.fromkeys(step for r in rows for step in r["steps"]))
        for step in steps:
            cells = [f"{r['steps'][step][1]:.2f}" if step in r["steps"] else "-" for r in rows]
            print(f"| `{command}`: {step} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--inner"]:
        _inner(sys.argv[2], sys.argv[3], "--parallel" in sys.argv[4:])
    else:
        main()
