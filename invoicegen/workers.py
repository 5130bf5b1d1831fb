"""Generating worker processes that never outlive the process that started them.

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
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.process import BaseProcess
from typing import Any

from invoicegen import interrupts


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
