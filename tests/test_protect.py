"""Protected databases: `protect` marks one, and reset then needs `--force-protected NAME`."""

from __future__ import annotations

from invoicegen import db, guards
from tests.helpers import assert_one_line_error, invoke, seed_args, users_in
from tests.invariants import scalar


def test_a_protected_database_needs_the_named_override(database_url: str) -> None:
    engine = db.make_engine(database_url)
    invoke(*seed_args(database_url, 3), "--json")
    assert invoke("protect", "-d", database_url).exit_code == 0
    name = guards.confirmation_name(engine.url)

    line = assert_one_line_error(invoke("reset", "--yes", "-d", database_url), 3)
    assert f"--force-protected {name}" in line
    wrong = invoke("reset", "--yes", "--force-protected", "other_db", "-d", database_url)
    assert_one_line_error(wrong, 3)
    assert users_in(database_url) == 3

    forced = invoke("reset", "--yes", "--force-protected", name, "-d", database_url)
    assert forced.exit_code == 0, forced.stderr
    assert users_in(database_url) == 0
    invoke(*seed_args(database_url, 2), "--json")
    assert_one_line_error(invoke("reset", "--yes", "-d", database_url), 3)  # still protected

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
