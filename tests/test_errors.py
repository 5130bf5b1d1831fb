"""What goes wrong around a run, as one line and a documented exit code: a missing driver, a
server that does not answer, a wrong password or role, no right to write, a full disk, a file
that is not a database. Real processes and real servers; the database is checked afterwards.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pickle
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from invoicegen import db, errors, schema, settings, urls
from invoicegen.errors import ConnectionFailed, InvoicegenError, SchemaStateError, UsageError
from invoicegen.seeding import SeedPlan, seed
from tests.helpers import (
    AS_OF,
    SEED,
    SERVER_URLS,
    admin_engine,
    assert_one_line_error,
    assert_whole_trees,
    cli,
    invoke,
    one_line_error,
    require_server,
    run,
    seed_args,
)
from tests.invariants import scalar

REPO = Path(__file__).resolve().parent.parent

# --- a missing driver -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("postgresql://u@127.0.0.1:5432/x", "psycopg", "postgres"),
        ("mysql://u@127.0.0.1:3306/x", "pymysql", "mysql"),
    ],
)
def test_a_missing_driver_gets_an_install_hint(
    url: str, module: str, extra: str, tmp_path: Path
) -> None:
    """The hint fits where invoicegen came from: this test suite runs an editable install of
    the clone, so it names the clone (``.`` from inside it); tests/test_packaging.py checks a
    wheel's hint, ``pip install 'invoicegen[postgres]'``."""
    (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    for cwd, shown in ((tmp_path, str(REPO)), (REPO, "."), (REPO / "tests", str(REPO))):
        process = cli(*seed_args(url, 1), env={"PYTHONPATH": str(tmp_path)}, cwd=cwd)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 4
        assert f"run: pip install -e '{shown}[{extra}]'" in one_line_error(err)


@pytest.mark.parametrize(
    ("url", "module"),
    [
        ("postgresql+psycopg2://u:p%40ss@127.0.0.1:1/x", "psycopg2"),
        ("postgresql+asyncpg://u:p%40ss@127.0.0.1:1/x", "asyncpg"),
        ("mysql+mysqldb://u:p%40ss@127.0.0.1:1/x", "MySQLdb"),
    ],
)
def test_a_driver_the_url_names_that_is_missing_is_exit_4_with_a_way_out(
    url: str, module: str, tmp_path: Path
) -> None:
    """A URL may name a driver of its own (`+psycopg2`); when it is not installed, the line says
    so and names the driver invoicegen installs, as for a missing default driver (it was
    `ModuleNotFoundError: ...`, exit 1)."""
    (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    process = cli(*seed_args(url, 1), env={"PYTHONPATH": str(tmp_path)}, cwd=REPO)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 4, err
    line = one_line_error(err)
    backend = url.split("+", 1)[0]
    assert f"({module}) is not installed" in line and f"{backend}://" in line, line
    assert "run: pip install -e '.[" in line, line
    assert "p@ss" not in err and "p%40ss" not in err


def test_the_install_hint_reads_how_invoicegen_was_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PEP 610's direct_url.json of the real distribution: this suite's editable install."""
    from importlib.metadata import distributions

    monkeypatch.chdir(tmp_path)
    found = [d.read_text("direct_url.json") for d in distributions(name="invoicegen")]
    (recorded,) = [json.loads(text) for text in found if text]
    assert recorded["dir_info"] == {"editable": True}
    assert db.install_command("postgres") == f"pip install -e '{REPO}[postgres]'"


# --- a server that does not answer, a wrong password or role ----------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_an_unreachable_server_fails_within_the_connect_timeout(
    scheme: str, silent_server: int
) -> None:
    started = time.monotonic()
    process = cli(*seed_args(f"{scheme}://u:p%40ss@127.0.0.1:{silent_server}/x", 1, "--json"))
    out, err = process.communicate(timeout=60)
    assert time.monotonic() - started < db.CONNECT_TIMEOUT_SECONDS + 10
    assert process.returncode == 4
    assert "127.0.0.1" in one_line_error(err)
    assert json.loads(out)["error"]["code"] == 4  # --json: the error document
    assert "p@ss" not in out + err and "p%40ss" not in out + err


PASSWORD = "p@ss%w/rd:9"  # every character a URL treats specially


WRONG = "wr@ng%pa/ss:1"


@pytest.fixture
def mariadb_account(mariadb_url: str) -> Iterator[tuple[str, str]]:
    """A MariaDB user with a password full of URL specials, and a database it may use."""
    user = f"ig_{uuid.uuid4().hex[:8]}"
    name = urls.parse(mariadb_url).database
    admin = admin_engine("mariadb")
    with admin.connect() as connection:
        connection.execute(
            sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY :password"), {"password": PASSWORD}
        )
        connection.execute(sa.text(f"GRANT ALL ON {name}.* TO '{user}'@'%'"))
    try:
        yield mariadb_url, user
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP USER '{user}'@'%'"))
        admin.dispose()


def test_wrong_password_with_url_specials_exits_4_everywhere_without_it(
    mariadb_account: tuple[str, str],
) -> None:
    database, user = mariadb_account
    url = urls.parse(database).set(username=user)
    right = invoke(*seed_args(url.set(password=PASSWORD).render_as_string(False), 2), "--json")
    assert right.exit_code == 0, right.stderr  # the specials are encoded and decoded right
    wrong = invoke(*seed_args(url.set(password=WRONG).render_as_string(False), 2), "--json")
    line = assert_one_line_error(wrong, 4)
    assert "Access denied" in line and line.endswith("(MySQL error 1045)"), line  # no tuple
    assert json.loads(wrong.stdout) == {"error": {"code": 4, "message": line[len("error: ") :]}}
    for secret in (WRONG, "wr@ng", "%40", "pa/ss", PASSWORD):
        assert secret not in wrong.output


@pytest.mark.servers
def test_unknown_postgresql_role_exits_4_without_the_password() -> None:
    require_server("postgresql")
    url = urls.parse(SERVER_URLS["postgresql"]).set(username="no_such_role", password=WRONG)
    result = invoke(*seed_args(url.render_as_string(False), 1), "--json")
    line = assert_one_line_error(result, 4)
    assert "no_such_role" in line
    assert json.loads(result.stdout) == {"error": {"code": 4, "message": line[len("error: ") :]}}
    for secret in (WRONG, "wr@ng", "pa/ss"):
        assert secret not in result.output


@pytest.mark.servers
@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
@pytest.mark.parametrize("command", ["migrate", "seed", "stats"])
def test_a_missing_database_says_how_to_create_it(kind: str, command: str) -> None:
    require_server(kind)
    name = f"ig_missing_{uuid.uuid4().hex[:10]}"
    url = urls.parse(SERVER_URLS[kind]).set(database=name).render_as_string(False)
    result = invoke(command, "-d", url, *(["-n", "1"] if command == "seed" else []))
    line = assert_one_line_error(result, 4)
    assert f"database {name} does not exist" in line, line
    assert f"CREATE DATABASE {name}" in line, line
    if kind == "postgresql":
        query = "SELECT COUNT(*) FROM pg_database WHERE datname = %(name)s"
    else:
        query = "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = %(name)s"
    engine = admin_engine(kind)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql(query, {"name": name}).scalar() == 0
    finally:
        engine.dispose()


# --- no right to write ------------------------------------------------------------------------


def test_a_read_only_sqlite_file_is_left_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "readonly.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.execute("INSERT INTO notes VALUES (1, 'keep')")
    connection.close()
    path.chmod(0o444)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    command = [sys.executable, "-m", "invoicegen", *seed_args(f"sqlite:///{path}", 2)]
    if os.geteuid() == 0:  # root writes anything: drop the capability that lets it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        command = ["setpriv", "--bounding-set=-dac_override", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 4, done.stderr
    assert "cannot write" in one_line_error(done.stderr)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["readonly.db"]


def test_a_postgresql_role_without_write_rights_creates_nothing(postgresql_url: str) -> None:
    database = postgresql_url
    role = f"ig_reader_{uuid.uuid4().hex[:8]}"
    admin = admin_engine("postgresql")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    with db.make_engine(database).begin() as connection:  # PostgreSQL < 15 grants it to all
        connection.exec_driver_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    try:
        url = urls.parse(database).set(username=role).render_as_string(False)
        process = cli(*seed_args(url, 2))
        _, err = process.communicate(timeout=60)
        assert process.returncode == 4
        assert "permission denied" in one_line_error(err)
        assert sa.inspect(db.make_engine(database)).get_table_names() == []
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


# --- a full disk ------------------------------------------------------------------------------


def test_a_full_sqlite_database_keeps_whole_trees_and_integrity(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(sqlite_url)
    schema.upgrade(engine)

    def disk_is_almost_full(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA max_page_count = 80")

    sa.event.listen(engine, "connect", disk_is_almost_full)
    engine.dispose()  # later connections see the small "disk"
    plan = SeedPlan(users=5_000, seed=SEED, as_of=dt.date.fromisoformat(AS_OF), batch_size=20)
    with pytest.raises(InvoicegenError, match="full"):
        seed(engine, plan)
    reader = db.make_engine(sqlite_url)
    assert scalar(reader, "PRAGMA integrity_check") == "ok"
    assert 0 < assert_whole_trees(reader, tmp_path) < 5_000


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs (needs root, or a mount namespace); skipped where it cannot be made."""
    mountpoint = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_a_full_disk_says_disk_full_and_exits_1(tiny_filesystem: Path) -> None:
    path = tiny_filesystem / "full.db"
    done = run("seed", "-n", "20000", "--batch-size", "50", "--workers", "1", "-q",
               "-d", f"sqlite:///{path}")  # fmt: skip
    assert done.returncode == 1, done.stderr
    line = one_line_error(done.stderr)
    assert "disk full" in line and str(path) in line
    assert "cannot connect" not in line
    assert scalar(db.make_engine(f"sqlite:///{path}"), "PRAGMA integrity_check") == "ok"


# --- a file that is not a database ------------------------------------------------------------


@pytest.mark.parametrize("command", [["stats"], ["stats", "--check"], ["seed", "-n", "1"]])
def test_a_file_that_is_not_sqlite_is_named_as_such_and_left_alone(
    command: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 20)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    line = assert_one_line_error(invoke(*command, "-d", f"sqlite:///{path}"), 4)
    assert f"{path} is not an SQLite database" in line
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_sqlalchemy_sees_the_same_file_as_not_a_database(tmp_path: Path) -> None:
    # The fault above is the driver's own verdict, not a guess from the file's name.
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 20)
    with pytest.raises(sa.exc.DatabaseError, match="not a database"):
        with sa.create_engine(f"sqlite:///{path}").connect() as connection:
            connection.exec_driver_sql("SELECT * FROM sqlite_master")


# --- errors carry their parts as data ----------------------------------------------------------


def test_a_bad_url_names_the_option_apart_from_the_problem() -> None:
    with pytest.raises(UsageError) as caught:
        urls.parse("nosuch://db")
    error = caught.value
    assert error.option == "--database-url"
    assert error.problem.startswith("unsupported or malformed URL (scheme 'nosuch')")
    assert str(error) == f"--database-url: {error.problem}"


def test_a_bad_value_from_the_environment_says_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        settings.resolve({}, cwd=tmp_path, environ={"INVOICEGEN_SEED": "many"})
    error = caught.value
    assert error.source == "environment INVOICEGEN_SEED"
    assert error.option is not None and error.option in str(error)
    assert str(error) == f"{error.source}: {error.option}: {error.problem}"


def test_a_database_error_carries_the_masked_database() -> None:
    url = "postgresql://someone:s3cret-pw@127.0.0.1:1/nowhere"
    engine = db.make_engine(url)
    try:
        with pytest.raises(ConnectionFailed) as caught, db.connect(engine):
            pass
    finally:
        engine.dispose()
    assert caught.value.database == urls.mask(engine.url)
    assert "s3cret-pw" not in caught.value.database
    assert caught.value.database in str(caught.value)


def test_a_schema_newer_than_this_invoicegen_carries_its_revision(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    try:
        schema.upgrade(engine)
        with db.connect(engine) as connection:
            connection.exec_driver_sql(f"UPDATE {schema.VERSION_TABLE} SET version_num = 'f00d'")
        with pytest.raises(SchemaStateError) as caught, db.connect(engine) as connection:
            schema.inspect_schema(connection)
    finally:
        engine.dispose()
    assert caught.value.revision == "f00d"
    assert caught.value.database == urls.mask(engine.url)


def test_the_data_survives_the_trip_between_processes() -> None:
    error = errors.FactoryValueError("expected a count", option="user_count", source="a file")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is errors.FactoryValueError
    assert (copy.problem, copy.option, copy.source) == ("expected a count", "user_count", "a file")
    assert str(copy) == str(error) == "a file: user_count: expected a count"
