"""Bad input and a failing database: clear errors naming stream and line; what was committed
before stays committed and its state was emitted."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import psycopg
import pytest
from target_pipeboard_postgres.errors import (
    BatchLoadError,
    DatabaseUnavailableError,
    MalformedLineError,
    RecordBeforeSchemaError,
    RecordMissingKeyError,
    SchemaError,
    StreamNameClashError,
    TableSetupError,
)
from target_pipeboard_postgres.target import TargetPipeboardPostgres

SCHEMA = (
    '{"type": "SCHEMA", "stream": "deals", "key_properties": ["id"], "schema": {"properties": '
    '{"id": {"type": "integer"}, "value": {"type": ["null", "integer"]}}}}'
)


def rec(i: int, value: object = 1) -> str:
    return json.dumps({"type": "RECORD", "stream": "deals", "record": {"id": i, "value": value}})


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        pytest.param(
            SCHEMA + "\n{not json\n", MalformedLineError, "input line 2", id="malformed-json"
        ),
        pytest.param("[1, 2]\n", MalformedLineError, "input line 1", id="not-an-object"),
        pytest.param('{"stream": "x"}\n', MalformedLineError, "`type`", id="no-type"),
        pytest.param('{"type": "HELLO"}\n', MalformedLineError, "'HELLO'", id="unknown-type"),
        pytest.param(
            rec(1) + "\n",
            RecordBeforeSchemaError,
            "stream 'deals' (input line 1)",
            id="record-before-schema",
        ),
        pytest.param(
            '{"type": "SCHEMA", "stream": "deals", "schema": {"type": "object"}}\n',
            SchemaError,
            "stream 'deals', input line 1",
            id="schema-without-properties",
        ),
        pytest.param(
            '{"type": "SCHEMA", "stream": "deals", "key_properties": ["nope"], '
            '"schema": {"properties": {"id": {"type": "integer"}}}}\n',
            SchemaError,
            "'nope'",
            id="key-not-in-schema",
        ),
        pytest.param(
            SCHEMA + '\n{"type": "RECORD", "stream": "deals", "record": {"value": 3}}\n',
            RecordMissingKeyError,
            "stream 'deals', input line 2 is missing key property 'id'",
            id="record-missing-key",
        ),
        pytest.param(
            SCHEMA + '\n{"type": "RECORD", "stream": "deals"}\n',
            MalformedLineError,
            "lacks record",
            id="record-without-record",
        ),
        pytest.param(
            SCHEMA + '\n{"type": "STATE"}\n',
            MalformedLineError,
            "lacks value",
            id="state-without-value",
        ),
        pytest.param(
            SCHEMA + '\n{"type": "ACTIVATE_VERSION", "stream": "deals", "version": "x"}\n',
            MalformedLineError,
            "must be an integer",
            id="bad-version",
        ),
    ],
)
def test_bad_input_is_named(run_target, text, error, message):
    with pytest.raises(error) as info:
        run_target(text)
    assert message in str(info.value)


def test_value_not_fitting_its_type_names_stream_line_and_column(run_target, rows, capsys):
    text = "\n".join(
        [
            SCHEMA,
            rec(1),
            rec(2),
            '{"type": "STATE", "value": {"at": 2}}',
            rec(3),
            rec(4, "abc"),
            rec(5),
        ]
    )
    with pytest.raises(BatchLoadError) as info:
        run_target(text + "\n", batch_size_rows=2)
    message = str(info.value)
    assert "stream 'deals', input line 6" in message
    assert '"abc"' in message
    assert "value" in message
    # the first batch stays committed and its state was emitted
    assert rows("deals", "id") == [(1,), (2,)]
    assert json.loads(capsys.readouterr().out.strip()) == {"at": 2}


def test_integer_past_64_bits_is_refused_clearly_or_loaded_exactly(run_target, rows):
    # The fast decoder reads an integer literal past 64 bits as a float: never stored rounded.
    text = "\n".join(
        [
            SCHEMA,
            rec(1),
            '{"type": "RECORD", "stream": "deals", "record": '
            '{"id": 2, "value": -9223372036854775809}}',
        ]
    )
    with pytest.raises(BatchLoadError) as info:
        run_target(text + "\n")
    message = str(info.value)
    assert "stream 'deals'" in message
    assert "out of range for bigint" in message
    assert "exact_numbers" in message
    assert rows("deals", "id") == []
    # With exact numbers the same value is an exact integer, which bigint refuses as such.
    with pytest.raises(BatchLoadError, match="out of range"):
        run_target(text + "\n", exact_numbers=True)


def test_lost_connection_mid_run(target_config, rows, postgres_url, capsys):
    target = TargetPipeboardPostgres(config={**target_config, "batch_size_rows": 2})

    def lines() -> Iterator[str]:
        yield SCHEMA + "\n"
        yield rec(1) + "\n"
        yield rec(2) + "\n"
        yield '{"type": "STATE", "value": {"at": 2}}\n'
        pid = target.target_connector.pg.info.backend_pid
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        yield rec(3) + "\n"
        yield rec(4) + "\n"

    with pytest.raises(BatchLoadError) as info:
        target.listen(lines())  # type: ignore[arg-type]
    assert "stream 'deals'" in str(info.value)
    assert "lost the database connection" in str(info.value)
    assert rows("deals", "id") == [(1,), (2,)]
    assert json.loads(capsys.readouterr().out.strip()) == {"at": 2}


def test_unreachable_database_error_hides_password():
    target = TargetPipeboardPostgres(
        config={"database_url": "postgresql://loader:s3cr3t-pw@127.0.0.1:1/warehouse"}
    )
    with pytest.raises(DatabaseUnavailableError) as info:
        target.listen(io.StringIO(SCHEMA + "\n"))
    message = str(info.value)
    assert "127.0.0.1" in message
    assert "s3cr3t-pw" not in message
    assert "***" in message


def test_rows_read_before_bad_input_are_kept_with_their_state(run_target, rows, capsys):
    text = (
        SCHEMA
        + "\n"
        + rec(1)
        + '\n{"type": "STATE", "value": {"at": 1}}\n'
        + '{"type": "SCHEMA", "stream": "wide", "schema": {"properties": '
        '{"x": {"type": "string", "x-sql-datatype": "text; drop table x"}}}}\n'
    )
    with pytest.raises(SchemaError) as info:
        run_target(text)
    assert "stream 'wide', input line 4" in str(info.value)
    assert "property 'x'" in str(info.value)
    assert rows("deals", "id") == [(1,)]
    assert json.loads(capsys.readouterr().out.strip()) == {"at": 1}


def test_two_streams_for_one_table_are_refused(run_target):
    text = SCHEMA + "\n" + SCHEMA.replace('"deals"', '"Deals;"') + "\n"
    with pytest.raises(StreamNameClashError, match="'deals' and 'Deals;'"):
        run_target(text)


def typed_schema(declared: str) -> str:
    return json.dumps(
        {
            "type": "SCHEMA",
            "stream": "deals",
            "key_properties": ["id"],
            "schema": {
                "properties": {
                    "id": {"type": "integer"},
                    "amount": {"type": "integer", "x-sql-datatype": declared},
                }
            },
        }
    )


@pytest.mark.parametrize(
    "declared",
    [
        pytest.param("text not null default 1", id="constraint-and-default"),
        pytest.param("bigint generated always as identity", id="identity"),
        pytest.param("int references deals", id="foreign-key"),
        pytest.param("bigserial", id="serial"),
        pytest.param("int); drop table deals; --", id="statement"),
    ],
)
def test_x_sql_datatype_that_is_no_type_is_refused_before_any_ddl(
    run_target, db, pg_schema, declared
):
    with pytest.raises(SchemaError) as info:
        run_target(typed_schema(declared) + "\n" + rec(1) + "\n")
    message = str(info.value)
    assert "stream 'deals', input line 1" in message
    assert "property 'amount'" in message
    assert repr(declared) in message
    tables = db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (pg_schema,)
    ).fetchall()
    assert tables == []  # refused before anything was created


def test_unknown_type_name_is_reported_by_postgres_naming_the_stream(run_target):
    with pytest.raises(TableSetupError) as info:
        run_target(typed_schema("no_such_type") + "\n")
    assert "stream 'deals', input line 1" in str(info.value)
    assert 'type "no_such_type" does not exist' in str(info.value)
