"""The README's generated command reference, shared by its cog blocks and ``tests/test_docs.py``.

Regenerate the README after changing a command or an option::

    .venv/bin/cog -r -I . README.md
"""

from __future__ import annotations

import re

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
