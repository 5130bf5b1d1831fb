"""`invoicegen stats` and `stats --check` on SQLite, PostgreSQL and MariaDB.

Every number in the JSON is compared with SQL written here, independently of invoicegen's own
queries; the check is proven by corrupting a seeded database with SQL the schema allows.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from invoicegen import db, stats
from invoicegen.cli import app
from invoicegen.currencies import in_minor_units
from invoicegen.errors import CheckFailed
from invoicegen.settings import CountMix
from tests.invariants import scalar
from tests.manifest import replace_manifest

runner = CliRunner()
AS_OF = dt.date(2026, 3, 31)
LEVELS = (("users", "clients", "user_id"), ("clients", "contracts", "client_id"))
LEVELS += (("contracts", "invoices", "contract_id"),)


def cli(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env=env)


def seeded(url: str, *ranges: str, users: int = 12, seed: int = 3) -> sa.Engine:
    result = cli(
        "seed", "-n", str(users), "--seed", str(seed), "--as-of", AS_OF.isoformat(), "-d", url,
        "--json", *ranges,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return db.make_engine(url)


def rows(engine: sa.Engine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(sql), params)]


def cents(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def as_date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def test_stats_json_numbers_match_sql(database_url: str) -> None:
    engine = seeded(database_url)
    result = cli("stats", "-d", database_url, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)

    for table in ("users", "clients", "contracts", "invoices"):
        assert data["counts"][table] == scalar(engine, f"SELECT COUNT(*) FROM {table}")

    for level, (parent, child, fk) in zip(data["children"], LEVELS, strict=True):
        per_parent = rows(
            engine, f"SELECT (SELECT COUNT(*) FROM {child} c WHERE c.{fk} = p.id) FROM {parent} p"
        )
        expected = Counter(n for (n,) in per_parent)
        assert (level["parent"], level["child"]) == (parent, child)
        got = {d["children"]: d["parents"] for d in level["distribution"]}
        assert got == dict(expected)
        assert level["min"] == min(expected) and level["max"] == max(expected)
        assert level["mean"] == pytest.approx(sum(n for (n,) in per_parent) / len(per_parent))

    total = scalar(engine, "SELECT SUM(amount) FROM invoices")
    assert Decimal(data["amount_total"]) == cents(total)

    months = data["months"]
    assert sum(m["invoices"] for m in months) == data["counts"]["invoices"]
    first_end, last_end = rows(engine, "SELECT MIN(period_end), MAX(period_end) FROM invoices")[0]
    assert months[0]["month"] == as_date(first_end).isoformat()[:7]
    assert months[-1]["month"] == as_date(last_end).isoformat()[:7]
    for month in months:
        start = dt.date.fromisoformat(month["month"] + "-01")
        after = (start + dt.timedelta(days=32)).replace(day=1)
        n, billed = rows(
            engine,
            "SELECT COUNT(*), SUM(amount) FROM invoices WHERE period_end >= :a AND period_end < :b",
            a=start,
            b=after,
        )[0]
        assert month["invoices"] == n
        assert Decimal(month["billed"]) == cents(billed or 0)

    per_client = rows(
        engine,
        "SELECT k.client_id, SUM(i.amount), COUNT(*) FROM invoices i "
        "JOIN contracts k ON k.id = i.contract_id GROUP BY k.client_id",
    )
    ranked = sorted(per_client, key=lambda r: (-cents(r[1]), r[0]))[:10]
    top = data["top_clients"]
    assert [(c["id"], Decimal(c["billed"]), c["invoices"]) for c in top] == [
        (client, cents(billed), n) for client, billed, n in ranked
    ]
    assert top[0]["company_name"] == scalar(
        engine, "SELECT company_name FROM clients WHERE id = :i", i=top[0]["id"]
    )


def test_stats_shows_the_run_manifest(database_url: str) -> None:
    engine = seeded(database_url, users=2)
    options = {"clients_per_user": "1-3", "locale": "en_US"}
    replace_manifest(
        engine, options=options, as_of=AS_OF, seed=424242, shard="1/2", versions="not json"
    )
    data = json.loads(cli("stats", "-d", database_url, "--json").stdout)
    run = next(r for r in data["runs"] if r["seed"] == 424242)
    assert run["options"] == options and run["versions"] == "not json" and run["counts"] is None
    assert (run["as_of"], run["shard"], run["status"]) == (AS_OF.isoformat(), "1/2", "done")
    shown = cli("stats", "-d", database_url)
    assert "run manifest" in shown.stdout and "424242" in shown.stdout
    assert "clients=1-3" in shown.stdout and "1/2" in shown.stdout


def _report(url: str, *args: str, code: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = cli("stats", "--check", "--json", "-d", url, *args, env=env)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    if code:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _failures(report: dict[str, Any]) -> dict[str, tuple[int, list[int]]]:
    return {c["name"]: (c["violations"], c["examples"]) for c in report["checks"] if not c["ok"]}


RANGES = ("--clients-per-user", "2", "--contracts-per-client", "1-2")
RANGES += ("--invoices-per-contract", "2-4")
# The same, for `stats --check` on a database whose manifest does not record them.
RANGES_ENV = {"INVOICEGEN_CLIENTS_PER_USER": "2", "INVOICEGEN_CONTRACTS_PER_CLIENT": "1-2"}
RANGES_ENV |= {"INVOICEGEN_INVOICES_PER_CONTRACT": "2-4"}


def test_check_passes_on_seeded_data(database_url: str) -> None:
    seeded(database_url, *RANGES)
    report = _report(database_url, code=0)
    assert report["ok"] is True
    assert all(c["violations"] in (0, None) for c in report["checks"])
    assert sum(c["violations"] == 0 for c in report["checks"]) >= 25


def _unchecked(connection: sa.Connection, dialect: str) -> None:
    """Let this connection break foreign keys and CHECK constraints (as a bad import might)."""
    if dialect == "sqlite":
        connection.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
    elif dialect == "postgresql":
        connection.exec_driver_sql("SET session_replication_role = replica")
        connection.exec_driver_sql(
            "ALTER TABLE invoices DROP CONSTRAINT ck_invoices_amount_not_negative"
        )
    else:
        connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
        connection.exec_driver_sql(
            "ALTER TABLE invoices DROP CONSTRAINT ck_invoices_amount_not_negative"
        )


def test_check_lists_each_violation_and_exits_7(database_url: str) -> None:
    engine = seeded(database_url, *RANGES)
    dialect = engine.dialect.name
    # Targets from different users' trees, so that the corruptions do not overlap.
    k1, k2 = (
        k
        for (k,) in rows(
            engine,
            "SELECT k.id FROM contracts k JOIN clients c ON c.id = k.client_id WHERE c.user_id IN (3, 4) ORDER BY k.id",
        )[:2]
    )
    # The client billed user 5's first number: deleting its contracts leaves the others'
    # numbers without INV-5-1 (whichever client that is depends on the seed's data).
    (lonely,) = rows(
        engine,
        "SELECT k.client_id FROM invoices i JOIN contracts k ON k.id = i.contract_id WHERE i.number = 'INV-5-1'",
    )[0]
    assert scalar(
        engine,
        "SELECT COUNT(*) FROM invoices i JOIN contracts k ON k.id = i.contract_id JOIN clients c ON c.id = k.client_id WHERE c.user_id = 5 AND c.id <> :c AND i.number IS NOT NULL",
        c=lonely,
    ), "user 5's other client has issued invoices whose numbers the deletion leaves a gap before"
    (negative,) = rows(
        engine,
        "SELECT MIN(i.id) FROM invoices i JOIN contracts k ON k.id = i.contract_id JOIN clients c ON c.id = k.client_id WHERE c.user_id = 6",
    )[0]
    orphans = scalar(engine, "SELECT COUNT(*) FROM clients WHERE user_id = 1")
    gap, gap_start = rows(  # the last period of a contract, to start a day late
        engine,
        "SELECT i.id, i.period_start FROM invoices i JOIN contracts k ON k.id = i.contract_id JOIN clients c ON c.id = k.client_id WHERE c.user_id = 7 ORDER BY k.id, i.period_start DESC",
    )[0]
    first, second = rows(
        engine,
        "SELECT id, period_start FROM invoices WHERE contract_id = :k ORDER BY period_start",
        k=k1,
    )[:2]
    early, k2_start = rows(
        engine,
        "SELECT i.id, k.start_date FROM invoices i JOIN contracts k ON k.id = i.contract_id WHERE k.id = :k ORDER BY i.period_start",
        k=k2,
    )[0]

    with engine.begin() as connection:  # cascades to the contracts' invoices
        connection.execute(sa.text("DELETE FROM contracts WHERE client_id = :c"), {"c": lonely})
    raw = sa.create_engine(engine.url)  # without invoicegen's PRAGMA foreign_keys = ON
    with raw.begin() as connection:
        _unchecked(connection, dialect)
        update = "UPDATE invoices SET {} WHERE id = :i"
        connection.execute(
            sa.text(update.format("period_start = :d")), {"d": as_date(first[1]), "i": second[0]}
        )
        moved = as_date(k2_start) - dt.timedelta(days=10)
        connection.execute(sa.text(update.format("period_start = :d")), {"d": moved, "i": early})
        connection.execute(sa.text(update.format("amount = -1")), {"i": negative})
        late = as_date(gap_start) + dt.timedelta(days=1)
        connection.execute(sa.text(update.format("period_start = :d")), {"d": late, "i": gap})
        connection.execute(sa.text("DELETE FROM users WHERE id = 1"))
    raw.dispose()

    report = _report(database_url, code=CheckFailed.exit_code, env=RANGES_ENV)
    assert report["ok"] is False
    failures = _failures(report)
    orphan_ids = [
        i for (i,) in rows(engine, "SELECT id FROM clients WHERE user_id = 1 ORDER BY id")
    ]
    crossed = (moved.year, moved.month) != (as_date(k2_start).year, as_date(k2_start).month)
    not_ending = sorted([second[0], *([early] if crossed else [])])
    # Deleting a client's contracts leaves gaps in its user's invoice numbers.
    assert failures.pop("invoice numbers not INV-<user>-<n> in issue order")[0] > 0
    assert failures == {
        # the overlapping one ends where the first period does; the early one when it moved
        # into an earlier month
        "invoices not ending where a monthly period ends": (len(not_ending), not_ending),
        "contracts not billed exactly from start to billed_to": (1, [k2]),
        "invoice amounts off their contract's rate": (1, [negative]),
        "clients without their user": (orphans, orphan_ids[:5]),
        "clients with contracts outside 1-2": (1, [lonely]),
        "invoice periods overlapping an earlier one": (1, [second[0]]),
        "invoices outside their contract's dates": (1, [early]),
        "invoices with a negative amount": (1, [negative]),
        "gaps between consecutive invoice periods": (1, [gap]),
    }
    text = cli("stats", "--check", "-d", database_url, env=RANGES_ENV)
    assert text.exit_code == CheckFailed.exit_code
    assert f"10 of {len(report['checks'])} checks failed" in text.stderr
    assert "1 violation(s)" in text.stdout and f"#{lonely}" in text.stdout


def test_check_reads_its_expectations_from_the_manifest(database_url: str) -> None:
    # A seed whose trees hold every status (seed 3's have no overdue invoice since 0.5.0).
    engine = seeded(database_url, *RANGES, seed=6)
    before = AS_OF - dt.timedelta(days=200)
    replace_manifest(
        engine,
        as_of=before,
        options={
            "clients_per_user": "1",  # the data has 2 per user
            "contracts_per_client": [1, 2],
            "invoices_per_contract": {"low": 2, "high": 4},
        },
    )
    # Settings that would pass everything are overridden by what the manifest recorded.
    report = _report(database_url, code=CheckFailed.exit_code)
    assert report["expectations"]["source"].startswith("run manifest")
    assert report["expectations"]["as_of"] == before.isoformat()
    assert "from settings" not in report["expectations"]["source"]
    late = scalar(engine, "SELECT COUNT(*) FROM invoices WHERE period_end > :d", d=before)
    failures = _failures(report)
    assert set(failures) == {
        "users with clients outside 1",
        f"invoices after the as-of date {before}",
        # invoices issued, paid or due after the earlier as-of, contracts billed beyond it
        "contracts not billed exactly from start to billed_to",
        "issue dates before the period's end or after as-of",
        "paid invoices not paid between issue and as-of",
        "overdue invoices paid or not past due",
    }
    assert failures["users with clients outside 1"][0] == 12
    assert failures[f"invoices after the as-of date {before}"][0] == late > 0


def test_check_without_a_manifest_uses_the_settings(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = seeded(sqlite_url, *RANGES)
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM invoicegen_runs"))
    monkeypatch.setenv("INVOICEGEN_CLIENTS_PER_USER", "3")
    report = _report(sqlite_url, code=CheckFailed.exit_code)
    assert "environment INVOICEGEN_CLIENTS_PER_USER" in report["expectations"]["source"]
    assert _failures(report) == {"users with clients outside 3": (12, list(range(1, 6)))}
    skipped = [c["name"] for c in report["checks"] if c["violations"] is None]
    assert skipped == [
        "invoices after the as-of date",
        "contracts not billed exactly from start to billed_to",
        "issue dates before the period's end or after as-of",
        "paid invoices not paid between issue and as-of",
        "open invoices paid or past due",
        "overdue invoices paid or not past due",
    ]
    monkeypatch.setenv("INVOICEGEN_AS_OF", "2000-01-01")
    assert "invoices after the as-of date 2000-01-01" in _failures(
        _report(sqlite_url, code=CheckFailed.exit_code)
    )


def test_check_quiet_prints_only_the_error(sqlite_url: str) -> None:
    seeded(sqlite_url, *RANGES, seed=6)  # overdue invoices too (seed 3's have none since 0.5.0)
    result = cli("stats", "--check", "-q", "-d", sqlite_url, env={"INVOICEGEN_AS_OF": "2000-01-01"})
    assert result.exit_code == CheckFailed.exit_code
    assert result.stdout == ""
    assert result.stderr.startswith("error: 5 of 26 checks failed: invoices after")


@pytest.mark.parametrize("env", [{}, {"NO_COLOR": "1"}, {"NO_COLOR": "1", "FORCE_COLOR": "1"}])
def test_no_escape_sequences_off_a_terminal_or_with_no_color(
    sqlite_url: str, env: dict[str, str]
) -> None:
    seeded(sqlite_url, users=3)
    for args in (["stats"], ["stats", "--check"], ["migrate"], ["stats", "--verbose"]):
        result = cli(*args, "-d", sqlite_url, env=env)
        assert result.exit_code == 0, result.stderr
        assert result.stdout and "\x1b[" not in result.output
    error = cli("stats", "-d", "sqlite:///nowhere/x.db", env=env)
    assert error.exit_code == 4 and "\x1b[" not in error.stderr


def test_force_color_alone_does_colour(sqlite_url: str) -> None:
    """The counterpart of the test above: the assertion can fail."""
    seeded(sqlite_url, users=3)
    assert "\x1b[" in cli("stats", "-d", sqlite_url, env={"FORCE_COLOR": "1"}).stdout


def test_quiet_seed_prints_nothing_but_json_still_works(tmp_path: Any) -> None:
    quiet = cli("seed", "-n", "2", "-q", "-d", f"sqlite:///{tmp_path / 'q.db'}")
    assert quiet.exit_code == 0 and quiet.stdout == "" and quiet.stderr == ""
    both = cli("seed", "-n", "2", "-q", "--json", "-d", f"sqlite:///{tmp_path / 'j.db'}")
    assert json.loads(both.stdout)["counts"]["users"] == 2


def test_stats_of_an_empty_schema_says_how_to_fill_it(sqlite_url: str) -> None:
    assert cli("migrate", "-d", sqlite_url).exit_code == 0
    result = cli("stats", "-d", sqlite_url)
    assert result.exit_code == 0
    assert "no data yet" in result.stdout and "per user" not in result.stdout
    data = json.loads(cli("stats", "-d", sqlite_url, "--json").stdout)
    assert data["months"] == [] and data["top_clients"] == [] and data["amount_mean"] is None
    assert _report(sqlite_url, code=0)["ok"] is True


def test_check_falls_back_on_the_settings_for_what_a_run_did_not_record(sqlite_url: str) -> None:
    engine = seeded(sqlite_url, *RANGES)
    replace_manifest(engine, options={"clients_per_user": "2"}, as_of=AS_OF)
    report = _report(
        sqlite_url, code=CheckFailed.exit_code, env={"INVOICEGEN_INVOICES_PER_CONTRACT": "1"}
    )
    source = report["expectations"]["source"]
    assert source.startswith(
        "run manifest (1 run); contracts_per_client, invoices_per_contract from settings"
    )
    assert set(_failures(report)) == {"contracts with invoices outside 1"}


# --- weighted mixes ----------------------------------------------------------------------------

MIXED = ("--clients-per-user", "1-2:70,6-8:30", "--contracts-per-client", "1")
MIXED += ("--invoices-per-contract", "1")
PER_USER = "SELECT u.id, COUNT(c.id) AS n FROM users u LEFT JOIN clients c ON c.user_id = u.id "
PER_USER += "GROUP BY u.id"


def _users_with(engine: sa.Engine, low: int, high: int) -> int:
    return int(
        scalar(engine, f"SELECT COUNT(*) FROM ({PER_USER}) t WHERE n BETWEEN {low} AND {high}")
    )


def _cut_a_big_user_to(engine: sa.Engine, clients: int) -> int:
    """Delete clients of the first user with more than 2, down to ``clients``: a count no part
    of ``MIXED`` holds. Returns the user's id."""
    (user,) = rows(engine, f"SELECT MIN(id) FROM ({PER_USER}) t WHERE n > 2")[0]
    keep = [
        i for (i,) in rows(engine, f"SELECT id FROM clients WHERE user_id = {user} ORDER BY id")
    ]
    with engine.begin() as connection:  # cascades to contracts and invoices
        connection.execute(
            sa.text(f"DELETE FROM clients WHERE user_id = :u AND id > {keep[clients - 1]}"),
            {"u": user},
        )
    return int(user)


def test_stats_json_names_each_levels_mix(database_url: str) -> None:
    seeded(database_url, *MIXED, users=60)
    data = json.loads(cli("stats", "-d", database_url, "--json").stdout)
    assert [level["mix"] for level in data["children"]] == ["1-2:70,6-8:30", "1", "1"]


def test_the_chart_of_a_mixed_level_follows_the_mix(sqlite_url: str) -> None:
    engine = seeded(sqlite_url, *MIXED, users=60)
    small, big = _users_with(engine, 1, 2), _users_with(engine, 6, 8)
    assert small + big == 60 and big > 5

    def chart() -> list[str]:
        shown = cli("stats", "-d", sqlite_url, env={"COLUMNS": "80", "NO_COLOR": "1"})
        assert shown.exit_code == 0, shown.stderr
        # every line fits, but the one naming the database: a URL is never cut or folded
        assert max(len(line) for line in shown.stdout.splitlines() if sqlite_url not in line) <= 80
        lines = shown.stdout.splitlines()
        start = lines.index(next(line for line in lines if line.startswith("clients per user")))
        end = next(i for i in range(start, len(lines)) if lines[i].startswith("mean"))
        return [line.rstrip() for line in lines[start : end + 1]]

    lines = chart()
    assert lines[1].split() == ["clients", "users", "share", "mix"]
    assert lines[2].split()[0] == "1-2" and lines[2].split()[-3:] == [
        str(small), f"{small / 60:.0%}", "70%"
    ]  # fmt: skip
    assert lines[3].split()[0] == "6-8" and lines[3].split()[-3:] == [
        str(big), f"{big / 60:.0%}", "30%"
    ]  # fmt: skip
    assert lines[4].endswith("seeded with 1-2:70,6-8:30") and len(lines) == 5

    _cut_a_big_user_to(engine, 4)
    lines = chart()
    assert lines[4].split()[0] == "other" and lines[4].split()[-3:] == ["1", f"{1 / 60:.0%}", "-"]
    assert lines[3].split()[-3] == str(big - 1)


def test_check_with_a_mix_refuses_counts_between_its_parts(database_url: str) -> None:
    engine = seeded(database_url, *MIXED, users=30)
    report = _report(database_url, code=0)
    assert report["expectations"]["clients_per_user"] == "1-2:70,6-8:30"
    user = _cut_a_big_user_to(engine, 4)
    failures = _failures(_report(database_url, code=CheckFailed.exit_code))
    assert failures.pop("users with clients outside 1-2 or 6-8") == (1, [user])
    # The deleted clients' invoices leave gaps in that user's numbering; nothing else breaks.
    assert list(failures) in ([], ["invoice numbers not INV-<user>-<n> in issue order"])


def test_check_after_a_forced_append_with_another_mix_allows_either(sqlite_url: str) -> None:
    engine = seeded(sqlite_url, *MIXED, users=10)
    appended = cli("seed", "-n", "10", "--append", "--force", "--clients-per-user", "4:1,9:1",
                   "-d", sqlite_url, "--json", "--workers", "1")  # fmt: skip
    assert appended.exit_code == 0, appended.stderr
    report = _report(sqlite_url, code=0)
    assert report["expectations"]["clients_per_user"] == "1-2:1,4:1,6-9:1"
    assert "users with clients outside 1-2 or 4 or 6-9" in [c["name"] for c in report["checks"]]
    assert _users_with(engine, 4, 4) + _users_with(engine, 9, 9) == 10
    data = json.loads(cli("stats", "-d", sqlite_url, "--json").stdout)
    assert data["children"][0]["mix"] is None  # the runs disagree: no one mix to chart


def test_collect_and_check_report_each_step_as_it_starts(sqlite_url: str) -> None:
    """Progress goes through a callback (library code never prints): one call per step, in
    order, numbered from 1 of a total that grows only when a failed check's examples are
    fetched."""
    engine = seeded(sqlite_url, users=3)
    steps: list[stats.Step] = []
    stats.collect(engine, progress=steps.append)
    assert [(s.number, s.total, s.name) for s in steps] == [
        (n, len(stats.COLLECT_STEPS), name) for n, name in enumerate(stats.COLLECT_STEPS, 1)
    ]
    ranges = {key: CountMix.parse("0-100") for key in stats.EXPECTATION_KEYS[:-1]}
    late = stats.Expectations(ranges, dt.date(2000, 1, 1), "test", frozenset({"as_of"}))
    steps.clear()
    report = stats.check(engine, fallback=late, progress=steps.append)
    failed = [r.name for r in report.results if r.violations]
    passes = list(stats.SOURCE_STEPS.values())
    assert failed and [s.name for s in steps] == passes + [f"examples of {n}" for n in failed]
    assert [s.number for s in steps] == list(range(1, len(steps) + 1))
    assert steps[0].total == len(passes) and steps[-1].total == len(steps)


def test_top_clients_leave_out_contracts_whose_client_is_missing(database_url: str) -> None:
    """The top is found without checking every contract's client, then again with it when
    one of the top clients is missing: the result is as if each were checked."""
    engine = seeded(database_url, users=12)
    before = stats.collect(engine).top_clients
    assert len(before) == stats.TOP_CLIENTS
    raw = sa.create_engine(engine.url)  # without invoicegen's PRAGMA foreign_keys = ON
    with raw.begin() as connection:
        _unchecked(connection, engine.dialect.name)
        connection.execute(sa.text("DELETE FROM clients WHERE id = :c"), {"c": before[0].id})
    raw.dispose()
    after = stats.collect(engine).top_clients
    assert before[0].id not in [c.id for c in after]
    assert after[: stats.TOP_CLIENTS - 1] == before[1:] and len(after) == stats.TOP_CLIENTS


def test_children_per_parent_count_childless_parents_and_leave_out_orphans(
    database_url: str,
) -> None:
    """A client with no contract counts as 0; contracts whose client is missing (deleted, or an
    id past the last client) count for no client: as the per-parent SQL counts them, whether or
    not the clients' ids are still dense (MariaDB counts from the key's index when they are)."""
    engine = seeded(database_url, users=6)
    raw = sa.create_engine(engine.url)  # without invoicegen's PRAGMA foreign_keys = ON
    contract = "INSERT INTO contracts (id, start_date, client_id) VALUES (:k, '2026-01-01', :c)"
    mutations = [
        ("INSERT INTO clients (id, name, company_name, email, user_id) "
         "SELECT MAX(id) + 1, 'n', 'co', 'n@x', 1 FROM clients", {}),  # ids still dense
        (contract, {"k": 10_000, "c": 10_000}),  # a key past the last client
        ("DELETE FROM contracts WHERE id = 10000", {}),
        ("DELETE FROM clients WHERE id = 2", {}),  # its contracts orphaned, ids no longer dense
    ]  # fmt: skip
    connection = raw.connect()  # one session: foreign keys unchecked throughout
    _unchecked(connection, engine.dialect.name)
    for sql, params in mutations:
        connection.execute(sa.text(sql), params)
        connection.commit()
        per_client = rows(
            engine,
            "SELECT (SELECT COUNT(*) FROM contracts k WHERE k.client_id = c.id) FROM clients c",
        )
        level = stats.collect(engine).children[1]
        assert (level.parent, level.child) == ("clients", "contracts")
        assert level.distribution == dict(sorted(Counter(n for (n,) in per_client).items())), sql
    assert level.distribution[0] == 1
    connection.close()
    raw.dispose()


def test_stats_leaves_mariadbs_session_as_it_was(mariadb_url: str) -> None:
    """Temporary tables are allowed more memory while stats runs, not after (an application's
    engine may hand the same connection to other code)."""
    engine = seeded(mariadb_url, users=2)
    engine.pool = engine.pool.recreate()
    with engine.connect() as connection:
        before = connection.exec_driver_sql("SELECT @@tmp_table_size").scalar_one()
        switch = connection.exec_driver_sql("SELECT @@optimizer_switch").scalar_one()
    stats.collect(engine)
    stats.check(engine, fallback=stats.Expectations({}, None, "test"))
    with engine.connect() as connection:  # the same pooled connection
        assert connection.exec_driver_sql("SELECT @@tmp_table_size").scalar_one() == before
        assert connection.exec_driver_sql("SELECT @@optimizer_switch").scalar_one() == switch
    assert int(before) < stats.MARIADB_HEAP_TABLE_SIZE


def test_contracts_still_running_include_those_that_end_after_the_as_of_date(
    database_url: str,
) -> None:
    engine = seeded(database_url, users=30)
    as_of = f"'{AS_OF.isoformat()}'"
    running = rows(
        engine, f"SELECT COUNT(*) FROM contracts WHERE end_date IS NULL OR end_date > {as_of}"
    )[0][0]
    open_ended = rows(engine, "SELECT COUNT(*) FROM contracts WHERE end_date IS NULL")[0][0]
    assert running > open_ended  # the dataset has agreed end dates after as-of
    document = json.loads(cli("stats", "--json", "-d", database_url).stdout)
    assert document["ongoing_contracts"] == running


def test_billed_in_total_is_shown_per_currency(sqlite_url: str) -> None:
    engine = seeded(sqlite_url, users=200)
    totals = dict(rows(engine, "SELECT currency, SUM(amount) FROM invoices GROUP BY currency"))
    assert len(totals) > 1  # some contracts are in another currency
    shown = cli("stats", "-d", sqlite_url, env={"COLUMNS": "120"}).stdout
    for currency, total in totals.items():
        amount = f"{in_minor_units(cents(total), currency):,}"  # JPY in whole yen
        line = next(line for line in shown.splitlines() if f"billed in total ({currency})" in line)
        assert f"{currency} {amount}" in line, (currency, amount, line)


def test_amounts_of_several_currencies_are_never_added_in_the_overview(sqlite_url: str) -> None:
    seeded(sqlite_url, users=200)
    shown = cli("stats", "-d", sqlite_url, env={"COLUMNS": "120"}).stdout
    assert "mean invoice" not in shown  # a mean over EUR and JPY means nothing
    chart = shown[shown.index("invoices per month") :].splitlines()[1]
    assert chart.split() == ["month", "invoices"], chart  # no 'billed' column across currencies


def test_check_finds_orphans_and_childless_parents_whether_or_not_ids_are_dense(
    database_url: str,
) -> None:
    """A contract whose client id is past the last client, a user with no client: found as the
    per-row SQL finds them, whether or not the parents' ids are still dense (MariaDB counts
    from the key's index, and tells a missing client by its id, when they are)."""
    engine = seeded(database_url, *RANGES, users=6)
    raw = sa.create_engine(engine.url)  # without invoicegen's PRAGMA foreign_keys = ON
    mutations = [
        "INSERT INTO users (id, name, email, phone) "
        "SELECT MAX(id) + 1, 'n', 'n@x', '1' FROM users",  # user ids still dense
        ("INSERT INTO contracts (id, start_date, client_id) "
         "SELECT MAX(id) + 1, '2026-01-01', 10000 FROM contracts"),  # client ids still dense
        "DELETE FROM users WHERE id = 2",  # its clients orphaned, user ids no longer dense
        "DELETE FROM clients WHERE id = 3",  # its contracts orphaned, client ids no longer dense
    ]  # fmt: skip
    expected = {
        "contracts without their client": "SELECT k.id FROM contracts k WHERE NOT EXISTS "
        "(SELECT 1 FROM clients c WHERE c.id = k.client_id) ORDER BY k.id",
        "users with clients outside 2": "SELECT u.id FROM users u WHERE "
        "(SELECT COUNT(*) FROM clients c WHERE c.user_id = u.id) <> 2 ORDER BY u.id",
    }
    unrecorded = stats.Expectations(dict.fromkeys(stats.EXPECTATION_KEYS[:-1]), None, "test")
    connection = raw.connect()  # one session: foreign keys unchecked throughout
    _unchecked(connection, engine.dialect.name)
    for sql in mutations:
        connection.execute(sa.text(sql))
        connection.commit()
        report = stats.check(engine, fallback=unrecorded)
        found = {r.name: (r.violations, r.examples) for r in report.results}
        for name, per_row in expected.items():
            ids = [i for (i,) in rows(engine, per_row)]
            assert found[name] == (len(ids), ids[: stats.EXAMPLES]), (sql, name)
            assert ids or sql == mutations[0], (sql, name)  # none orphaned by the first
    connection.close()
    raw.dispose()


def test_check_finds_clients_without_their_user_whether_or_not_user_ids_are_dense(
    database_url: str,
) -> None:
    """A client whose user id is past the last user, then the clients of a deleted user: found
    as the per-row SQL finds them (MariaDB tells a missing user by its id while the users' ids
    are dense, and looks each user up when they are not)."""
    engine = seeded(database_url, *RANGES, users=6)
    raw = sa.create_engine(engine.url)  # without invoicegen's PRAGMA foreign_keys = ON
    mutations = [
        "UPDATE clients SET user_id = 10000 WHERE id = 1",  # user ids still dense
        "DELETE FROM users WHERE id = 2",  # its clients orphaned, user ids no longer dense
    ]
    per_row = (
        "SELECT c.id FROM clients c WHERE NOT EXISTS "
        "(SELECT 1 FROM users u WHERE u.id = c.user_id) ORDER BY c.id"
    )
    unrecorded = stats.Expectations(dict.fromkeys(stats.EXPECTATION_KEYS[:-1]), None, "test")
    connection = raw.connect()  # one session: foreign keys unchecked throughout
    _unchecked(connection, engine.dialect.name)
    found = []
    for sql in mutations:
        connection.execute(sa.text(sql))
        connection.commit()
        report = stats.check(engine, fallback=unrecorded)
        (result,) = (r for r in report.results if r.name == "clients without their user")
        ids = [i for (i,) in rows(engine, per_row)]
        assert (result.violations, result.examples) == (len(ids), ids[: stats.EXAMPLES]), sql
        found.append(len(ids))
    assert found == [1, 3]  # client 1, then user 2's two clients too
    connection.close()
    raw.dispose()


def test_check_finds_contracts_without_invoices_and_short_of_them(database_url: str) -> None:
    """A contract whose invoices were all deleted and one left with fewer than the range: both
    have too few invoices and are not billed to their billed_to date (MariaDB counts the
    contracts from their invoices' groups when every contract has some, and over every
    contract when one has none)."""
    engine = seeded(database_url, *RANGES)
    emptied, shortened = (
        k
        for (k,) in rows(
            engine,
            "SELECT contract_id FROM invoices GROUP BY contract_id HAVING COUNT(*) = 2 "
            "ORDER BY contract_id",
        )[:2]
    )
    (last,) = rows(
        engine,
        "SELECT id FROM invoices WHERE contract_id = :k ORDER BY period_start DESC",
        k=shortened,
    )[0]
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM invoices WHERE contract_id = :k"), {"k": emptied})
        connection.execute(sa.text("DELETE FROM invoices WHERE id = :i"), {"i": last})
    failures = _failures(_report(database_url, code=CheckFailed.exit_code))
    expected = (2, [emptied, shortened])
    assert failures["contracts with invoices outside 2-4"] == expected
    assert failures["contracts not billed exactly from start to billed_to"] == expected


def test_totals_show_each_currencys_own_minor_unit(tmp_path: Any) -> None:
    """Yen have no cents: a ja_JP dataset's JPY total is whole yen, the others keep two places."""
    url = f"sqlite:///{tmp_path / 'jp.db'}"
    seeded = cli("seed", "-n", "30", "--seed", "3", "--locale", "ja_JP", "-d", url, "-q")
    assert seeded.exit_code == 0, seeded.stderr
    shown = cli("stats", "-d", url, env={"COLUMNS": "100"})
    assert shown.exit_code == 0, shown.stderr
    totals = dict(re.findall(r"billed in total \((\w+)\).*?\1 ([\d,.]+)", shown.stdout))
    assert re.fullmatch(r"[\d,]+", totals.pop("JPY")), shown.stdout
    assert totals and all(re.fullmatch(r"[\d,]+\.\d\d", t) for t in totals.values()), totals
