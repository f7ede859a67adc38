"""Type mapping, widening, identifiers, SQL builders and the state gate, without a database."""

from __future__ import annotations

import pytest
from psycopg import sql as pgsql
from target_pipeboard_postgres import column_types, identifiers, sql_builders, values
from target_pipeboard_postgres.state import StateGate


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        pytest.param({"type": "integer"}, "bigint", id="integer"),
        pytest.param({"type": ["null", "integer"]}, "bigint", id="nullable-integer"),
        pytest.param(
            {"type": "integer", "minimum": 0, "maximum": 100}, "smallint", id="bounded-small"
        ),
        pytest.param(
            {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}, "integer", id="int32"
        ),
        pytest.param(
            {"type": "integer", "minimum": 0, "maximum": 2**70}, "numeric", id="beyond-int64"
        ),
        pytest.param({"type": "number"}, "numeric", id="number"),
        pytest.param({"type": "boolean"}, "boolean", id="boolean"),
        pytest.param({"type": "string"}, "text", id="string"),
        pytest.param({"type": "string", "maxLength": 10}, "text", id="bounded-string"),
        pytest.param({"type": "string", "format": "date-time"}, "timestamptz", id="date-time"),
        pytest.param({"type": "string", "format": "date"}, "date", id="date"),
        pytest.param({"type": "string", "format": "time"}, "time", id="time"),
        pytest.param(
            {"type": "string", "format": "x-singer.decimal"}, "numeric", id="singer-decimal"
        ),
        pytest.param({"type": "object", "properties": {}}, "jsonb", id="object"),
        pytest.param({"type": "array", "items": {"type": "integer"}}, "jsonb", id="array"),
        pytest.param({}, "jsonb", id="untyped"),
        pytest.param({"type": "null"}, "text", id="only-null"),
        pytest.param({"type": ["integer", "number"]}, "numeric", id="int-or-number"),
        pytest.param({"type": ["integer", "string"]}, "text", id="int-or-string"),
        pytest.param({"type": ["boolean", "object"]}, "jsonb", id="bool-or-object"),
        pytest.param(
            {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
            "timestamptz",
            id="anyof-date-time",
        ),
        pytest.param(
            {
                "anyOf": [
                    {"type": "string", "format": "date"},
                    {"type": "string", "format": "date-time"},
                ]
            },
            "timestamptz",
            id="anyof-date-or-date-time",
        ),
        pytest.param({"oneOf": [{"type": "integer"}, {"type": "array"}]}, "jsonb", id="oneof"),
        pytest.param({"type": "string", "x-sql-datatype": "uuid"}, "uuid", id="x-sql-uuid"),
        pytest.param(
            {"type": "number", "x-sql-datatype": "NUMERIC(12, 2)"},
            "numeric(12,2)",
            id="x-sql-numeric",
        ),
        pytest.param({"type": "string", "x-sql-datatype": "int8"}, "bigint", id="x-sql-alias"),
    ],
)
def test_sql_type(schema, expected):
    assert column_types.sql_type(schema) == expected


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        pytest.param("uuid", "uuid", id="plain"),
        pytest.param("  Double   Precision ", "double precision", id="two-words-spacing"),
        pytest.param("decimal(10, 2)", "numeric(10,2)", id="numeric-as-format-type"),
        pytest.param("varchar(20)", "character varying(20)", id="varchar-bound"),
        pytest.param("varchar", "text", id="varchar-unbounded"),
        pytest.param("char", "character(1)", id="bare-char"),
        pytest.param("int[]", "integer[]", id="array"),
        pytest.param("bigint[][]", "bigint[]", id="array-dimensions"),
        pytest.param("timestamptz[]", "timestamp with time zone[]", id="array-of-timestamptz"),
        pytest.param("timestamp with time zone", "timestamptz", id="timestamptz-long"),
        pytest.param("timestamp(3)", "timestamp(3) without time zone", id="timestamp-precision"),
        pytest.param("time without time zone", "time", id="time"),
        pytest.param("timetz", "time with time zone", id="timetz"),
        pytest.param("float(10)", "real", id="float-p-real"),
        pytest.param("float", "double precision", id="float"),
        pytest.param("vector(1536)", "vector(1536)", id="extension-typmod"),
    ],
)
def test_x_sql_datatype_canonical_names(declared, expected):
    assert column_types.sql_datatype(declared) == expected


@pytest.mark.parametrize(
    "declared",
    [
        pytest.param("text; DROP TABLE x", id="statement"),
        pytest.param("text)--", id="comment"),
        pytest.param("", id="empty"),
        pytest.param("text not null default 1", id="constraint-and-default"),
        pytest.param("bigint generated always as identity", id="identity"),
        pytest.param("int references deals", id="foreign-key"),
        pytest.param('text collate "C"', id="collation"),
        pytest.param("int check (true)", id="check"),
        pytest.param("serial", id="serial"),
        pytest.param("bigserial", id="bigserial"),
        pytest.param("public.citext", id="schema-qualified"),
        pytest.param("numeric(1,2,3)", id="three-modifiers"),
        pytest.param("int with time zone", id="zone-on-non-time"),
        pytest.param("timestamptz without time zone", id="contradictory-zone"),
        pytest.param("int[] not null", id="array-then-constraint"),
    ],
)
def test_x_sql_datatype_that_is_no_type_name_is_refused(declared):
    with pytest.raises(column_types.UnsafeSQLTypeError, match="x-sql-datatype"):
        column_types.sql_type({"type": "string", "x-sql-datatype": declared})


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        pytest.param("smallint", "bigint", "bigint", id="smallint-bigint"),
        pytest.param("bigint", "integer", "bigint", id="never-narrows"),
        pytest.param("bigint", "numeric", "numeric", id="bigint-numeric"),
        pytest.param("numeric", "bigint", "numeric", id="numeric-stays"),
        pytest.param("integer", "double precision", "double precision", id="int32-double"),
        pytest.param("bigint", "double precision", "numeric", id="bigint-double"),
        pytest.param("numeric(10,2)", "numeric", "numeric", id="bounded-numeric"),
        pytest.param("bigint", "text", "text", id="number-text"),
        pytest.param("boolean", "bigint", "text", id="bool-number"),
        pytest.param("date", "timestamptz", "timestamptz", id="date-timestamptz"),
        pytest.param("timestamp", "timestamptz", "timestamptz", id="timestamp-timestamptz"),
        pytest.param("time", "date", "text", id="time-date"),
        pytest.param("text", "jsonb", "jsonb", id="text-jsonb"),
        pytest.param("jsonb", "bigint", "jsonb", id="jsonb-stays"),
        pytest.param("character varying(20)", "text", "text", id="varchar-text"),
        pytest.param("uuid", "text", "text", id="uuid-text"),
        pytest.param("uuid", "uuid", "uuid", id="same"),
    ],
)
def test_widen(current, incoming, expected):
    assert column_types.widen(current, incoming) == expected


@pytest.mark.parametrize(
    ("formatted", "expected"),
    [
        pytest.param("timestamp with time zone", "timestamptz", id="timestamptz"),
        pytest.param("timestamp(3) with time zone", "timestamptz", id="timestamptz-precision"),
        pytest.param("time without time zone", "time", id="time"),
        pytest.param("character varying", "text", id="varchar"),
        pytest.param("character varying(255)", "character varying(255)", id="bounded-varchar"),
        pytest.param("bigint", "bigint", id="bigint"),
    ],
)
def test_normalize(formatted, expected):
    assert column_types.normalize(formatted) == expected


@pytest.mark.parametrize(
    ("column_type", "schema", "value", "expected"),
    [
        pytest.param(
            "jsonb", {"type": "object"}, {"a": [1, None]}, '{"a":[1,null]}', id="jsonb-object"
        ),
        pytest.param("jsonb", {"type": "string"}, "plain", '"plain"', id="jsonb-string"),
        pytest.param("text", {"type": ["integer", "string"]}, 5, "5", id="text-from-int"),
        pytest.param("text", {"type": ["boolean", "string"]}, True, "true", id="text-from-bool"),
        pytest.param("text", {"type": ["integer", "string"]}, "", "", id="empty-string-kept"),
        pytest.param("jsonb", {}, None, None, id="null-stays-null"),
    ],
)
def test_value_conversion(column_type, schema, value, expected):
    convert = values.converter_for(column_type, schema)
    assert convert is not None
    assert convert(value) == expected


def test_plain_columns_need_no_conversion():
    assert values.converter_for("text", {"type": ["null", "string"]}) is None
    assert values.converter_for("bigint", {"type": "integer"}) is None
    assert values.converter_for("timestamptz", {"type": "string", "format": "date-time"}) is None


def test_strip_nul_counts_every_removal():
    cleaned, count = values.strip_nul({"a\x00": ["x\x00y\x00", 1], "b": {"c": "\x00"}})
    assert cleaned == {"a": ["xy", 1], "b": {"c": ""}}
    assert count == 4


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("Deal Title", "deal_title", id="spaces-and-case"),
        pytest.param("user-name", "user_name", id="dash"),
        pytest.param("a.b", "a_b", id="dot"),
        pytest.param("1st", "_1st", id="leading-digit"),
        pytest.param('"; DROP TABLE x', "drop_table_x", id="injection"),
        pytest.param("größe", "größe", id="unicode"),
        pytest.param("!!!", "_" + identifiers._hash("!!!"), id="nothing-left"),
    ],
)
def test_conform(name, expected):
    assert identifiers.conform(name) == expected


def test_long_names_are_shortened_deterministically_without_collisions():
    a, b = "x" * 70, "x" * 69 + "y"
    assert identifiers.identifier(a) == identifiers.identifier(a)
    assert identifiers.identifier(a) != identifiers.identifier(b)
    assert len(identifiers.identifier(a).encode()) == 63
    multibyte = identifiers.identifier("ü" * 40)
    assert len(multibyte.encode()) <= 63
    multibyte.encode().decode()  # never cut inside a character


def _assign_columns(properties: list[str]) -> dict[str, str]:
    # As the connector names new columns: each one not taken by an earlier property.
    mapping: dict[str, str] = {}
    for prop in properties:
        mapping[prop] = identifiers.new_column(prop, set(mapping.values()))
    return mapping


def test_colliding_properties_get_distinct_columns():
    mapping = _assign_columns(["User Name", "user_name", "user-name"])
    assert mapping["User Name"] == "user_name"
    assert len(set(mapping.values())) == 3
    assert mapping == _assign_columns(["User Name", "user_name", "user-name"])


# Names tables and columns already have: the fitter must keep giving them (a change would
# orphan existing tables, whose names are not recorded anywhere).
PINNED_NAMES = [
    (
        "a_property_name_that_is_much_longer_than_the_sixty_three_bytes_postgres_allows",
        "a_property_name_that_is_much_longer_than_the_sixty_thr_65d58ac5",
    ),
    ("Ümlaut " * 12, "ümlaut_ümlaut_ümlaut_ümlaut_ümlaut_ümlaut_ümlau_d90054bf"),
    (
        "deals_with_a_rather_long_stream_name_to_check_shadow_naming_works",
        "deals_with_a_rather_long_stream_name_to_check_shadow_n_5418d98f",
    ),
]


@pytest.mark.parametrize(("name", "expected"), PINNED_NAMES)
def test_long_names_keep_the_names_existing_tables_have(name, expected):
    assert identifiers.identifier(name) == expected


def test_derived_and_colliding_names_are_pinned_too():
    long_table = "deals_with_a_rather_long_stream_name_to_check_shadow_naming_works"
    shadow = identifiers.derived_name(long_table, "__pb_overwrite")
    assert shadow == "deals_with_a_rather_long_stream_name_to___pb_overwrite_73f2ffe1"
    first = identifiers.new_column("user_name", {"user_name"})
    assert first == "user_name_065d4d8f"
    assert identifiers.new_column("user_name", {"user_name", first}) == "user_name_720884cc"
    assert identifiers.fit("short") == "short"
    assert identifiers.fit("x" * 70) == identifiers.with_suffix("x" * 70, "x" * 70)


@pytest.mark.parametrize(
    ("stream", "default", "expected"),
    [
        pytest.param("deals", None, (None, "deals"), id="plain"),
        pytest.param("crm-deals", None, ("crm", "deals"), id="schema-prefix"),
        pytest.param("db-crm-deals", None, ("crm", "deals"), id="db-schema-prefix"),
        pytest.param("crm-deals", "raw", ("raw", "deals"), id="default-wins"),
        pytest.param("Public-Deal Fields", None, ("public", "deal_fields"), id="conformed"),
    ],
)
def test_split_stream_name(stream, default, expected):
    assert identifiers.split_stream_name(stream, default) == expected


def render(statement: pgsql.Composable) -> str:
    return statement.as_string(None)


def test_upsert_statement():
    statement = sql_builders.upsert_on_conflict("crm", "deals", "stage", ["id", "title"], ["id"])
    assert render(statement) == (
        'INSERT INTO "crm"."deals" ("id", "title") SELECT "s"."id", "s"."title" FROM "stage" AS s '
        'WHERE TRUE ON CONFLICT ("id") DO UPDATE SET "title" = EXCLUDED."title"'
    )


def test_upsert_of_key_only_table_does_nothing_on_conflict():
    statement = sql_builders.upsert_on_conflict("crm", "links", "stage", ["a", "b"], ["a", "b"])
    assert render(statement).endswith('ON CONFLICT ("a", "b") DO NOTHING')


def test_upsert_with_hard_delete_skips_deleted_rows():
    statement = sql_builders.upsert_on_conflict("crm", "d", "st", ["id"], ["id"], hard_delete=True)
    assert 'WHERE "s"."_sdc_deleted_at" IS NULL' in render(statement)


def test_dedupe_keeps_the_last_row_per_key():
    assert render(sql_builders.dedupe_stage("st", ["id", "org"])) == (
        'DELETE FROM "st" AS a USING "st" AS b WHERE "a"."id" = "b"."id" AND "a"."org" = "b"."org" '
        'AND a."_pb_seq" < b."_pb_seq"'
    )


def test_identifiers_are_quoted_in_ddl():
    statement = sql_builders.create_table(
        "s", 'we"ird', [('"; DROP', "text"), ("id", "bigint")], ["id"]
    )
    assert render(statement) == (
        'CREATE TABLE IF NOT EXISTS "s"."we""ird" '
        '("""; DROP" text, "id" bigint, PRIMARY KEY ("id"))'
    )


@pytest.mark.parametrize(
    ("old", "new", "using"),
    [
        pytest.param("bigint", "numeric", '"c"::numeric', id="cast"),
        pytest.param("bigint", "jsonb", 'to_jsonb("c")', id="to-jsonb"),
        pytest.param("date", "timestamptz", "(\"c\"::timestamp AT TIME ZONE 'UTC')", id="date-utc"),
    ],
)
def test_widen_column_statement(old, new, using):
    assert render(sql_builders.widen_column("s", "t", "c", old, new)) == (
        f'ALTER TABLE "s"."t" ALTER COLUMN "c" TYPE {new} USING {using}'
    )


def test_stage_numbers_rows_in_arrival_order():
    assert render(sql_builders.create_stage("st", [("id", "bigint")])) == (
        'CREATE TEMPORARY TABLE "st" ("id" bigint, "_pb_seq" bigint GENERATED ALWAYS AS IDENTITY) '
        "ON COMMIT DROP"
    )


def test_state_gate_releases_only_fully_committed_states():
    gate = StateGate()
    gate.received(2, {"s": 1})
    gate.received(5, {"s": 2})
    assert gate.release(oldest_uncommitted=1) is None  # record 1 not committed
    assert gate.release(oldest_uncommitted=4) == {"s": 1}
    assert gate.release(oldest_uncommitted=4) is None
    assert gate.release(oldest_uncommitted=None) == {"s": 2}
    gate.received(9, {"s": 2})
    assert gate.release(oldest_uncommitted=None) is None  # unchanged state is not repeated
    assert gate.pending == 0
