"""Scenario files against real Postgres, checking the rows that landed."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest
from psycopg import sql
from target_pipeboard_postgres.errors import MalformedLineError


def test_schema_evolution_widens_in_place_and_keeps_values(run_target, rows, column_types):
    states = run_target("schema_evolution.singer")
    assert states == [{"evolving": 4}]
    assert column_types("evolving") == {
        "id": "bigint",
        "amount": "numeric",
        "code": "text",
        "flag": "jsonb",
        "when": "timestamp with time zone",
        "added": "text",
    }
    assert rows("evolving", 'id, amount, code, flag, "when", added') == [
        (1, Decimal(7), "9007199254740993", True, datetime(2024, 2, 29, tzinfo=UTC), None),
        (2, Decimal(3000000000), "1", False, datetime(2024, 3, 1, tzinfo=UTC), None),
        (
            3,
            Decimal("1.25"),
            "A-17",
            {"nested": [1, 2]},
            datetime(2024, 3, 3, 4, 30, tzinfo=UTC),
            "new",
        ),
        (4, Decimal(5), None, None, None, None),
    ]


def test_widening_survives_a_second_run_with_the_narrow_schema(run_target, rows, column_types):
    run_target("schema_evolution.singer")
    run_target(
        '{"type": "SCHEMA", "stream": "evolving", "key_properties": ["id"], "schema": '
        '{"properties": {"id": {"type": "integer"}, "code": {"type": "integer"}}}}\n'
        '{"type": "RECORD", "stream": "evolving", "record": {"id": 5, "code": 12}}\n'
    )
    assert column_types("evolving")["code"] == "text"
    assert rows("evolving", "id, code", order="id")[-2:] == [(4, None), (5, "12")]


def test_time_zones_land_as_instants(run_target, rows, db, column_types):
    db.execute("SET TIME ZONE 'America/New_York'")  # the reader's zone must not matter
    run_target("time_zones.singer")
    assert column_types("events") == {
        "id": "bigint",
        "at": "timestamp with time zone",
        "day": "date",
        "clock": "time without time zone",
    }
    db.execute("SET TIME ZONE 'UTC'")
    assert rows("events", "id, at, day, clock") == [
        (1, datetime(2024, 6, 1, 10, tzinfo=UTC), date(2024, 6, 1), time(8, 15)),
        (2, datetime(2024, 6, 1, 10, tzinfo=UTC), None, None),
        (3, datetime(2024, 6, 1, 10, tzinfo=UTC), date(1999, 12, 31), time(23, 59, 59, 500000)),
        (4, datetime(2024, 12, 1, 13, 0, 0, 123456, tzinfo=UTC), date(2024, 12, 1), time(0)),
    ]


@pytest.mark.parametrize("hard_delete", [False, True], ids=["soft", "hard"])
def test_activate_version(run_target, rows, hard_delete):
    assert run_target("activate_version.singer", hard_delete=hard_delete) == [{"pipelines": "v100"}]
    assert rows("pipelines", "id, name, _sdc_deleted_at") == [
        (1, "Sales", None),
        (2, "Partners", None),
        (3, "Hiring", None),
    ]
    assert run_target("activate_version_next.singer", hard_delete=hard_delete) == [
        {"pipelines": "v200"}
    ]
    landed = rows("pipelines", "id, name, _sdc_table_version, _sdc_deleted_at IS NOT NULL")
    if hard_delete:
        assert landed == [(1, "Sales EU", 200, False), (3, "Hiring", 200, False)]
    else:
        assert landed == [
            (1, "Sales EU", 200, False),
            (2, "Partners", 100, True),
            (3, "Hiring", 200, False),
        ]


def test_soft_deletes_from_records(run_target, rows):
    assert run_target("deletes.singer") == [{"persons": 2}]
    assert rows("persons", "id, name, _sdc_deleted_at") == [
        (1, "Ada", None),
        (2, "Bob", datetime(2024, 7, 1, tzinfo=UTC)),
        (3, "Cy again", None),
    ]


def test_hard_deletes_from_records(run_target, rows):
    run_target("deletes.singer", hard_delete=True)
    assert rows("persons", "id, name, _sdc_deleted_at") == [(1, "Ada", None), (3, "Cy again", None)]


def test_odd_and_long_identifiers(run_target, db, pg_schema):
    run_target("odd_identifiers.singer")
    tables = [
        r[0]
        for r in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name NOT LIKE '\\_%%' ORDER BY 1",
            (pg_schema,),
        )
    ]
    assert len(tables) == 1
    table = tables[0]
    assert table.startswith("odd_table_ttt")
    assert len(table.encode()) <= 63
    mapping = dict(
        db.execute(
            sql.SQL("SELECT property, column_name FROM {} WHERE table_name = %s").format(
                sql.Identifier(pg_schema, "_pipeboard_columns")
            ),
            (table,),
        ).fetchall()
    )
    assert mapping['"; DROP TABLE odd_names; --'] == "drop_table_odd_names___"
    assert mapping["select"] == "select"
    assert mapping["Order"] == "order"
    assert mapping["1st place"] == "_1st_place"
    assert mapping["größe"] == "größe"
    assert len(set(mapping.values())) == len(mapping)  # no two properties share a column
    assert all(len(c.encode()) <= 63 for c in mapping.values())
    assert {mapping["user-name"], mapping["user_name"]} >= {"user_name"}
    row = db.execute(
        sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(sql.Identifier(mapping[p]) for p in sorted(mapping)),
            sql.Identifier(pg_schema, table),
        )
    ).fetchone()
    values = dict(zip(sorted(mapping), row, strict=True))
    assert values["a" * 200] == "L1"
    assert values["a" * 199 + "b"] == "L2"
    assert values["user-name"] == "dash"
    assert values["user_name"] == "underscore"
    assert values['"; DROP TABLE odd_names; --'] == "x"


def test_schema_prefixed_stream_names_without_default_schema(run_target, rows, pg_schema):
    text = (
        f'{{"type": "SCHEMA", "stream": "{pg_schema}-Contacts", "key_properties": ["id"], '
        '"schema": {"properties": {"id": {"type": "integer"}}}}\n'
        f'{{"type": "RECORD", "stream": "{pg_schema}-Contacts", "record": {{"id": 1}}}}\n'
    )
    run_target(text, default_target_schema=None)
    assert rows("contacts") == [(1,)]


def test_renamed_custom_field_keeps_its_column(run_target, rows, column_types):
    run_target("renamed_field_run1.singer")
    run_target("renamed_field_run2.singer")
    columns = column_types("deals")
    assert set(columns) == {
        "id",
        "budget_owner",
        columns.keys() - {"id", "budget_owner"}
        and next(iter(columns.keys() - {"id", "budget_owner"})),
    }
    other = next(iter(columns.keys() - {"id", "budget_owner"}))
    assert other.startswith("budget_owner_")  # the new, unrelated field gets its own column
    assert rows("deals", f'id, budget_owner, "{other}"') == [
        (1, "Ann", None),
        (2, "Bea", "unrelated new field"),
        (3, "Cat", None),
    ]


def test_ten_interleaved_streams(run_target, rows):
    states = run_target("interleaved_streams.singer", batch_size_rows=7)
    assert states[-1] == {"position": 29}
    assert [s["position"] for s in states] == sorted(s["position"] for s in states)
    for s in range(10):
        landed = rows(f"stream_{s}", "id, s, v")
        assert len(landed) == 25
        expected = {i % 25: f"{s}-{i}" for i in range(30)}
        assert landed == [(k, s, expected[k]) for k in sorted(expected)]


def test_append_only_keeps_every_record(run_target, rows):
    run_target("upsert_run1.singer", load_method="append-only")
    assert rows("deals", "id, title", order="id, title") == [
        (1, "first"),
        (1, "first, edited"),
        (2, "second"),
    ]


def test_overwrite_replaces_contents_at_end(run_target, rows):
    run_target("upsert_run1.singer")
    run_target("upsert_run2.singer", load_method="overwrite")
    assert rows("deals", "id, title") == [(2, "second, edited"), (3, "")]


def test_overwrite_after_an_interrupted_run_holds_exactly_the_rerun_records(run_target, rows):
    # a stream without keys: the interrupted run's rows must not be swapped in a second time
    run_target("overwrite_events.singer", load_method="overwrite")
    with pytest.raises(MalformedLineError):
        run_target(
            "overwrite_events_interrupted.singer", load_method="overwrite", batch_size_rows=1
        )
    assert rows("events", "n, what") == [(1, "opened"), (2, "closed")]  # not swapped
    assert run_target("overwrite_events.singer", load_method="overwrite") == [{"events": 2}]
    assert rows("events", "n, what") == [(1, "opened"), (2, "closed")]


def test_overwrite_drops_keyed_rows_of_an_interrupted_run(run_target, rows, capsys):
    run_target("upsert_run1.singer", load_method="overwrite")
    with pytest.raises(MalformedLineError):
        run_target("overwrite_deals_interrupted.singer", load_method="overwrite", batch_size_rows=1)
    # Its rows were committed to the shadow only: no STATE may claim them, since the rerun
    # starts from an empty shadow.
    assert capsys.readouterr().out == ""
    run_target("upsert_run2.singer", load_method="overwrite")
    assert rows("deals", "id, title") == [(2, "second, edited"), (3, "")]


def test_record_metadata_columns(run_target, rows):
    run_target("upsert_run1.singer", add_record_metadata="true")
    landed = rows(
        "deals",
        "id, _sdc_received_at IS NOT NULL, _sdc_batched_at IS NOT NULL, _sdc_sequence > 0, "
        "_sdc_deleted_at, _sdc_table_version",
    )
    assert landed == [(1, True, True, True, None, None), (2, True, True, True, None, None)]


def test_nul_characters_removed_and_empty_strings_kept(run_target, rows):
    run_target(
        '{"type": "SCHEMA", "stream": "notes", "key_properties": ["id"], "schema": {"properties": '
        '{"id": {"type": "integer"}, "body": {"type": ["null", "string"]}, '
        '"doc": {"type": "object"}}}}\n'
        '{"type": "RECORD", "stream": "notes", "record": {"id": 1, "body": "a\\u0000b", '
        '"doc": {"k\\u0000": ["x\\u0000y"]}}}\n'
        '{"type": "RECORD", "stream": "notes", "record": {"id": 2, "body": "", "doc": {}}}\n'
        '{"type": "RECORD", "stream": "notes", "record": {"id": 3, "body": null, "doc": null}}\n'
    )
    assert rows("notes") == [(1, "ab", {"k": ["xy"]}), (2, "", {}), (3, None, None)]


@pytest.mark.parametrize(
    "settings",
    [pytest.param({}, id="fast-path"), pytest.param({"validate_records": True}, id="sdk-path")],
)
def test_nul_characters_removed_are_counted_in_a_warning(run_target, rows, caplog, settings):
    with caplog.at_level("WARNING", logger="target-pipeboard-postgres"):
        assert run_target("nul_characters.singer", **settings) == [{"notes": 3, "files": 1}]
    assert rows("notes", "id, body, doc, tags") == [
        (1, "ab", {"k": "v"}, ["xy"]),
        (2, "clean", {}, []),
        (3, "", None, None),
    ]
    assert rows("files", "id, name") == [(1, "report.pdf")]
    warnings = sorted(r.getMessage() for r in caplog.records if "NUL" in r.getMessage())
    assert len(warnings) == 2  # one per stream, at the end of the run
    assert "Removed 1 NUL character(s)" in warnings[0]
    assert "'files'" in warnings[0]
    assert "Removed 5 NUL character(s)" in warnings[1]
    assert "'notes'" in warnings[1]


def test_x_sql_datatype_and_unions(run_target, column_types):
    run_target(
        '{"type": "SCHEMA", "stream": "typed", "key_properties": [], "schema": {"properties": {'
        '"u": {"type": "string", "x-sql-datatype": "uuid"}, '
        '"small": {"type": "integer", "minimum": 0, "maximum": 100}, '
        '"either": {"anyOf": [{"type": "integer"}, {"type": "number"}]}, '
        '"mixed": {"type": ["integer", "string"]}, '
        '"tags": {"type": "array", "items": {"type": "string"}}, '
        '"free": {}}}}\n'
        '{"type": "RECORD", "stream": "typed", "record": '
        '{"u": "0b9e8a5c-4d3e-4c1a-9f2b-1a2b3c4d5e6f", '
        '"small": 5, "either": 2.5, "mixed": 3, "tags": ["a"], "free": {"x": 1}}}\n'
    )
    assert column_types("typed") == {
        "u": "uuid",
        "small": "smallint",
        "either": "numeric",
        "mixed": "text",
        "tags": "jsonb",
        "free": "jsonb",
    }


def test_declared_types_land_as_declared_and_stay_across_runs(run_target, db, pg_schema):
    declared = {
        "price": "NUMERIC(12, 2)",
        "code": "varchar(20)",
        "ids": "int[]",
        "seen": "timestamptz[]",
        "at": "timestamp(3)",
        "flag": "char",
        "clock": "time with time zone",
    }
    properties = {name: {"type": "string", "x-sql-datatype": t} for name, t in declared.items()}
    text = (
        json.dumps(
            {
                "type": "SCHEMA",
                "stream": "typed",
                "key_properties": ["id"],
                "schema": {"properties": {"id": {"type": "integer"}, **properties}},
            }
        )
        + "\n"
    )
    record = {
        "type": "RECORD",
        "stream": "typed",
        "record": {
            "id": 1,
            "price": "12.50",
            "code": "A-1",
            "ids": "{1,2}",
            "seen": "{2024-01-01T00:00:00Z}",
            "at": "2024-01-01 10:00:00.123",
            "flag": "y",
            "clock": "10:00:00+02",
        },
    }

    def formatted() -> dict[str, str]:
        return dict(
            db.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                (f'"{pg_schema}".typed',),
            ).fetchall()
        )

    run_target(text + json.dumps(record) + "\n")
    first = formatted()
    assert first == {
        "id": "bigint",
        "price": "numeric(12,2)",
        "code": "character varying(20)",
        "ids": "integer[]",
        "seen": "timestamp with time zone[]",
        "at": "timestamp(3) without time zone",
        "flag": "character(1)",
        "clock": "time with time zone",
    }
    record["record"]["id"] = 2
    run_target(text + json.dumps(record) + "\n")
    assert formatted() == first  # the same declaration never widens its own column
    assert db.execute(f'SELECT count(*) FROM "{pg_schema}".typed').fetchone() == (2,)


def test_parts_of_one_source_field_keep_their_own_columns(run_target, rows):
    key = "8345af4013a988af2a52193822d91b4890afa564"
    schema = {
        "type": "SCHEMA",
        "stream": "deals",
        "key_properties": ["id"],
        "schema": {
            "properties": {
                "id": {"type": "integer"},
                "setup_fee": {
                    "type": ["number", "null"],
                    "x-pipedrive-key": key,
                    "x-pipedrive-subfield": "value",
                },
                "setup_fee_currency": {
                    "type": ["string", "null"],
                    "x-pipedrive-key": key,
                    "x-pipedrive-subfield": "currency",
                },
            }
        },
    }
    record = {
        "type": "RECORD",
        "stream": "deals",
        "record": {"id": 1, "setup_fee": 12.5, "setup_fee_currency": "EUR"},
    }
    run_target(json.dumps(schema) + "\n" + json.dumps(record) + "\n")
    # renamed in Pipedrive: both parts follow their own columns
    schema["schema"]["properties"] = {
        "id": {"type": "integer"},
        "onboarding_fee_currency": schema["schema"]["properties"]["setup_fee_currency"],
        "onboarding_fee": schema["schema"]["properties"]["setup_fee"],
    }
    record["record"] = {"id": 2, "onboarding_fee": 7, "onboarding_fee_currency": "USD"}
    run_target(json.dumps(schema) + "\n" + json.dumps(record) + "\n")
    assert rows("deals", "id, setup_fee, setup_fee_currency") == [
        (1, Decimal("12.5"), "EUR"),
        (2, Decimal("7"), "USD"),
    ]
