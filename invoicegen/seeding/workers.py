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
import gc
import importlib
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from typing import Any, Generic, TypeVar, cast

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
    ends (EOF), instead of a lock and a shared pipe that hang everyone else.

    A worker says when it is ready (started and warmed up): only then is it given calls, so
    that whoever asks can do the first calls itself meanwhile (:meth:`map`'s ``here``)."""

    def __init__(self, processes: list[BaseProcess], connections: list[Connection]) -> None:
        self._processes = processes
        self._connections = connections
        self._ready = [False] * len(connections)

    def ready(self) -> list[bool]:
        """Per worker: whether it has said it is ready (warmed up)."""
        return list(self._ready)

    def map(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        ahead: int = 3,
        here: Callable[[T], R] | None = None,
        beside: bool = True,
    ) -> Iterator[tuple[T, R]]:
        """``(item, fn(item))`` for each item, in order; up to ``ahead`` calls queued per ready
        worker. With ``here`` (``fn`` as this process calls it), this process computes the
        next items itself, up to ``ahead`` of them held, whenever the result due next is not
        ready (workers starting, or busy): no core waits while another has work. With
        ``beside`` False, only until a worker is ready: for a caller whose own work on each
        result is short and whose next result must not wait for a whole item made here (a
        database server that parses what the caller sends idles meanwhile).
        Raises BrokenProcessPool when a worker dies, and what ``fn`` raised."""
        pending: deque[_Pending[T, R]] = deque()
        in_flight = [0] * len(self._connections)
        feed = _Feed(items)
        while True:
            self._check_ready()
            while not feed.done and (worker := self._least_busy(in_flight, ahead)) is not None:
                if (item := feed.next()) is _END:
                    break
                self._send(worker, (fn, item))
                in_flight[worker] += 1
                pending.append(_Pending(item, worker))
            if not pending and feed.done:
                return
            head = pending[0] if pending else None
            if (
                head is not None
                and head.worker is not None
                and not head.done
                and self._has_result(head.worker)
            ):
                in_flight[head.worker] -= 1
                head.take(self._receive(head.worker))
            if head is not None and head.done:
                pending.popleft()
                yield head.item, cast(R, head.result)
                continue
            held = sum(1 for p in pending if p.worker is None)
            if (
                here is not None
                and not feed.done
                and (head is None or held < ahead)
                and (beside or not any(self._ready))
            ):
                if (item := feed.next()) is not _END:
                    with collector_paused():
                        result = here(item)
                    pending.append(_Pending(item, None, True, result))
                continue
            self._wait(None if head is None else head.worker)

    def _least_busy(self, in_flight: list[int], ahead: int) -> int | None:
        """The ready worker with the fewest calls queued, if it has room for one more."""
        ready = [w for w, is_ready in enumerate(self._ready) if is_ready]
        if not ready:
            return None
        worker = min(ready, key=in_flight.__getitem__)
        return worker if in_flight[worker] < ahead else None

    def _check_ready(self) -> None:
        """Take the "ready" of each worker that has sent it since the last look."""
        for worker, connection in enumerate(self._connections):
            if not self._ready[worker] and self._poll(connection):
                self._take_ready(worker)

    def _take_ready(self, worker: int) -> None:
        if self._recv(worker) != _READY:  # a worker's first message is its "ready"
            raise _broken()
        self._ready[worker] = True

    def _has_result(self, worker: int | None) -> bool:
        return worker is not None and self._ready[worker] and self._poll(self._connections[worker])

    def _poll(self, connection: Connection) -> bool:
        try:
            return connection.poll()
        except (EOFError, OSError):
            raise _broken() from None

    def _wait(self, worker: int | None) -> None:
        """Until ``worker``'s result or another worker's "ready" arrives; a worker's death
        raises BrokenProcessPool."""
        waited = [c for w, c in enumerate(self._connections) if w == worker or not self._ready[w]]
        sentinels = [process.sentinel for process in self._processes]
        ready = multiprocessing.connection.wait([*waited, *sentinels])
        if not any(connection in ready for connection in waited):  # a worker's sentinel
            raise _broken()

    def _send(self, worker: int, call: object) -> None:
        try:
            self._connections[worker].send(call)
        except OSError:  # the worker is gone (EPIPE)
            raise _broken() from None

    def _receive(self, worker: int) -> Any:
        """``worker``'s next result (it has sent "ready" already)."""
        while True:
            connection = self._connections[worker]
            if self._poll(connection):
                ok, value = self._recv(worker)
                if not ok:
                    raise value
                return value
            self._wait(worker)

    def _recv(self, worker: int) -> Any:
        try:
            return self._connections[worker].recv()
        except (EOFError, OSError):  # died while sending: a torn message, then EOF
            raise _broken() from None


@dataclass
class _Pending(Generic[T, R]):
    """An item of :meth:`Pool.map`: at a worker, or computed here (``worker`` None)."""

    item: T
    worker: int | None
    done: bool = False
    result: R | None = None

    def take(self, result: R) -> None:
        self.result, self.done = result, True


class _Feed(Generic[T]):
    """The items still to hand out."""

    def __init__(self, items: Iterable[T]) -> None:
        self._items = iter(items)
        self.done = False

    def next(self) -> T:
        """The next item, or ``_END`` (then ``done``)."""
        item = next(self._items, _END)
        self.done = item is _END
        return item


#: A worker's first message: started, warmed up, ready for calls.
_READY = "ready"


_END: Any = object()


def _broken() -> BrokenProcessPool:
    return BrokenProcessPool("a worker process terminated abruptly")


@contextlib.contextmanager
def pool(count: int, warm: str, *args: Any) -> Iterator[Pool]:
    """``count`` processes, started at once; each calls ``warm`` ("module:function") with
    ``args`` when it starts. After an error or an interrupt in the block they are killed
    (they hold no data of their own), and so are those still starting (a short run may end
    before they are ready); the others are told to exit, and killed if they have not within
    a few seconds."""
    context = multiprocessing.get_context("spawn")
    processes: list[BaseProcess] = []
    connections: list[Connection] = []
    started: Pool | None = None
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
        started = Pool(processes, connections)
        yield started
        failed = False
    finally:
        for connection in connections:  # a worker waiting for a call reads EOF and exits
            connection.close()
        deadline = time.monotonic() + (0 if failed else _EXIT_SECONDS)
        ready = started.ready() if started else [False] * len(processes)
        for process, is_ready in zip(processes, ready, strict=True):
            process.join(max(0.0, deadline - time.monotonic()) if is_ready else 0)
            if process.is_alive():
                process.kill()
                process.join()
            process.close()


_EXIT_SECONDS = 5.0


def _serve(connection: Connection, parent: int, warm: str, *args: Any) -> None:
    """A worker's life: :func:`init`, "ready", then answer calls until the pool closes its
    end. A thread sends the answers, so the next call is worked on while the writer is busy
    with other results and this one waits in the pipe (at most ``ahead`` of them)."""
    init(parent, warm, *args)
    answers: queue.SimpleQueue[bytes | memoryview] = queue.SimpleQueue()
    threading.Thread(target=_send_answers, args=(connection, answers), daemon=True).start()
    answers.put(_dumps(_READY))
    while True:
        try:
            fn, item = connection.recv()
        except (EOFError, OSError):
            # Done: the pool waits for this exit. The interpreter's teardown runs without its
            # last collections over every object it holds (~0.15 s of CPU).
            gc.freeze()
            return
        try:
            with collector_paused():
                answer: tuple[bool, Any] = (True, fn(item))
        except Exception as error:
            answer = (False, error)
        try:
            answers.put(_dumps(answer))
        except Exception as error:  # an answer that does not pickle
            answers.put(_dumps((False, RuntimeError(f"{type(error).__name__}: {error}"))))


def _dumps(message: object) -> bytes | memoryview:
    return ForkingPickler.dumps(message)  # as Connection.send pickles


def _send_answers(connection: Connection, answers: queue.SimpleQueue[bytes | memoryview]) -> None:
    """A worker's sending thread: the answers, in order, until the pool's end is closed."""
    while True:
        try:
            connection.send_bytes(answers.get())
        except (EOFError, OSError):
            return


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection during a call (a batch being made): its rows are tuples and
    strings freed by their reference counts, and the collector's passes over them while they
    are made cost 1.4% of a batch's instructions (valgrind, 2,000 users). Cycles made meanwhile
    are collected after it: the first pass after the call looks at everything it left."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """The objects alive now kept out of the garbage collector's sight until the block ends,
    as a worker's are after its warm-up: the writing process holds SQLAlchemy, Alembic, the
    driver and the factories, and each full collection while it writes (and generates) walks
    them all (~0.05 s of CPU each). Objects someone froze before stay frozen."""
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()


@contextlib.contextmanager
def optional_pool(count: int, warm: str, *args: Any) -> Iterator[Pool | None]:
    """``count`` generating processes, the calling one included (it generates whenever the
    result due next is not ready, see :func:`ordered`): a :func:`pool` of ``count - 1``
    workers, or None for one (the calling process does all the work)."""
    if count <= 1:
        yield None
        return
    with pool(count - 1, warm, *args) as workers:
        yield workers


def ordered(
    workers: Pool | None,
    function: Callable[..., R],
    items: Iterable[T],
    *args: Any,
    beside: bool = True,
) -> Generator[tuple[T, R], None, None]:
    """``(item, function(*args, item))`` for each item, in order; computed by the ``workers``
    when there are some (:meth:`Pool.map`), and here meanwhile, whenever the result due next
    is not ready (with ``beside`` False, only until a worker is ready); else all here."""
    if workers is None:
        for item in items:
            with collector_paused():
                result = function(*args, item)
            yield item, result
        return
    call = functools.partial(function, *args)
    yield from workers.map(call, items, here=call, beside=beside)


def init(parent: int, warm: str, *args: Any) -> None:
    """A worker's first act: follow the parent's death, ignore stop signals, then warm up.

    What the warm-up loaded (the libraries, the row makers) lives as long as the worker: frozen
    out of the garbage collector's sight, so that its collections while generating walk only
    the batch's objects (a few % of a batch's CPU)."""
    exit_with_parent(parent)
    interrupts.ignore()
    module, _, function = warm.partition(":")
    getattr(importlib.import_module(module), function)(*args)
    gc.freeze()


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
