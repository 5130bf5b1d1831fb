"""Run locks: one invoicegen run at a time per database (and one per shard), per dialect.

PostgreSQL: session advisory locks; MariaDB/MySQL: ``GET_LOCK``; SQLite: ``flock`` on the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import SQLAlchemyError

from invoicegen.db import LOCK_TIMEOUT_SECONDS, database_errors, schema_of
from invoicegen.errors import LockTimeout, WriteDenied
from invoicegen.urls import mask, sqlite_path

if sys.platform != "win32":
    import fcntl

# lock -> the thread holding it, so that services nested in one run do not wait on themselves
_LOCK_HOLDERS: dict[str, int] = {}
_PG_LOCK_KEY = int.from_bytes(b"invoiceg", "big")  # one advisory-lock key per database


@contextlib.contextmanager
def run_lock(
    engine: Engine, *, timeout: float = LOCK_TIMEOUT_SECONDS, name: str = ""
) -> Iterator[None]:
    """One invoicegen run at a time per database: hold the lock for the block.

    PostgreSQL: a session advisory lock; MariaDB/MySQL: ``GET_LOCK`` on a name of the database;
    SQLite: ``flock`` on the file. The server or the OS releases it when the process dies, even
    by ``kill -9``. Waits up to ``timeout`` seconds, then raises :class:`LockTimeout`.
    Re-entrant within a thread. ``name`` picks another lock of the same database on the
    servers (a shard's own); SQLite has the one lock.
    """
    if engine.url.get_backend_name() == "sqlite":
        name = ""
    key = f"{mask(engine.url)}#{schema_of(engine)}#{name}"
    if _LOCK_HOLDERS.get(key) == threading.get_ident():
        yield
        return
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        lock = _file_lock(engine, timeout)
    else:
        lock = _server_lock(engine, timeout, name)
    with lock:
        _LOCK_HOLDERS[key] = threading.get_ident()
        try:
            yield
        finally:
            del _LOCK_HOLDERS[key]


def lock_is_free(engine: Engine, name: str) -> bool:
    """Whether nobody holds the server lock ``name`` now (a run that holds it is alive)."""
    try:
        with _server_lock(engine, 0, name):
            return True
    except LockTimeout:
        return False


def wait_for(try_lock: Callable[[], Any], url: URL, timeout: float) -> None:
    """Call ``try_lock`` until it returns true; after ``timeout`` seconds raise LockTimeout."""
    deadline = time.monotonic() + timeout
    while not try_lock():
        if time.monotonic() >= deadline:
            raise LockTimeout(
                f"another invoicegen run is using {mask(url)}; gave up waiting after "
                f"{timeout:g} s (raise --lock-timeout to wait longer)",
                database=mask(url),
            )
        time.sleep(0.2)


@contextlib.contextmanager
def _server_lock(engine: Engine, timeout: float, name: str = "") -> Iterator[None]:
    if engine.url.get_backend_name() == "postgresql":
        take, release = "SELECT pg_try_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"
        key = _PG_LOCK_KEY
        schema = schema_of(engine)
        if name or schema:  # advisory locks are per database: a key per schema and name
            scoped = name if schema is None else f"{schema}#{name}"
            digest = hashlib.blake2b(scoped.encode(), digest_size=8).digest()
            key = int.from_bytes(digest, "big", signed=True)
        params: dict[str, Any] = {"key": key}
    else:  # lock names are server-wide: name the database (with --schema, the schema's)
        take, release = "SELECT GET_LOCK(:key, 0)", "SELECT RELEASE_LOCK(:key)"
        # GET_LOCK names are at most 64 characters: hash, so long names never collide
        lock_name = hashlib.blake2b(f"{engine.url.database}:{name}".encode(), digest_size=20)
        params = {"key": f"invoicegen:{lock_name.hexdigest()}"}
    with database_errors(engine.url, schema=schema_of(engine)), engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        wait_for(lambda: connection.execute(sa.text(take), params).scalar(), engine.url, timeout)
        try:
            yield
        finally:
            # A connection that broke during the run has lost its session, and the lock with it.
            with contextlib.suppress(SQLAlchemyError):
                connection.execute(sa.text(release), params)


@contextlib.contextmanager
def _file_lock(engine: Engine, timeout: float) -> Iterator[None]:
    path = sqlite_path(engine.url)
    if path is None or sys.platform == "win32":  # in memory, or no flock: the busy timeout only
        yield
        return
    try:
        # An empty file is an empty SQLite database; SQLite ignores flock locks.
        descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError as exc:
        raise WriteDenied(f"cannot open {mask(engine.url)}: {exc.strerror}") from None

    def try_lock() -> bool:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        wait_for(try_lock, engine.url, timeout)
        yield
    finally:
        # Closing a descriptor drops the process's POSIX locks on the file, SQLite's too: this
        # runs after the block, when no transaction of this run is open any more.
        os.close(descriptor)
