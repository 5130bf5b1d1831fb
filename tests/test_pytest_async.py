"""invoicegen_async_session and the factories' create_async, from the outside: pytest-asyncio
suites written as a user would, run by pytester against each of the three databases."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from invoicegen import db, schema
from invoicegen.factories import UserFactory, session_bound
from invoicegen.models import User
from tests.helpers import assert_lost_isolation_fails_and_leaks_nothing

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.usefixtures("plugin_environment")

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
ASYNC_EXAMPLE = re.compile(r"<!-- async-example: (\w+\.py) -->\n```python\n(.*?)```", re.DOTALL)

ASYNC_MODULE = r"""
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from invoicegen.errors import FactoryValueError
from invoicegen.models import Client, Contract, Invoice, User


async def count(session, model):
    return await session.scalar(sa.select(sa.func.count()).select_from(model))


async def rename_user(session: AsyncSession, user_id: int, name: str) -> User:  # the app's code
    user = await session.get_one(User, user_id)
    user.name = name
    await session.commit()
    return user


@pytest.mark.asyncio
async def test_a_tree_through_the_async_session(invoicegen_async_session, user_factory):
    user = await user_factory.create_async(
        clients=2, clients__contracts=1, clients__contracts__invoices=3
    )
    assert user in invoicegen_async_session.sync_session and user.id is not None
    assert await count(invoicegen_async_session, Invoice) == 6
    assert (await rename_user(invoicegen_async_session, user.id, "Ada")).name == "Ada"


@pytest.mark.asyncio
async def test_rows_of_the_previous_test_are_gone(invoicegen_async_session):
    for model in (User, Client, Contract, Invoice):
        assert await count(invoicegen_async_session, model) == 0


@pytest.mark.asyncio
async def test_commit_and_rollback(invoicegen_async_session, isolated_user_factory):
    await isolated_user_factory.create_async(email="committed@example.com")
    await invoicegen_async_session.commit()
    invoicegen_async_session.add(isolated_user_factory.build(email="committed@example.com"))
    with pytest.raises(IntegrityError):
        await invoicegen_async_session.commit()
    await invoicegen_async_session.rollback()
    assert await count(invoicegen_async_session, User) == 1
    batch = await isolated_user_factory.create_batch_async(3)
    await invoicegen_async_session.commit()
    assert len(batch) == 3 and await count(invoicegen_async_session, User) == 4


@pytest.mark.asyncio
async def test_committed_rows_are_gone_too(invoicegen_async_session, user_factory):
    assert await count(invoicegen_async_session, User) == 0
    with pytest.raises(FactoryValueError, match=r"await UserFactory\.create_async\(\.\.\.\)"):
        user_factory.create()


def test_a_sync_test_beside_them_sees_nothing_either(invoicegen_session, user_factory):
    assert invoicegen_session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
    assert user_factory.create(clients=1).clients[0].id is not None
"""

LEAK_MODULE = """
import pytest
import sqlalchemy as sa

from invoicegen.models import User

pytestmark = pytest.mark.asyncio


async def test_code_that_ends_the_transaction(invoicegen_async_session, isolated_user_factory):
    await isolated_user_factory.create_batch_async(3)
    await invoicegen_async_session.execute(sa.text({statement!r}))
    await isolated_user_factory.create_async()
    await invoicegen_async_session.commit()


async def test_the_next_test_sees_nothing_leaked(invoicegen_async_session):
    users = sa.select(sa.func.count()).select_from(User)
    assert await invoicegen_async_session.scalar(users) == 0
    tables = await invoicegen_async_session.run_sync(
        lambda session: sa.inspect(session.connection()).get_table_names()
    )
    assert "leak_t" not in tables
"""


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one())


def _assert_empty(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        assert all(n == 0 for n in schema.count_rows(connection).values())
    assert _count(engine, "invoicegen_meta") == 0  # the isolation guard's sentinels too


def test_async_suites_roll_back_every_test_even_one_that_commits(
    pytester: pytest.Pytester, database_url: str, engine: sa.Engine
) -> None:
    pytester.makepyfile(test_async_app=ASYNC_MODULE)
    for _run in range(2):
        result = pytester.runpytest("-p", "no:cacheprovider", "--invoicegen-db-url", database_url)
        result.assert_outcomes(passed=5)
        _assert_empty(engine)


def test_the_readmes_async_example_passes(
    pytester: pytest.Pytester, database_url: str, engine: sa.Engine
) -> None:
    examples = dict(ASYNC_EXAMPLE.findall(README.read_text("utf-8")))
    assert list(examples) == ["test_invoice_repository.py"]
    code = examples["test_invoice_repository.py"]
    tests = len(re.findall(r"^async def test_", code, re.MULTILINE))
    assert tests >= 3 and "create_async(" in code and "commit()" in code
    pytester.makepyfile(test_invoice_repository=code)
    for _run in range(2):
        result = pytester.runpytest("-p", "no:cacheprovider", "--invoicegen-db-url", database_url)
        result.assert_outcomes(passed=tests)
        _assert_empty(engine)


def test_async_code_that_ends_the_isolation_fails_and_leaks_nothing(
    pytester: pytest.Pytester, database_url: str, engine: sa.Engine
) -> None:
    assert_lost_isolation_fails_and_leaks_nothing(pytester, database_url, engine, LEAK_MODULE)


MISSING_DRIVER_CONFTEST = """
import sys

sys.modules["aiosqlite"] = None  # as if invoicegen[async] were not installed
"""


def test_a_missing_async_driver_fails_in_one_line_naming_the_extra(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(MISSING_DRIVER_CONFTEST)
    pytester.makepyfile(
        test_needs_async="""
        import pytest

        @pytest.mark.asyncio
        async def test_it(invoicegen_async_session):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "invoicegen: invoicegen_async_session: the asyncio driver for sqlite "
            f"(aiosqlite) is not installed; run: pip install -e '{REPO}[async]'"
        ]
    )
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///tests.db", "sqlite+aiosqlite:///tests.db"),
        ("postgresql://app:s3cret@db/app", "postgresql+asyncpg://app:s3cret@db/app"),
        ("postgresql+psycopg://app@db/app", "postgresql+asyncpg://app@db/app"),
        ("mysql://root@db:3306/app", "mysql+aiomysql://root@db:3306/app"),
        ("mariadb://root@db/app", "mariadb+aiomysql://root@db/app"),
    ],
)
def test_the_async_url_takes_the_asyncio_driver_of_its_backend(url: str, expected: str) -> None:
    assert db.async_url(url).render_as_string(hide_password=False) == expected


def test_create_async_with_a_plain_session_creates_directly(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    schema.upgrade(engine)
    with Session(engine) as session, session_bound(session):
        user = asyncio.run(UserFactory.create_async(clients=2))
        assert session.get(User, user.id) is user and len(user.clients) == 2
    engine.dispose()


MARKED_ASYNC_MODULE = r"""
import pytest
import sqlalchemy as sa

from invoicegen.models import Invoice, User

pytestmark = [pytest.mark.invoicegen(users=12, seed=5, as_of="2026-03-31"), pytest.mark.asyncio]


async def test_the_async_session_sees_the_seeded_copy(invoicegen_async_session):
    assert await invoicegen_async_session.scalar(sa.select(sa.func.count(User.id))) == 12
    await invoicegen_async_session.execute(sa.delete(Invoice))
    await invoicegen_async_session.commit()


async def test_the_next_sees_it_whole_again(invoicegen_async_session):
    assert await invoicegen_async_session.scalar(sa.select(sa.func.count(User.id))) == 12
    assert await invoicegen_async_session.scalar(sa.select(sa.func.count(Invoice.id))) > 0
"""


def test_under_the_invoicegen_marker_the_async_session_is_on_the_seeded_copy(
    pytester: pytest.Pytester, database_url: str, engine: sa.Engine
) -> None:
    pytester.makepyfile(test_marked_async=MARKED_ASYNC_MODULE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--invoicegen-db-url", database_url)
    result.assert_outcomes(passed=2)
    # The run's own database: never migrated nor written by the marked tests.
    assert not sa.inspect(engine).has_table("users")
