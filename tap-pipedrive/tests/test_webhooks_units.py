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
