"""invoicegen's errors carry their parts as data (option, source, masked database, revision);
the command line's wording is made from them, and other front ends word them their own way."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from invoicegen import db, errors, schema, settings, urls
from invoicegen.errors import ConnectionFailed, SchemaStateError, UsageError


def test_a_bad_url_names_the_option_apart_from_the_problem() -> None:
    with pytest.raises(UsageError) as caught:
        urls.parse("nosuch://db")
    error = caught.value
    assert error.option == "--database-url"
    assert error.problem.startswith("unsupported or malformed URL (scheme 'nosuch')")
    assert str(error) == f"--database-url: {error.problem}"


def test_a_bad_value_from_the_environment_says_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        settings.resolve({}, cwd=tmp_path, environ={"INVOICEGEN_SEED": "many"})
    error = caught.value
    assert error.source == "environment INVOICEGEN_SEED"
    assert error.option is not None and error.option in str(error)
    assert str(error) == f"{error.source}: {error.option}: {error.problem}"


def test_a_database_error_carries_the_masked_database() -> None:
    url = "postgresql://someone:s3cret-pw@127.0.0.1:1/nowhere"
    engine = db.make_engine(url)
    try:
        with pytest.raises(ConnectionFailed) as caught, db.connect(engine):
            pass
    finally:
        engine.dispose()
    assert caught.value.database == urls.mask(engine.url)
    assert "s3cret-pw" not in caught.value.database
    assert caught.value.database in str(caught.value)


def test_a_schema_newer_than_this_invoicegen_carries_its_revision(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    try:
        schema.upgrade(engine)
        with db.connect(engine) as connection:
            connection.exec_driver_sql(f"UPDATE {schema.VERSION_TABLE} SET version_num = 'f00d'")
        with pytest.raises(SchemaStateError) as caught, db.connect(engine) as connection:
            schema.inspect_schema(connection)
    finally:
        engine.dispose()
    assert caught.value.revision == "f00d"
    assert caught.value.database == urls.mask(engine.url)


def test_the_data_survives_the_trip_between_processes() -> None:
    error = errors.FactoryValueError("expected a count", option="user_count", source="a file")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is errors.FactoryValueError
    assert (copy.problem, copy.option, copy.source) == ("expected a count", "user_count", "a file")
    assert str(copy) == str(error) == "a file: user_count: expected a count"
