"""How rows are encoded, apart from where they go (psycopg's copy ``Formatter`` vs ``Writer``).

Rows arrive as tuples in :data:`COLUMNS` order: ints, strings, ``datetime.date``, ``Decimal``
and None. Each encoding lives here once:

- for the database writers (:mod:`.writers`): PostgreSQL's COPY text (:func:`encode_copy`),
  which MariaDB/MySQL's ``LOAD DATA`` reads as it is (in the format the writer spells out:
  tab-separated, ``\\`` escapes for backslash, tab, line feed and carriage return, ``\\N`` for
  NULL; quotes need none), and SQLite's driver values (:func:`sqlite_values`);
- for export files (:mod:`.exports`): one :class:`FileFormat` per ``--format``: ``csv``,
  ``jsonl``, ``sql`` (multi-row INSERTs) and ``parquet`` (pyarrow, the ``invoicegen[parquet]``
  extra).

A file format encodes a batch's rows in the process that generated them (:meth:`encode`,
a picklable value) and lays the encoded batches out in one open binary file (:meth:`sink`):
a header, the rows, and statements or row groups of a fixed number of rows, whatever the
batches were, so a file's bytes never depend on ``--batch-size`` or ``--workers``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import json
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, BinaryIO, ClassVar

from invoicegen.errors import UsageError
from invoicegen.models import DATA_TABLE_NAMES, DATA_TABLES

Rows = list[tuple[Any, ...]]

#: Column order of the tuples each table's rows are written with.
COLUMNS = {
    "users": ("id", "name", "email", "phone"),
    "clients": ("id", "name", "company_name", "email", "country", "payment_terms_days", "user_id"),
    "contracts": (
        "id",
        "summary",
        "start_date",
        "end_date",
        "currency",
        "monthly_rate",
        "client_id",
    ),
    "invoices": (
        "id",
        "period_start",
        "period_end",
        "amount",
        "number",
        "issued_on",
        "due_on",
        "paid_on",
        "status",
        "currency",
        "contract_id",
    ),
}
TABLES = DATA_TABLE_NAMES
assert tuple(COLUMNS) == TABLES, "COLUMNS lists the data tables, parents first"

#: Per table, the columns that may hold NULL (the load scripts turn empty CSV fields into NULL).
NULLABLE = {
    table.name: tuple(name for name in COLUMNS[table.name] if table.c[name].nullable)
    for table in DATA_TABLES
}


# --- for the database writers ---------------------------------------------------------------------


@dataclass(frozen=True)
class CopyText:
    """Rows already encoded in PostgreSQL's COPY text format, and how many they are."""

    data: bytes
    rows: int


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


class _IsoDates(dict[dt.date, str]):
    """date -> its ISO text, made once: a batch's dates repeat (months, due days)."""

    def __missing__(self, day: dt.date) -> str:
        if len(self) >= 1 << 16:
            self.clear()
        text = self[day] = day.isoformat()
        return text


def _copy_field(value: Any) -> str:
    if value is None:
        return _COPY_NULL
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    return str(value)  # int, date (ISO), Decimal, datetime, bool: their str() is what COPY reads


_COPY_NULL = "\\N"
_COPY_NULLS = {None: _COPY_NULL}


class _CopyDates(_IsoDates):
    """date (or None) -> its COPY text: ISO, or \\N. Anything else is refused (TypeError):
    :func:`_copy_column` then takes the general encoder."""

    def __missing__(self, day: dt.date | None) -> str:
        if day is None:
            return _COPY_NULL
        if type(day) is not dt.date:  # a datetime's str() is not its isoformat()
            raise TypeError(f"not a date: {type(day).__name__}")
        return super().__missing__(day)


_COPY_DATES = _CopyDates()


#: A column's encoder by the exact type of its first value: a C-level step per value that
#: refuses (TypeError) any value of another type, so that no value is tested on its own.
_COPY_BY_FIRST: dict[type, Callable[[Any], str]] = {
    int: int.__repr__,  # an int subclass's value (a bool) is written as the int it is
    Decimal: Decimal.__str__,
    dt.date: _COPY_DATES.__getitem__,
    type(None): _COPY_DATES.__getitem__,  # a nullable date column that starts with NULL
}

#: Values of these exact types get the same text from every encoder that takes them as from
#: :func:`_copy_field`; the encoders differ only on subclasses (a bool is 1 after ints, else
#: True).
_COPY_PLAIN_TYPES = frozenset({str, int, Decimal, dt.date, type(None)})

#: Rows encoded at a time (:func:`encode_copy`): a chunk's values, fields and lines stay in
#: the processor's cache from one step to the next, where a batch's 12,000 invoices do not.
_COPY_CHUNK = 1024

_Encoder = Callable[[Sequence[Any]], Iterable[str]]


def _has_specials(text: str) -> bool:
    return "\\" in text or "\t" in text or "\n" in text or "\r" in text


def _copy_strings(values: Sequence[Any]) -> Iterable[str]:
    """Strings none of which needs escaping, as they are; anything else (a string to escape
    too) is refused (TypeError)."""
    if _has_specials("".join(values)):  # the join refuses anything but strings
        raise TypeError("a string to escape")
    return values


def _copy_escaped(values: Sequence[Any]) -> Iterable[str]:
    """Strings, escaped; anything else is refused (TypeError)."""
    "".join(values)  # refuses anything but strings
    return [v.translate(_COPY_ESCAPES) for v in values]


def _copy_each(encode: Callable[[Any], str], values: Sequence[Any]) -> Iterable[str]:
    """Each value by ``encode`` (a :data:`_COPY_BY_FIRST` encoder), which refuses the others."""
    return list(map(encode, values))


def _copy_column(values: Sequence[Any]) -> tuple[_Encoder, Iterable[str]]:
    """A column's first chunk (at least one value) as COPY text fields, and the encoder that
    took it: each value costs a C-level step (no Python call). The encoder is the one of the
    first value's exact type (strings escaped only when one holds a special character at
    all); a column it refuses (NULLs in a column of strings or numbers, mixed types) takes
    :func:`_copy_mixed`."""
    kind = type(values[0])
    try:
        if kind is str:
            if _has_specials("".join(values)):  # the join refuses anything but strings
                return _copy_escaped, [v.translate(_COPY_ESCAPES) for v in values]
            return _copy_strings, values
        if (encode := _COPY_BY_FIRST.get(kind)) is not None:
            return functools.partial(_copy_each, encode), list(map(encode, values))
    except TypeError:
        pass
    return _copy_mixed, _copy_mixed(values)


def _copy_mixed(values: Sequence[Any]) -> Iterable[str]:
    """:func:`_copy_column` for any column: the encoder chosen by the exact types the column
    holds. Each value gets the text :func:`_copy_field` gives it, whatever the others are."""
    kinds = set(map(type, values))
    nullable = type(None) in kinds
    kinds.discard(type(None))
    if kinds == {str}:
        joined = "".join(filter(None, values) if nullable else values)
        if _has_specials(joined):
            return [_COPY_NULL if v is None else v.translate(_COPY_ESCAPES) for v in values]
        return map(_COPY_NULLS.get, values, values) if nullable else values
    if kinds == {dt.date}:
        return map(_COPY_DATES.__getitem__, values)
    if kinds <= {int, Decimal}:  # exact types: bool's str() is not an int's
        if nullable:
            return [_COPY_NULL if v is None else str(v) for v in values]
        return map(str, values)
    return map(_copy_field, values)


def _copy_lines(rows: Rows, chunk: int) -> list[str] | None:
    """The rows' COPY text lines, ``chunk`` rows at a time, each column by the encoder its
    first chunk took (:func:`_copy_column`): the same text as the whole column at once.
    None when a later chunk refuses a column's encoder after values other than
    :data:`_COPY_PLAIN_TYPES` (whose text would then change): encode the rows as one chunk.
    """
    width = len(rows[0])
    taken: list[_Encoder | None] = [None] * width
    lines: list[str] = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        if set(map(len, part)) != {width}:  # a pass of its own, while the part is in cache
            raise ValueError(f"rows of different lengths: {sorted(set(map(len, rows)))}")
        columns = []
        # zip(*part) makes an iterator per row, that many live objects at once: the generating
        # processes encode with the garbage collector paused (workers.collector_paused).
        for index, values in enumerate(zip(*part, strict=True)):
            encode = taken[index]
            if encode is None:
                taken[index], fields = _copy_column(values)
            else:
                try:
                    fields = encode(values)
                except TypeError:  # e.g. a first NULL among strings: every value by _copy_field
                    earlier = map(operator.itemgetter(index), itertools.islice(rows, start))
                    if not set(map(type, earlier)) <= _COPY_PLAIN_TYPES:
                        return None
                    taken[index] = _copy_mixed
                    fields = _copy_mixed(values)
            columns.append(fields)
        lines += map("\t".join, zip(*columns, strict=True))
    return lines


def encode_copy(rows: Rows) -> CopyText:
    """Rows as PostgreSQL COPY text: tab-separated, \\N for NULL, specials escaped; also what
    MariaDB/MySQL's ``LOAD DATA ... CHARACTER SET utf8mb4`` reads (``writers``).

    Column by column, :data:`_COPY_CHUNK` rows at a time (rows of unequal length are
    refused), then joined row by row."""
    if not rows:
        return CopyText(b"", 0)
    lines = _copy_lines(rows, _COPY_CHUNK)
    if lines is None:
        lines = _copy_lines(rows, len(rows))
        assert lines is not None  # one chunk: no later one to refuse an encoder
    text = "\n".join(lines)
    text += "\n"  # in place: the text's only reference
    return CopyText(text.encode(), len(rows))


#: type -> what sqlite3 takes instead (looked up by exact type: one dict probe per value):
#: dates as ISO text (sqlite3's default date adapter is deprecated), money as decimal text
#: (sqlite3 has no Decimal adapter).
_SQLITE_CONVERT: dict[type, Callable[[Any], Any]] = {
    dt.date: _IsoDates().__getitem__,
    dt.datetime: dt.datetime.isoformat,
    Decimal: str,
}


def sqlite_values(rows: Rows) -> Rows:
    """Rows as SQLite's driver takes them: dates as ISO text, money as decimal text."""
    convert = _SQLITE_CONVERT.get  # the engine's values are of exactly these types
    return [
        tuple([value if (to := convert(type(value))) is None else to(value) for value in row])
        for row in rows
    ]


# --- for export files -----------------------------------------------------------------------------


class Sink:
    """One table's file being written: encoded batches in, bytes out (in order)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def write(self, encoded: Any) -> None:
        self.stream.write(encoded)

    def close(self) -> None:
        """Write what the file still owes (a last statement, the footer); the caller closes
        the stream."""

    def abandon(self) -> None:
        """Be done with the file before its stream closes, closed or not (a failed or stopped
        export, whose file is removed): nothing of the sink may write to it later."""


class FileFormat:
    """An export format: how a table's rows become the bytes of one file."""

    name: ClassVar[str]
    extension: ClassVar[str]
    #: Whether per-database load scripts (load.DIALECT.sql) come with it.
    loadable: ClassVar[bool] = False

    def encode(self, table: str, rows: Rows) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def sink(self, table: str, stream: BinaryIO) -> Sink:
        return Sink(stream)


def _csv_field(value: Any) -> str:
    if value is None:
        return ""  # NULL: an empty field, unquoted
    if isinstance(value, str):
        if value == "" or any(c in value for c in ',"\r\n') or value != value.strip():
            return '"' + value.replace('"', '""') + '"'  # "" is the empty string, not NULL
        return value
    return str(value)  # int, date (ISO), Decimal (exact)


class Csv(FileFormat):
    """RFC 4180 with a header row, UTF-8, ``\\n`` line ends. NULL is an empty unquoted field
    (PostgreSQL's ``COPY ... CSV`` and DuckDB read it so; the MariaDB and SQLite load scripts
    say so with NULLIF); strings are quoted when they hold a comma, a quote, a line end or
    edge spaces; dates are ISO, money exact decimals."""

    name = "csv"
    extension = "csv"
    loadable = True

    def encode(self, table: str, rows: Rows) -> bytes:
        return "".join([",".join([_csv_field(v) for v in row]) + "\n" for row in rows]).encode()

    def sink(self, table: str, stream: BinaryIO) -> Sink:
        stream.write((",".join(COLUMNS[table]) + "\n").encode())
        return Sink(stream)


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # money as an exact decimal string, as every --json document has it
    raise TypeError(f"{type(value).__name__} is not JSON")


class JsonLines(FileFormat):
    """One JSON object per line, keys in column order; dates ISO strings, money exact
    decimal strings (as in ``--json`` documents), NULL ``null``."""

    name = "jsonl"
    extension = "jsonl"

    def encode(self, table: str, rows: Rows) -> bytes:
        columns = COLUMNS[table]
        return "".join(
            [
                json.dumps(
                    dict(zip(columns, row, strict=True)),
                    ensure_ascii=False,
                    separators=(",", ":"),
                    default=_json_value,
                )
                + "\n"
                for row in rows
            ]
        ).encode()


def sql_literal(value: Any) -> str:
    """A value as a SQL literal that PostgreSQL, MariaDB (with NO_BACKSLASH_ESCAPES, which
    :data:`SQL_PREAMBLE` sets) and SQLite read alike."""
    if value is None:
        return "NULL"
    if isinstance(value, str | dt.date):
        return "'" + str(value).replace("'", "''") + "'"
    return str(value)  # int, Decimal: exact numerals


#: First line of every ``sql`` file: MariaDB/MySQL run ``/*! ... */``, so their backslashes
#: in strings are plain characters as in standard SQL; PostgreSQL and SQLite see a comment
#: and an empty statement.
SQL_PREAMBLE = "/*!40101 SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES') */;\n"

#: Rows per INSERT statement of the ``sql`` format.
ROWS_PER_INSERT = 500


class _InsertSink(Sink):
    def __init__(self, stream: BinaryIO, table: str) -> None:
        super().__init__(stream)
        self.insert = f"INSERT INTO {table} ({', '.join(COLUMNS[table])}) VALUES\n"
        self.in_statement = 0
        stream.write(SQL_PREAMBLE.encode())

    def write(self, encoded: Sequence[str]) -> None:
        parts: list[str] = []
        for values in encoded:
            parts.append((",\n" if self.in_statement else self.insert) + values)
            self.in_statement += 1
            if self.in_statement == ROWS_PER_INSERT:
                parts.append(";\n")
                self.in_statement = 0
        self.stream.write("".join(parts).encode())

    def close(self) -> None:
        if self.in_statement:
            self.stream.write(b";\n")


class Sql(FileFormat):
    """Plain multi-row ``INSERT`` statements of :data:`ROWS_PER_INSERT` rows, for
    PostgreSQL, MariaDB/MySQL and SQLite alike."""

    name = "sql"
    extension = "sql"
    loadable = True

    def encode(self, table: str, rows: Rows) -> list[str]:
        return ["(" + ",".join([sql_literal(v) for v in row]) + ")" for row in rows]

    def sink(self, table: str, stream: BinaryIO) -> Sink:
        return _InsertSink(stream, table)


#: Rows per Parquet row group: fixed, so that the bytes do not depend on --batch-size.
ROWS_PER_ROW_GROUP = 65_536


def require_pyarrow() -> Any:
    """The pyarrow module, or a one-line error saying how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UsageError(
            "the parquet format needs pyarrow: pip install 'invoicegen[parquet]'",
            option="--format",
        ) from None
    return pyarrow


@functools.cache
def arrow_schema(table: str) -> Any:
    """The table's columns as Arrow types: ids int64, dates date32, money decimal128(12,2),
    text string, timestamps with the UTC zone; nullable as in the schema."""
    import sqlalchemy as sa

    pa = require_pyarrow()
    columns = next(t for t in DATA_TABLES if t.name == table).c
    fields = []
    for name in COLUMNS[table]:
        column = columns[name]
        kind = column.type
        if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Integer | sa.Float):
            arrow = pa.decimal128(kind.precision or 38, kind.scale or 0)
        elif isinstance(kind, sa.Integer):
            arrow = pa.int64()
        elif isinstance(kind, sa.DateTime):
            arrow = pa.timestamp("us", tz="UTC")
        elif isinstance(kind, sa.Date):
            arrow = pa.date32()
        else:
            arrow = pa.string()
        fields.append(pa.field(name, arrow, nullable=bool(column.nullable)))
    return pa.schema(fields)


#: Text columns of a few codes (the schema's CHECKs list them): their values repeat.
_CODED_TEXT = frozenset(("country", "currency", "status"))


@functools.cache
def dictionary_columns(table: str) -> list[str]:
    """The columns Parquet dictionary-encodes: those whose values repeat within a row group
    (codes, dates, money, payment terms). Ids, foreign keys and free text (names, emails,
    phones, summaries, invoice numbers) are nearly unique: a dictionary of them only grows
    until the writer falls back to plain encoding, holding memory while it does. Measured
    with every column in a dictionary, at 200,000 users in one process: Arrow's peak 46 MiB
    against 28, the files 75.7 MB against 56.9."""
    pa = require_pyarrow()
    return [
        field.name
        for field in arrow_schema(table)
        if field.name != "id"
        and not field.name.endswith("_id")
        and (not pa.types.is_string(field.type) or field.name in _CODED_TEXT)
    ]


class _ParquetSink(Sink):
    def __init__(self, stream: BinaryIO, table: str) -> None:
        super().__init__(stream)
        self.pa = require_pyarrow()
        self.writer = self.pa.parquet.ParquetWriter(
            stream,
            arrow_schema(table),
            compression="zstd",
            use_dictionary=dictionary_columns(table),
        )
        self.pending: list[Any] = []  # record batches, fewer than a row group's rows in all
        self.rows = 0

    def write(self, encoded: Any) -> None:
        self.pending.append(encoded)
        self.rows += encoded.num_rows
        while self.rows >= ROWS_PER_ROW_GROUP:
            table = self.pa.Table.from_batches(self.pending)
            self.writer.write_table(
                table.slice(0, ROWS_PER_ROW_GROUP), row_group_size=ROWS_PER_ROW_GROUP
            )
            rest = table.slice(ROWS_PER_ROW_GROUP)
            self.pending, self.rows = rest.to_batches(), rest.num_rows

    def close(self) -> None:
        if self.rows:
            table = self.pa.Table.from_batches(self.pending)
            self.writer.write_table(table, row_group_size=ROWS_PER_ROW_GROUP)
        self.writer.close()

    def abandon(self) -> None:
        """Close the writer now (idempotent): left open, its ``__del__`` writes the footer into
        the closed stream and prints a traceback ("Exception ignored") when collected."""
        self.pending.clear()
        with contextlib.suppress(OSError, ValueError):  # the file is removed anyway
            self.writer.close()


class Parquet(FileFormat):
    """Apache Parquet through pyarrow (zstd): row groups of :data:`ROWS_PER_ROW_GROUP` rows,
    streamed (memory stays flat: less than a row group per table, as Arrow arrays)."""

    name = "parquet"
    extension = "parquet"

    def encode(self, table: str, rows: Rows) -> Any:
        """An Arrow record batch, built in the generating worker."""
        pa = require_pyarrow()
        schema = arrow_schema(table)
        columns = list(zip(*rows, strict=True)) or [() for _ in schema]
        return pa.record_batch(
            [pa.array(values, type=f.type) for values, f in zip(columns, schema, strict=True)],
            schema=schema,
        )

    def sink(self, table: str, stream: BinaryIO) -> Sink:
        return _ParquetSink(stream, table)


FORMATS: dict[str, FileFormat] = {f.name: f for f in (Csv(), JsonLines(), Sql(), Parquet())}


def file_format(name: str) -> FileFormat:
    """The format called ``name``, or a one-line error listing the known ones."""
    found = FORMATS.get(name.strip().lower())
    if found is None:
        raise UsageError(f"expected one of {', '.join(FORMATS)}, got {name!r}", option="--format")
    if found.name == "parquet":
        require_pyarrow()
    return found


def encode_tables(file: FileFormat, tables: Iterable[Rows]) -> tuple[Any, ...]:
    """A batch's rows of every table, each encoded by ``file``."""
    return tuple(file.encode(name, rows) for name, rows in zip(TABLES, tables, strict=True))
