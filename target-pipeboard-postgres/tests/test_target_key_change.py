"""A stream whose key properties changed, loading into a table made with the old key: refused at
its SCHEMA, naming the table, both keys and the remedy; nothing loaded is lost or changed, and
STATE does not pass the stream's unloaded rows."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from psycopg import sql
from target_pipeboard_postgres.errors import TableKeyChangedError

PERSONS = {"id": {"type": "integer"}, "name": {"type": ["null", "string"]}}
FOLLOWERS = {
    "person_id": {"type": "integer"},
    "user_id": {"type": "integer"},
    "add_time": {"type": ["null", "string"], "format": "date-time"},
    "_sdc_deleted_at": {"type": ["null", "string"], "format": "date-time"},
}
# The tap's followers before and after the upgrade: keyed by (parent, user), then a child set
# keyed by (parent, position).
OLD = {"key_properties": ["person_id", "user_id"], "schema": {"properties": FOLLOWERS}}
NEW = {
    "key_properties": ["person_id", "position"],
    "schema": {
        "properties": {**FOLLOWERS, "position": {"type": "integer"}},
        "x-replace-children-of": ["person_id"],
    },
}


def schema(stream: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream, **spec}


def record(stream: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": body}


def state(value: Any) -> dict[str, Any]:
    return {"type": "STATE", "value": value}


def lines(*messages: dict[str, Any]) -> str:
    return "".join(json.dumps(m) + "\n" for m in messages)


def old_followers_run() -> str:
    return lines(
        schema("person_followers", OLD),
        record("person_followers", {"person_id": 1, "user_id": 10, "add_time": None}),
        record("person_followers", {"person_id": 1, "user_id": 11, "add_time": None}),
        record("person_followers", {"person_id": 2, "user_id": 10, "add_time": None}),
        state({"run": 1}),
    )


def new_followers_run() -> str:
    """Persons first (loaded, their state emitted), then the followers with their new key."""
    return lines(
        schema("persons", {"key_properties": ["id"], "schema": {"properties": PERSONS}}),
        record("persons", {"id": 1, "name": "Ada"}),
        state({"run": 2, "at": "persons"}),
        schema("person_followers", NEW),
        # user 11 now comes first: upserted by (person_id, position) into a table keyed by
        # (person_id, user_id), the reorder would update the wrong rows or collide
        record("person_followers", {"person_id": 1, "user_id": 11, "position": 0}),
        record("person_followers", {"person_id": 1, "user_id": 10, "position": 1}),
        record("person_followers", {"person_id": 2, "user_id": 12, "position": 0}),
        state({"run": 2, "at": "followers"}),
    )


def run_cli(config: dict[str, Any], tmp_path: Any, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from target_pipeboard_postgres.target import TargetPipeboardPostgres as T; T.cli()",
            "--config",
            str(path),
        ],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def primary_key(db: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    query = (
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)"
    )
    name = sql.Identifier(schema, table).as_string(db)
    return [row[0] for row in db.execute(query, (name,)).fetchall()]


def drop(db: psycopg.Connection[Any], schema: str, table: str) -> None:
    db.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, table)))


def test_followers_upgrade_is_refused_then_loads_once_the_table_is_dropped(
    target_config, tmp_path, db, pg_schema, rows, column_types
):
    first = run_cli(target_config, tmp_path, old_followers_run())
    assert first.returncode == 0, first.stderr
    assert primary_key(db, pg_schema, "person_followers") == ["person_id", "user_id"]

    upgraded = run_cli(target_config, tmp_path, new_followers_run())
    assert upgraded.returncode != 0
    table = f"{pg_schema}.person_followers"
    assert (
        f"Preparing table {table} for stream 'person_followers', input line 4 failed: the "
        "table's key is (person_id, user_id), but the stream's key properties are now "
        "(person_id, position)"
    ) in upgraded.stderr
    assert f"drop the table {table} (or rename it, to keep its rows)" in upgraded.stderr
    assert "`meltano run --full-refresh`" in upgraded.stderr
    # the rows before the followers' SCHEMA were loaded and their state emitted; not the
    # followers' state
    states = [json.loads(line) for line in upgraded.stdout.splitlines() if line.strip()]
    assert states == [{"run": 2, "at": "persons"}]
    assert rows("persons", "id, name") == [(1, "Ada")]
    # the table is as the first run left it: same key, same rows, no column added
    assert primary_key(db, pg_schema, "person_followers") == ["person_id", "user_id"]
    # (none retired by the child set's retirement, which would go by the new key)
    assert rows("person_followers", "person_id, user_id, _sdc_deleted_at", order="1, 2") == [
        (1, 10, None),
        (1, 11, None),
        (2, 10, None),
    ]
    assert "position" not in column_types("person_followers")

    # the remedy the error gives: drop the table, read the stream again
    drop(db, pg_schema, "person_followers")
    again = run_cli(target_config, tmp_path, new_followers_run())
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1]) == {"run": 2, "at": "followers"}
    assert primary_key(db, pg_schema, "person_followers") == ["person_id", "position"]
    assert rows("person_followers", "person_id, position, user_id", order="1, 2") == [
        (1, 0, 11),
        (1, 1, 10),
        (2, 0, 12),
    ]


@pytest.mark.parametrize("load_method", ["upsert", "overwrite"])
def test_variations_keyed_by_id_before_are_refused(
    run_target, rows, db, pg_schema, capsys, load_method
):
    variation = {
        "id": {"type": "integer"},
        "product_id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "_sdc_deleted_at": {"type": ["null", "string"], "format": "date-time"},
    }
    old = {"key_properties": ["id"], "schema": {"properties": variation}}
    new = {
        "key_properties": ["product_id", "position"],
        "schema": {
            "properties": {**variation, "position": {"type": "integer"}},
            "x-replace-children-of": ["product_id"],
        },
    }
    run_target(
        lines(
            schema("product_variations", old),
            record("product_variations", {"id": 7, "product_id": 1, "name": "red"}),
            record("product_variations", {"id": 8, "product_id": 1, "name": "blue"}),
            state(1),
        ),
        load_method=load_method,
    )
    text = lines(
        schema("product_variations", new),
        record("product_variations", {"id": 8, "product_id": 1, "name": "blue", "position": 0}),
        state(2),
    )
    with pytest.raises(TableKeyChangedError) as info:
        run_target(text, load_method=load_method)
    assert info.value.table == f"{pg_schema}.product_variations"
    assert info.value.table_key == ["id"]
    assert info.value.stream_key == ["product_id", "position"]
    assert "input line 1" in str(info.value)
    assert capsys.readouterr().out == ""  # no state passed the unloaded rows
    # neither retired (the child set's retirement) nor replaced (overwrite's swap)
    assert rows("product_variations", "id, name") == [(7, "red"), (8, "blue")]
    assert primary_key(db, pg_schema, "product_variations") == ["id"]


def test_history_mode_names_the_history_table(run_target, rows, db, pg_schema):
    history = {"history_streams": ["person_followers"]}
    run_target(old_followers_run(), **history)
    assert rows("person_followers_history", "person_id, user_id", order="1, 2") == [
        (1, 10),
        (1, 11),
        (2, 10),
    ]
    text = lines(
        schema("person_followers", NEW),
        record("person_followers", {"person_id": 1, "user_id": 11, "position": 0}),
    )
    with pytest.raises(TableKeyChangedError) as info:
        run_target(text, **history)
    message = str(info.value)
    assert f"Preparing table {pg_schema}.person_followers for" in message
    assert f"and its history table {pg_schema}.person_followers_history, if any" in message

    # the table dropped but not its history: the history table is named, with its key
    drop(db, pg_schema, "person_followers")
    with pytest.raises(TableKeyChangedError) as info:
        run_target(text, **history)
    message = str(info.value)
    assert info.value.table == f"{pg_schema}.person_followers_history"
    assert "the table's key is (person_id, user_id, _valid_from)" in message
    assert f"drop the history table {pg_schema}.person_followers_history" in message
    # the versions are kept, and the table was not created again under the new key
    assert len(rows("person_followers_history", "person_id")) == 3
    exists = db.execute(
        "SELECT to_regclass(%s)", (sql.Identifier(pg_schema, "person_followers").as_string(db),)
    ).fetchone()
    assert exists == (None,)

    drop(db, pg_schema, "person_followers_history")
    run_target(text, **history)
    assert primary_key(db, pg_schema, "person_followers_history") == [
        "person_id",
        "position",
        "_valid_from",
    ]
    assert rows("person_followers_history", "person_id, position, user_id") == [(1, 0, 11)]


def test_partitioned_table_key_is_its_unique_index_without_the_time_column(run_target, rows):
    props = {
        "id": {"type": "integer"},
        "deal_id": {"type": "integer"},
        "changed_at": {"type": "string", "format": "date-time"},
    }
    settings = {"partitioned_tables": {"deal_changes": "changed_at"}}
    body = {"id": 1, "deal_id": 5, "changed_at": "2024-01-02T00:00:00Z"}
    old = {"key_properties": ["id"], "schema": {"properties": props}}
    run_target(lines(schema("deal_changes", old), record("deal_changes", body)), **settings)
    same = {"key_properties": ["id"], "schema": {"properties": props}}
    edited = {**body, "deal_id": 6}
    run_target(lines(schema("deal_changes", same), record("deal_changes", edited)), **settings)
    assert rows("deal_changes", "id, deal_id") == [(1, 6)]

    new = {"key_properties": ["deal_id", "id"], "schema": {"properties": props}}
    refused = r"key is \(id\), but the stream's key properties are now \(deal_id, id\)"
    with pytest.raises(TableKeyChangedError, match=refused):
        run_target(lines(schema("deal_changes", new), record("deal_changes", body)), **settings)
    assert rows("deal_changes", "id, deal_id") == [(1, 6)]


def test_stream_without_keys_now_is_refused_for_a_keyed_table(run_target, rows):
    run_target(old_followers_run())
    keyless = {"key_properties": [], "schema": {"properties": FOLLOWERS}}
    text = lines(
        schema("person_followers", keyless),
        record("person_followers", {"person_id": 1, "user_id": 10}),
    )
    with pytest.raises(TableKeyChangedError, match="but the stream now has no key properties"):
        run_target(text)
    assert len(rows("person_followers", "person_id")) == 3


def test_key_in_another_order_is_the_same_key(run_target, rows, db, pg_schema):
    run_target(old_followers_run())
    reordered = {"key_properties": ["user_id", "person_id"], "schema": {"properties": FOLLOWERS}}
    body = {"person_id": 1, "user_id": 10, "add_time": "2024-01-01T00:00:00Z"}
    run_target(lines(schema("person_followers", reordered), record("person_followers", body)))
    assert rows("person_followers", "person_id, user_id, add_time IS NOT NULL", order="1, 2") == [
        (1, 10, True),
        (1, 11, False),
        (2, 10, False),
    ]
    assert primary_key(db, pg_schema, "person_followers") == ["person_id", "user_id"]


def test_table_without_key_is_upserted_by_the_streams_new_key(run_target, rows, db, pg_schema):
    # loaded without keys first (appended, no primary key); the stream then gains a key: the
    # old rows stay, the new ones are upserted by the key (the table keeps having no key)
    keyless = {"key_properties": [], "schema": {"properties": FOLLOWERS}}
    run_target(
        lines(
            schema("person_followers", keyless),
            record("person_followers", {"person_id": 1, "user_id": 10}),
            record("person_followers", {"person_id": 1, "user_id": 10}),
        )
    )
    keyed = {"key_properties": ["person_id", "user_id"], "schema": {"properties": FOLLOWERS}}
    body = {"person_id": 1, "user_id": 10, "add_time": "2024-01-01T00:00:00Z"}
    run_target(
        lines(
            schema("person_followers", keyed),
            record("person_followers", body),
            record("person_followers", {"person_id": 2, "user_id": 10}),
        )
    )
    assert rows("person_followers", "person_id, user_id, add_time IS NOT NULL", order="1, 2") == [
        (1, 10, True),
        (1, 10, True),
        (2, 10, False),
    ]
    assert primary_key(db, pg_schema, "person_followers") == []
