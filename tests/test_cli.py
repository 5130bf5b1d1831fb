"""The `invoicegen` command, driven through Typer's CliRunner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from invoicegen import db, schema, settings, urls
from tests.helpers import SERVER_URLS, assert_one_line_error, invoke, require_server
from tests.invariants import scalar
from tests.readme import commands

AS_OF = "2026-03-31"


def test_seed_json_is_one_document_with_counts(database_url: str) -> None:
    result = invoke(
        "seed", "--users", "6", "--seed", "4", "--as-of", AS_OF, "-d", database_url, "--json"
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data["counts"]) == {"users", "clients", "contracts", "invoices"}
    assert data["counts"]["users"] == 6
    assert data["seed"] == 4 and data["as_of"] == AS_OF
    assert "\x1b[" not in result.stdout
    engine = db.make_engine(database_url)
    assert scalar(engine, "SELECT COUNT(*) FROM invoices") == data["counts"]["invoices"]


def test_seed_prints_a_summary_with_the_seed_to_replay(sqlite_url: str) -> None:
    result = invoke("seed", "--users", "3", "--seed", "12345", "-d", sqlite_url)
    assert result.exit_code == 0, result.stderr
    assert "12345" in result.stdout and "rows/s" in result.stdout
    assert "users" in result.stdout and "invoices" in result.stdout


def test_seed_without_seed_prints_the_chosen_one_and_it_replays(tmp_path: Path) -> None:
    first = invoke(
        "seed", "-n", "3", "-d", f"sqlite:///{tmp_path / 'a.db'}", "--as-of", AS_OF, "--json"
    )
    chosen = json.loads(first.stdout)["seed"]
    again = invoke(
        "seed",
        "-n",
        "3",
        "-d",
        f"sqlite:///{tmp_path / 'b.db'}",
        "--as-of",
        AS_OF,
        "--seed",
        str(chosen),
        "--json",
    )
    assert json.loads(again.stdout)["counts"] == json.loads(first.stdout)["counts"]
    names = [
        scalar(db.make_engine(f"sqlite:///{tmp_path / n}"), "SELECT name FROM users WHERE id = 3")
        for n in ("a.db", "b.db")
    ]
    assert names[0] == names[1]


def test_database_url_comes_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    result = invoke("seed", "-n", "2", "--json", env={"INVOICEGEN_DATABASE_URL": url})
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "env.db").exists()


def test_default_database_is_invoicegen_db_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INVOICEGEN_DATABASE_URL", raising=False)
    assert invoke("seed", "-n", "1", "--json").exit_code == 0
    assert (tmp_path / "invoicegen.db").exists()


def test_stats_json_matches_the_database(database_url: str) -> None:
    invoke("seed", "-n", "8", "--seed", "2", "--as-of", AS_OF, "-d", database_url, "--json")
    result = invoke("stats", "-d", database_url, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    engine = db.make_engine(database_url)
    assert data["counts"]["contracts"] == scalar(engine, "SELECT COUNT(*) FROM contracts")
    users_clients = next(c for c in data["children"] if c["parent"] == "users")
    assert 1 <= users_clients["min"] <= users_clients["mean"] <= users_clients["max"] <= 3
    total = scalar(engine, "SELECT SUM(amount) FROM invoices")
    assert abs(float(data["amount_total"]) - float(total)) < 0.01


def test_stats_renders_tables(sqlite_url: str) -> None:
    invoke("seed", "-n", "4", "--seed", "2", "-d", sqlite_url, "--json")
    result = invoke("stats", "-d", sqlite_url)
    assert result.exit_code == 0
    for text in (
        "clients per user",
        "billed in total",
        "invoices per month",
        "clients by billed amount",
    ):
        assert text in result.stdout


def test_stats_never_creates_a_database(tmp_path: Path) -> None:
    result = invoke("stats", "-d", f"sqlite:///{tmp_path / 'missing.db'}")
    assert_one_line_error(result, 5)
    assert not (tmp_path / "missing.db").exists()


def test_migrate_prints_the_revision(database_url: str) -> None:
    result = invoke("migrate", "-d", database_url)
    assert result.exit_code == 0, result.stderr
    assert schema.head_revision() in result.stdout


def test_reset_without_a_terminal_needs_yes(sqlite_url: str) -> None:
    invoke("seed", "-n", "2", "-d", sqlite_url, "--json")
    line = assert_one_line_error(invoke("reset", "-d", sqlite_url), 3)
    assert "--yes" in line
    assert scalar(db.make_engine(sqlite_url), "SELECT COUNT(*) FROM users") == 2


def test_reset_leaves_an_empty_schema_and_foreign_tables_untouched(database_url: str) -> None:
    engine = db.make_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE app_orders (id INTEGER PRIMARY KEY, note VARCHAR(20))"
        )
        connection.exec_driver_sql("INSERT INTO app_orders VALUES (1, 'keep me')")
    invoke("seed", "-n", "3", "-d", database_url, "--json")
    result = invoke("reset", "--yes", "-d", database_url)
    assert result.exit_code == 0, result.stderr
    for table in ("users", "clients", "contracts", "invoices"):
        assert scalar(engine, f"SELECT COUNT(*) FROM {table}") == 0
    assert scalar(engine, "SELECT note FROM app_orders WHERE id = 1") == "keep me"
    with engine.connect() as connection:
        assert schema.current_revision(connection) == schema.head_revision()
    assert invoke("seed", "-n", "2", "-d", database_url, "--json").exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--users", "-5"],
        ["--users", "lots"],
        ["--users", "1000000000"],
        ["--clients-per-user", "3-1"],
        ["--contracts-per-client", "1-"],
        ["--invoices-per-contract", "x"],
        ["--as-of", "yesterday"],
        ["--as-of", "2026-13-01"],
        ["--locale", "xx_XX"],
        ["--seed", "-1"],
        ["--batch-size", "0"],
        ["-d", "oracle://scott@db/orcl"],
        ["-d", "not a url at all"],
    ],
)
def test_bad_input_is_a_usage_error_before_anything_is_created(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INVOICEGEN_DATABASE_URL", raising=False)
    assert_one_line_error(invoke("seed", *args), 2)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_exits_4_without_the_password() -> None:
    url = "postgresql://bob:s3cr%40t%2F%3A@127.0.0.1:1/nowhere"
    result = invoke("seed", "-n", "1", "-d", url, "--json")
    line = assert_one_line_error(result, 4)
    assert "127.0.0.1" in line
    for secret in ("s3cr", "%40t", "s3cr@t/:"):
        assert secret not in result.output
    # --json: the error document on stdout says the same line, without the password either
    assert json.loads(result.stdout) == {
        "error": {"code": 4, "message": line.removeprefix("error: ")}
    }


@pytest.mark.servers
def test_wrong_password_exits_4_without_the_password() -> None:
    require_server("mariadb")
    url = urls.parse(SERVER_URLS["mariadb"]).set(username="nobody", password="p@ss/w:rd%")
    result = invoke("stats", "-d", url.render_as_string(hide_password=False))
    line = assert_one_line_error(result, 4)
    assert "p@ss" not in result.output and "w:rd" not in result.output
    assert "***" in line or "nobody" in line


def test_foreign_tables_with_invoicegen_names_exit_5(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, login TEXT)")
    assert_one_line_error(invoke("seed", "-n", "1", "-d", sqlite_url), 5)
    assert sa.inspect(engine).get_table_names() == ["users"]


def test_missing_sqlite_folder_is_a_clear_error(tmp_path: Path) -> None:
    line = assert_one_line_error(invoke("seed", "-d", f"sqlite:///{tmp_path / 'nope' / 'x.db'}"), 4)
    assert "does not exist" in line
    assert list(tmp_path.iterdir()) == []


def test_postgres_shorthand_is_understood() -> None:
    assert urls.parse("postgres://u@h/d").drivername == "postgresql+psycopg"
    assert urls.parse("mysql://u@h/d").drivername == "mysql+pymysql"


def test_version_and_help() -> None:
    assert invoke("--version").stdout.startswith("invoicegen ")
    help_text = invoke("--help").stdout
    for command in ("seed", "reset", "stats", "migrate"):
        assert command in help_text


def test_python_dash_m_runs_the_cli(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {**os.environ, "INVOICEGEN_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "invoicegen", "seed", "-n", "2", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["users"] == 2


def test_since_must_come_before_as_of(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'since.db'}"
    args = ["seed", "-n", "2", "-d", url, "--as-of", "2026-01-31"]
    result = invoke(*args, "--since", "2026-01-31")
    assert result.exit_code == 2
    assert "--since 2026-01-31 must come before --as-of 2026-01-31" in result.stderr
    assert invoke(*args, "--since", "tomorrow").exit_code == 2
    done = invoke(*args, "--since", "2025-12-01", "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["since"] == "2025-12-01"
    assert "--since 2025-12-01" in json.loads(done.stdout)["replay"]


def _wide_help(*args: str) -> str:
    """``invoicegen ARGS --help`` wide enough that no option's help wraps, without colour."""
    env = {"COLUMNS": "400", "TERMINAL_WIDTH": "400", "NO_COLOR": "1"}
    result = invoke(*args, "--help", env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def _help_rows(*args: str) -> dict[str, str]:
    """Each option's row of the help table, by its long name (an argument's, by its name:
    `* DIR ...`)."""
    entries: list[str] = []
    for line in _wide_help(*args).splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            entries.append(line)  # a row starts two spaces in; deeper lines continue it
        elif line.startswith("   ") and entries:
            entries[-1] += line
    rows = {}
    for entry in entries:
        cells = entry.replace(",", " ").split()
        if cells and cells[0].startswith("-") and not cells[0].startswith("--"):
            cells = cells[1:]  # -n, --users N ...
        if cells and (cells[0].startswith("--") or cells[0].isupper()):
            rows[cells[0]] = " ".join(cells[1:])
    return rows


@pytest.mark.parametrize("command", commands())
def test_help_shows_no_type_placeholders_and_each_env_var(command: str) -> None:
    args = [command] if command else []
    rows = _help_rows(*args)
    assert rows, _wide_help(*args)
    for name, row in rows.items():
        assert "<bool>" not in row and "<str>" not in row and "<int>" not in row, (name, row)
        key = name[2:].replace("-", "_")
        if key in settings.OPTIONS or key == "profile":
            assert f"[env: {settings.env_var(key)}]" in row, (name, row)


@pytest.mark.parametrize("command", [name for name in commands() if name])
def test_each_command_help_ends_with_an_example_of_it(command: str) -> None:
    lines = [line.strip() for line in _wide_help(command).strip().splitlines()]
    assert lines[-1].startswith(f"Example: invoicegen {command} "), lines[-1]


def test_an_argument_shows_its_name_without_a_type_placeholder() -> None:
    assert _help_rows("export")["DIR"].startswith("The folder to write")


def test_help_shows_square_brackets_as_written() -> None:
    """Rich markup would take `[parquet]` for a style and drop it from the install line."""
    assert "pip install 'invoicegen[parquet]'" in " ".join(_wide_help("export").split())


def test_lock_timeout_is_shown_as_seconds_and_flags_take_no_value() -> None:
    assert _help_rows("migrate")["--lock-timeout"].startswith("SECONDS ")
    result = invoke("migrate", "--quiet", "true")
    assert "true" in assert_one_line_error(result, 2)


@pytest.mark.parametrize("given", [["--users", "0"], ["-n", "0", "--append"]])
def test_seeding_no_users_is_refused_and_records_no_run(given: list[str], sqlite_url: str) -> None:
    result = invoke("seed", *given, "-d", sqlite_url)
    line = assert_one_line_error(result, 2)
    assert "--users" in line and "between 1 and" in line, line
    assert "Seeded" not in result.output
    assert _runs_recorded(sqlite_url) == 0


def test_no_users_from_the_environment_is_refused_naming_it(sqlite_url: str) -> None:
    result = invoke("seed", "-d", sqlite_url, env={"INVOICEGEN_USERS": "0"})
    assert "INVOICEGEN_USERS" in assert_one_line_error(result, 2)


def _runs_recorded(url: str) -> int:
    engine = db.make_engine(url)
    try:
        if not sa.inspect(engine).has_table("invoicegen_runs"):
            return 0
        return int(scalar(engine, "SELECT COUNT(*) FROM invoicegen_runs"))
    finally:
        engine.dispose()
