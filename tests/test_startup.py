"""`--help`, `--version` and shell completion start fast: they load none of the heavy libraries.

Measured by what is imported, not by a timing: a fresh interpreter runs the command, then
lists the modules it loaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

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


SPY_ON_WORKER_STARTS = """
import json, sys
import multiprocessing.context
HEAVY = set(sys.argv.pop(1).split(","))
loaded_at_start = []
start = multiprocessing.context.SpawnProcess.start
def spied(self):
    loaded_at_start.append(sorted({name.split(".")[0] for name in sys.modules} & HEAVY))
    start(self)
multiprocessing.context.SpawnProcess.start = spied
sys.argv[0] = "invoicegen"
from invoicegen.__main__ import main
try:
    main()
except SystemExit as exc:
    print(json.dumps([exc.code, loaded_at_start]), file=sys.stderr)
"""


def test_seed_starts_its_workers_before_loading_the_heavy_libraries(sqlite_url: str) -> None:
    """A worker takes tenths of a second to import the factories and warm up: started first,
    it does so while the command loads SQLAlchemy, connects and migrates, and the first
    batches find it ready."""
    argv = ["seed", "--users", "3000", "--workers", "2", "--seed", "1", "-d", sqlite_url]
    done = subprocess.run(
        [sys.executable, "-c", SPY_ON_WORKER_STARTS, ",".join(HEAVY), *argv, "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    code, loaded_at_start = json.loads(done.stderr.strip().splitlines()[-1])
    assert code == 0, done.stderr
    assert loaded_at_start == [[]]  # one worker, started before any heavy library was loaded


@pytest.mark.parametrize("argv", [["seed", "--users", "20"], ["stats"], ["migrate"]])
def test_a_command_closes_its_connections_before_the_process_ends(
    tmp_path: Path, argv: list[str]
) -> None:
    """Its engines are disposed when the command ends, not left to the interpreter's teardown:
    SQLite folds a WAL file back into the database when its last connection closes."""
    path = tmp_path / "wal.db"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode = WAL")
    if argv[0] == "stats":
        _run(["seed", "--users", "20", "-d", f"sqlite:///{path}", "--quiet"])
    _run([*argv, "-d", f"sqlite:///{path}", "--quiet"])
    assert path.exists()
    assert not path.with_name("wal.db-wal").exists()
