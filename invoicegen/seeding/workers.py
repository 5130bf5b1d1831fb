"""Generating worker processes that never outlive the process that started them, and their
results in the order asked for.

They start with the stop signals blocked, then ignore them (:mod:`invoicegen.interrupts`);
they exit when their parent is gone, however it died; their owner kills them after any
failure. Standard library only: a worker runs :func:`init` before anything heavy is imported.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from invoicegen import interrupts

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """The CPU cores this process may run on."""
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


class Pool:
    """Worker processes, each with a pipe of its own: a worker killed in the middle of sending
    a result (SIGKILL, the OOM killer) leaves a torn message on its own pipe only, which then
    ends (EOF), instead of a lock and a shared pipe that hang everyone else."""

    def __init__(self, processes: list[BaseProcess], connections: list[Connection]) -> None:
        self._processes = processes
        self._connections = connections

    def map(
        self, fn: Callable[[T], R], items: Iterable[T], *, ahead: int = 2
    ) -> Iterator[tuple[T, R]]:
        """``(item, fn(item))`` for each item, in order; up to ``ahead`` calls queued per worker.
        Raises BrokenProcessPool when a worker dies, and what ``fn`` raised."""
        pending: deque[tuple[int, T]] = deque()
        queued = iter(items)
        turn = 0
        while True:
            while len(pending) < ahead * len(self._connections):
                item = next(queued, _END)
                if item is _END:
                    break
                worker = turn % len(self._connections)
                turn += 1
                self._send(worker, (fn, item))
                pending.append((worker, item))
            if not pending:
                return
            worker, item = pending.popleft()
            ok, value = self._receive(worker)
            if not ok:
                raise value
            yield item, value

    def _send(self, worker: int, call: object) -> None:
        try:
            self._connections[worker].send(call)
        except OSError:  # the worker is gone (EPIPE)
            raise _broken() from None

    def _receive(self, worker: int) -> Any:
        connection = self._connections[worker]
        sentinels = [process.sentinel for process in self._processes]
        while True:
            ready = multiprocessing.connection.wait([connection, *sentinels])
            if connection in ready:
                try:
                    return connection.recv()
                except (EOFError, OSError):  # died while sending: a torn message, then EOF
                    raise _broken() from None
            if ready:  # a worker's sentinel: it died
                raise _broken()


_END: Any = object()


def _broken() -> BrokenProcessPool:
    return BrokenProcessPool("a worker process terminated abruptly")


@contextlib.contextmanager
def pool(count: int, warm: str, *args: Any) -> Iterator[Pool]:
    """``count`` processes, started at once; each calls ``warm`` ("module:function") with
    ``args`` when it starts. After an error or an interrupt in the block they are killed
    (they hold no data of their own); otherwise they are told to exit, and killed if they
    have not within a few seconds."""
    context = multiprocessing.get_context("spawn")
    processes: list[BaseProcess] = []
    connections: list[Connection] = []
    failed = True
    try:
        with interrupts.spawning():  # no stop between a worker's start and its ignore()
            for _ in range(count):
                mine, theirs = context.Pipe()
                connections.append(mine)
                worker = context.Process(target=_serve, args=(theirs, os.getpid(), warm, *args))
                worker.start()
                processes.append(worker)
                theirs.close()  # its only writer is the worker now: its death is our EOF
        yield Pool(processes, connections)
        failed = False
    finally:
        for connection in connections:  # a worker waiting for a call reads EOF and exits
            connection.close()
        deadline = time.monotonic() + (0 if failed else _EXIT_SECONDS)
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
            process.close()


_EXIT_SECONDS = 5.0


def _serve(connection: Connection, parent: int, warm: str, *args: Any) -> None:
    """A worker's life: :func:`init`, then answer calls until the pool closes its end."""
    init(parent, warm, *args)
    while True:
        try:
            fn, item = connection.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[bool, Any] = (True, fn(item))
        except Exception as error:
            answer = (False, error)
        try:
            connection.send(answer)
        except (EOFError, OSError):
            return
        except Exception as error:  # an answer that does not pickle
            connection.send((False, RuntimeError(f"{type(error).__name__}: {error}")))


@contextlib.contextmanager
def optional_pool(count: int, warm: str, *args: Any) -> Iterator[Pool | None]:
    """:func:`pool`, or None for one worker: the calling process does the work itself."""
    if count <= 1:
        yield None
        return
    with pool(count, warm, *args) as workers:
        yield workers


def ordered(
    workers: Pool | None, function: Callable[..., R], items: Iterable[T], *args: Any
) -> Generator[tuple[T, R], None, None]:
    """``(item, function(*args, item))`` for each item, in order; computed by the ``workers``
    when there are some (:meth:`Pool.map`), else here."""
    if workers is None:
        for item in items:
            yield item, function(*args, item)
        return
    yield from workers.map(functools.partial(function, *args), items)


def init(parent: int, warm: str, *args: Any) -> None:
    """A worker's first act: follow the parent's death, ignore stop signals, then warm up."""
    exit_with_parent(parent)
    interrupts.ignore()
    module, _, function = warm.partition(":")
    getattr(importlib.import_module(module), function)(*args)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def exit_with_parent(parent: int) -> None:
    """End this process when ``parent`` (the process that started it) is gone, even by
    ``kill -9``: a worker would otherwise hold its parent's stdout and stderr open for good.

    Linux: the kernel sends SIGKILL (``PR_SET_PDEATHSIG``). Everywhere: a thread waits on the
    parent's sentinel (a pipe, or the process handle on Windows) and exits when it fires.
    """
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # gone already, before the kernel could be told
        os._exit(1)
    process = multiprocessing.parent_process()

    def watch() -> None:
        if process is not None and process.sentinel is not None:
            multiprocessing.connection.wait([process.sentinel])
        else:
            while os.getppid() == parent:
                time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="invoicegen-parent-watch", daemon=True).start()
