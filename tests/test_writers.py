"""Each database's bulk writer stores exactly the values it is given."""

from __future__ import annotations

import datetime as dt
import pickle
from decimal import Decimal

import sqlalchemy as sa

from invoicegen import schema
from invoicegen.seeding import writers

AWKWARD = [
    "tab\there",
    "back\\slash",
    "new\nline",
    "carriage\rreturn",
    "\\N",
    "Zoë O'Brien 東京",
    "",
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
