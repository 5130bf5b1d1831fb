"""`invoicegen export`: the dataset `seed` writes, as files, loaded back by each database's own
loader; the same bytes whatever the workers and batches; shards that add up; atomic files."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from invoicegen import db
from invoicegen.models import DATA_TABLES
from invoicegen.seeding.encoders import COLUMNS, NULLABLE, TABLES
from tests.helpers import (
    AS_OF,
    SEED,
    assert_one_line_error,
    cli,
    fresh_database,
    invoke,
    one_line_error,
    seed_args,
)

USERS = 30
SHAPE = ("--clients-per-user", "1-3:80,4-6:20", "--invoices-per-contract", "0-4")
FORMATS = ("csv", "jsonl", "sql", "parquet")
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
README = Path(__file__).resolve().parent.parent / "README.md"


def export(folder: Path, *extra: str, users: int = USERS, code: int = 0) -> dict[str, Any]:
    """`invoicegen export FOLDER` of the test dataset; its --json document."""
    args = ["export", str(folder), "-n", str(users), "--seed", str(SEED), "--as-of", AS_OF]
    result = invoke(*args, *SHAPE, "--json", *extra)
    assert result.exit_code == code, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh databases of the kind ``request.param``: one to load, one to seed."""
    kind = request.param
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for loaded in fresh_database(kind, tmp_path / "a"):
        for seeded in fresh_database(kind, tmp_path / "b"):
            yield loaded, seeded


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every data table, typed, in id order."""
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: [
                    tuple(row) for row in connection.execute(sa.select(table).order_by(table.c.id))
                ]
                for table in DATA_TABLES
            }
    finally:
        engine.dispose()


def _client_args(url: str) -> tuple[str, list[str]]:
    """The database's own command-line client and its arguments for ``url``."""
    parsed = sa.make_url(url)
    kind = parsed.get_backend_name()
    if kind == "sqlite":
        return "sqlite3", [str(parsed.database)]
    if kind == "postgresql":
        plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return "psql", ["-q", "-X", plain]
    args = ["--local-infile=1", "-h", str(parsed.host), "-P", str(parsed.port or 3306)]
    args += ["-u", str(parsed.username)]
    args += [f"-p{parsed.password}"] if parsed.password else []
    return "mariadb", [*args, str(parsed.database)]


def load_with_script(url: str, folder: Path) -> None:
    """`cd FOLDER && CLIENT ... < load.DIALECT.sql`, as the README says."""
    client, args = _client_args(url)
    if shutil.which(client) is None:
        pytest.skip(f"{client} is not installed")
    dialect = {"sqlite3": "sqlite", "psql": "postgresql", "mariadb": "mariadb"}[client]
    script = (folder / f"load.{dialect}.sql").read_text("utf-8")
    done = subprocess.run(
        [client, *args], input=script, cwd=folder, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "ERROR" not in done.stderr.upper(), done.stderr


def load_with_driver(url: str, folder: Path) -> None:
    """The CSV parts through each driver's own bulk path, no command-line client: psycopg's
    COPY ... CSV HEADER, PyMySQL's LOAD DATA LOCAL INFILE, Python's csv into sqlite3."""
    parsed = sa.make_url(url)
    kind = parsed.get_backend_name()
    parts = {table: sorted((folder / table).glob("part-*.csv")) for table in TABLES}
    if kind == "postgresql":
        import psycopg

        plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(plain) as connection, connection.cursor() as cursor:
            for table, paths in parts.items():
                statement = f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN (FORMAT csv, HEADER true)"
                for path in paths:
                    with cursor.copy(statement) as copy:
                        copy.write(path.read_bytes())
    elif kind == "mysql":
        import pymysql

        connection = pymysql.connect(
            host=parsed.host,
            port=parsed.port or 3306,
            user=parsed.username,
            password=parsed.password or "",
            database=parsed.database,
            local_infile=True,
            charset="utf8mb4",
        )
        with connection, connection.cursor() as cursor:
            for table, paths in parts.items():
                nullable = NULLABLE[table]
                fields = ", ".join(f"@{c}" if c in nullable else c for c in COLUMNS[table])
                sets = ", ".join(f"{c} = NULLIF(@{c}, '')" for c in nullable)
                for path in paths:
                    cursor.execute(
                        f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table} CHARACTER SET utf8mb4 "
                        "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
                        "LINES TERMINATED BY '\\n' IGNORE 1 LINES "
                        f"({fields})" + (f" SET {sets}" if sets else "")
                    )
            connection.commit()
    else:
        with sqlite3.connect(str(parsed.database)) as connection:
            for table, paths in parts.items():
                marks = ", ".join("?" * len(COLUMNS[table]))
                for path in paths:
                    reader = csv.reader(io.StringIO(path.read_text("utf-8"), newline=""))
                    assert next(reader) == list(COLUMNS[table])
                    rows = [[v if v != "" else None for v in row] for row in reader]
                    listed = ", ".join(COLUMNS[table])
                    connection.executemany(f"INSERT INTO {table} ({listed}) VALUES ({marks})", rows)


def _stats(url: str) -> dict[str, Any]:
    result = invoke("stats", "-d", url, "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    document.pop("database")
    for run in document["runs"]:  # when it was loaded, and the database's own run ids
        for key in ("id", "started_at", "finished_at"):
            run.pop(key)
    return document  # type: ignore[no-any-return]


def _seed(url: str, users: int = USERS) -> None:
    done = invoke(*seed_args(url, users, *SHAPE))
    assert done.exit_code == 0, done.stderr


@pytest.mark.parametrize("databases", ["sqlite", "postgresql", "mariadb"], indirect=True)
@pytest.mark.parametrize("format", ["csv", "sql"])
def test_the_load_scripts_give_the_database_a_seed_gives(
    databases: tuple[str, str], format: str, tmp_path: Path
) -> None:
    """Each database's own client runs the folder's script into a migrated schema: every row
    is the seed's, stats reports the same (runs included), --check passes, and the
    application's next insert gets the next id."""
    loaded, seeded = databases
    folder = tmp_path / "export"
    export(folder, "--format", format)
    assert invoke("migrate", "-q", "-d", loaded).exit_code == 0
    load_with_script(loaded, folder)
    _seed(seeded)
    assert dump(loaded) == dump(seeded)
    assert _stats(loaded) == _stats(seeded)
    assert invoke("stats", "--check", "-q", "-d", loaded).exit_code == 0
    engine = db.make_engine(loaded)
    with engine.begin() as connection:
        inserted = connection.execute(
            sa.insert(DATA_TABLES[0]).values(name="n", email="new@example.com", phone="1")
        ).inserted_primary_key
    engine.dispose()
    assert inserted is not None and inserted[0] == len(dump(seeded)["users"]) + 1


@pytest.mark.parametrize("databases", ["sqlite", "postgresql", "mariadb"], indirect=True)
def test_the_csv_loads_through_each_drivers_bulk_path(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    loaded, seeded = databases
    export(tmp_path / "export", "--format", "csv")
    assert invoke("migrate", "-q", "-d", loaded).exit_code == 0
    load_with_driver(loaded, tmp_path / "export")
    _seed(seeded)
    assert dump(loaded) == dump(seeded)


@pytest.mark.parametrize("format", FORMATS)
def test_the_same_options_give_the_same_bytes_whatever_the_workers_and_batches(
    format: str, tmp_path: Path
) -> None:
    one = export(tmp_path / "one", "--format", format, "--workers", "1", "--batch-size", "1000")
    two = export(tmp_path / "two", "--format", format, "--workers", "2", "--batch-size", "7")
    assert (one["workers"], two["workers"]) == (1, 2)
    assert one["batches"] < two["batches"]
    assert files_of(tmp_path / "one") == files_of(tmp_path / "two")
    assert sum(one["counts"].values()) == one["rows"] > USERS


def _csv_rows(folder: Path, table: str) -> list[str]:
    rows = []
    for path in sorted((folder / table).glob("part-*.csv")):
        header, *lines = path.read_text("utf-8").splitlines()
        assert header == ",".join(COLUMNS[table])
        rows += lines
    return rows


def test_shards_together_are_the_unsharded_export_row_for_row(tmp_path: Path) -> None:
    whole = export(tmp_path / "whole")
    for index in range(3):  # into one folder, as on shared storage
        part = export(tmp_path / "sharded", "--shard", f"{index}/3")
        assert part["manifest"] == f"manifests/part-{index + 1}-of-3.json"
    sharded = sorted(files_of(tmp_path / "sharded"))
    assert sharded == sorted(
        [f"{t}/part-{k}-of-3.csv" for t in TABLES for k in (1, 2, 3)]
        + [f"manifests/part-{k}-of-3.json" for k in (1, 2, 3)]
        + ["load.mariadb.sql", "load.postgresql.sql", "load.sqlite.sql"]
    )
    for table in TABLES:
        rows = _csv_rows(tmp_path / "sharded", table)
        assert rows == _csv_rows(tmp_path / "whole", table)
        assert len(rows) == whole["counts"][table]


def test_shard_auto_takes_the_runners_index(tmp_path: Path) -> None:
    runner = {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2"}  # GitLab: from 1
    args = ["export", str(tmp_path), "-n", "10", "--seed", "1", "--as-of", AS_OF, "--json"]
    result = invoke(*args, "--shard", "auto", env=runner)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["manifest"] == "manifests/part-2-of-2.json"
    assert "shard 1/2, from CI_NODE_INDEX=2" in result.stderr


def test_a_sharded_export_loads_with_a_run_per_shard(tmp_path: Path) -> None:
    for index in range(2):
        export(tmp_path / "sharded", "--format", "sql", "--shard", f"{index}/2")
    loaded = f"sqlite:///{tmp_path / 'loaded.db'}"
    seeded = f"sqlite:///{tmp_path / 'seeded.db'}"
    assert invoke("migrate", "-q", "-d", loaded).exit_code == 0
    load_with_script(loaded, tmp_path / "sharded")
    for index in range(2):
        assert invoke(*seed_args(seeded, USERS, *SHAPE, "--shard", f"{index}/2")).exit_code == 0
    assert dump(loaded) == dump(seeded)
    stats = _stats(loaded)
    assert [run["shard"] for run in stats["runs"]] == ["0/2", "1/2"]
    assert invoke("stats", "--check", "-q", "-d", loaded).exit_code == 0


def test_duckdb_reads_the_parquet_csv_and_jsonl_folders(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    import pyarrow as pa
    import pyarrow.parquet as pq

    url = f"sqlite:///{tmp_path / 'seeded.db'}"
    _seed(url, 120)
    engine = db.make_engine(url)
    with engine.connect() as connection:
        expected = connection.exec_driver_sql(
            "SELECT COUNT(*), SUM(amount), MIN(period_start), COUNT(paid_on) FROM invoices"
        ).one()
        contracts = connection.exec_driver_sql(
            "SELECT COUNT(*), SUM(monthly_rate) FROM contracts"
        ).one()
    engine.dispose()
    queries = {
        "parquet": "read_parquet('{}/*.parquet')",
        "csv": "read_csv('{}/*.csv', header = true)",
        "jsonl": "read_json('{}/*.jsonl', format = 'newline_delimited')",
    }
    analyst = duckdb.connect()
    for format, reader in queries.items():
        folder = tmp_path / format
        export(folder, "--format", format, "--batch-size", "50", users=120)
        invoices = reader.format(folder / "invoices")
        got = analyst.execute(
            f"SELECT COUNT(*), SUM(CAST(amount AS DECIMAL(18, 2))), MIN(CAST(period_start AS DATE)), "
            f"COUNT(paid_on) FROM {invoices}"
        ).fetchone()
        assert got is not None
        assert (got[0], str(got[2]), got[3]) == (expected[0], str(expected[2]), expected[3])
        assert float(got[1]) == pytest.approx(float(expected[1])), format
        rates = analyst.execute(
            f"SELECT COUNT(*), SUM(CAST(monthly_rate AS DECIMAL(18, 2))) FROM {reader.format(folder / 'contracts')}"
        ).fetchone()
        assert rates is not None and float(rates[1]) == pytest.approx(float(contracts[1]))
        assert rates[0] == contracts[0]
    schema = pq.read_schema(tmp_path / "parquet" / "invoices" / "part-1-of-1.parquet")
    assert schema.field("amount").type == pa.decimal128(12, 2)
    assert schema.field("period_start").type == pa.date32()
    assert schema.field("id").type == pa.int64() and not schema.field("id").nullable
    assert schema.field("paid_on").nullable


def test_parquet_row_groups_hold_a_fixed_number_of_rows_whatever_the_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every row group but the last holds ROWS_PER_ROW_GROUP rows (here 40, so that the
    30-user dataset crosses many), in id order, the same bytes for batches of 7 or 1000."""
    import pyarrow.parquet as pq

    from invoicegen.seeding import encoders

    monkeypatch.setattr(encoders, "ROWS_PER_ROW_GROUP", 40)
    export(tmp_path / "one", "--format", "parquet", "--workers", "1", "--batch-size", "1000")
    export(tmp_path / "two", "--format", "parquet", "--workers", "1", "--batch-size", "7")
    assert files_of(tmp_path / "one") == files_of(tmp_path / "two")
    for table in TABLES:
        file = pq.ParquetFile(tmp_path / "one" / table / "part-1-of-1.parquet")
        sizes = [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)]
        rows = file.metadata.num_rows
        assert sizes == [40] * (rows // 40) + ([rows % 40] if rows % 40 else []), table
        ids = file.read(columns=["id"]).column("id").to_pylist()
        assert ids == sorted(ids) and len(set(ids)) == rows
    assert rows > 80  # invoices: several row groups


def test_parquet_dictionary_encodes_only_the_columns_whose_values_repeat(tmp_path: Path) -> None:
    """Codes, dates, money and payment terms are dictionary-encoded; ids and free text (names,
    emails, invoice numbers: nearly unique) are not, whose dictionaries only held memory until
    the writer fell back to plain encoding."""
    import pyarrow.parquet as pq

    export(tmp_path / "out", "--format", "parquet")
    expected = {
        "users": set(),
        "clients": {"country", "payment_terms_days"},
        "contracts": {"start_date", "end_date", "currency", "monthly_rate"},
        "invoices": {"period_start", "period_end", "amount", "issued_on", "due_on", "paid_on"}
        | {"status", "currency"},
    }
    for table in TABLES:
        metadata = pq.ParquetFile(tmp_path / "out" / table / "part-1-of-1.parquet").metadata
        group = metadata.row_group(0)
        encoded = {
            group.column(i).path_in_schema
            for i in range(group.num_columns)
            if group.column(i).has_dictionary_page
        }
        assert encoded == expected[table], table


def test_the_json_document_and_the_manifest_describe_the_files(tmp_path: Path) -> None:
    from jsonschema import Draft202012Validator

    folder = tmp_path / "export"
    document = export(folder, "--format", "jsonl")
    schema = json.loads((SCHEMAS / "export.json").read_text("utf-8"))
    errors = list(Draft202012Validator(schema).iter_errors(document))
    assert not errors, errors
    manifest = json.loads((folder / document["manifest"]).read_text("utf-8"))
    assert manifest == {
        k: v
        for k, v in document.items()
        if k
        not in ("directory", "manifest", "rows", "seconds", "rows_per_second", "workers", "batches")
    }
    assert manifest["load_scripts"] == []  # jsonl has none
    for file in manifest["files"]:
        data = (folder / file["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == file["sha256"]
        assert len(data) == file["bytes"]
        assert data.count(b"\n") == file["rows"] == manifest["counts"][file["table"]]
    first = json.loads((folder / "contracts" / "part-1-of-1.jsonl").read_text().splitlines()[0])
    assert list(first) == list(COLUMNS["contracts"])
    assert isinstance(first["monthly_rate"], str) and first["start_date"].count("-") == 2
    assert (manifest["seed"], manifest["as_of"], manifest["users"]) == (SEED, AS_OF, USERS)


def test_a_killed_export_leaves_no_file_that_looks_complete(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    args = ["export", str(folder), "-n", "100000", "--seed", "1", "--as-of", AS_OF]
    process = cli(*args, "--workers", "1", "--batch-size", "50", "-q")
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > 0 for p in folder.rglob("*.tmp") if p.is_file()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the export wrote nothing in time"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    left = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    assert left and all(Path(p).name.startswith(".") and p.endswith(".tmp") for p in left), left
    refused = invoke("export", str(folder), "-n", "3", "--seed", "1", "--as-of", AS_OF)
    assert "not empty" in assert_one_line_error(refused, 3)
    redone = invoke(
        "export", str(folder), "-n", "3", "--seed", "1", "--as-of", AS_OF, "--force", "-q"
    )
    assert redone.exit_code == 0, redone.stderr
    fresh = tmp_path / "fresh"
    invoke("export", str(fresh), "-n", "3", "--seed", "1", "--as-of", AS_OF, "-q")
    assert files_of(folder) == files_of(fresh)


def test_sigterm_removes_the_temporary_files(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    process = cli(
        "export",
        str(folder),
        "-n",
        "100000",
        "--seed",
        "1",
        "--workers",
        "1",
        "--batch-size",
        "50",
        "-q",
    )
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size > 0 for p in folder.rglob("*.tmp") if p.is_file()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "nothing was exported" in one_line_error(stderr)
    assert [p for p in folder.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("format", FORMATS)
def test_a_stopped_export_leaves_no_writer_to_fail_later(
    format: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop (or a dead worker) between batches: the files' writers are done with before
    their files close, so none fails later when collected (pyarrow's ParquetWriter printed
    "Exception ignored ... write to closed file" under the one-line error, once per table)."""
    import datetime as dt
    import gc

    from invoicegen.errors import Interrupted
    from invoicegen.seeding import SeedPlan, export

    unraisable: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(repr(u.exc_value)))
    plan = SeedPlan(users=20, seed=SEED, as_of=dt.date.fromisoformat(AS_OF), batch_size=5)
    batches = iter([False, True])
    with pytest.raises(Interrupted):
        export(tmp_path / "out", plan, format=format, stop=lambda: next(batches))
    gc.collect()
    assert unraisable == []
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_force_replaces_an_earlier_export_and_leaves_other_files_alone(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    for index in range(2):
        export(folder, "--shard", f"{index}/2", "--format", "sql")
    (folder / "notes.txt").write_text("mine")
    export(folder, "--force")
    assert sorted(files_of(folder)) == sorted(
        [f"{t}/part-1-of-1.csv" for t in TABLES]
        + ["manifests/part-1-of-1.json", "notes.txt"]
        + ["load.mariadb.sql", "load.postgresql.sql", "load.sqlite.sql"]
    )


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--format", "xml"], 2, "--format: expected one of csv, jsonl, sql, parquet"),
        (["--shard", "1/2"], 2, "--shard: a shard of an export needs --seed and --as-of"),
        (["--users", "0"], 2, "--users"),
        (["--as-of", "2026-02-30"], 2, "--as-of"),
    ],
    ids=["format", "shard-without-seed", "users", "as-of"],
)
def test_bad_options_are_one_line_errors(
    tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    result = invoke("export", str(tmp_path / "x"), *args)
    assert says in assert_one_line_error(result, code)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").rglob("*.*"))


def test_a_folder_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert "not a folder" in assert_one_line_error(invoke("export", str(tmp_path / "file")), 2)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    message = assert_one_line_error(invoke("export", str(tmp_path / "full"), "--seed", "1"), 3)
    assert "keep.txt" in message and "--force" in message
    # Shards share a folder, even while another one is still writing its files.
    (tmp_path / "shards" / "users").mkdir(parents=True)
    (tmp_path / "shards" / "users" / ".part-2-of-2.csv.99999.tmp").write_text("id\n")
    (tmp_path / "shards" / ".load.sqlite.sql.99999.tmp").write_text("")
    export(tmp_path / "shards", "--shard", "0/2")
    other = ["export", str(tmp_path / "shards"), "-n", str(USERS), "--seed", "6", "--as-of", AS_OF]
    mixed = assert_one_line_error(invoke(*other, *SHAPE, "--shard", "1/2"), 3)
    assert "manifests/part-1-of-2.json" in mixed  # another dataset's shard is in the way


def test_parquet_without_pyarrow_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    result = invoke("export", str(tmp_path / "x"), "--format", "parquet")
    message = assert_one_line_error(result, 2)
    assert "pip install 'invoicegen[parquet]'" in message
    assert not (tmp_path / "x").exists()


def test_strings_that_need_quoting_survive_the_csv_and_sql_encodings() -> None:
    """Commas, quotes, apostrophes, line ends, backslashes, edge spaces and the empty string
    come back as they went in (Python's csv reader; SQLite runs the INSERT)."""
    from invoicegen.seeding.encoders import FORMATS

    tricky = ["a,b", 'say "hi"', "O'Brien", "two\nlines", "back\\slash", " edge ", "", "ü€"]
    rows = [(i, value, f"{i}@x", None) for i, value in enumerate(tricky, 1)]
    encoded = FORMATS["csv"].encode("users", rows).decode()
    read = [tuple(r) for r in csv.reader(io.StringIO(encoded, newline=""))]
    assert [r[1] for r in read] == tricky and all(r[3] == "" for r in read)
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE users (id, name, email, phone)")
    values = ",\n".join(FORMATS["sql"].encode("users", rows))
    connection.execute(f"INSERT INTO users (id, name, email, phone) VALUES {values}")
    assert connection.execute("SELECT name, phone FROM users ORDER BY id").fetchall() == [
        (value, None) for value in tricky
    ]


def _readme_block(marker: str) -> str:
    section = README.read_text("utf-8").split("## Export to files", 1)[1].split("\n## ", 1)[0]
    return section.split(f"<!-- {marker} -->\n```bash\n", 1)[1].split("```", 1)[0]


def _shell(script: str, cwd: Path) -> None:
    """``script`` run by bash, with this environment's invoicegen first on the PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_readme_export_commands_run(tmp_path: Path) -> None:
    """The commands of the README's "Export to files" section, run by a shell as written."""
    if shutil.which("sqlite3") is None:
        pytest.skip("sqlite3 is not installed")
    _shell(_readme_block("export-example"), tmp_path)
    url = "sqlite:///" + str(tmp_path / "app.db")
    assert invoke("stats", "--check", "-q", "-d", url).exit_code == 0
    assert len(dump(url)["users"]) == 200
    assert (tmp_path / "dataset" / "manifests" / "part-1-of-1.json").exists()


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_the_readme_server_load_commands_run(kind: str, tmp_path: Path) -> None:
    """The README's PostgreSQL or MariaDB lines, with a test server's database for ``app``."""
    client = {"postgresql": "psql", "mariadb": "mariadb"}[kind]
    if shutil.which(client) is None:
        pytest.skip(f"{client} is not installed")
    lines = [
        line
        for line in _readme_block("export-servers-example").splitlines()
        if (kind == "postgresql") == ("postgresql://" in line)
    ]
    (tmp_path / "db").mkdir()
    for url in fresh_database(kind, tmp_path / "db"):
        parsed = sa.make_url(url)
        plain = parsed.set(drivername=parsed.get_backend_name()).render_as_string(
            hide_password=False
        )
        server = f"-h {parsed.host} -P {parsed.port or 3306} -u {parsed.username} {parsed.database}"
        script = "\n".join(lines)
        script = script.replace("postgresql://localhost/app", plain)
        script = script.replace("mysql://root@localhost/app", plain)
        script = script.replace("-u root app", server)
        export(tmp_path / "dataset", users=200)
        _shell(script, tmp_path)
        assert invoke("stats", "--check", "-q", "-d", url).exit_code == 0
        assert len(dump(url)["users"]) == 200


def test_the_readmes_indexed_job_exports_the_dataset_of_one_process(tmp_path: Path) -> None:
    """The README's Kubernetes Indexed Job, its four pods' command line as written (the users
    fewer, the shared volume a folder here), and the folder it leaves equals one export."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    yaml = readme.split("<!-- export-indexed-job -->", 1)[1].split("```", 2)[1]
    line = next(line.strip() for line in yaml.splitlines() if "invoicegen export" in line)
    args = shlex.split(line)[1:]
    assert args[args.index("--shard") + 1] == "auto"
    args[args.index("--users") + 1] = "30"
    shared = tmp_path / "data"
    args = [str(shared / "dataset") if a == "/data/dataset" else a for a in args]
    pods = 4
    assert f"completions: {pods}" in yaml and args[args.index("--shards") + 1] == str(pods)
    for index in (2, 0, 3, 1):
        result = invoke(*args, env={"JOB_COMPLETION_INDEX": str(index)})
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["shard"] == f"{index}/{pods}"
    single = [*args[: args.index("--shard")], *args[args.index("--shards") + 2 :]]
    single[1] = str(tmp_path / "single")
    assert invoke(*single).exit_code == 0
    import duckdb

    for table in TABLES:
        query = "SELECT * FROM read_parquet('{}/{}/*.parquet') ORDER BY id"
        sharded = duckdb.connect().execute(query.format(shared / "dataset", table)).fetchall()
        whole = duckdb.connect().execute(query.format(tmp_path / "single", table)).fetchall()
        assert sharded == whole and len(whole) > 0, table
