"""Every option the README calls global works on every command, the same way.

The README ("Commands") names them: ``--database-url/-d``, ``--profile``, ``--json``,
``--quiet/-q``, ``--verbose/-v`` and ``--debug``. Each test here runs each command with one of
them and checks what that option promises, so a command that lacks one (or a new command, such
as an export) fails here rather than in a user's script.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import Result

from tests.helpers import assert_one_line_error, invoke
from tests.readme import commands

# Each command, with the arguments that make it succeed on a seeded SQLite database.
COMMANDS: dict[str, list[str]] = {
    "migrate": ["migrate"],
    "seed": ["seed", "--append", "-n", "2"],
    "reset": ["reset", "--yes"],
    "protect": ["protect"],
    "unprotect": ["unprotect"],
    "stats": ["stats"],
}
GLOBAL = ("--database-url", "--profile", "--json", "--quiet", "--verbose", "--debug")
# Commands that open no database: every global option but the database's.
WITHOUT_A_DATABASE: dict[str, list[str]] = {
    "export": ["export", "out", "-n", "2", "--seed", "1", "--as-of", "2026-01-31"],
}


def test_every_command_is_covered_and_takes_every_global_option() -> None:
    found = {name: options for name, options in commands().items() if name}
    assert set(found) == set(COMMANDS) | set(WITHOUT_A_DATABASE), (
        "add the new command to COMMANDS (or WITHOUT_A_DATABASE) with working arguments"
    )
    for name, options in found.items():
        wanted = set(GLOBAL) - ({"--database-url"} if name in WITHOUT_A_DATABASE else set())
        assert wanted <= set(options), f"{name} lacks {wanted - set(options)}"
    assert "--lock-timeout" in found["reset"] and "--lock-timeout" in found["protect"]


@pytest.fixture
def seeded(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'globals.db'}"
    done = invoke("seed", "-n", "3", "--seed", "4", "--as-of", "2026-01-31", "-q", "-d", url)
    assert done.exit_code == 0, done.stderr
    return url


@pytest.mark.parametrize("name", COMMANDS)
def test_quiet_prints_nothing_on_success(name: str, seeded: str) -> None:
    for quiet in ("-q", "--quiet"):
        result = invoke(*COMMANDS[name], quiet, "-d", seeded)
        assert result.exit_code == 0, result.stderr
        assert (result.stdout, result.stderr) == ("", ""), (name, quiet)
    loud = invoke(*COMMANDS[name], "-d", seeded)
    assert loud.exit_code == 0 and loud.stdout.strip(), "without -q the command says something"


@pytest.mark.parametrize("name", COMMANDS)
def test_json_is_one_document_naming_the_database(name: str, seeded: str) -> None:
    for quiet in ((), ("-q",)):
        result = invoke(*COMMANDS[name], "--json", *quiet, "-d", seeded)
        assert result.exit_code == 0, result.stderr
        document = json.loads(result.stdout)
        assert document["database"] == seeded, name


@pytest.mark.parametrize("name", COMMANDS)
def test_json_error_is_a_document_too(name: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-folder' / 'x.db'}"
    result = invoke(*COMMANDS[name], "--json", "-d", url)
    assert result.exit_code == 4, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["error"]["code"] == 4


@pytest.mark.parametrize("name", COMMANDS)
def test_verbose_shows_where_the_database_url_came_from(name: str, seeded: str) -> None:
    for verbose in ("-v", "--verbose"):
        result = invoke(*COMMANDS[name], verbose, "-q", "--database-url", seeded)
        assert result.exit_code == 0, result.stderr
        shown = result.stdout + result.stderr
        assert "database_url" in shown and "command line" in shown, (name, shown)


def assert_traceback_then_error(result: Result, code: int, kind: str) -> None:
    """--debug: the traceback on stderr, then the same one-line error as without it, and the
    same exit code (a CI job rerun with --debug still branches on it)."""
    assert result.exit_code == code, (result.exit_code, result.exception, result.stderr)
    assert "Traceback" in result.stderr and kind in result.stderr, result.stderr
    last = result.stderr.rstrip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr  # the line a log grep finds, last
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_debug_shows_the_traceback_and_keeps_the_exit_code(name: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-folder' / 'x.db'}"
    assert_traceback_then_error(
        invoke(*COMMANDS[name], "--debug", "-d", url), 4, "ConnectionFailed"
    )
    plain = invoke(*COMMANDS[name], "-d", url)
    assert_one_line_error(plain, 4)


@pytest.mark.parametrize("name", COMMANDS)
def test_profile_picks_the_database(
    name: str, seeded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "invoicegen.toml").write_text(f'[profiles.here]\ndatabase_url = "{seeded}"\n')
    monkeypatch.chdir(project / "src")
    monkeypatch.delenv("INVOICEGEN_DATABASE_URL", raising=False)
    result = invoke(*COMMANDS[name], "--profile", "here", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["database"] == seeded
    assert not (project / "src" / "invoicegen.db").exists()


@pytest.mark.parametrize("name", [name for name in COMMANDS if name != "stats"])
def test_every_command_that_writes_takes_lock_timeout(name: str, seeded: str) -> None:
    result = invoke(*COMMANDS[name], "--lock-timeout", "7", "-v", "-q", "-d", seeded)
    assert result.exit_code == 0, result.stderr
    shown = result.stdout + result.stderr
    assert re.search(r"^lock_timeout +7 +command line$", shown, re.MULTILINE), shown


@pytest.mark.parametrize("name", WITHOUT_A_DATABASE)
def test_a_command_without_a_database_takes_the_other_global_options(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "invoicegen.toml").write_text("[profiles.two]\nusers = 3\n")
    quiet = invoke(*WITHOUT_A_DATABASE[name], "-q")
    assert quiet.exit_code == 0, quiet.stderr
    assert (quiet.stdout, quiet.stderr) == ("", "")
    document = json.loads(invoke(*WITHOUT_A_DATABASE[name], "--json", "--force").stdout)
    assert "error" not in document
    verbose = invoke(*WITHOUT_A_DATABASE[name], "--profile", "two", "-v", "-q", "--force")
    assert verbose.exit_code == 0, verbose.stderr
    assert re.search(r"^users +2 +command line$", verbose.stdout + verbose.stderr, re.MULTILINE)
    debug = invoke(*WITHOUT_A_DATABASE[name], "--debug", "--users", "-1")
    assert_traceback_then_error(debug, 2, "UsageError")
    assert_one_line_error(invoke(*WITHOUT_A_DATABASE[name], "--users", "-1"), 2)


def test_debug_never_shows_a_password() -> None:
    """The traceback shows no local variables (they hold the URL) and the errors' own text
    hides the password, as without --debug."""
    url = "postgresql+psycopg://someone:hunter2-secret@127.0.0.1:1/x"  # nothing listens there
    result = invoke("stats", "--debug", "-d", url)
    assert_traceback_then_error(result, 4, "ConnectionFailed")
    assert "hunter2" not in result.stdout + result.stderr
