"""The async side of invoicegen's pytest plugin: ``invoicegen_async_session``.

For test suites on SQLAlchemy's ``AsyncSession`` (FastAPI-style applications), with
pytest-asyncio. Defined here and made a fixture of the plugin by ``pytest_plugin``'s import,
so ``-p no:invoicegen`` turns it off too. Needs ``pip install 'invoicegen[async]'`` (aiosqlite,
asyncpg, aiomysql): the fixture connects to the plugin's test database through the asyncio
driver of its backend (``sqlite+aiosqlite``, ``postgresql+asyncpg``, ``mysql+aiomysql``).

Its semantics are ``invoicegen_session``'s: one connection per test inside a transaction that
is rolled back after the test, the session joined to it with SAVEPOINTs (so the code under
test may ``await session.commit()``), the same guard when the code under test ends that
transaction, and every factory bound to it: ``await user_factory.create_async(clients=2)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

ASYNC_SESSION = "invoicegen_async_session"


def _async_fixture() -> Callable[[Any], Any]:
    """pytest-asyncio's fixture decorator (its strict mode runs only the async fixtures it
    marked); plain ``pytest.fixture`` when it is not installed."""
    try:
        import pytest_asyncio
    except ImportError:
        return pytest.fixture
    return pytest_asyncio.fixture


@_async_fixture()
async def invoicegen_async_session(_invoicegen_isolation: Any) -> AsyncIterator[AsyncSession]:
    """An ``AsyncSession`` whose every write is undone after the test, commits included.

    Its connection (this test's database, the seeded copy under the invoicegen marker, through
    the backend's asyncio driver) is inside a transaction rolled back after the test; the
    session works in SAVEPOINTs of it, so the code under test may ``await session.commit()``
    and ``rollback()``. The factories create through it:
    ``await user_factory.create_async(clients=2)``.
    """
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.ext.asyncio import AsyncSession

    from invoicegen.db import make_async_engine
    from invoicegen.errors import InvoicegenError
    from invoicegen.factories import session_bound

    try:
        engine = make_async_engine(_invoicegen_isolation.engine.url)
    except InvoicegenError as exc:
        raise pytest.fail.Exception(f"invoicegen: {ASYNC_SESSION}: {exc}", pytrace=False) from None
    try:
        async with engine.connect() as connection:
            guard = await connection.run_sync(_invoicegen_isolation.begin)
            try:
                session = AsyncSession(
                    bind=connection,
                    join_transaction_mode="create_savepoint",
                    expire_on_commit=False,  # as SQLAlchemy advises: no implicit I/O after commit
                )
                try:
                    with session_bound(session.sync_session):
                        yield session
                finally:
                    await session.close()
            except SQLAlchemyError:  # e.g. "SAVEPOINT sa_savepoint_1 does not exist": say why
                if not guard.lost():
                    raise
            finally:
                await connection.run_sync(lambda _: _invoicegen_isolation.end(guard))
    finally:
        await engine.dispose()
    guard.fail_if_cleaned()
