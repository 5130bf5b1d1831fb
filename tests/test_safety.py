"""Issue 5, "safe by default": guarded reset, protected databases, schema guards, faults.

Interrupts and concurrent runs use real `python -m invoicegen` processes and real signals;
the result is always checked by SQL on the database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pty
import shutil
import signal
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

from invoicegen import db
from invoicegen.errors import InvoicegenError
from invoicegen.seeding import TABLES, SeedPlan, seed
from tests.conftest import SERVER_URLS, _admin, fresh_database, require_server
from tests.invariants import children_range, dump, scalar, violations
from tests.test_cli import _assert_one_line_error, invoke

AS_OF = "2026-03-31"
SEED = 5


# --- helpers ---------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
    """`python -m invoicegen ARGS` as a real process."""
    return subprocess.Popen(
        [sys.executable, "-m", "invoicegen", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        **popen,
    )


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def users_in(url: str) -> int:
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            if "users" not in sa.inspect(connection).get_table_names():
                return 0
            return int(connection.exec_driver_sql("SELECT COUNT(*) FROM users").scalar_one())
    finally:
        engine.dispose()


def wait_for_users(url: str, at_least: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while users_in(url) < at_least:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the seeding process committed nothing in time"
        time.sleep(0.05)


def interrupted_seed(url: str, signum: signal.Signals) -> tuple[subprocess.Popen[str], str, str]:
    """A long seed, sent ``signum`` once it has committed a few batches; (process, out, err)."""
    process = cli(*seed_args(url, 20_000, "--batch-size", "20", "--json"))
    wait_for_users(url, 60, process)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    return process, out, err


def table_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return db.count_rows(connection)


def assert_whole_trees(engine: sa.Engine, tmp_path: Path, *, seed_value: int = SEED) -> int:
    """The database holds exactly the first N user trees of the plan, each whole."""
    users = scalar(engine, "SELECT COUNT(*) FROM users")
    reference = db.make_engine(f"sqlite:///{tmp_path / f'reference-{uuid.uuid4().hex}.db'}")
    plan = SeedPlan(users=users, seed=seed_value, as_of=dt.date.fromisoformat(AS_OF))
    assert table_counts(engine) == seed(reference, plan).counts
    for table in TABLES:
        assert (scalar(engine, f"SELECT MAX(id) FROM {table}") or 0) == scalar(
            engine, f"SELECT COUNT(*) FROM {table}"
        ), table
    if users:
        assert children_range(engine, "users", "clients", "user_id")[0] >= 1
        assert children_range(engine, "clients", "contracts", "client_id")[0] >= 1
        assert children_range(engine, "contracts", "invoices", "contract_id")[0] >= 1
    as_of = dt.date.fromisoformat(AS_OF)
    assert violations(engine, as_of) == dict.fromkeys(violations(engine, as_of), 0)
    return int(users)


def seed_args(
    url: str, users: int, *extra: str, seed_value: int = SEED, workers: int = 1
) -> list[str]:
    return [
        "seed",
        "-n",
        str(users),
        "--seed",
        str(seed_value),
        "--as-of",
        AS_OF,
        "--workers",
        str(workers),
        "-q",
        "-d",
        url,
        *extra,
    ]


def snapshot(engine: sa.Engine, tables: list[str]) -> dict[str, Any]:
    """Columns and rows of some tables, to prove they were not touched."""
    inspector = sa.inspect(engine)
    with engine.connect() as connection:
        return {
            table: (
                [(c["name"], str(c["type"])) for c in inspector.get_columns(table)],
                connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY 1").all(),
            )
            for table in tables
        }


def add_foreign_tables(engine: sa.Engine) -> list[str]:
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE app_orders (id INTEGER PRIMARY KEY, note VARCHAR(20))"
        )
        connection.exec_driver_sql("INSERT INTO app_orders VALUES (1, 'keep me'), (2, 'me too')")
        connection.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('hostapp123')")
    return ["alembic_version", "app_orders"]


# --- reset --------------------------------------------------------------------------------------


def test_reset_prints_the_target_before_acting_without_the_password(database_url: str) -> None:
    url = db.parse_url(database_url)
    if url.get_backend_name() == "postgresql":  # trust authentication ignores the password
        url = url.set(password="s3cr3t@pw")
    shown = url.render_as_string(hide_password=False)
    invoke(*seed_args(shown, 2), "--json")
    result = invoke("reset", "--yes", "-d", shown)
    assert result.exit_code == 0, result.stderr
    target = result.stderr.strip().splitlines()[0]
    assert target.startswith("target: " + url.get_backend_name())
    assert db.confirmation_name(url) in target
    if url.host:
        assert url.host in target
    assert "s3cr3t" not in result.output
    assert users_in(database_url) == 0


def test_reset_dry_run_lists_row_counts_and_changes_nothing(database_url: str) -> None:
    invoke(*seed_args(database_url, 4), "--json")
    engine = db.make_engine(database_url)
    counts = table_counts(engine)
    result = invoke("reset", "--dry-run", "-d", database_url)
    assert result.exit_code == 0, result.stderr
    rows = {
        cells[0]: cells[1]
        for line in result.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip("│┃ ").split("│")]) == 2
    }
    for table, count in counts.items():
        assert rows[table] == f"{count:,}"
    assert db.VERSION_TABLE in rows
    assert table_counts(engine) == counts


def test_reset_on_a_terminal_asks_for_the_database_name(sqlite_url: str) -> None:
    invoke(*seed_args(sqlite_url, 3), "--json")
    for answer, code, users in (("something-else", 3, 3), ("invoicegen-test.db", 0, 0)):
        controller, terminal = pty.openpty()
        process = cli("reset", "-d", sqlite_url, stdin=terminal)
        os.close(terminal)
        os.write(controller, f"{answer}\n".encode())
        out, err = process.communicate(timeout=60)
        os.close(controller)
        assert process.returncode == code, err
        assert "invoicegen-test.db to confirm" in err
        assert users_in(sqlite_url) == users
    assert "dropped" in out


def test_reset_refuses_tables_it_did_not_create(database_url: str) -> None:
    engine = db.make_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, login VARCHAR(20))")
        connection.exec_driver_sql("INSERT INTO users VALUES (1, 'alice')")
    foreign = add_foreign_tables(engine) + ["users"]
    before = snapshot(engine, foreign)
    line = _assert_one_line_error(invoke("reset", "--yes", "-d", database_url), 5)
    assert "not created by invoicegen" in line
    assert snapshot(engine, foreign) == before
    assert set(sa.inspect(engine).get_table_names()) == set(foreign)


def test_a_protected_database_needs_the_named_override(database_url: str) -> None:
    engine = db.make_engine(database_url)
    invoke(*seed_args(database_url, 3), "--json")
    assert invoke("protect", "-d", database_url).exit_code == 0
    name = db.confirmation_name(engine.url)

    line = _assert_one_line_error(invoke("reset", "--yes", "-d", database_url), 3)
    assert f"--force-protected {name}" in line
    wrong = invoke("reset", "--yes", "--force-protected", "other_db", "-d", database_url)
    _assert_one_line_error(wrong, 3)
    assert users_in(database_url) == 3

    forced = invoke("reset", "--yes", "--force-protected", name, "-d", database_url)
    assert forced.exit_code == 0, forced.stderr
    assert users_in(database_url) == 0
    invoke(*seed_args(database_url, 2), "--json")
    _assert_one_line_error(invoke("reset", "--yes", "-d", database_url), 3)  # still protected

    assert invoke("unprotect", "-d", database_url).exit_code == 0
    assert invoke("reset", "--yes", "-d", database_url).exit_code == 0
    assert users_in(database_url) == 0


def test_protect_is_stored_in_invoicegen_meta(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    invoke("protect", "-d", sqlite_url)
    assert scalar(engine, "SELECT COUNT(*) FROM invoicegen_meta WHERE key = 'protected'") == 1
    dry = invoke("reset", "--dry-run", "-d", sqlite_url)
    assert dry.exit_code == 0 and "--force-protected" in dry.stderr
    invoke("unprotect", "-d", sqlite_url)
    assert scalar(engine, "SELECT COUNT(*) FROM invoicegen_meta") == 0


# --- schema guards ----------------------------------------------------------------------------


def test_seed_refuses_a_newer_schema(database_url: str) -> None:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE {db.VERSION_TABLE} SET version_num = '9999'")
    line = _assert_one_line_error(invoke(*seed_args(database_url, 2)), 5)
    assert "9999" in line and "upgrade invoicegen" in line
    assert scalar(engine, "SELECT COUNT(*) FROM users") == 0
    assert scalar(engine, f"SELECT version_num FROM {db.VERSION_TABLE}") == "9999"


def test_seed_refuses_invoicegen_tables_that_differ_from_the_migrations(database_url: str) -> None:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE clients ADD COLUMN vip INTEGER")
    line = _assert_one_line_error(invoke(*seed_args(database_url, 2)), 5)
    assert "clients.vip" in line and "differ from its migrations" in line
    assert scalar(engine, "SELECT COUNT(*) FROM users") == 0
    assert "vip" in {c["name"] for c in sa.inspect(engine).get_columns("clients")}


@pytest.mark.parametrize("left_by", ["second migration", "first migration"])
def test_an_interrupted_migration_is_reported_and_reset_repairs_it(
    database_url: str, left_by: str
) -> None:
    """What MariaDB keeps when a migration dies half-way: its DDL is not transactional."""
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    with engine.begin() as connection:
        if left_by == "second migration":  # 0002 created invoicegen_meta, then stopped
            connection.exec_driver_sql("DROP TABLE invoicegen_runs")
            connection.exec_driver_sql(f"UPDATE {db.VERSION_TABLE} SET version_num = '0001'")
        else:  # 0001 created users and clients, then stopped: no revision recorded yet
            for table in ("invoicegen_runs", "invoicegen_meta", "invoices", "contracts"):
                connection.exec_driver_sql(f"DROP TABLE {table}")
            connection.exec_driver_sql(f"DELETE FROM {db.VERSION_TABLE}")
    line = _assert_one_line_error(invoke(*seed_args(database_url, 2)), 5)
    assert "interrupted migration" in line and "invoicegen reset --yes" in line
    _assert_one_line_error(invoke("migrate", "-d", database_url), 5)

    result = invoke("reset", "--yes", "-d", database_url)
    assert result.exit_code == 0, result.stderr
    assert invoke(*seed_args(database_url, 2)).exit_code == 0
    assert users_in(database_url) == 2


# --- faults: interrupts and concurrent runs ---------------------------------------------------


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name
)
def test_an_interrupted_seed_leaves_only_whole_user_trees(
    database_url: str, signum: signal.Signals, tmp_path: Path
) -> None:
    process, out, err = interrupted_seed(database_url, signum)
    engine = db.make_engine(database_url)
    users = assert_whole_trees(engine, tmp_path)
    assert 60 <= users < 20_000
    if signum == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 130, err
        line = one_line_error(err)
        assert f"interrupted: {users:,} of 20,000 user trees" in line
        assert "rolled back" in line
        # --json: the error document says the same, and is all there is on stdout
        assert json.loads(out) == {"error": {"code": 130, "message": line[len("error: ") :]}}


def test_ctrl_c_on_a_terminal_reaches_the_workers_too_and_stays_one_line(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A terminal's Ctrl-C signals the whole process group, generating workers included."""
    args = seed_args(sqlite_url, 20_000, "--batch-size", "20", workers=2)
    process = cli(*args, start_new_session=True)
    wait_for_users(sqlite_url, 60, process)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "rolled back" in one_line_error(err)
    assert assert_whole_trees(db.make_engine(sqlite_url), tmp_path) >= 60


def test_two_runs_at_once_write_one_dataset(database_url: str, tmp_path: Path) -> None:
    runs = [
        cli(*seed_args(database_url, 600, "--batch-size", "200", "--json", seed_value=s))
        for s in (1, 2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    codes = [run.returncode for run in runs]
    assert sorted(codes) == [0, 3], outputs
    winner = codes.index(0)
    loser_line = one_line_error(outputs[1 - winner][1])
    assert "already holds an invoicegen dataset" in loser_line
    engine = db.make_engine(database_url)
    assert table_counts(engine) == json.loads(outputs[winner][0])["counts"]
    assert_whole_trees(engine, tmp_path, seed_value=(1, 2)[winner])


def test_two_threads_of_one_process_take_turns_too(database_url: str, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    plan = SeedPlan(users=400, seed=SEED, as_of=dt.date.fromisoformat(AS_OF), batch_size=200)
    engine = db.make_engine(database_url)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(seed, engine, plan) for _ in range(2)]
    outcomes = sorted(type(f.exception()).__name__ for f in futures)
    assert outcomes == ["NoneType", "RefusedError"]
    assert assert_whole_trees(engine, tmp_path) == 400


def test_a_second_run_gives_up_after_the_lock_timeout(database_url: str, tmp_path: Path) -> None:
    first = cli(*seed_args(database_url, 20_000, "--batch-size", "20"))
    try:
        wait_for_users(database_url, 20, first)
        for args in (seed_args(database_url, 5), ["reset", "--yes", "-d", database_url]):
            started = time.monotonic()
            second = cli(*args, "--lock-timeout", "1")
            _, err = second.communicate(timeout=60)
            assert second.returncode == 6, err
            # reset says which database it is about to act on before it waits for the lock
            lines = err.strip().splitlines()
            assert lines[-1] == one_line_error(lines[-1])
            assert "another invoicegen run is using" in lines[-1] and len(lines) <= 2
            assert time.monotonic() - started < 20
            assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 130
    assert_whole_trees(db.make_engine(database_url), tmp_path)


def test_a_locked_sqlite_file_is_a_clear_error_after_the_busy_timeout(sqlite_url: str) -> None:
    assert invoke("migrate", "-d", sqlite_url).exit_code == 0
    holder = sqlite3.connect(str(db.sqlite_path(db.parse_url(sqlite_url))), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        result = invoke(*seed_args(sqlite_url, 2, "--lock-timeout", "1"))
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    line = _assert_one_line_error(result, 6)
    assert "locked" in line
    assert elapsed < 10
    assert users_in(sqlite_url) == 0


# --- bad input --------------------------------------------------------------------------------


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
    (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    process = cli(*seed_args(url, 1), env={"PYTHONPATH": str(tmp_path)})
    _, err = process.communicate(timeout=60)
    assert process.returncode == 4
    assert f"pip install 'invoicegen[{extra}]'" in one_line_error(err)


@pytest.fixture
def postgresql_url(tmp_path: Path) -> Iterator[str]:
    yield from fresh_database("postgresql", tmp_path)


@pytest.fixture
def mariadb_url(tmp_path: Path) -> Iterator[str]:
    yield from fresh_database("mariadb", tmp_path)


def test_postgres_shorthand_seeds(postgresql_url: str) -> None:
    url = postgresql_url
    shorthand = "postgres://" + url.split("://", 1)[1]
    result = invoke(*seed_args(shorthand, 2), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["database"].startswith("postgresql://")
    assert users_in(url) == 2


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
    name = db.parse_url(mariadb_url).database
    admin = _admin("mariadb")
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
    url = db.parse_url(database).set(username=user)
    right = invoke(*seed_args(url.set(password=PASSWORD).render_as_string(False), 2), "--json")
    assert right.exit_code == 0, right.stderr  # the specials are encoded and decoded right
    wrong = invoke(*seed_args(url.set(password=WRONG).render_as_string(False), 2), "--json")
    line = _assert_one_line_error(wrong, 4)
    assert "Access denied" in line
    assert json.loads(wrong.stdout) == {"error": {"code": 4, "message": line[len("error: ") :]}}
    for secret in (WRONG, "wr@ng", "%40", "pa/ss", PASSWORD):
        assert secret not in wrong.output


@pytest.mark.servers
def test_unknown_postgresql_role_exits_4_without_the_password() -> None:
    require_server("postgresql")
    url = db.parse_url(SERVER_URLS["postgresql"]).set(username="no_such_role", password=WRONG)
    result = invoke(*seed_args(url.render_as_string(False), 1), "--json")
    line = _assert_one_line_error(result, 4)
    assert "no_such_role" in line
    assert json.loads(result.stdout) == {"error": {"code": 4, "message": line[len("error: ") :]}}
    for secret in (WRONG, "wr@ng", "pa/ss"):
        assert secret not in result.output


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
    admin = _admin("postgresql")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    with db.make_engine(database).begin() as connection:  # PostgreSQL < 15 grants it to all
        connection.exec_driver_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    try:
        url = db.parse_url(database).set(username=role).render_as_string(False)
        process = cli(*seed_args(url, 2))
        _, err = process.communicate(timeout=60)
        assert process.returncode == 4
        assert "permission denied" in one_line_error(err)
        assert sa.inspect(db.make_engine(database)).get_table_names() == []
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


def test_a_full_sqlite_database_keeps_whole_trees_and_integrity(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(sqlite_url)
    db.upgrade(engine)

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


def test_foreign_tables_are_left_alone_next_to_invoicegen_s(database_url: str) -> None:
    engine = db.make_engine(database_url)
    foreign = add_foreign_tables(engine)
    before = snapshot(engine, foreign)
    result = invoke(*seed_args(database_url, 3), "--json")
    assert result.exit_code == 0, result.stderr
    assert snapshot(engine, foreign) == before
    ours = {*TABLES, "invoicegen_meta", "invoicegen_runs", db.VERSION_TABLE}
    assert set(sa.inspect(engine).get_table_names()) == ours | set(foreign)
    assert users_in(database_url) == 3


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_append_after_an_interrupt_continues_cleanly(
    database_url: str, signum: signal.Signals, tmp_path: Path
) -> None:
    process = cli(*seed_args(database_url, 20_000, "--batch-size", "20", "--json"))
    wait_for_users(database_url, 60, process)
    process.send_signal(signum)
    process.communicate(timeout=60)
    engine = db.make_engine(database_url)
    committed = assert_whole_trees(engine, tmp_path)
    appended = subprocess.run(
        [
            sys.executable,
            "-m",
            "invoicegen",
            "seed",
            "--append",
            "-n",
            "25",
            "-q",
            "-d",
            database_url,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert appended.returncode == 0, appended.stderr
    # The interrupted run plus the append equal one uninterrupted run of their total.
    assert assert_whole_trees(engine, tmp_path) == committed + 25
    reference = db.make_engine(f"sqlite:///{tmp_path / 'single.db'}")
    seed(reference, SeedPlan(users=committed + 25, seed=SEED, as_of=dt.date.fromisoformat(AS_OF)))
    assert dump(engine) == dump(reference)
