"""The fault campaign's cases (issue 10), kept: real processes, real signals, no mocks.

Each section is one kind of fault. Slow cases are marked; CI runs them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from invoicegen import db, locks, workers
from tests.test_safety import cli, one_line_error, seed_args, users_in, wait_for_users

# --- helpers: the process tree of a run -------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, or None when it is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = text[text.rindex(")") + 2 :].split()[:2]
    return None if state in "ZX" else (state, int(ppid))


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[1] == pid:
            found.add(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def workers_of(pid: int, count: int, process: subprocess.Popen[str]) -> set[int]:
    """Wait until ``pid`` has ``count`` generating workers; their pids."""
    deadline = time.monotonic() + 60
    while True:
        workers = {child for child in children(pid) if "spawn_main" in cmdline(child)}
        if len(workers) >= count:
            return workers
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no generating workers in time"
        time.sleep(0.02)


def survivors(pids: set[int], within: float) -> set[int]:
    """Those of ``pids`` still alive after waiting up to ``within`` seconds for them."""
    deadline = time.monotonic() + within
    while (alive := {pid for pid in pids if _stat(pid) is not None}) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    return alive


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_until_stop_signals_are_caught(process: subprocess.Popen[str]) -> None:
    """Until the process has handlers for SIGINT and SIGTERM (its SigCgt mask, as the kernel
    reports it)."""
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = Path(f"/proc/{process.pid}/status").read_text()
        caught = int(
            next(line for line in status.splitlines() if line.startswith("SigCgt:"))[7:], 16
        )
        if caught & wanted == wanted:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    raise AssertionError("the stop signals were never caught")


# --- a generating worker dies -----------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_worker_ends_the_seed_promptly_with_one_line(sqlite_url: str) -> None:
    """kill -9 of one worker (the OOM killer): one line, exit 1, no process left, whole trees."""
    process = cli(*seed_args(sqlite_url, 20_000, "--batch-size", "20", workers=2))
    tree: set[int] = set()
    try:
        tree = children(process.pid)
        wait_for_users(sqlite_url, 40, process)
        tree = children(process.pid)
        victim = min(workers_of(process.pid, 2, process))
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        _, err = process.communicate(timeout=30)
        elapsed = time.monotonic() - killed
    finally:
        kill_all(tree | {process.pid})
    assert process.returncode == 1, err
    line = one_line_error(err)
    assert "worker" in line and "committed" in line
    assert elapsed < 5, elapsed
    assert survivors(tree, within=5) == set()
    assert users_in(sqlite_url) >= 40


def pid_or_bulk(size: int) -> int | bytes:
    """In a worker: its pid, or ``size`` bytes to send back (a batch's rows, only bigger)."""
    return os.getpid() if size == 0 else bytes(size)


def sending(pid: int, size: int) -> bool:
    """Whether ``pid`` is blocked writing ``size`` bytes (Linux: /proc/PID/syscall)."""
    fields = Path(f"/proc/{pid}/syscall").read_text().split()
    return len(fields) > 3 and size <= int(fields[3], 16) < size + 100  # (+ pickle framing)


@pytest.mark.skipif(not Path("/proc/self/syscall").exists(), reason="Linux's /proc")
def test_a_worker_killed_while_sending_its_result_breaks_the_pool_at_once() -> None:
    """The fault behind the flaky kill -9 case: killed half-way through sending a result, a
    worker leaves a torn message behind (with concurrent.futures' shared result pipe, the pool
    then waited for its end forever, and so did every other worker)."""
    outcome: list[BaseException | None] = []

    def consume() -> None:
        try:
            with workers.pool(2, "os:getpid") as pool:
                results = pool.map(pid_or_bulk, [0, 0, 50_000_000, 50_000_000])
                sender = next(results)[1]  # worker 0's pid; it is sending item 2 next
                next(results)
                assert isinstance(sender, int)
                deadline = time.monotonic() + 60
                while not sending(sender, 50_000_000):  # half-way: the pipe is full
                    assert time.monotonic() < deadline, "the worker is not sending"
                    time.sleep(0.05)
                os.kill(sender, signal.SIGKILL)
                next(results)
        except BaseException as error:  # noqa: BLE001 (reported to the test's thread)
            outcome.append(error)
        else:
            outcome.append(None)

    before = children(os.getpid())
    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    thread.join(timeout=90)
    assert not thread.is_alive(), "the pool hangs"
    assert isinstance(outcome[0], BrokenProcessPool), outcome
    assert {p for p in children(os.getpid()) - before if "spawn_main" in cmdline(p)} == set()


# --- the seed process itself is killed --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["starting", "writing"])
def test_workers_never_outlive_a_killed_seed(sqlite_url: str, moment: str) -> None:
    """kill -9 of `seed`: its workers and the resource tracker exit, so a pipe reading its
    output (`$(invoicegen seed)`, capture_output=True, a CI log) reaches its end."""
    process = cli(*seed_args(sqlite_url, 20_000, "--batch-size", "20", workers=2))
    tree: set[int] = set()
    try:
        workers_of(process.pid, 2, process)
        if moment == "writing":
            wait_for_users(sqlite_url, 40, process)
        tree = children(process.pid)
        assert len(tree) >= 2
        process.kill()
        killed = time.monotonic()
        process.communicate(timeout=10)  # EOF: nobody holds the pipes any more
        assert time.monotonic() - killed < 3
        assert survivors(tree, within=1) == set()
    finally:
        kill_all(tree | {process.pid})


# --- stop signals at any moment ---------------------------------------------------------------


def assert_stopped_within_a_second(process: subprocess.Popen[str], signum: int) -> None:
    process.send_signal(signum)
    sent = time.monotonic()
    out, err = process.communicate(timeout=30)
    elapsed = time.monotonic() - sent
    assert process.returncode == 130, (process.returncode, err)
    assert "interrupted" in one_line_error(err)
    assert out == ""
    assert elapsed < 1, elapsed


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("delay", [0.3, 0.5, 0.8, 1.2, 2.0, 3.0, 5.0])
def test_a_stop_signal_is_honoured_within_a_second_at_any_moment(
    sqlite_url: str, signum: signal.Signals, delay: float
) -> None:
    """From start-up (imports, migration, workers starting) to writing, SIGTERM and Ctrl-C
    exit 130 with the one-line message within a second. The clock starts when invoicegen's
    code has taken the signals: the interpreter's own start-up before it (about 0.1-0.3 s,
    longer on a busy machine) is Python's, as the README says."""
    process = cli(*seed_args(sqlite_url, 20_000, "--batch-size", "20", workers=2))
    tree: set[int] = set()
    try:
        wait_until_stop_signals_are_caught(process)
        time.sleep(delay)
        tree = children(process.pid)
        assert_stopped_within_a_second(process, signum)
        assert survivors(tree, within=5) == set()
    finally:
        kill_all(tree | {process.pid})


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_stop_signal_ends_the_wait_for_the_run_lock(
    database_url: str, signum: signal.Signals
) -> None:
    """A run waiting for another run's lock stops at once, not after --lock-timeout."""
    engine = db.make_engine(database_url)
    try:
        with locks.run_lock(engine):  # another run, as far as the seed process can tell
            process = cli(*seed_args(database_url, 50, "--lock-timeout", "60"))
            try:
                time.sleep(3)  # started, and waiting for the lock
                assert process.poll() is None, process.communicate()
                assert_stopped_within_a_second(process, signum)
            finally:
                process.kill()
                process.communicate()
    finally:
        engine.dispose()
    assert users_in(database_url) == 0
