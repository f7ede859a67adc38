"""Units of the change feed: webhook custom-field shapes, completeness, the spec's optional keys."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from tap_pipedrive.custom_fields import CustomField
from tap_pipedrive.webhooks.events import Event, StoredEvent
from tap_pipedrive.webhooks.feed import (
    OPTIONAL_KEYS,
    STREAM_OBJECTS,
    Incomplete,
    deleted_row,
    rest_custom_value,
    rest_row,
    stage_records,
)
from tap_pipedrive.webhooks.payload import Rejected, parse
from tap_pipedrive.webhooks.zones import ZoneMemory, Zones
from webhook_support import example

SPEC = Path(__file__).resolve().parents[2] / "vendor" / "pipedrive-openapi"


def _field(kind):
    return CustomField(key="k" * 40, name="F", field_type=kind, column="f")


@pytest.mark.parametrize(
    ("kind", "webhook", "rest"),
    [
        ("enum", {"type": "enum", "id": 235}, 235),
        ("user", {"type": "user", "id": 7}, 7),
        ("set", {"type": "set", "values": [{"id": 1}, {"id": 2}]}, [1, 2]),
        ("varchar", {"type": "varchar", "value": "x"}, "x"),
        ("double", {"type": "double", "value": 1.5}, 1.5),
        (
            "monetary",
            {"type": "monetary", "value": 10, "currency": "EUR"},
            {"value": 10, "currency": "EUR"},
        ),
        (
            "daterange",
            {"type": "daterange", "from": "2026-01-01", "until": "2026-02-01"},
            {"start": "2026-01-01", "end": "2026-02-01"},
        ),
        (
            "address",
            {"type": "address", "value": "Tallinn", "locality": "Tallinn"},
            {"value": "Tallinn", "locality": "Tallinn"},
        ),
    ],
)
def test_webhook_custom_values_become_rest_values(kind, webhook, rest):
    assert rest_custom_value(_field(kind), webhook) == rest


@pytest.mark.parametrize("kind", ["time", "timerange"])
def test_values_without_the_timezone_name_are_fetched(kind):
    with pytest.raises(Incomplete):
        rest_custom_value(_field(kind), {"type": kind, "value": "10:00", "timezone_id": 1})


def test_a_missing_key_makes_the_payload_incomplete_unless_optional():
    keys = ["id", "title", "acv"]
    with pytest.raises(Incomplete, match="title"):
        rest_row({"id": 1, "acv": 3}, keys, [])
    assert rest_row({"id": 1, "title": "t"}, keys, [], OPTIONAL_KEYS["deals"]) == {
        "id": 1,
        "title": "t",
    }


def test_optional_keys_are_the_specs_include_fields_and_plan_only_keys():
    with (SPEC / "pipedrive-api-v2.openapi.yaml").open() as fh:
        spec = yaml.load(fh, Loader=yaml.CSafeLoader)
    for stream in STREAM_OBJECTS:
        get = spec["paths"][f"/{stream}"]["get"]
        enum: set[str] = set()
        for param in get.get("parameters", []):
            if param.get("name") == "include_fields":
                schema = param["schema"]
                enum = set(schema.get("items", {}).get("enum") or schema.get("enum") or [])
        text = str(get["responses"]["200"])
        plan_only = {
            key
            for key in ("acv", "arr", "mrr")
            if f"'{key}': {{" in text and "Only available in Growth" in text
        }
        assert OPTIONAL_KEYS[stream] == frozenset(enum | plan_only), stream


def test_a_delete_keeps_the_last_state_and_is_flagged_at_the_event_time():
    body = example("person-delete.json")
    when = dt.datetime(2026, 11, 30, 9, 20, 44, 17000, tzinfo=dt.UTC)
    row = deleted_row("persons", body["previous"], ["id", "name", "update_time"], [], when)
    assert row == {
        "id": 42,
        "name": "Ada Example",
        "update_time": "2026-11-30T09:20:44Z",
        "is_deleted": True,
    }


def test_the_examples_parse_and_a_stage_move_becomes_a_record():
    events = []
    for position, name in enumerate(
        ["deal-change-stage.json", "deal-delete-merge.json", "person-delete.json"], start=1
    ):
        event = parse(
            (
                Path(__file__).resolve().parents[2]
                / "vendor"
                / "pipedrive-webhooks"
                / "examples"
                / name
            ).read_bytes()
        )
        events.append(StoredEvent(position, event))
    assert events[1].event.body["meta"]["merged_to_id"] == "8"
    feed = stage_records([e for e in events if e.event.entity == "deal"])
    assert feed.records == [
        {
            "id": "8:1796030102:1:3",
            "deal_id": 8,
            "pipeline_id": 1,
            "from_stage_id": 1,
            "from_pipeline_id": 1,
            "to_stage_id": 3,
            "changed_at": "2026-11-30T09:15:02Z",
            "user_id": 12415231,
            "source": "webhook",
            "source_event_id": None,
        }
    ]
    assert feed.position == 2


def test_parse_names_what_is_wrong():
    with pytest.raises(Rejected, match=r"meta\.version"):
        parse(b'{"meta": {"version": "1.0"}, "data": null, "previous": null}')
    assert isinstance(
        parse(
            (
                Path(__file__).resolve().parents[2]
                / "vendor"
                / "pipedrive-webhooks"
                / "examples"
                / "person-delete.json"
            ).read_bytes()
        ),
        Event,
    )


# -- time zones learned from written records (webhooks.zones) ------------------------------------

TIME = CustomField(key="t" * 40, name="Call time", field_type="time", column="call_time")
RANGE = CustomField(key="r" * 40, name="Hours", field_type="timerange", column="hours")
ALL_COLUMNS = {c for f in (TIME, RANGE) for c in f.schema_properties()}


def _zones(**kw):
    return Zones(zoned=frozenset({TIME.key, RANGE.key}), remembered=frozenset({RANGE.key}), **kw)


def test_a_time_value_takes_its_zone_name_from_the_learned_map():
    zones = _zones(names={3: "Europe/Tallinn"})
    value = {"type": "time", "value": "10:30:00", "timezone_id": 3}
    assert rest_custom_value(TIME, value, zones, 1) == {
        "value": "10:30:00",
        "timezone_id": 3,
        "timezone_name": "Europe/Tallinn",
    }
    # A zone id never seen: fetched.
    with pytest.raises(Incomplete):
        rest_custom_value(TIME, {**value, "timezone_id": 4}, zones, 1)


def test_a_time_range_takes_the_zone_remembered_for_the_same_record_and_range():
    zones = _zones(ranges={(7, RANGE.key): ("09:00:00", "17:00:00", 3, "Europe/Tallinn")})
    value = {"type": "timerange", "from": "09:00:00", "until": "17:00:00"}
    zones.note_event(7, "change", {"stage_id": 1})
    assert rest_custom_value(RANGE, value, zones, 7) == {
        "start": "09:00:00",
        "end": "17:00:00",
        "timezone_id": 3,
        "timezone_name": "Europe/Tallinn",
    }
    # Another record, another range, or nothing remembered: fetched.
    for record_id, given in ((8, value), (7, {**value, "until": "18:00:00"})):
        with pytest.raises(Incomplete):
            rest_custom_value(RANGE, given, zones, record_id)


def test_a_range_an_event_of_the_run_changed_or_created_is_fetched():
    remembered = {(7, RANGE.key): ("09:00:00", "17:00:00", 3, "Europe/Tallinn")}
    value = {"type": "timerange", "from": "09:00:00", "until": "17:00:00"}
    changed = _zones(ranges=dict(remembered))
    # An older event of the run changed the range (its zone, say); the latest did not.
    changed.note_event(7, "change", {"custom_fields": {RANGE.key: {"type": "timerange"}}})
    changed.note_event(7, "change", {"value": 10})
    with pytest.raises(Incomplete):
        rest_custom_value(RANGE, value, changed, 7)
    created = _zones(ranges=dict(remembered))
    created.note_event(7, "create", None)
    with pytest.raises(Incomplete):
        rest_custom_value(RANGE, value, created, 7)


def test_zones_are_not_needed_when_their_columns_are_not_selected():
    zones = Zones()
    assert rest_custom_value(TIME, {"value": "10:00:00", "timezone_id": 9}, zones, 1) == {
        "value": "10:00:00",
        "timezone_id": 9,
        "timezone_name": None,
    }
    assert rest_custom_value(RANGE, {"from": "a", "until": "b"}, zones, 1)["start"] == "a"


def test_the_memory_learns_pairs_and_ranges_from_written_records_and_keeps_them(
    postgres_url, pg_schema
):
    import psycopg
    from psycopg import sql
    from tap_pipedrive.webhooks.events import ddl

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for statement in ddl(pg_schema):
            conn.execute(statement)
    memory = ZoneMemory(postgres_url, pg_schema, "deals", [TIME, RANGE], ALL_COLUMNS)
    assert memory.enabled
    memory.learn(
        {
            "id": 7,
            "call_time": "10:00:00",
            "call_time_timezone_id": 3,
            "call_time_timezone_name": "Europe/Tallinn",
            "hours": "09:00:00",
            "hours_until": "17:00:00",
            "hours_timezone_id": 5,
            "hours_timezone_name": "America/New_York",
        }
    )
    memory.learn({"id": 8, "hours": None, "hours_until": None})  # an empty range is remembered
    memory.flush()
    again = ZoneMemory(postgres_url, pg_schema, "deals", [TIME, RANGE], ALL_COLUMNS)
    zones = again.zones([7, 8, 9])
    assert zones.names == {3: "Europe/Tallinn", 5: "America/New_York"}
    assert zones.ranges == {
        (7, RANGE.key): ("09:00:00", "17:00:00", 5, "America/New_York"),
        (8, RANGE.key): (None, None, None, None),
    }
    # A later record overwrites what an earlier one said.
    again.learn({"id": 7, "hours": None, "hours_until": None})
    assert again.zones([7]).ranges[(7, RANGE.key)] == (None, None, None, None)
    with psycopg.connect(postgres_url) as conn:
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.time_ranges").format(sql.Identifier(pg_schema))
        ).fetchone()
    assert count == (2,)


def test_the_memory_is_off_without_zone_columns_selected():
    memory = ZoneMemory("postgresql://unused", "s", "deals", [TIME, RANGE], {"id", "call_time"})
    assert not memory.enabled
