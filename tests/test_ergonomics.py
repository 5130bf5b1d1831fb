"""The command line as CI and a person at a terminal meet it: usage errors, completion, version,
output on a terminal that cannot show every character."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from invoicegen import __version__, db
from tests.helpers import AS_OF, invoke, one_line_error, run
from tests.invariants import scalar

SCRIPT = Path(sys.executable).with_name("invoicegen")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["seed", "--userz", "3"], "No such option: --userz"),
        (["sed"], "No such command 'sed'. Did you mean 'seed'?"),
        (["stats", "-d"], "Option '-d' requires an argument."),
        (["stats", "--json=yes"], "Option '--json' does not take a value."),
        (["reset", "extra"], "Got unexpected extra argument"),
    ],
)
def test_usage_errors_are_one_line_on_stderr_with_exit_2(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {message}")
    assert "\x1b[" not in result.stderr and "╭" not in result.stderr


def test_usage_errors_point_to_the_commands_help() -> None:
    line = invoke("seed", "--userz", "3").stderr.strip()
    assert line.endswith("(see 'invoicegen seed --help')")


def test_no_command_shows_the_help() -> None:
    result = invoke()
    assert result.exit_code == 2
    assert "Commands" in result.stdout and "seed" in result.stdout


def test_version() -> None:
    result = invoke("--version")
    assert (result.exit_code, result.stdout) == (0, f"invoicegen {__version__}\n")


def _installed(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        pytest.skip(f"no installed invoicegen script next to {sys.executable}")
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        check=False,
    )


def test_shell_completion_completes_commands_and_options() -> None:
    commands = _installed(
        env={
            "_INVOICEGEN_COMPLETE": "complete_bash",
            "COMP_WORDS": "invoicegen st",
            "COMP_CWORD": "1",
        }
    )
    assert commands.returncode == 0 and commands.stdout.split() == ["stats"]
    options = _installed(
        env={
            "_INVOICEGEN_COMPLETE": "complete_bash",
            "COMP_WORDS": "invoicegen stats --ch",
            "COMP_CWORD": "2",
        }
    )
    assert options.stdout.split() == ["--check"]


def test_profile_names_complete_from_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.invoicegen.profiles.demo]\nusers = 1\n[tool.invoicegen.profiles.load]\n"
        "users = 2\n[tool.invoicegen.profiles.dev]\nusers = 3\n"
    )
    words = {"COMP_WORDS": "invoicegen seed --profile d", "COMP_CWORD": "3"}
    done = _installed(env={"_INVOICEGEN_COMPLETE": "complete_bash", **words}, cwd=tmp_path)
    assert done.stdout.split() == ["demo", "dev"]


def test_quiet_migrate_prints_nothing(tmp_path: Path) -> None:
    result = invoke("migrate", "-q", "-d", f"sqlite:///{tmp_path / 'm.db'}")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert (tmp_path / "m.db").exists()


def test_completion_script_for_bash() -> None:
    result = _installed("--show-completion", "bash", env={})
    assert result.returncode == 0 and "_INVOICEGEN_COMPLETE=complete_bash" in result.stdout


def test_a_usage_error_in_a_pipe_is_one_plain_line() -> None:
    result = _installed("seed", "--qqq", env={"TERM": "xterm-256color"})
    assert result.returncode == 2
    assert result.stderr == "error: No such option: --qqq (see 'invoicegen seed --help')\n"


# --- output on a terminal that cannot show it -------------------------------------------------


@pytest.mark.slow  # three real processes
def test_an_ascii_only_output_does_not_fail_a_committed_seed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ascii.db'}"
    ascii_only = {"PYTHONIOENCODING": "ascii"}
    seeded = run("seed", "-n", "4", "--seed", "2", "--as-of", AS_OF, "-d", url, env=ascii_only)
    assert seeded.returncode == 0, seeded.stderr
    assert "Seeded users 1" in seeded.stdout and "rows/s" in seeded.stdout  # degraded, not gone
    assert scalar(db.make_engine(url), "SELECT COUNT(*) FROM users") == 4
    shown = run("stats", "-d", url, env=ascii_only)
    assert shown.returncode == 0, shown.stderr
    assert "invoices per month" in shown.stdout
    failed = run("stats", "-d", f"sqlite:///{tmp_path / 'missing.db'}", env=ascii_only)
    assert failed.returncode == 5 and "no database at" in one_line_error(failed.stderr)
