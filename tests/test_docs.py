"""The README cannot drift from the CLI: generated reference, commands, options, JSON fields,
exit codes."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from invoicegen import db, errors
from tests.helpers import invoke, require_server
from tests.manifest import replace_manifest
from tests.readme import commands

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text("utf-8")


def section(title: str) -> str:
    """The README text from heading ``title`` to the next heading of the same or a higher level."""
    match = re.search(rf"^(#+) {re.escape(title)}.*?$", README, re.MULTILINE)
    assert match, f"README has no heading {title!r}"
    level = len(match.group(1))
    rest = README[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


REGENERATE = "run `.venv/bin/cog -r -I . README.md` (and review the diff)"


def test_the_generated_reference_is_current() -> None:
    """In a process of its own, as cog makes it: Typer reads the terminal's width once."""
    block = README.split("cog.out(reference())\n]]] -->\n", 1)[1].split("<!-- [[[end]]] -->")[0]
    made = subprocess.run(
        [sys.executable, "-c", "from tests.readme import reference; print(reference(), end='')"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    ).stdout
    assert block == made, f"README.md's command reference is stale: {REGENERATE}"


def _pinned_versions_differ() -> str | None:
    """Why this environment cannot reproduce the README's rows, if it cannot: the versions
    of the libraries that make them differ from constraints.txt's."""
    from importlib.metadata import version

    from packaging.requirements import Requirement

    differ = []
    for line in (ROOT / "constraints.txt").read_text("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            pin = Requirement(line)
            (specifier,) = pin.specifier
            if pin.name.lower() in ("faker", "factory-boy", "anyascii"):
                if version(pin.name) != specifier.version:
                    differ.append(f"{pin.name} {version(pin.name)} (pinned {specifier.version})")
    return "; ".join(differ) or None


@pytest.mark.slow
@pytest.mark.servers
def test_every_console_example_is_what_the_command_prints() -> None:
    """cog runs every example of the README again (tests/readme.py) and compares; the
    --drop-foreign-keys example needs the PostgreSQL server."""
    require_server("postgresql")
    if (differ := _pinned_versions_differ()) is not None:
        pytest.skip(
            f"the README's rows are made with constraints.txt's versions; installed: {differ} "
            "(pip install -c constraints.txt -e '.[dev]')"
        )
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "PY_COLORS")}
    env.pop("GITHUB_ACTIONS", None)
    done = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", "--diff", "-I", ".", "README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, (
        f"README.md's examples are not what the commands print now: {REGENERATE}\n"
        + done.stdout
        + done.stderr
    )


def test_every_console_example_is_generated() -> None:
    """A ```console block is output, so cog makes it (tests/readme.py's console()); a command
    shown without its output belongs in a ```bash block."""
    generated, hand_written = False, []
    for number, line in enumerate(README.splitlines(), 1):
        generated = line.startswith("<!-- [[[cog") or (generated and "[[[end]]]" not in line)
        if line == "```console" and not generated:
            hand_written.append(number)
    assert not hand_written, f"README.md lines {hand_written}: write them as cog blocks"


def _example(command: str) -> str:
    """The output of ``command`` in the README's console example that runs it first."""
    start = README.index(f"\n$ {command}\n") + len(command) + 4
    return README[start:].split("\n$ ", 1)[0].split("\n```", 1)[0]


def test_the_seed_and_stats_examples_show_one_dataset() -> None:
    """The Try-it command is the seed example's, and its numbers are the stats example's."""
    try_it = README.split("<!-- try-it -->", 1)[1].split("<!-- /try-it -->", 1)[0]
    command = "invoicegen seed --users 50 --seed 42 --as-of 2026-11-25"
    assert try_it.strip().removesuffix("```").rstrip().endswith(f"&& {command}")
    seeded, stats = _example(command), _example("invoicegen stats")
    table = re.compile(r"^│ (\w+) +│ +([\d,]+) │$", re.MULTILINE)
    counts = dict(table.findall(seeded))
    assert set(counts) == {"users", "clients", "contracts", "invoices", "total"}
    assert dict(table.findall(stats)) == counts
    assert f"\n{counts['total']} rows in " in seeded
    assert counts["users"] == "50"
    assert "replay this run:\n  invoicegen seed --users 50 --seed 42 --as-of 2026-11-25" in seeded


@pytest.mark.parametrize("name", [name for name in commands() if name])
def test_every_command_has_a_section_and_a_reference(name: str) -> None:
    assert f"### `invoicegen {name}`" in README, f"no section on `invoicegen {name}`"
    reference = section(f"`invoicegen {name}`\n")
    for option in commands()[name]:
        assert re.search(rf"{re.escape(option)}\b", reference), f"{name}: {option} undocumented"


def test_the_group_options_are_in_the_reference() -> None:
    reference = section("`invoicegen`\n")
    for option in commands()[""]:
        assert option in reference


def test_every_settings_key_is_documented() -> None:
    from invoicegen.settings import OPTIONS

    text = section("Settings and profiles")
    for key in OPTIONS:
        assert f"`{key}`" in text, key


def _keys(value: Any, prefix: str = "") -> set[str]:
    """Every key of a JSON document, nested ones included (lists of objects: their keys)."""
    if isinstance(value, dict):
        found = set(value)
        for item in value.values():
            found |= _keys(item)
        return found
    if isinstance(value, list):
        return set().union(*(_keys(item) for item in value)) if value else set()
    return set()


def test_every_json_field_is_documented(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'docs.db'}"
    seeded = invoke("seed", "-n", "3", "--seed", "1", "-d", url, "--json")
    # One manifest row, so that `runs` has fields to show.
    replace_manifest(db.make_engine(url), options={}, as_of=dt.date(2026, 1, 1))
    documents = {
        "seed": json.loads(seeded.stdout),
        "stats": json.loads(invoke("stats", "-d", url, "--json").stdout),
        "stats --check": json.loads(invoke("stats", "--check", "-d", url, "--json").stdout),
        "export": json.loads(
            invoke(
                "export",
                str(tmp_path / "x"),
                "-n",
                "3",
                "--shard",
                "0/2",
                "--seed",
                "1",
                "--as-of",
                "2026-01-01",
                "--json",
            ).stdout
        ),
    }
    text = section("JSON output")
    for command, document in documents.items():
        # Up to the next table's heading (a line of its own), so "`invoicegen`" may be a field.
        table = text.split(f"`invoicegen {command} --json`", 1)[1].split("\n`invoicegen", 1)[0]
        for key in _keys(document) - {"users", "clients", "contracts", "invoices"} - {"{}"}:
            assert f"`{key}`" in table, f"`{command} --json`: field {key!r} undocumented"
    assert {"users", "clients", "contracts", "invoices"} <= set(documents["seed"]["counts"])


def test_every_exit_code_is_in_the_table() -> None:
    table = section("Exit codes")
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)}
    codes = {0, 1, 2, 130} | {
        cls.exit_code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.InvoicegenError)
    }
    assert documented == codes


def test_the_test_command_is_still_marked_for_ci() -> None:
    block = README.split("<!-- test-command -->", 1)[1].split("<!-- /test-command -->", 1)[0]
    assert "pip install -q -e '.[test]'" in block and "python -m pytest" in block


def test_the_constraints_file_pins_what_a_replay_needs_and_installs_the_package() -> None:
    """constraints.txt pins the tested versions; the README's install command uses it.

    Not "the pins equal the versions installed for this test run": CI installs the newest
    releases (to catch a Faker that changes the data), so that would fail on every Faker
    release, which is a reason to re-test and re-pin, not a broken checkout. Instead: every line
    parses as an exact pin, it pins Faker, factory-boy, SQLAlchemy and both drivers, and each
    pin satisfies what pyproject.toml requires (pip would otherwise refuse the constraints).
    """
    from importlib.metadata import requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lines = (ROOT / "constraints.txt").read_text("utf-8").splitlines()
    pins = {}
    for line in lines:
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            pins[canonicalize_name(requirement.name)] = specifier.version
    assert {"faker", "factory-boy", "sqlalchemy", "psycopg", "pymysql"} <= set(pins)
    for needed in map(Requirement, requires("invoicegen") or []):
        name = canonicalize_name(needed.name)
        if name in pins:
            assert needed.specifier.contains(pins[name]), (needed, pins[name])
    assert "pip install -c constraints.txt '.[postgres,mysql]'" in section("Reproducibility")
