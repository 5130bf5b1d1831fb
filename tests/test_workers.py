"""The generating processes: results in order, and the calling process generating too."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from invoicegen.seeding import workers


def start_when(go: str, started: str) -> None:
    """A worker's warm-up that waits for the file ``go``, then creates ``started``."""
    while not os.path.exists(go):
        time.sleep(0.01)
    Path(started).touch()


def made_by(item: int) -> tuple[int, int]:
    """``item`` and the pid of the process that made it."""
    time.sleep(0.01)
    return item, os.getpid()


def test_the_calling_process_generates_while_a_worker_starts_then_beside_it(
    tmp_path: Path,
) -> None:
    go, started = tmp_path / "go", tmp_path / "started"

    def items() -> Iterator[int]:
        yield from range(5)  # the worker is still starting: these are made here
        go.touch()
        while not started.exists():
            time.sleep(0.01)
        yield from range(5, 200)

    with workers.pool(1, f"{__name__}:start_when", str(go), str(started)) as pool:
        results = list(pool.map(made_by, items(), here=made_by))
    assert [(item, made[0]) for item, made in results] == [(i, i) for i in range(200)]
    makers = [pid for _, (_, pid) in results]
    assert set(makers[:5]) == {os.getpid()}
    assert len(set(makers)) == 2  # then the worker made some too


def test_not_beside_the_calling_process_stops_making_once_a_worker_is_ready(
    tmp_path: Path,
) -> None:
    """What a run writing by COPY or LOAD DATA asks (``beside=False``): the database server
    parses, and the writing process must not make a whole batch while the next one is ready."""
    go, started = tmp_path / "go", tmp_path / "started"

    def items() -> Iterator[int]:
        yield from range(5)  # made here: the worker is still starting
        go.touch()
        while not started.exists():
            time.sleep(0.01)
        yield from range(5, 200)

    with workers.pool(1, f"{__name__}:start_when", str(go), str(started)) as pool:
        results = list(pool.map(made_by, items(), here=made_by, beside=False))
    assert [(item, made[0]) for item, made in results] == [(i, i) for i in range(200)]
    makers = [pid for _, (_, pid) in results]
    here = makers.index(next(pid for pid in makers if pid != os.getpid()))
    assert here >= 5  # made here while the worker started ...
    assert set(makers[here:]) == {makers[here]} != {os.getpid()}  # ... then only by the worker


def test_without_workers_the_calling_process_makes_everything() -> None:
    results = list(workers.ordered(None, made_by, range(3)))
    assert results == [(i, (i, os.getpid())) for i in range(3)]
