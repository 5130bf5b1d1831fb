"""`--help`, `--version` and shell completion start fast: they load none of the heavy libraries.

Measured by what is imported, not by a timing: a fresh interpreter runs the command, then
lists the modules it loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("sqlalchemy", "alembic", "factory", "faker", "psycopg", "pymysql")

RUN_AND_LIST_MODULES = """
import json, sys
sys.argv[0] = "invoicegen"  # the program name completion is keyed on
from invoicegen.__main__ import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def _run(argv: list[str], env: dict[str, str] | None = None) -> tuple[str, set[str]]:
    """What the command printed on stdout, and the top-level modules it loaded."""
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    return done.stdout, set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "argv", [["--version"], ["--help"], ["seed", "--help"], ["stats", "--help"]]
)
def test_help_and_version_load_no_heavy_library(argv: list[str]) -> None:
    printed, loaded = _run(argv)
    assert "invoicegen" in printed  # the command ran
    assert sorted(loaded & set(HEAVY)) == []


def test_version_does_not_load_rich() -> None:
    printed, loaded = _run(["--version"])
    assert printed.startswith("invoicegen ")
    assert "rich" not in loaded


def test_completion_loads_no_heavy_library() -> None:
    env = dict(os.environ)
    env.update(
        _INVOICEGEN_COMPLETE="complete_bash", COMP_WORDS="invoicegen seed --prof", COMP_CWORD="2"
    )
    printed, loaded = _run([], env=env)
    assert printed.split() == ["--profile"]  # completion ran, not the help
    assert sorted(loaded & set(HEAVY)) == []


def test_a_generating_worker_starts_without_heavy_libraries() -> None:
    """A worker imports ``invoicegen.seeding.workers`` (through the package) before it can
    follow its parent's death or ignore stop signals: that import stays standard library."""
    code = (
        "import json, sys, invoicegen.seeding.workers\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert "invoicegen" in loaded
    assert sorted(loaded & {*HEAVY, "rich", "typer"}) == []
