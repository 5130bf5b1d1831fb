"""Same seed, same data: whatever the batch size, workers, growth path, shards or engine."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from invoicegen import db, manifest, schema
from invoicegen.errors import RefusedError
from invoicegen.seeding import SeedPlan, seed
from invoicegen.settings import CountMix, Shard
from tests.helpers import fresh_database, invoke
from tests.invariants import dump, scalar, violations

AS_OF = dt.date(2026, 4, 30)
SEED = 2024


def _seed(engine: sa.Engine, users: int, **options: Any) -> Any:
    return seed(engine, SeedPlan(users=users, seed=SEED, as_of=AS_OF, **options))


@pytest.fixture
def reference(tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """60 users in one plain run on SQLite."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    _seed(engine, 60)
    return dump(engine)


@pytest.mark.parametrize("batch_size", [1, 1000, 1_000_000])
def test_batch_size_changes_nothing(engine: sa.Engine, reference: Any, batch_size: int) -> None:
    _seed(engine, 60, batch_size=batch_size)
    assert dump(engine) == reference


def test_two_workers_write_what_one_writes(engine: sa.Engine, reference: Any) -> None:
    result = _seed(engine, 60, batch_size=7, workers=2)
    assert result.workers == 2
    assert dump(engine) == reference


def test_fifty_then_ten_more_is_sixty(engine: sa.Engine, reference: Any) -> None:
    _seed(engine, 50)
    result = seed(engine, SeedPlan(users=10, append=True))  # seed and as-of from the dataset
    assert (result.first_user, result.users, result.seed) == (50, 10, SEED)
    assert dump(engine) == reference
    assert violations(engine, AS_OF) == dict.fromkeys(violations(engine, AS_OF), 0)


def test_three_shards_in_any_order_make_the_single_run(engine: sa.Engine, reference: Any) -> None:
    for index in (2, 0, 1):
        result = _seed(engine, 60, shard=Shard(index, 3), batch_size=6)
        assert result.users == 20
    assert dump(engine) == reference


def test_stable_as_it_grows_the_first_trees_do_not_move(tmp_path: Path, reference: Any) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'fifty.db'}")
    _seed(engine, 50)
    smaller = dump(engine)
    for table, rows in smaller.items():
        assert rows == reference[table][: len(rows)]


@pytest.mark.parametrize(
    ("level", "changed"),
    [("invoices_per_contract", "invoices"), ("contracts_per_client", "contracts")],
)
def test_lower_ranges_do_not_reshuffle_names_and_emails(
    tmp_path: Path, level: str, changed: str
) -> None:
    """A tree draws from one random stream, the people first: the contract and invoice
    ranges change what comes after them, never the users and clients."""
    one = db.make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    two = db.make_engine(f"sqlite:///{tmp_path / 'two.db'}")
    _seed(one, 20, **{level: CountMix.range(1, 3)})
    _seed(two, 20, **{level: CountMix.range(6, 12)})
    assert dump(one)["users"] == dump(two)["users"]
    assert dump(one)["clients"] == dump(two)["clients"]
    assert dump(one)[changed] != dump(two)[changed]


def test_the_same_shard_twice_is_refused_and_writes_nothing(engine: sa.Engine) -> None:
    _seed(engine, 30, shard=Shard(1, 3))
    before = dump(engine)
    with pytest.raises(RefusedError, match="already seeded") as refused:
        _seed(engine, 30, shard=Shard(1, 3))
    assert refused.value.exit_code == 3
    assert dump(engine) == before


def test_a_shard_of_another_layout_is_refused(engine: sa.Engine) -> None:
    _seed(engine, 30, shard=Shard(0, 3))
    with pytest.raises(RefusedError, match="does not match"):
        _seed(engine, 30, shard=Shard(1, 2))
    with pytest.raises(RefusedError, match="does not match"):
        _seed(engine, 30, shard=Shard(1, 3), invoices_per_contract=CountMix.range(2, 2))


def test_plain_seed_into_a_dataset_names_append_and_reset(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    _seed(engine, 3)
    with pytest.raises(RefusedError, match=r"--append.*reset"):
        _seed(engine, 3)


def test_append_with_other_options_is_refused_unless_forced(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    _seed(engine, 5)
    other = CountMix.range(2, 2)
    with pytest.raises(RefusedError, match=r"invoices_per_contract 2 \(dataset: 1-5\).*--force"):
        seed(engine, SeedPlan(users=2, append=True, invoices_per_contract=other))
    assert scalar(engine, "SELECT COUNT(*) FROM users") == 5
    result = seed(engine, SeedPlan(users=2, append=True, invoices_per_contract=other, force=True))
    assert result.first_user == 5
    assert scalar(engine, "SELECT MAX(id) FROM users") == 7
    assert violations(engine, AS_OF) == dict.fromkeys(violations(engine, AS_OF), 0)


def test_append_refuses_a_different_faker_version(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    _seed(engine, 2)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            'UPDATE invoicegen_runs SET versions = \'{"faker": "0.0.1", '
            '"factory-boy": "3.3.3", "invoicegen": "0.1.0"}\''
        )
    with pytest.raises(RefusedError, match=r"faker .* \(dataset: 0.0.1\)"):
        seed(engine, SeedPlan(users=1, append=True))
    assert seed(engine, SeedPlan(users=1, append=True, force=True)).users == 1


def test_append_refuses_a_dataset_with_missing_shards(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    _seed(engine, 30, shard=Shard(1, 3))
    with pytest.raises(RefusedError, match="gaps"):
        seed(engine, SeedPlan(users=5, append=True))


def test_the_manifest_records_what_made_the_data(engine: sa.Engine) -> None:
    _seed(engine, 12, shard=Shard(0, 2), locale="de_DE")
    _seed(engine, 12, shard=Shard(1, 2))  # locale inherited from the dataset
    with engine.connect() as connection:
        runs = manifest.runs(connection)
    assert [(r.status, r.shard, r.first_user, r.users, r.users_done) for r in runs] == [
        ("done", "0/2", 0, 6, 6),
        ("done", "1/2", 6, 6, 6),
    ]
    first = runs[0]
    assert (first.seed, first.as_of) == (SEED, AS_OF)
    assert first.options["locale"] == "de_DE" and runs[1].options["locale"] == "de_DE"
    assert first.options["invoices_per_contract"] == "1-5"
    assert first.options["since"] == "2023-04-30"  # the default: three years before as-of
    assert first.options["shards"] == 2 and first.options["users_total"] == 12
    assert set(first.versions) == {"invoicegen", "faker", "factory-boy"}
    assert sum(r.counts["users"] for r in runs if r.counts) == 12
    assert sum(r.counts["invoices"] for r in runs if r.counts) == scalar(
        engine, "SELECT COUNT(*) FROM invoices"
    )


def test_since_is_kept_by_appends_and_defaulted_for_older_manifests(
    tmp_path: Path, reference: Any
) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'since.db'}")
    _seed(engine, 5, since=dt.date(2025, 1, 1))
    seed(engine, SeedPlan(users=5, append=True))
    ended = "SELECT MIN(end_date) FROM contracts WHERE end_date <= :as_of"
    assert scalar(engine, ended, as_of=AS_OF) >= "2025-01-01"
    with pytest.raises(RefusedError, match=r"since 2024-01-01 \(dataset: 2025-01-01\)"):
        seed(engine, SeedPlan(users=1, append=True, since=dt.date(2024, 1, 1)))
    # A dataset seeded before --since existed used the default, and appends follow it.
    older = db.make_engine(f"sqlite:///{tmp_path / 'older.db'}")
    _seed(older, 50)
    with older.begin() as connection:
        for run_id, options in connection.exec_driver_sql(
            "SELECT id, options FROM invoicegen_runs"
        ):
            recorded = json.loads(options)
            del recorded["since"]
            connection.exec_driver_sql(
                "UPDATE invoicegen_runs SET options = ? WHERE id = ?",
                (json.dumps(recorded), run_id),
            )
    seed(older, SeedPlan(users=10, append=True))
    assert dump(older) == reference


def test_ids_generators_follow_shards_and_appends(engine: sa.Engine) -> None:
    _seed(engine, 10, shard=Shard(1, 2))
    _seed(engine, 10, shard=Shard(0, 2))
    seed(engine, SeedPlan(users=2, append=True))
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO users (name, email, phone) VALUES ('App', 'app@example.com', '1')"
        )
    assert scalar(engine, "SELECT MAX(id) FROM users") == 13


def test_cli_shards_then_stats_counts(database_url: str) -> None:

    def shard(index: int) -> Any:
        args = ["seed", "-n", "9", "--shard", f"{index}/3", "--seed", "5"]
        return invoke(*args, "--as-of", "2026-01-31", "-d", database_url, "--json")

    outputs = []
    for index in range(3):
        result = shard(index)
        assert result.exit_code == 0, result.stderr
        outputs.append(json.loads(result.stdout))
    assert [o["first_user"] for o in outputs] == [1, 4, 7]
    assert outputs[-1]["counts"]["users"] == 9
    again = shard(1)
    assert again.exit_code == 3
    assert json.loads(again.stdout)["error"]["code"] == 3  # --json: the error document


@pytest.mark.parametrize("shard", ["3/3", "1/0", "a/b", "1-3", "-1/3"])
def test_bad_shards_are_usage_errors(shard: str, sqlite_url: str) -> None:
    result = invoke("seed", "--shard", shard, "-d", sqlite_url)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --shard")


def test_append_and_shard_together_is_a_usage_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never.db'}"
    result = invoke("seed", "--append", "--shard", "0/2", "-d", url)
    assert result.exit_code == 2
    assert not (tmp_path / "never.db").exists()


def _seed_process(url: str, users: int, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "invoicegen", "seed", "-n", str(users), "--seed", str(SEED),
               "--as-of", AS_OF.isoformat(), "--batch-size", "50", "--workers", "1", "-q",
               "--json", "-d", url, *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request.param, tmp_path)


@pytest.mark.slow  # three processes seed 30,000 users
def test_shards_write_at_the_same_time(server_url: str, tmp_path: Path) -> None:
    """Three processes write their slices at once, and together make the single run.
    Each writes for seconds: the manifest's timestamps (whole seconds) show the overlap."""
    users = 30_000
    single = db.make_engine(f"sqlite:///{tmp_path / 'single.db'}")
    _seed(single, users)
    schema.upgrade(db.make_engine(server_url))  # migrate once, as the README's CI example does
    shards = [_seed_process(server_url, users, "--shard", f"{k}/3") for k in range(3)]
    try:
        outputs = [shard.communicate(timeout=600) for shard in shards]
    finally:
        for shard in shards:
            shard.kill()
    assert [shard.returncode for shard in shards] == [0, 0, 0], outputs
    engine = db.make_engine(server_url)
    assert dump(engine) == dump(single)
    with engine.connect() as connection:
        runs = manifest.runs(connection)
    assert sorted(r.shard for r in runs) == ["0/3", "1/3", "2/3"]
    # Each started before any finished: they ran side by side, not one after another.
    assert max(r.started_at for r in runs) < min(r.finished_at for r in runs if r.finished_at)


@pytest.mark.slow  # a shard of 50,000 users runs to its end
def test_reset_and_plain_seed_wait_for_running_shards(server_url: str) -> None:
    shard = _seed_process(server_url, 50_000, "--shard", "0/2")
    try:
        engine = db.make_engine(server_url)
        deadline = time.monotonic() + 120
        while _users(engine) < 100:
            assert shard.poll() is None and time.monotonic() < deadline, shard.communicate()
            time.sleep(0.05)
        reset = invoke("reset", "--yes", "--lock-timeout", "1", "-d", server_url)
        assert reset.exit_code == 6, reset.output
        plain = invoke("seed", "-n", "5", "--workers", "1", "--lock-timeout", "1", "-d", server_url)
        assert plain.exit_code == 6, plain.output
        out, err = shard.communicate(timeout=600)
    finally:
        shard.kill()
    assert shard.returncode == 0, err
    assert _users(engine) == 25_000  # the shard finished whole: nothing was dropped under it
    assert invoke("reset", "--yes", "-d", server_url).exit_code == 0
    assert _users(engine) == 0


def _users(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("users"):
            return 0
        return int(connection.exec_driver_sql("SELECT COUNT(*) FROM users").scalar_one())


def test_a_shard_over_an_unreadable_manifest_is_refused_or_forced(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    _seed(engine, 30, shard=Shard(0, 3))
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE invoicegen_runs SET options = 'written by another tool'")
    with pytest.raises(RefusedError, match="does not record"):
        _seed(engine, 30, shard=Shard(1, 3))
    assert _seed(engine, 30, shard=Shard(1, 3), force=True).users == 10
    assert scalar(engine, "SELECT COUNT(*) FROM users") == 20


# --- weighted mixes of counts -----------------------------------------------------------------

#: Skewed at every level: a part per level is drawn before the count within it.
MIX = {
    "clients_per_user": CountMix.parse("1-2:70,5-8:30"),
    "contracts_per_client": CountMix.parse("1:60,2-3:40"),
    "invoices_per_contract": CountMix.parse("0-2:50,6-9:50"),
}


def _structure(engine: sa.Engine) -> str:
    """A checksum of the trees' shapes: every id and its parent's id, in id order."""
    digest = hashlib.sha256()
    with engine.connect() as connection:
        for table, parent in (("users", None), ("clients", "user_id"),
                              ("contracts", "client_id"), ("invoices", "contract_id")):  # fmt: skip
            columns = f"id, {parent}" if parent else "id"
            for row in connection.exec_driver_sql(f"SELECT {columns} FROM {table} ORDER BY id"):
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize(
    ("options", "checksum"),
    [
        ({}, "8d454cb980f1946c"),
        (
            {
                "clients_per_user": CountMix.range(0, 7),
                "contracts_per_client": CountMix.range(2, 2),
                "invoices_per_contract": CountMix.range(0, 12),
            },
            "e35dc69ad59ccc87",
        ),
    ],
)
def test_a_plain_range_draws_the_same_trees(
    sqlite_url: str, options: dict[str, CountMix], checksum: str
) -> None:
    """A dataset seeded with a range keeps every tree's shape. The checksums were taken when
    the counts moved to blocks (so that a shard's first ids cost the same at any position; the
    per-user draws before could only be summed by drawing every tree before the shard). The
    shapes, not the values: those belong to the factories, which change on their own."""
    engine = db.make_engine(sqlite_url)
    seed(engine, SeedPlan(users=40, seed=31337, as_of=AS_OF, **options))
    assert _structure(engine) == checksum


@pytest.fixture
def mixed_reference(tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """60 users seeded with ``MIX`` in one plain run on SQLite."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'mixed.db'}")
    _seed(engine, 60, **MIX)
    return dump(engine)


def test_a_mix_makes_other_trees_than_its_span(tmp_path: Path, mixed_reference: Any) -> None:
    span = db.make_engine(f"sqlite:///{tmp_path / 'span.db'}")
    _seed(span, 60, **{key: CountMix.range(mix.low, mix.high) for key, mix in MIX.items()})
    assert dump(span)["clients"] != mixed_reference["clients"]
    assert dump(span)["users"] == mixed_reference["users"]  # names do not hang on the counts


def test_a_mix_gives_the_same_data_whatever_the_batches_and_workers(
    engine: sa.Engine, mixed_reference: Any
) -> None:
    _seed(engine, 60, batch_size=7, workers=2, **MIX)
    assert dump(engine) == mixed_reference


def test_a_mix_grows_by_append_from_the_manifest(engine: sa.Engine, mixed_reference: Any) -> None:
    _seed(engine, 50, **MIX)
    result = seed(engine, SeedPlan(users=10, append=True))  # the mix comes from the manifest
    assert result.plan.clients_per_user == MIX["clients_per_user"]
    assert dump(engine) == mixed_reference
    assert violations(engine, AS_OF) == dict.fromkeys(violations(engine, AS_OF), 0)


def test_a_mix_in_shards_in_any_order_makes_the_single_run(
    engine: sa.Engine, mixed_reference: Any
) -> None:
    for index in (1, 2, 0):
        result = _seed(engine, 60, shard=Shard(index, 3), batch_size=6, **MIX)
        assert result.users == 20
    assert dump(engine) == mixed_reference


def test_a_mixed_dataset_keeps_its_first_trees_as_it_grows(
    tmp_path: Path, mixed_reference: Any
) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'fifty.db'}")
    _seed(engine, 50, **MIX)
    for table, rows in dump(engine).items():
        assert rows == mixed_reference[table][: len(rows)]


def test_append_checks_the_mix_by_its_shares(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    _seed(engine, 5, clients_per_user=CountMix.parse("1-3:80,21-30:20"))
    other = CountMix.parse("1-3:70,21-30:30")
    with pytest.raises(
        RefusedError, match=r"clients_per_user 1-3:70,21-30:30 \(dataset: 1-3:80,21-30:20\)"
    ):
        seed(engine, SeedPlan(users=2, append=True, clients_per_user=other))
    with pytest.raises(RefusedError, match=r"clients_per_user 1-3 \(dataset: 1-3:80,21-30:20\)"):
        seed(engine, SeedPlan(users=2, append=True, clients_per_user=CountMix.range(1, 3)))
    same = CountMix.parse("1-3:4,21-30:1")  # the same shares in lowest terms
    assert seed(engine, SeedPlan(users=2, append=True, clients_per_user=same)).first_user == 5


def test_the_manifest_records_a_mix_and_reads_it_back(engine: sa.Engine) -> None:
    _seed(engine, 12, shard=Shard(0, 2), **MIX)
    result = _seed(engine, 12, shard=Shard(1, 2))  # the mix inherited from the dataset
    assert result.plan.shaping() == {**MIX, "locale": "en_US"}
    with engine.connect() as connection:
        runs = manifest.runs(connection)
    for run in runs:
        assert run.options["clients_per_user"] == "1-2:70,5-8:30"
        assert run.options["contracts_per_client"] == "1:60,2-3:40"
        assert run.options["invoices_per_contract"] == "0-2:50,6-9:50"


def test_a_mix_skews_the_data_as_asked(sqlite_url: str) -> None:
    """500 users with 1-3 clients (weight 80) or 21-30 (weight 20): about a fifth are big."""
    result = invoke(
        "seed", "-n", "500", "--seed", "11", "--as-of", "2026-04-30", "--workers", "1",
        "--clients-per-user", "1-3:80,21-30:20", "--contracts-per-client", "1",
        "--invoices-per-contract", "1", "-d", sqlite_url, "--json", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    engine = db.make_engine(sqlite_url)
    per_user = (
        "SELECT u.id, COUNT(c.id) AS n FROM users u "
        "LEFT JOIN clients c ON c.user_id = u.id GROUP BY u.id"
    )
    big = scalar(engine, f"SELECT COUNT(*) FROM ({per_user}) t WHERE n > 20")
    assert big / 500 == pytest.approx(0.20, abs=0.05)  # 3 standard deviations: 0.054
    assert scalar(engine, f"SELECT COUNT(*) FROM ({per_user}) t WHERE n BETWEEN 4 AND 20") == 0
    assert scalar(engine, f"SELECT MIN(n) FROM ({per_user}) t") == 1
    assert scalar(engine, f"SELECT MAX(n) FROM ({per_user}) t") <= 30
    # Within a part the count is uniform: each of 21..30 is drawn.
    assert scalar(engine, f"SELECT COUNT(DISTINCT n) FROM ({per_user}) t WHERE n > 20") == 10


# --- the data itself, pinned ------------------------------------------------------------------

#: SHA-256 of :func:`_canonical` after :data:`PINNED_PLAN` and an append of 30, recorded with
#: the code of 2026-12-03 when generation drew less per row (issue 14, version 0.6.0: a monthly
#: rate is one uniform draw through the log-normal's quantile function, whole-number draws of
#: contract dates and payment delays take one random() each, a payer's lateness is one draw
#: even when always late, and phone digits are drawn a numeral at a time). It pins the
#: generated data itself, not just its sameness within one checkout: a refactor must leave it
#: alone. A change meant to change the data (a new column, another Faker provider, a different
#: draw order) updates it, and its commit message says why the data changed.
PINNED_CHECKSUM = "697e3431f9670c827138ca2315c1814f240e1324f7dda2191d84d7ba84f63bd5"
PINNED_PLAN = ("-n", "120", "--seed", "7", "--as-of", "2026-06-30",
               "--clients-per-user", "1-3:80,4-9:20")  # fmt: skip


def _canonical(engine: sa.Engine) -> str:
    """SHA-256 of every data row, as deterministic JSON: tables and rows in order, text values."""
    text = json.dumps(dump(engine), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(("workers", "batch_size"), [(2, 25), (1, 7), (1, 1000)])
def test_the_pinned_plan_writes_the_recorded_data(
    tmp_path: Path, workers: int, batch_size: int
) -> None:
    url = f"sqlite:///{tmp_path / 'pinned.db'}"
    how = ("--workers", str(workers), "--batch-size", str(batch_size), "-d", url)
    first = invoke("seed", *PINNED_PLAN, *how, "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["workers"] == workers  # two really ran where two were asked
    more = invoke("seed", "--append", "-n", "30", *how, "-q")
    assert more.exit_code == 0, more.output
    engine = db.make_engine(url)
    assert scalar(engine, "SELECT COUNT(*) FROM users") == 150
    assert _canonical(engine) == PINNED_CHECKSUM
