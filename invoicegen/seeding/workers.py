"""Generating worker processes that never outlive the process that started them, and their
results in the order asked for.

They start with the stop signals blocked, then ignore them (:mod:`invoicegen.interrupts`);
they exit when their parent is gone, however it died; their owner kills them after any
failure. Standard library only: a worker runs :func:`init` before anything heavy is imported.
"""

from __future__ import annotations

import contextlib
import ctypes
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
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.context import SpawnContext, SpawnProcess
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


class _Spawn(SpawnContext):
    """The spawn start method, remembering the processes it starts, so that their owner can
    end them: a pool whose worker died waits for the others forever (they ignore SIGTERM)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[BaseProcess] = []

    # BaseContext.Process is a class; ProcessPoolExecutor only calls it.
    def Process(self, *args: Any, **kwargs: Any) -> BaseProcess:  # type: ignore[override]
        process = SpawnProcess(*args, **kwargs)
        self.started.append(process)
        return process


@contextlib.contextmanager
def pool(count: int, warm: str, *args: Any) -> Iterator[ProcessPoolExecutor]:
    """``count`` processes, started at once; each calls ``warm`` ("module:function") with
    ``args`` when it starts. After an error or an interrupt in the block they are killed
    (they hold no data of their own); otherwise they finish what was submitted."""
    context = _Spawn()
    executor = ProcessPoolExecutor(
        max_workers=count, mp_context=context, initializer=init, initargs=(os.getpid(), warm, *args)
    )
    failed = True
    try:
        with interrupts.spawning():  # no stop between a worker's start and its ignore()
            for _ in range(count):  # each submit starts one more process while none is idle
                executor.submit(int)
        yield executor
        failed = False
    finally:
        if failed:
            for process in context.started:
                if process.is_alive():
                    process.kill()
        executor.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def optional_pool(count: int, warm: str, *args: Any) -> Iterator[ProcessPoolExecutor | None]:
    """:func:`pool`, or None for one worker: the calling process does the work itself."""
    if count <= 1:
        yield None
        return
    with pool(count, warm, *args) as executor:
        yield executor


def ordered(
    executor: ProcessPoolExecutor | None,
    function: Callable[..., R],
    items: Iterable[T],
    *args: Any,
    ahead: int,
) -> Generator[tuple[T, R], None, None]:
    """``(item, function(*args, item))`` for each item, in order; computed by ``executor``'s
    processes, at most ``ahead`` queued, when there is one. Closing it drops what is queued."""
    if executor is None:
        for item in items:
            yield item, function(*args, item)
        return
    window: deque[tuple[T, Future[R]]] = deque()
    try:
        for item in items:
            window.append((item, executor.submit(function, *args, item)))
            if len(window) > ahead:  # enough queued to keep every worker busy
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()
    finally:
        for _item, future in window:  # stopped early: drop what is queued, not wait for it
            future.cancel()


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
