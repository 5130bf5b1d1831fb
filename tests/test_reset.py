"""`invoicegen reset`: it names its target and asks first, lists what it would drop, and cannot
strand anyone or touch a host application's rows.

A host table with a foreign key to one of invoicegen's tables makes reset refuse before it drops
anything; ``--drop-foreign-keys`` drops those constraints only (PostgreSQL, MariaDB); a schema
left half-dropped is always repaired by reset. Everything is checked by SQL on the database.
"""

from __future__ import annotations

import os
import pty
from pathlib import Path

import pytest
import sqlalchemy as sa

from invoicegen import db, guards, schema, urls
from invoicegen.seeding import TABLES
from tests.helpers import (
    add_foreign_tables,
    assert_one_line_error,
    cli,
    invoke,
    seed_args,
    snapshot,
    table_counts,
    users_in,
)
from tests.invariants import scalar

AS_OF = "2026-03-31"
OURS = {*TABLES, "invoicegen_meta", "invoicegen_runs", schema.VERSION_TABLE}
HOST_ROWS = [(1, 1, "first"), (2, 1, "second"), (3, 2, "third"), (4, 3, "fourth"), (5, 3, "x")]


def seed(url: str, users: int = 3) -> None:
    result = invoke("seed", "-n", str(users), "--seed", "5", "--as-of", AS_OF, "-q", "-d", url)
    assert result.exit_code == 0, result.stderr


def add_host_table(engine: sa.Engine, on_delete: str) -> None:
    """A host application's table whose rows point at invoicegen's users."""
    action = " ON DELETE CASCADE" if on_delete == "cascade" else ""
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE app_notes (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, "
            "note VARCHAR(20), CONSTRAINT fk_app_notes_user FOREIGN KEY (user_id) "
            f"REFERENCES users (id){action})"
        )
        for row in HOST_ROWS:
            connection.execute(
                sa.text("INSERT INTO app_notes VALUES (:id, :user_id, :note)"),
                dict(zip(("id", "user_id", "note"), row, strict=True)),
            )


def host_rows(engine: sa.Engine) -> list[tuple[int, int, str]]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT id, user_id, note FROM app_notes ORDER BY id")
        return [tuple(row) for row in rows]  # type: ignore[misc]


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def host_foreign_keys(engine: sa.Engine) -> list[str | None]:
    return [fk["name"] for fk in sa.inspect(engine).get_foreign_keys("app_notes")]


# --- a host table with a foreign key to ours ---------------------------------------------------


@pytest.mark.parametrize("on_delete", ["plain", "cascade"])
def test_reset_refuses_a_host_foreign_key_and_drops_nothing(
    database_url: str, on_delete: str
) -> None:
    engine = db.make_engine(database_url)
    seed(database_url)
    add_host_table(engine, on_delete)

    line = assert_one_line_error(invoke("reset", "--yes", "-d", database_url), 3)
    assert "app_notes" in line and "fk_app_notes_user" in line and "users" in line
    assert "nothing was dropped" in line
    if engine.dialect.name == "sqlite":
        assert "re-create app_notes" in line
    else:
        assert "--drop-foreign-keys" in line
    assert host_rows(engine) == HOST_ROWS
    assert tables(engine) == OURS | {"app_notes"}
    assert scalar(engine, "SELECT COUNT(*) FROM users") == 3
    assert host_foreign_keys(engine) == ["fk_app_notes_user"]

    dry = invoke("reset", "--dry-run", "-d", database_url)
    assert dry.exit_code == 0, dry.stderr
    assert "users" in dry.stdout and "fk_app_notes_user" in " ".join(dry.stderr.split())
    assert "reset refuses" in dry.stderr
    assert host_rows(engine) == HOST_ROWS
    assert scalar(engine, "SELECT COUNT(*) FROM users") == 3


@pytest.mark.parametrize("on_delete", ["plain", "cascade"])
def test_drop_foreign_keys_drops_only_those_constraints(database_url: str, on_delete: str) -> None:
    engine = db.make_engine(database_url)
    seed(database_url)
    add_host_table(engine, on_delete)
    args = ("reset", "--yes", "--drop-foreign-keys", "-d", database_url)

    if engine.dialect.name == "sqlite":  # a constraint cannot be dropped without a rebuild
        line = assert_one_line_error(invoke(*args), 3)
        assert "SQLite cannot drop a foreign key" in line and "app_notes" in line
        assert host_rows(engine) == HOST_ROWS
        assert scalar(engine, "SELECT COUNT(*) FROM users") == 3
        return
    dry = invoke("reset", "--dry-run", "--drop-foreign-keys", "-d", database_url)
    assert dry.exit_code == 0 and "fk_app_notes_user" in dry.stdout, dry.stderr
    assert host_foreign_keys(engine) == ["fk_app_notes_user"]

    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    assert "fk_app_notes_user" in result.stdout
    assert host_rows(engine) == HOST_ROWS
    assert host_foreign_keys(engine) == []
    assert tables(engine) == OURS | {"app_notes"}
    assert scalar(engine, "SELECT COUNT(*) FROM users") == 0
    seed(database_url, 2)
    assert host_rows(engine) == HOST_ROWS


def test_the_library_reset_refuses_too(database_url: str) -> None:
    from invoicegen.errors import RefusedError

    engine = db.make_engine(database_url)
    seed(database_url)
    add_host_table(engine, "cascade")
    with pytest.raises(RefusedError, match="fk_app_notes_user"):
        guards.reset(engine)
    assert host_rows(engine) == HOST_ROWS


# --- half-dropped schemas ----------------------------------------------------------------------


def test_a_half_dropped_schema_is_repaired_by_reset(database_url: str) -> None:
    """What the old reset left on MariaDB: children dropped, then a failure (or a kill)."""
    engine = db.make_engine(database_url)
    seed(database_url)
    with engine.begin() as connection:
        for table in ("invoices", "contracts", "clients"):
            connection.exec_driver_sql(f"DROP TABLE {table}")
    line = assert_one_line_error(invoke("stats", "-d", database_url), 5)
    assert "invoicegen reset --yes" in line

    result = invoke("reset", "--yes", "-d", database_url)
    assert result.exit_code == 0, result.stderr
    assert tables(engine) == OURS
    seed(database_url, 2)
    assert scalar(engine, "SELECT COUNT(*) FROM users") == 2


def test_a_half_dropped_schema_with_a_host_key_is_refused_then_repaired(
    database_url: str,
) -> None:
    engine = db.make_engine(database_url)
    seed(database_url)
    add_host_table(engine, "plain")
    with engine.begin() as connection:
        for table in ("invoices", "contracts", "clients"):
            connection.exec_driver_sql(f"DROP TABLE {table}")
    line = assert_one_line_error(invoke("reset", "--yes", "-d", database_url), 3)
    assert "fk_app_notes_user" in line
    if engine.dialect.name == "sqlite":  # the way out there: the host re-creates its table
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE app_notes RENAME TO app_notes_old")
            connection.exec_driver_sql(
                "CREATE TABLE app_notes (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, "
                "note VARCHAR(20))"
            )
            connection.exec_driver_sql("INSERT INTO app_notes SELECT * FROM app_notes_old")
            connection.exec_driver_sql("DROP TABLE app_notes_old")
        result = invoke("reset", "--yes", "-d", database_url)
    else:
        result = invoke("reset", "--yes", "--drop-foreign-keys", "-d", database_url)
    assert result.exit_code == 0, result.stderr
    assert host_rows(engine) == HOST_ROWS
    assert tables(engine) == OURS | {"app_notes"}
    seed(database_url, 2)


def test_a_renamed_table_on_sqlite_is_repaired_by_reset(sqlite_url: str) -> None:
    """``ALTER TABLE invoices RENAME TO invoices_old`` keeps invoicegen's index names on it."""
    engine = db.make_engine(sqlite_url)
    seed(sqlite_url)
    invoices = scalar(engine, "SELECT COUNT(*) FROM invoices")
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE invoices RENAME TO invoices_old")

    result = invoke("reset", "--yes", "-d", sqlite_url)
    assert result.exit_code == 0, result.stderr
    assert tables(engine) == OURS | {"invoices_old"}
    assert scalar(engine, "SELECT COUNT(*) FROM invoices_old") == invoices  # not ours to drop
    seed(sqlite_url, 2)
    assert scalar(engine, "SELECT COUNT(*) FROM users") == 2
    assert scalar(engine, "PRAGMA integrity_check") == "ok"


@pytest.mark.parametrize("table", ["invoices", "users"])
def test_a_renamed_table_on_postgresql_is_repaired_by_reset(
    postgresql_url: str, table: str
) -> None:
    """On PostgreSQL index names (primary keys and unique constraints too) are schema-wide."""
    engine = db.make_engine(postgresql_url)
    seed(postgresql_url)
    rows = scalar(engine, f"SELECT COUNT(*) FROM {table}")
    with engine.begin() as connection:
        connection.exec_driver_sql(f"ALTER TABLE {table} RENAME TO {table}_old")
    args = ["reset", "--yes", "-d", postgresql_url]
    if table == "invoices":  # its foreign key to contracts is now another table's
        line = assert_one_line_error(invoke(*args), 3)
        assert "invoices_old.fk_invoices_contract_id_contracts" in line
        args.append("--drop-foreign-keys")
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    assert tables(engine) == OURS | {f"{table}_old"}
    assert scalar(engine, f"SELECT COUNT(*) FROM {table}_old") == rows
    seed(postgresql_url, 2)
    assert scalar(engine, "SELECT COUNT(*) FROM users") == 2


def test_a_host_view_on_postgresql_is_refused_before_any_drop(postgresql_url: str) -> None:
    """PostgreSQL will not drop a table a view depends on: refuse first, in words."""
    engine = db.make_engine(postgresql_url)
    seed(postgresql_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE VIEW app_user_names AS SELECT name FROM users")
    for extra in ([], ["--drop-foreign-keys"]):
        line = assert_one_line_error(invoke("reset", "--yes", *extra, "-d", postgresql_url), 3)
        assert "view app_user_names" in line and "users" in line and "nothing was dropped" in line
        assert "cannot drop" not in line
    dry = invoke("reset", "--dry-run", "-d", postgresql_url)
    assert dry.exit_code == 0 and "app_user_names" in dry.stderr
    assert scalar(engine, "SELECT COUNT(*) FROM app_user_names") == 3
    assert tables(engine) == OURS


# --- what reset drops and says (from the safety suite) ----------------------------------------


def test_reset_prints_the_target_before_acting_without_the_password(database_url: str) -> None:
    url = urls.parse(database_url)
    if url.get_backend_name() == "postgresql":  # trust authentication ignores the password
        url = url.set(password="s3cr3t@pw")
    shown = url.render_as_string(hide_password=False)
    invoke(*seed_args(shown, 2), "--json")
    result = invoke("reset", "--yes", "-d", shown)
    assert result.exit_code == 0, result.stderr
    target = result.stderr.strip().splitlines()[0]
    assert target.startswith("target: " + url.get_backend_name())
    assert guards.confirmation_name(url) in target
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
    assert schema.VERSION_TABLE in rows
    assert table_counts(engine) == counts


def test_reset_dry_run_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    """A dry run only reads, as stats does: no file there is said, not made."""
    missing = tmp_path / "not-yet.db"
    for extra in ((), ("--json",)):
        result = invoke("reset", "--dry-run", *extra, "-d", f"sqlite:///{missing}")
        assert result.exit_code == 5, (result.stdout, result.stderr)
        assert f"no database at {missing}" in result.stderr
        assert not missing.exists()


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
        assert "About to drop from" in err, err  # asked before: nothing is dropping yet
        assert users_in(sqlite_url) == users
    assert "dropped" in out


def test_reset_refuses_tables_it_did_not_create(database_url: str) -> None:
    engine = db.make_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, login VARCHAR(20))")
        connection.exec_driver_sql("INSERT INTO users VALUES (1, 'alice')")
    foreign = add_foreign_tables(engine) + ["users"]
    before = snapshot(engine, foreign)
    line = assert_one_line_error(invoke("reset", "--yes", "-d", database_url), 5)
    assert "not created by invoicegen" in line
    assert snapshot(engine, foreign) == before
    assert set(sa.inspect(engine).get_table_names()) == set(foreign)
