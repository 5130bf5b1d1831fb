"""Each database's bulk writer stores exactly the values it is given."""

from __future__ import annotations

import datetime as dt
import pickle
from decimal import Decimal

import pytest
import sqlalchemy as sa

from invoicegen import schema
from invoicegen.seeding import encoders, writers

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
    prepare = writers.adapter(engine.dialect.name)
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
    prepare = writers.adapter(engine.dialect.name)
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
    prepare = writers.adapter(engine.dialect.name)
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
