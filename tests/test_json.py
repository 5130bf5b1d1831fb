"""One JSON vocabulary: every ``--json`` document matches its schema in ``schemas/``, the
commands agree on field names and bases, and an error is a JSON document too."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from invoicegen.cli import app

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
AS_OF = "2026-11-01"
runner = CliRunner()


def valid(name: str, document: Any) -> dict[str, Any]:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    errors = sorted(Draft202012Validator(schema).iter_errors(document), key=str)
    assert not errors, f"{name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors)
    assert isinstance(document, dict)
    return document


def cli_json(*args: str, code: int = 0) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def seed(url: str, *more: str) -> dict[str, Any]:
    return cli_json("seed", "-d", url, "-n", "7", "--seed", "5", "--as-of", AS_OF, "--workers", "1", *more)  # fmt: skip


def test_every_schema_is_a_valid_json_schema() -> None:
    names = sorted(path.stem for path in SCHEMAS.glob("*.json"))
    assert names == ["check", "error", "export", "migrate", "protect", "reset", "seed", "stats"]
    for name in names:
        Draft202012Validator.check_schema(json.loads((SCHEMAS / f"{name}.json").read_text()))


def test_a_schema_rejects_what_breaks_the_vocabulary() -> None:
    """The schemas can fail: a 0-based first_user and a time without a zone are refused."""
    good = {"error": {"code": 2, "message": "bad"}}
    valid("error", good)
    for bad in ({"error": {"code": 2}}, {"error": {"code": 0, "message": "x"}}, {"code": 2}):
        with pytest.raises(AssertionError):
            valid("error", bad)
    migrate = {"database": "sqlite:///x.db", "revision": "0003", "extra": 1}
    with pytest.raises(AssertionError):
        valid("migrate", migrate)


def test_seed_stats_reset_and_migrate_documents_agree(database_url: str) -> None:
    """Each document matches its schema, on each database; the run the seed reports is the one
    stats lists, with the same names and the same 1-based first_user; times are UTC ISO 8601."""
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    migrated = valid("migrate", cli_json("migrate", "-d", database_url))
    first = valid("seed", seed(database_url))
    second = valid("seed", seed(database_url, "--append", "-n", "3"))
    stats = valid("stats", cli_json("stats", "-d", database_url))
    check = valid("check", cli_json("stats", "--check", "-d", database_url))
    dry = valid("reset", cli_json("reset", "--dry-run", "-d", database_url))

    assert migrated["revision"] == first["revision"] == stats["revision"]
    assert migrated["database"] == first["database"] == stats["database"] == dry["database"]
    assert check["database"] == first["database"] and check["ok"] is True
    assert (first["first_user"], first["users"]) == (1, 7)
    assert (second["first_user"], second["users"]) == (8, 3)
    runs = {run["id"]: run for run in stats["runs"]}
    for document in (first, second):
        run = runs[document["run"]]
        for key in ("seed", "as_of", "first_user", "users", "shard"):
            assert run[key] == document[key], key
        started = dt.datetime.fromisoformat(run["started_at"])
        assert started.utcoffset() == dt.timedelta(0)
        assert before - dt.timedelta(seconds=1) <= started <= dt.datetime.now(dt.UTC)
        assert dt.datetime.fromisoformat(run["finished_at"]) >= started
    assert dry["dry_run"] is True
    assert {t["name"]: t["rows"] for t in dry["tables"]}["users"] == 10 == stats["counts"]["users"]
    assert dry["rows"] >= sum(stats["counts"].values())  # and the manifest's rows


def test_reset_json_says_what_was_dropped(sqlite_url: str) -> None:
    seed(sqlite_url)
    done = valid("reset", cli_json("reset", "--yes", "-d", sqlite_url))
    assert done["dry_run"] is False
    assert {t["name"]: t["rows"] for t in done["tables"]}["users"] == 7
    assert valid("stats", cli_json("stats", "-d", sqlite_url))["counts"]["users"] == 0


def test_protect_and_unprotect_json_say_the_mark_now(sqlite_url: str) -> None:
    seed(sqlite_url)
    assert valid("protect", cli_json("protect", "-d", sqlite_url))["protected"] is True
    assert valid("reset", cli_json("reset", "--dry-run", "-d", sqlite_url))["protected"] is True
    assert valid("protect", cli_json("unprotect", "-d", sqlite_url))["protected"] is False
    assert valid("reset", cli_json("reset", "--dry-run", "-d", sqlite_url))["protected"] is False


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["seed", "--users", "lots"], 2, "--users"),  # a bad value, found by invoicegen
        (["seed", "--no-such-option"], 2, "No such option"),  # a usage error, found by Typer
        (["reset"], 3, "pass --yes"),  # refused: no terminal to confirm on
        (["seed", "--progress", "fancy"], 2, "--progress"),
    ],
    ids=["bad-value", "unknown-option", "refused", "bad-progress"],
)
def test_an_error_with_json_is_one_json_document_and_one_line(
    sqlite_url: str, args: list[str], code: int, says: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "invoicegen", *args, "-d", sqlite_url, "--json"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert done.returncode == code, done.stderr
    document = valid("error", json.loads(done.stdout))  # one document, nothing else on stdout
    assert document["error"]["code"] == code
    assert says in document["error"]["message"]
    assert done.stderr.splitlines() == [f"error: {document['error']['message']}"]


def test_stats_of_a_missing_database_with_json_is_an_error_document(tmp_path: Path) -> None:
    result = runner.invoke(app, ["stats", "-d", f"sqlite:///{tmp_path / 'nope.db'}", "--json"])
    assert result.exit_code != 0
    document = valid("error", json.loads(result.stdout))
    assert document["error"]["code"] == result.exit_code
    assert result.stderr.strip() == f"error: {document['error']['message']}"


def test_a_failed_check_with_json_is_its_report_alone(sqlite_url: str) -> None:
    """`stats --check` prints its report, then fails with exit 7: still one document."""
    seed(sqlite_url)
    with sa.create_engine(sqlite_url).begin() as connection:
        # a contract with no invoices: outside --invoices-per-contract 1-5
        connection.execute(sa.text("DELETE FROM invoices WHERE contract_id = 1"))
    result = runner.invoke(app, ["stats", "--check", "-d", sqlite_url, "--json"])
    assert result.exit_code == 7, result.stderr
    report = valid("check", json.loads(result.stdout))
    assert report["ok"] is False
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
