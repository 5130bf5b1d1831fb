"""The README's generated parts, shared by its cog blocks and ``tests/test_docs.py``: the command
reference, and every console example, which is the output of running it.

Regenerate the README after changing a command, an option or what a command prints::

    .venv/bin/cog -r -I . README.md
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from typer.main import get_command
from typer.testing import CliRunner

from invoicegen.cli import app

WIDTH = "100"
# A fixed width and no colour, whatever the terminal or CI the README is generated on.
_ENV: dict[str, str | None] = {
    "COLUMNS": WIDTH,
    "TERMINAL_WIDTH": WIDTH,
    "NO_COLOR": "1",
    "FORCE_COLOR": None,
    "PY_COLORS": None,
    "GITHUB_ACTIONS": None,
}


def commands() -> dict[str, list[str]]:
    """Each command's name and its options' long names (plus the group's own, under "")."""
    group = get_command(app)
    found = {"": [o for p in group.params for o in p.opts if o.startswith("--")]}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        found[name] = [o for p in command.params for o in p.opts if o.startswith("--")]
        found[name].append("--help")
    return found


def help_text(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env=_ENV, prog_name="invoicegen")
    assert result.exit_code == 0, result.output
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def reference() -> str:
    """Markdown: ``invoicegen --help`` and each command's ``--help``, as a terminal shows them."""
    parts = []
    for name in commands():
        args = [name] if name else []
        title = " ".join(["invoicegen", *args])
        parts.append(f"#### `{title}`\n\n```text\n$ {title} --help\n{help_text(*args)}\n```\n")
    return "\n".join(parts)


# --- console examples ---------------------------------------------------------------------------
#
# Each example is its commands run by bash, one after the other, in a folder of their own (an
# example may continue in the previous one's folder, to show the same database), with the
# `invoicegen` of the interpreter that runs cog first on PATH, no INVOICEGEN_* variables, an
# 80-column pipe and NO_COLOR: what a user sees who runs them in a fresh folder. The output
# is shown as printed, stdout and stderr interleaved, except for NORMALISED: what differs on
# every run. The README says so where the examples start.

EXAMPLE_WIDTH = "80"
#: What differs between two runs of the same command, and what the README shows instead.
NORMALISED = (
    # seed's timing line: "915 rows in 0.28 s (3,216 rows/s, ..."
    (re.compile(r"\b(rows in )\d+(?:\.\d+)? s \([\d,]+ rows/s"), r"\g<1>… s (… rows/s"),
    # times of day, as the run manifest's start times: "2026-12-02 07:31" (same shape kept)
    (re.compile(r"\b\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d)?"), lambda m: _fixed_time(m[0])),
)
_TIME = "2026-11-25 09:30:00"
#: The folder the examples ran in, as the README shows it.
SHOWN_FOLDER = "/home/me/invoicegen"


def _fixed_time(text: str) -> str:
    """``text`` (a date and a time of day) as 2026-11-25 09:30:00, in its own shape."""
    return "".join(fixed if c.isdigit() else c for c, fixed in zip(text, _TIME, strict=False))


_END = "@@invoicegen-readme-end@@"


class _Folders:
    """The folders examples run in, by name, kept from one example to the next in a cog run."""

    kept: dict[str, tempfile.TemporaryDirectory[str]] = {}
    fresh: list[tempfile.TemporaryDirectory[str]] = []

    @classmethod
    def get(cls, name: str | None) -> Path:
        if name is None:
            cls.fresh.append(tempfile.TemporaryDirectory(prefix="invoicegen-readme-"))
            return Path(cls.fresh[-1].name)  # removed when the process ends
        if name not in cls.kept:
            cls.kept[name] = tempfile.TemporaryDirectory(prefix=f"invoicegen-readme-{name}-")
        return Path(cls.kept[name].name)


@contextlib.contextmanager
def server_database(kind: str) -> Iterator[str]:
    """A new database of a unique name on the test server of ``kind`` (see tests/helpers.py),
    its URL yielded, dropped afterwards: for the examples that need PostgreSQL or MariaDB."""
    import sqlalchemy as sa

    from tests.helpers import SERVER_URLS, admin_engine

    name = f"invoicegen_readme_{uuid.uuid4().hex[:10]}"
    engine = admin_engine(kind)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        try:
            # As the URL is written (no driver named), as invoicegen prints it back.
            yield sa.make_url(SERVER_URLS[kind]).set(database=name).render_as_string(False)
        finally:
            force = " WITH (FORCE)" if kind == "postgresql" else ""
            with engine.connect() as connection:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
    finally:
        engine.dispose()


def run_sql(url: str, *statements: str) -> Callable[[], None]:
    """A setup step of :func:`console`: run ``statements`` in ``url``'s database."""

    def run() -> None:
        from invoicegen import db

        engine = db.make_engine(url)
        try:
            with engine.begin() as connection:
                for statement in statements:
                    connection.exec_driver_sql(statement)
        finally:
            engine.dispose()

    return run


def part(command: str, first: str, last: str | None = None) -> tuple[str, str, str | None]:
    """A command of which an example shows the lines from the one that starts with ``first``
    to the one that starts with ``last`` (or only that one), ``...`` standing for the rest."""
    return (command, first, last)


def _environment() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("INVOICEGEN_")
        and k not in ("FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "CLICOLOR_FORCE")
    }
    bin_dir = str(Path(sys.executable).parent)
    return env | {
        "PATH": os.pathsep.join([bin_dir, env.get("PATH", "")]),
        "COLUMNS": EXAMPLE_WIDTH,
        "NO_COLOR": "1",
        "PYTHONUNBUFFERED": "1",  # stdout and stderr in the order a terminal shows them
        "PYTHONIOENCODING": "utf-8",
    }


def _shown(output: str, first: str | None, last: str | None) -> str:
    lines = output.splitlines()
    if first is None:
        return "\n".join(lines)
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = (
        start
        if last is None
        else next(i for i, line in enumerate(lines) if i >= start and line.startswith(last))
    )
    before = ["..."] if start > 0 else []
    after = ["..."] if end < len(lines) - 1 else []
    return "\n".join([*before, *lines[start : end + 1], *after])


def console(
    *commands: str | tuple[str, str, str | None],
    folder: str | None = None,
    setup: tuple[str | Callable[[], None], ...] = (),
    files: Mapping[str, str] | None = None,
    shown: Mapping[str, str] | None = None,
) -> str:
    """A ```console block: each command after ``$ ``, then what it printed.

    ``folder``: run in the folder of that name, where earlier examples of the same name ran
    (with their database); by default in a fresh folder.
    ``setup``: commands (or :func:`run_sql` steps) run first and not shown; each must
    succeed. ``files``: written into the folder first. ``shown``: texts shown as others, in
    the commands and their output (a test server's URL as the README's example one). A command given by :func:`part` shows only part of its output.
    """
    where = _Folders.get(folder)
    for name, text in (files or {}).items():
        (where / name).write_text(text, "utf-8")
    for step in setup:
        if callable(step):
            step()
        else:
            subprocess.run(["bash", "-c", step], cwd=where, env=_environment(), check=True)
    steps = [(c, None, None) if isinstance(c, str) else c for c in commands]
    folders = sorted({str(where), str(where.resolve())}, key=len, reverse=True)
    shown_folder = re.compile("|".join(map(re.escape, folders)))
    normalised = (
        *NORMALISED,
        (shown_folder, SHOWN_FOLDER),
        *((re.compile(re.escape(text)), instead) for text, instead in (shown or {}).items()),
    )
    script = "".join(f"{c}\n__rc=$?; echo {_END}; (exit $__rc)\n" for c, _, _ in steps)
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=where,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        check=False,
    )
    outputs = done.stdout.split(f"{_END}\n")[: len(steps)]
    assert len(outputs) == len(steps), done.stdout
    block = []
    for (command, first, last), output in zip(steps, outputs, strict=True):
        for pattern, replacement in normalised:
            output = pattern.sub(replacement, output)
        output = "\n".join(line.rstrip() for line in output.splitlines())
        for text, instead in (shown or {}).items():
            command = command.replace(text, instead)
        block.append(f"$ {command}" + (f"\n{_shown(output, first, last)}" if output else ""))
    return "```console\n" + "\n".join(block) + "\n```\n"


def locale_table(locales: tuple[str, ...], *, users: int, seed: int) -> str:
    """Markdown: the last user's name, email and phone as ``invoicegen seed --users N --seed S
    --locale L`` writes them, one column per locale (each seeded into a fresh SQLite file)."""
    import sqlite3

    columns = []
    for locale in locales:
        where = _Folders.get(None)
        url = f"sqlite:///{where / 'locale.db'}"
        command = ["seed", "-q", "--users", str(users), "--seed", str(seed), "--locale", locale]
        command += ["--as-of", "2026-11-25", "-d", url]
        done = CliRunner().invoke(app, command, env=_ENV)
        assert done.exit_code == 0, done.output
        with contextlib.closing(sqlite3.connect(where / "locale.db")) as connection:
            row = connection.execute(
                "SELECT name, email, phone FROM users WHERE id = ?", (users,)
            ).fetchone()
        columns.append(row)
    lines = [
        "| | " + " | ".join(locales) + " |",
        "| --- |" + " --- |" * len(locales),
        *(
            f"| `users.{field}` | " + " | ".join(str(c[i]) for c in columns) + " |"
            for i, field in enumerate(("name", "email", "phone"))
        ),
    ]
    return "\n".join(lines) + "\n"
