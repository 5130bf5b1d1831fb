"""Each database's bulk writer stores exactly the values it is given, or refuses the batch."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pickle
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from invoicegen import db, schema
from invoicegen.seeding import SeedPlan, encoders, seed, writers
from tests.helpers import AS_OF, SEED
from tests.invariants import dump

AWKWARD = [
    "tab\there",
    "back\\slash",
    "new\nline",
    "carriage\rreturn",
    "\\N",
    "Zoë O'Brien 東京",
    "",
    "\\.",  # COPY text's end-of-data marker, were it not escaped
    "trailing backslash\\",
    "all\tfour\nspecials\r\\ at once",
    "\x0b\x0c\x08 other controls",
    "astral 🎉 and \t tab",
]


def test_awkward_strings_dates_and_amounts_round_trip(engine: sa.Engine) -> None:
    schema.upgrade(engine)
    day = dt.date(2024, 2, 29)
    users = [(i + 1, name, f"u{i}@example.com", name) for i, name in enumerate(AWKWARD)]
    clients = [(1, AWKWARD[0], AWKWARD[1], "c@example.com", "JP", 30, 1)]
    contracts = [
        (1, None, day, None, "JPY", Decimal("150000.00"), 1),
        (2, AWKWARD[2], day, day, "EUR", Decimal("0.01"), 1),
    ]
    invoices = [
        (1, day, day, Decimal("0.00"), None, None, None, None, "draft", "JPY", 1),
        (2, day, day, Decimal("1234567890.99"), "INV-1-1", day, day, None, "open", "EUR", 2),
    ]
    with engine.connect() as connection:
        prepare = writers.adapter(writers.write_path(connection))
    prepared = [prepare(rows) for rows in (users, clients, contracts, invoices)]
    prepared = pickle.loads(pickle.dumps(prepared))  # as sent back by a worker process
    assert [writers.row_count(p) for p in prepared] == [len(AWKWARD), 1, 2, 2]
    with engine.begin() as connection:
        writers.write_batch(connection, prepared)
    with engine.connect() as connection:
        names = connection.exec_driver_sql("SELECT name, phone FROM users ORDER BY id").all()
        assert [tuple(r) for r in names] == [(n, n) for n in AWKWARD]
        summaries = connection.exec_driver_sql("SELECT summary FROM contracts ORDER BY id").all()
        assert [r[0] for r in summaries] == [None, AWKWARD[2]]
        ends = connection.execute(sa.text("SELECT end_date FROM contracts ORDER BY id")).all()
        assert ends[0][0] is None and str(ends[1][0]) == "2024-02-29"
        amounts = connection.exec_driver_sql("SELECT amount FROM invoices ORDER BY id").all()
        assert [Decimal(str(r[0])).quantize(Decimal("0.01")) for r in amounts] == [
            Decimal("0.00"),
            Decimal("1234567890.99"),
        ]
        lifecycle = connection.exec_driver_sql(
            "SELECT number, issued_on, paid_on, status, currency FROM invoices ORDER BY id"
        ).all()
        assert [tuple(None if v is None else str(v) for v in r) for r in lifecycle] == [
            (None, None, None, "draft", "JPY"),
            ("INV-1-1", "2024-02-29", None, "open", "EUR"),
        ]
        rates = connection.exec_driver_sql("SELECT monthly_rate FROM contracts ORDER BY id").all()
        assert [Decimal(str(r[0])).quantize(Decimal("0.01")) for r in rates] == [
            Decimal("150000.00"),
            Decimal("0.01"),
        ]


def test_nulls_beside_awkward_and_plain_values_in_one_column_round_trip(engine: sa.Engine) -> None:
    """NULL in columns of every type, next to values that need escaping and values that do
    not: each column is encoded as a whole, so each mix is a path of its own."""
    schema.upgrade(engine)
    day = dt.date(2024, 12, 31)
    users = [(1, "plain", "p@example.com", "1")]
    clients = [
        (1, "plain", "Co", "c1@example.com", None, None, 1),
        (2, "tab\there", "Co", "c2@example.com", "JP", 45, 1),
    ]
    summaries = [None, "plain", "new\nline", None, "\\N", "plain again"]
    contracts = [
        (i + 1, summary, day, None if i % 2 else day, None, None if i % 3 else Decimal("9.99"), 1)
        for i, summary in enumerate(summaries)
    ]
    invoices = [
        (1, day, day, Decimal("1.00"), None, None, None, None, None, None, 1),
        (2, day, day, Decimal("2.00"), "INV-1-2", day, day, day, "paid", "USD", 1),
    ]
    with engine.connect() as connection:
        prepare = writers.adapter(writers.write_path(connection))
    prepared = [prepare(rows) for rows in (users, clients, contracts, invoices)]
    with engine.begin() as connection:
        writers.write_batch(connection, prepared)
    with engine.connect() as connection:
        found = connection.exec_driver_sql(
            "SELECT name, country, payment_terms_days FROM clients ORDER BY id"
        ).all()
        assert [tuple(r) for r in found] == [("plain", None, None), ("tab\there", "JP", 45)]
        found = connection.exec_driver_sql(
            "SELECT summary, end_date, currency, monthly_rate FROM contracts ORDER BY id"
        ).all()
        assert [r[0] for r in found] == summaries
        assert [r[1] is None for r in found] == [i % 2 == 1 for i in range(len(summaries))]
        assert [r[2] for r in found] == [None] * len(summaries)
        assert [r[3] is None for r in found] == [i % 3 != 0 for i in range(len(summaries))]
        found = connection.exec_driver_sql(
            "SELECT number, issued_on, status, currency FROM invoices ORDER BY id"
        ).all()
        assert [tuple(None if v is None else str(v) for v in r) for r in found] == [
            (None, None, None, None),
            ("INV-1-2", "2024-12-31", "paid", "USD"),
        ]


def test_a_table_larger_than_the_drivers_buffer_is_written_whole(engine: sa.Engine) -> None:
    """psycopg sends COPY data in 128 KiB chunks: a batch's table can be many times that."""
    schema.upgrade(engine)
    day = dt.date(2024, 1, 1)
    with engine.connect() as connection:
        prepare = writers.adapter(writers.write_path(connection))
    invoices = [
        (i, day, day, Decimal("12.34"), f"INV-1-{i}", day, day, day, "paid", "USD", 1)
        for i in range(1, 140_001)
    ]
    batch = [
        prepare([(1, "A", "a@example.com", "1")]),
        prepare([(1, "C", "Co", "c@example.com", "US", 30, 1)]),
        prepare([(1, None, day, None, "USD", Decimal("12.34"), 1)]),
        prepare(invoices),
    ]
    with engine.begin() as connection:
        writers.write_batch(connection, batch)
    with engine.connect() as connection:
        count, top = connection.exec_driver_sql("SELECT COUNT(*), MAX(id) FROM invoices").one()
    assert (count, top) == (140_000, 140_000)


def test_copy_text_refuses_rows_of_different_lengths() -> None:
    """COPY text is encoded column by column: a short or long row is an error, never a row
    whose fields land in the wrong columns."""
    with pytest.raises(ValueError, match="different lengths"):
        encoders.encode_copy([(1, "a"), (2, "b", "c")])


def test_copy_text_of_columns_whose_first_value_does_not_give_their_type() -> None:
    """A column is encoded by its first value's type while every value is of that type; NULLs
    after numbers or strings, a datetime among dates and mixed numbers take the general path
    (a datetime as its str(), not its isoformat())."""
    rows = [
        (1, "a", dt.date(2024, 1, 2), Decimal("1.50"), None),
        (None, None, None, None, dt.date(2024, 3, 4)),
        (3, "c\td", dt.datetime(2024, 1, 2, 3, 4), 7, "x"),
    ]
    assert encoders.encode_copy(rows).data == (
        b"1\ta\t2024-01-02\t1.50\t\\N\n"
        b"\\N\t\\N\t\\N\t\\N\t2024-03-04\n"
        b"3\tc\\td\t2024-01-02 03:04:00\t7\tx\n"
    )


def _copy_text_of_whole_columns(rows: list[tuple[object, ...]]) -> bytes:
    """COPY text as encode_copy wrote it when it took each column whole, spelled out value
    by value: a column by its first value's type while every value is an instance of that
    type (strings escaped only when one holds a special character; a bool after ints is an
    int), otherwise each value on its own (None as \\N, strings escaped, anything else its
    str(): a bool is True)."""
    escapes = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

    def alone(value: object) -> str:
        if value is None:
            return "\\N"
        return value.translate(escapes) if isinstance(value, str) else str(value)

    def column(values: tuple[Any, ...]) -> list[str]:
        kind = type(values[0])
        if kind is str and all(isinstance(v, str) for v in values):
            if any(c in v for v in values for c in "\\\t\n\r"):
                return [v.translate(escapes) for v in values]
            return [str.__str__(v) for v in values]  # as they are, never translated
        if kind is int and all(isinstance(v, int) for v in values):
            return [int.__repr__(v) for v in values]
        if kind is Decimal and all(isinstance(v, Decimal) for v in values):
            return [Decimal.__str__(v) for v in values]
        return [alone(v) for v in values]

    columns = [column(values) for values in zip(*rows, strict=True)]
    return ("\n".join(map("\t".join, zip(*columns, strict=True))) + "\n").encode()


class _Shouting(str):
    """A string whose own translate() and str() differ from the text it holds."""

    def translate(self, table: Any) -> str:
        return str.translate(self, table).upper()

    def __str__(self) -> str:
        return "shouting"


class _Tagged(int):
    def __str__(self) -> str:
        return "tagged"


class _Loud(Decimal):
    def __str__(self) -> str:
        return "loud"


@pytest.mark.parametrize(
    ("rows", "text"),
    [
        ([(1,), (True,), (None,)], b"1\nTrue\n\\N\n"),  # a NULL later: the bool is True
        ([(1,), (2,), (True,)], b"1\n2\n1\n"),  # ints throughout: the bool is 1
        ([("a",), ("b",), (None,)], b"a\nb\n\\N\n"),
        ([("a",), ("b",), ("t\tab",)], b"a\nb\nt\\tab\n"),
        ([(_Shouting("a"),), ("b",), ("t\tab",)], b"A\nb\nt\\tab\n"),
        ([(_Shouting("a"),), ("b",), (None,)], b"A\nb\n\\N\n"),
        ([("t\tab",), ("b",), (_Shouting("a"),)], b"t\\tab\nb\nA\n"),
        (
            [(dt.date(2024, 1, 2),), (None,), (dt.datetime(2024, 1, 2),)],
            b"2024-01-02\n\\N\n2024-01-02 00:00:00\n",
        ),
    ],
)
def test_copy_text_in_chunks_is_the_text_of_whole_columns(
    monkeypatch: pytest.MonkeyPatch, rows: list[tuple[object, ...]], text: bytes
) -> None:
    """Rows are encoded a few at a time, each column by the encoder its first chunk took; a
    later chunk that refuses it (a NULL, a string to escape, another type) must not change
    the text of the chunks before."""
    assert _copy_text_of_whole_columns(rows) == text
    monkeypatch.setattr(encoders, "_COPY_CHUNK", 2)
    assert encoders.encode_copy(rows).data == text


def test_copy_text_in_chunks_of_random_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Columns of one type with odd values (NULLs, specials, subclasses, other types) at the
    start, anywhere or only late, in chunks of every small size: the text of whole columns."""
    plain: list[list[object]] = [
        [7, 12018, -5, 2**70, 0],
        ["INV-1-2", "Zoë 東京", "", "x" * 30],
        [Decimal("18000.00"), Decimal("1E+3"), Decimal("-0.00"), Decimal("0E-7")],
        [dt.date(2024, 1, 2), dt.date(1, 1, 1), dt.date(2026, 11, 25)],
    ]
    odd: list[object] = [
        *[None] * 4, True, False, _Tagged(3), *AWKWARD[:5], _Shouting("plain"),
        _Shouting("a\tb"), Decimal("NaN"), Decimal("-Infinity"), _Loud("2.5"),
        dt.datetime(2024, 1, 2, 3, 4), 1.5, b"bytes", 3, "s", dt.date(2024, 5, 6),
        Decimal("1.1"),
    ]  # fmt: skip
    rand = random.Random(SEED)
    for _ in range(2000):
        size = rand.choice([1, 2, 3, 5, 9, 17])
        columns = []
        for _ in range(rand.randint(1, 3)):
            values, rate, late = rand.choice(plain), rand.choice([0, 0.05, 0.3]), rand.random()
            columns.append(
                [
                    rand.choice(odd) if rand.random() < rate and i >= late * size else v
                    for i, v in enumerate(rand.choices(values, k=size))
                ]
            )
        rows = list(zip(*columns, strict=True))
        text = _copy_text_of_whole_columns(rows)
        for chunk in (1, 2, 3, 1024):
            monkeypatch.setattr(encoders, "_COPY_CHUNK", chunk)
            assert encoders.encode_copy(rows).data == text, (chunk, rows)


def _batch(engine: sa.Engine, users: list[tuple[object, ...]]) -> list[writers.Prepared]:
    """``users`` and one client of the first, prepared for the engine's write path."""
    with engine.connect() as connection:
        prepare = writers.adapter(writers.write_path(connection))
    client = (1, "C", "Co", "c@example.com", "US", 30, users[0][0])
    return [prepare(users), prepare([client]), prepare([]), prepare([])]


def test_a_duplicate_id_fails_the_batch_and_leaves_none_of_it(engine: sa.Engine) -> None:
    """MariaDB's LOAD DATA LOCAL only warns of a duplicate key (and skips the row): the writer
    must fail as INSERT does, and the batch's transaction roll back, its first table too."""
    schema.upgrade(engine)
    with engine.begin() as connection:
        writers.write_batch(connection, _batch(engine, [(7, "Ann", "a@example.com", "1")]))
    batch = _batch(engine, [(8, "Bo", "b@example.com", "2"), (7, "Cy", "c@example.com", "3")])
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        writers.write_batch(connection, batch)
    with engine.connect() as connection:
        users = connection.exec_driver_sql("SELECT id, name FROM users ORDER BY id").all()
        clients = connection.exec_driver_sql("SELECT COUNT(*) FROM clients").scalar_one()
    assert ([tuple(u) for u in users], clients) == ([(7, "Ann")], 1)


@pytest.mark.parametrize(
    "user",
    [
        (1, "x" * 201, "a@example.com", "1"),  # longer than the column: truncated by LOAD DATA
        (1, "Ann", "a@example.com", "1" * 51),
    ],
    ids=["name", "phone"],
)
def test_a_value_the_column_cannot_hold_fails_the_batch_on_mariadb(
    mariadb_url: str, user: tuple[object, ...]
) -> None:
    """LOAD DATA LOCAL stores a truncated value with a warning even in strict mode: refused."""
    engine = db.make_engine(mariadb_url)
    schema.upgrade(engine)
    with pytest.raises(sa.exc.DBAPIError, match="LOAD DATA into users.*truncated"):
        with engine.begin() as connection:
            writers.write_batch(connection, _batch(engine, [user]))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM users").scalar_one() == 0


def test_no_backslash_escapes_in_the_sql_mode_changes_nothing_on_mariadb(mariadb_url: str) -> None:
    """With NO_BACKSLASH_ESCAPES, LOAD DATA's default ESCAPED BY is empty: \\N, \\t and \\\\
    would be stored as they are written, without a warning."""
    engine = db.make_engine(mariadb_url)
    schema.upgrade(engine)
    users = [(i + 1, name, f"u{i}@example.com", "1") for i, name in enumerate(AWKWARD)]
    batch = _batch(engine, users)
    day = dt.date(2024, 2, 29)
    batch[2] = writers.adapter("load_data")([(1, None, day, None, "EUR", Decimal("0.01"), 1)])
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')"
        )
        writers.write_batch(connection, batch)
        stored = connection.exec_driver_sql("SELECT name FROM users ORDER BY id").all()
        contract = connection.exec_driver_sql("SELECT summary, end_date FROM contracts").one()
    assert ([r[0] for r in stored], tuple(contract)) == (AWKWARD, (None, None))


def test_the_engine_sends_no_file_a_statement_of_its_own_asks_for(mariadb_url: str) -> None:
    """The engine connects with the LOCAL capability for the writer; any other statement
    (a server answering with a file request) gets no file from invoicegen's process (PyMySQL
    refuses, and the connection is lost)."""
    engine = db.make_engine(mariadb_url)
    schema.upgrade(engine)
    statement = "LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE users (name)"
    with pytest.raises(Exception), engine.begin() as connection:  # noqa: B017  # any: not sent
        connection.exec_driver_sql(statement)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM users").scalar_one() == 0


# --- a server that refuses LOAD DATA LOCAL -----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def no_local_infile_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private MariaDB server started with ``--local-infile=0`` (the shared test server's
    global setting is not for one test to turn off); skipped where MariaDB is not installed."""
    install, server = shutil.which("mariadb-install-db"), shutil.which("mariadbd")
    if install is None or server is None:
        pytest.skip("mariadb-install-db and mariadbd are not installed")
    folder = tmp_path_factory.mktemp("mariadb")
    as_root = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [install, "--no-defaults", *as_root, f"--datadir={folder / 'data'}", "--skip-test-db"]
        + ["--auth-root-authentication-method=normal"],
        capture_output=True,
        check=True,
        timeout=120,
    )
    port = _free_port()
    process = subprocess.Popen(
        [server, "--no-defaults", *as_root, f"--datadir={folder / 'data'}"]
        + [f"--socket={folder / 'socket'}", "--bind-address=127.0.0.1", f"--port={port}"]
        + ["--local-infile=0", "--innodb-buffer-pool-size=16M", f"--log-error={folder / 'log'}"],
    )
    try:
        url = f"mysql://root@127.0.0.1:{port}/mysql"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(sa.exc.OperationalError):
                with sa.create_engine(
                    url.replace("mysql:", "mysql+pymysql:")
                ).connect() as connection:
                    connection.exec_driver_sql("CREATE DATABASE invoicegen_test")
                break
            assert process.poll() is None and time.monotonic() < deadline, "no server"
            time.sleep(0.2)
        yield f"mysql://root@127.0.0.1:{port}/invoicegen_test"
    finally:
        process.terminate()
        process.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)  # ~130 MB of data files


@pytest.mark.slow  # starts a MariaDB server of its own
def test_a_server_refusing_load_data_local_is_written_by_inserts_with_the_same_rows(
    no_local_infile_url: str, mariadb_url: str
) -> None:
    plan = SeedPlan(users=40, seed=SEED, as_of=dt.date.fromisoformat(AS_OF))
    refusing, allowing = db.make_engine(no_local_infile_url), db.make_engine(mariadb_url)
    fallback, loaded = seed(refusing, plan), seed(allowing, plan)
    assert (fallback.write_path, loaded.write_path) == ("executemany", "load_data")
    assert dump(refusing) == dump(allowing)
    assert sum(len(rows) for rows in dump(refusing).values()) == fallback.rows > 40
    # the server does refuse: LOAD DATA's text would not have been written there
    text = writers.adapter("load_data")([(10_000, "Ann", "a@example.com", "1")])
    with pytest.raises(sa.exc.DBAPIError, match="not allowed"), refusing.begin() as connection:
        writers.write_batch(connection, [text, [], [], []])
