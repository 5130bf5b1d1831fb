"""Peak memory of invoicegen's whole process tree at a small and a large dataset, and the ratio.

    python benchmarks/memory.py                                  # seed into SQLite, 10k and 1M
    python benchmarks/memory.py --db postgresql --users 10000 1000000
    python benchmarks/memory.py --target export --format parquet csv
    python benchmarks/memory.py --target export                  # every export format

Each run is the real command (``invoicegen seed``, or ``invoicegen export --format F``) in a
subprocess, as a user runs it, against a fresh database (SQLite: a file in ``--tmp``) or into a
fresh folder in ``--tmp``, deleted afterwards. While it runs, this process reads ``/proc`` every
``--interval`` seconds for the command's process and its descendants (the writer and the
generating workers) and reports:

- tree peak: the largest sum of their resident sets seen at one sample (Linux; sampled, so a
  spike shorter than the interval can be missed: the next two figures bound it);
- sum of peaks: each process's own high-water mark (VmHWM, as last read: its exec resets it,
  so the parent's pages a child showed before it are not counted), summed (an upper bound of
  the tree peak), and the writer's and the largest worker's apart;
- the resident set of the tree at 25%, 50%, 75% and 100% of the run's time: growth shows as a
  slope even where the peak looks fine.

Then the ratio of each figure at the largest ``--users`` to the smallest: the goal is at most
1.2 (issue 14: peak RSS at 1M users within 20% of 10k); at the end, a Markdown table of every
run's tree peak, smallest vs largest (the README's). Peak RSS counts a process's own pages,
not the page cache of the files it writes, and does not depend on other load on the machine.
Server URLs as in ``seed_speed.py`` (INVOICEGEN_TEST_POSTGRESQL_URL / INVOICEGEN_TEST_MYSQL_URL).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from seed_speed import AS_OF, fresh_database  # noqa: E402 - the benchmarks' shared servers

GOAL = 1.2


# --- the process tree, from /proc ---------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as listed:
                found += [int(child) for child in listed.read().split()]
    return found


def _tree(root: int) -> list[int]:
    pids, index = [root], 0
    while index < len(pids):
        pids += _children(pids[index])
        index += 1
    return pids


def _status_kib(pid: int) -> tuple[int, int] | None:
    """A process's VmRSS and VmHWM in KiB (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if line.startswith("Vm"))
    except OSError:
        return None
    try:
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (KeyError, ValueError):  # a zombie has no Vm lines
        return None


@dataclass
class Samples:
    """What the sampler saw: the tree's resident set over time, each process's peak."""

    root: int
    times: list[float] = field(default_factory=list)
    tree_kib: list[int] = field(default_factory=list)
    hwm_kib: dict[int, int] = field(default_factory=dict)

    def take(self, started: float) -> None:
        total = 0
        for pid in _tree(self.root):
            seen = _status_kib(pid)
            if seen is None:
                continue
            total += seen[0]
            # The latest high-water mark, not the largest seen: a process started by
            # fork/vfork + exec shows its parent's pages until the exec, which resets it.
            self.hwm_kib[pid] = seen[1]
        if total:
            self.times.append(time.monotonic() - started)
            self.tree_kib.append(total)

    def at(self, part: float) -> float:
        """The tree's resident set (MiB) at ``part`` of the run's time (the sample before)."""
        end = self.times[-1] * part
        index = max(i for i, moment in enumerate(self.times) if moment <= end)
        return self.tree_kib[index] / 1024


def measure(command: list[str], interval: float) -> tuple[dict[str, object], Samples]:
    """Run ``command``, sampling its process tree until it ends; its --json document and
    what was sampled."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err)
        samples = Samples(process.pid)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(interval):
                samples.take(started)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            code = process.wait()
        finally:
            done.set()
            sampler.join()
        out.seek(0)
        err.seek(0)
        if code != 0:
            raise SystemExit(f"{' '.join(command)} failed ({code}): {err.read().decode()}")
        return json.loads(out.read()), samples


@dataclass(frozen=True)
class Figures:
    users: int
    rows: int
    seconds: float
    tree_peak_mib: float
    sum_of_peaks_mib: float
    writer_peak_mib: float
    worker_peak_mib: float
    processes: int
    along: tuple[float, ...]  # tree MiB at 25/50/75/100% of the run's time
    output_mib: float  # the database file's or the export folder's size


PARTS = (0.25, 0.5, 0.75, 1.0)


def _figures(users: int, document: dict[str, object], samples: Samples, output: int) -> Figures:
    rows = document["rows"]
    seconds = document["seconds"]
    assert isinstance(rows, int) and isinstance(seconds, float | int)
    writer = samples.hwm_kib.get(samples.root, 0)
    workers = [kib for pid, kib in samples.hwm_kib.items() if pid != samples.root]
    return Figures(
        users=users,
        rows=rows,
        seconds=float(seconds),
        tree_peak_mib=max(samples.tree_kib) / 1024,
        sum_of_peaks_mib=sum(samples.hwm_kib.values()) / 1024,
        writer_peak_mib=writer / 1024,
        worker_peak_mib=max(workers, default=0) / 1024,
        processes=len(samples.hwm_kib),
        along=tuple(samples.at(part) for part in PARTS),
        output_mib=output / 2**20,
    )


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


INVOICEGEN = [sys.executable, "-m", "invoicegen"]
EXPORT_FORMATS = ("csv", "jsonl", "sql", "parquet")


def _common(users: int, args: argparse.Namespace) -> list[str]:
    options = ["--users", str(users), "--seed", "1", "--as-of", AS_OF.isoformat(), "--json"]
    options += ["--quiet"]
    options += ["--workers", str(args.workers)] if args.workers else []
    return options + (["--batch-size", str(args.batch_size)] if args.batch_size else [])


def run_seed(users: int, args: argparse.Namespace) -> Figures:
    with fresh_database(args.db) as url:  # SQLite: a file in --tmp (tempfile.tempdir)
        command = [*INVOICEGEN, "seed", "-d", url, *_common(users, args)]
        document, samples = measure(command, args.interval)
        size = _size(Path(url.removeprefix("sqlite:///"))) if args.db == "sqlite" else 0
    return _figures(users, document, samples, size)


def run_export(users: int, file_format: str, args: argparse.Namespace) -> Figures:
    folder = Path(tempfile.mkdtemp(dir=args.tmp, prefix="invoicegen-memory-export-"))
    try:
        command = [*INVOICEGEN, "export", str(folder / "out"), "--format", file_format]
        document, samples = measure(command + _common(users, args), args.interval)
        size = _size(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _figures(users, document, samples, size)


def shown(label: str, run: Figures) -> Figures:
    """Print one run's figures as soon as it ends (a large run takes an hour)."""
    along = " / ".join(f"{mib:,.0f}" for mib in run.along)
    print(
        f"{label:<18} {run.users:>9,} users {run.rows:>11,} rows {run.seconds:>7,.0f} s  "
        f"tree peak {run.tree_peak_mib:>5,.0f} MiB  sum of peaks {run.sum_of_peaks_mib:>5,.0f} "
        f"MiB (writer {run.writer_peak_mib:,.0f}, largest worker {run.worker_peak_mib:,.0f}, "
        f"{run.processes} processes)  at 25/50/75/100%: {along} MiB  "
        f"output {run.output_mib:,.0f} MiB",
        flush=True,
    )
    return run


def report(label: str, runs: list[Figures]) -> list[Figures]:
    small, large = runs[0], runs[-1]
    if small is large:
        return runs
    tree = large.tree_peak_mib / small.tree_peak_mib
    peaks = large.sum_of_peaks_mib / small.sum_of_peaks_mib
    verdict = "within" if max(tree, peaks) <= GOAL else "NOT within"
    print(
        f"  {label}: {large.users:,} / {small.users:,} users: tree peak x{tree:.2f}, "
        f"sum of peaks x{peaks:.2f} ({verdict} x{GOAL})",
        flush=True,
    )
    return runs


def _peak(run: Figures) -> str:
    return (
        f"{run.tree_peak_mib:,.0f} MiB (writer {run.writer_peak_mib:,.0f}, "
        f"worker {run.worker_peak_mib:,.0f})"
    )


def table(measured: dict[str, list[Figures]]) -> None:
    """Every run's tree peak, smallest vs largest --users, as a Markdown table."""
    small = min(runs[0].users for runs in measured.values())
    large = max(runs[-1].users for runs in measured.values())
    print(f"\n| run | {small:,} users | {large:,} users | × |\n| --- | ---: | ---: | ---: |")
    for label, runs in measured.items():
        ratio = runs[-1].tree_peak_mib / runs[0].tree_peak_mib
        print(f"| {label} | {_peak(runs[0])} | {_peak(runs[-1])} | {ratio:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", choices=("seed", "export"), nargs="+", default=["seed"])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "mariadb"), default="sqlite")
    parser.add_argument(
        "--format",
        nargs="+",
        default=["all"],
        help="export formats (--target export); all: csv jsonl sql parquet",
    )
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=None, help="default: invoicegen's own")
    parser.add_argument("--batch-size", type=int, default=None, help="default: invoicegen's own")
    parser.add_argument(
        "--tmp", type=Path, default=Path(tempfile.gettempdir()), help="for SQLite files, exports"
    )
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between samples")
    args = parser.parse_args()
    tempfile.tempdir = str(args.tmp)
    if not Path("/proc/self/status").exists():
        raise SystemExit("this benchmark reads /proc (Linux)")
    print(
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.1f}; users {args.users}",
        flush=True,
    )
    users = sorted(args.users)
    measured: dict[str, list[Figures]] = {}
    if "seed" in args.target:
        label = f"seed {args.db}"
        measured[label] = report(label, [shown(label, run_seed(n, args)) for n in users])
    if "export" in args.target:
        formats = EXPORT_FORMATS if args.format == ["all"] else args.format
        for file_format in formats:
            label = f"export {file_format}"
            runs = [shown(label, run_export(n, file_format, args)) for n in users]
            measured[label] = report(label, runs)
    table(measured)


if __name__ == "__main__":
    main()
