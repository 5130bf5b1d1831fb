"""What Ctrl-C and SIGTERM mean, in one place.

- The command's process takes both as a stop from its first moment (:func:`install`, before
  anything heavy is imported): the stop interrupts whatever it is doing (start-up, a wait for
  the run lock, a migration, generating) by raising KeyboardInterrupt, which the command turns
  into exit 130 and one line.
- While a batch is written (:func:`deferred`) the first stop only asks: the batch in progress
  is rolled back, or, if it has committed, the run stops right after it; a second stop
  interrupts at once.
- Generating workers ignore both (blocked from their start by :func:`spawning`, then
  :func:`ignore`): Ctrl-C on a terminal signals the whole process group, and the writing
  process alone decides what it means.

Signal handlers are the main thread's; elsewhere these functions change nothing.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _State:
    requested = False  # a stop signal arrived
    deferring = 0  # inside deferred(): the first stop only asks
    holding = 0  # inside spawning(): every stop waits for its end
    held = False  # a stop arrived inside spawning()


def _on_stop(_signum: int, _frame: FrameType | None) -> None:
    first = not _State.requested
    _State.requested = True
    if _State.holding:
        _State.held = True
        return
    if not (first and _State.deferring):
        raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> None:
    """Take SIGINT and SIGTERM as a stop for the rest of the process (the command's entry)."""
    if _main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, _on_stop)
        sys.unraisablehook = _stop_where_it_was_lost


def _stop_where_it_was_lost(unraisable: Any) -> None:
    """A stop that landed in code whose exceptions Python ignores (a weakref callback, a
    ``__del__``, e.g. while a module is imported) would be printed as "Exception ignored" and
    lost: deliver it again, to the code that runs next."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _main_thread():
        _State.requested = False  # the same stop, not a second one
        try:
            _redeliver()
        except RuntimeError:  # the interpreter is shutting down: no thread can start
            pass
        return
    sys.__unraisablehook__(unraisable)


def _redeliver() -> None:
    """Deliver a stop again once the code that lost it has returned. Raising SIGINT here would
    run the handler at once, inside the hook, where its KeyboardInterrupt is lost again (and
    printed as "Exception ignored in sys.unraisablehook"); another thread raises it a moment
    later, in the main thread's code that runs then."""
    timer = threading.Timer(0.005, _thread.interrupt_main, args=(signal.SIGINT,))
    timer.daemon = True
    timer.start()


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Take SIGINT and SIGTERM as a stop for the block (a command), then restore the handlers."""
    if not _main_thread():
        yield
        return
    _State.requested = False
    previous = [signal.signal(signum, _on_stop) for signum in STOP_SIGNALS]
    try:
        yield
    finally:
        for signum, handler in zip(STOP_SIGNALS, previous, strict=True):
            signal.signal(signum, handler)
        _State.requested = False


def requested() -> bool:
    """Whether a stop signal has arrived (during :func:`handled`, or since :func:`install`)."""
    return _State.requested


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """For the block, the first stop only asks (:func:`requested`); the block's end then
    raises KeyboardInterrupt. A second stop interrupts at once."""
    asked_before = _State.requested
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1
    if _State.requested and not asked_before:
        raise KeyboardInterrupt


@contextlib.contextmanager
def spawning() -> Iterator[None]:
    """Start processes in the block that cannot be stopped before :func:`ignore` (a blocked
    signal mask survives fork and exec), without losing a stop meant for this process: the
    signals are blocked meanwhile, and one that arrives is taken at the block's end. A stop
    caught just before the block (its handler not run yet, or a stop :func:`_redeliver` sends)
    waits for the block's end too: raised in a process's start, it left the process reading
    half of what it is started with.
    """
    if not _main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    _State.holding += 1
    try:
        yield
    finally:
        _State.holding -= 1
        held, _State.held = _State.held, _State.holding > 0 and _State.held
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked ones: handled now
    if held and not _State.deferring:  # in deferred(), its end raises
        raise KeyboardInterrupt


def ignore() -> None:
    """Ignore SIGINT and SIGTERM from now on: in a generating worker (the writing process
    decides), or in a command that is already stopping."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)  # also drops any that arrived while blocked
    if hasattr(signal, "pthread_sigmask"):  # blocked since spawning() started this process
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
