"""The command line as CI and a person at a terminal meet it: usage errors, completion, version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from invoicegen import __version__
from invoicegen.cli import app

runner = CliRunner()
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
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {message}")
    assert "\x1b[" not in result.stderr and "╭" not in result.stderr


def test_usage_errors_point_to_the_commands_help() -> None:
    line = runner.invoke(app, ["seed", "--userz", "3"]).stderr.strip()
    assert line.endswith("(see 'invoicegen seed --help')")


def test_no_command_shows_the_help() -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 2
    assert "Commands" in result.stdout and "seed" in result.stdout


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"invoicegen {__version__}\n")


def _installed(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        pytest.skip(f"no installed invoicegen script next to {sys.executable}")
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env={**os.environ, **env}, check=False
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


def test_completion_script_for_bash() -> None:
    result = _installed("--show-completion", "bash", env={})
    assert result.returncode == 0 and "_INVOICEGEN_COMPLETE=complete_bash" in result.stdout


def test_a_usage_error_in_a_pipe_is_one_plain_line() -> None:
    result = _installed("seed", "--nope", env={"TERM": "xterm-256color"})
    assert result.returncode == 2
    assert result.stderr == "error: No such option: --nope (see 'invoicegen seed --help')\n"
