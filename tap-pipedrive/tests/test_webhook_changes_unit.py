"""Change records from webhook events' `previous` (tap_pipedrive.webhooks.changes): the v2
payloads of ../shared/pipedrive-webhooks, custom fields in the webhook shape."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from tap_pipedrive.backfill import DealHead
from tap_pipedrive.changelog_records import ChangeTyper, change_records
from tap_pipedrive.custom_fields import CustomField
from tap_pipedrive.webhooks.changes import change_feed, custom_text, entries
from tap_pipedrive.webhooks.events import Event, StoredEvent

EXAMPLES = Path(__file__).resolve().parents[2] / "vendor" / "pipedrive-webhooks" / "examples"
ENUM_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
PROPERTIES = {
    "id": {"type": ["integer"]},
    "title": {"type": ["string", "null"]},
    "value": {"type": ["number", "null"]},
    "stage_id": {"type": ["integer", "null"]},
    "stage_change_time": {"type": ["string", "null"], "format": "date-time"},
    "update_time": {"type": ["string", "null"], "format": "date-time"},
}


def example(name: str) -> dict[str, Any]:
    return dict(json.loads((EXAMPLES / name).read_text()))


def typer() -> ChangeTyper:
    enum = CustomField(ENUM_KEY, "Tier", "enum", "tier", {235: "Gold", 236: "Silver"})
    return ChangeTyper("deals", PROPERTIES, [enum])


def stored(body: dict[str, Any], position: int) -> StoredEvent:
    meta = body["meta"]
    event = Event(
        event_id=meta["id"],
        entity=meta["entity"],
        action=meta["action"],
        entity_id=meta["entity_id"],
        event_time=dt.datetime.fromisoformat(meta["timestamp"].replace("Z", "+00:00")),
        attempt=1,
        body=body,
    )
    return StoredEvent(position=position, event=event)


def test_a_stage_change_becomes_the_changelog_s_record():
    body = example("deal-change-stage.json")
    items, complete = entries(body)
    assert complete
    assert [(i["field_key"], i["old_value"], i["new_value"]) for i in items] == [
        ("stage_id", "1", "3"),
        ("stage_change_time", "2026-11-02T10:00:00Z", "2026-11-30T09:15:02Z"),
    ]
    records = change_records(typer(), "deal_id", 8, items)
    stage = next(r for r in records if r["field_key"] == "stage_id")
    assert stage["old_value"] == 1
    assert stage["new_value"] == 3
    assert stage["changed_at"] == "2026-11-30T09:15:02Z"
    assert stage["user_id"] == 12415231
    assert stage["change_source"] == "app"
    # The id a changelog entry of the same change gives (v1 time, values as strings).
    logged = change_records(
        typer(),
        "deal_id",
        8,
        [
            {
                "field_key": "stage_id",
                "old_value": "1",
                "new_value": "3",
                "time": "2026-11-30 09:15:02",
            }
        ],
    )
    assert stage["id"] == logged[0]["id"]


def test_custom_field_shapes_are_written_as_the_changelog_writes_them():
    assert custom_text({"type": "enum", "id": 235}) == "235"
    assert custom_text({"type": "set", "values": [{"id": 1}, {"id": 2}]}) == "1,2"
    assert custom_text({"type": "double", "value": 12.0}) == "12"
    assert custom_text({"type": "varchar", "value": "x"}) == "x"
    assert custom_text({"type": "monetary", "value": 10, "currency": "EUR"}) == (
        '{"currency":"EUR","value":10}'
    )
    assert custom_text({"type": "daterange", "from": "2026-01-01", "until": "2026-02-01"}) == (
        '{"end":"2026-02-01","start":"2026-01-01"}'
    )
    assert custom_text(None) is None


def test_an_enum_change_is_labelled_and_an_ambiguous_event_is_not_whole():
    body = example("deal-change-stage.json")
    body = copy.deepcopy(body)
    # Only the enum is filled, and it changed: a whole event, labelled as the table holds it.
    body["data"]["custom_fields"] = {ENUM_KEY: {"type": "enum", "id": 236}}
    body["previous"]["custom_fields"] = {ENUM_KEY: {"type": "enum", "id": 235}}
    items, complete = entries(body)
    assert complete
    records = change_records(typer(), "deal_id", 8, items)
    tier = next(r for r in records if r["field_key"] == ENUM_KEY)
    assert (tier["column_name"], tier["old_value"], tier["new_value"]) == ("tier", "Gold", "Silver")
    # Another filled custom field not in previous: it may have been empty before (previous
    # leaves empty fields out), so the event does not say all its changes.
    body["data"]["custom_fields"]["b" * 40] = {"type": "varchar", "value": "set now?"}
    assert entries(body)[1] is False
    # A changed field whose new value the payload lacks: not whole either.
    partial = example("deal-change-stage.json")
    del partial["data"]["stage_id"]
    assert entries(partial)[1] is False


def head(ident: int, update_time: str, add_time: str = "2026-10-24T13:18:55Z") -> DealHead:
    return DealHead.from_record(
        {"id": ident, "add_time": add_time, "update_time": update_time, "stage_id": 3}
    )


@pytest.mark.parametrize(
    ("gate", "update_time", "explained"),
    [
        ("2026-11-29T17:40:11Z", "2026-11-30T09:15:02Z", True),  # chain from the gate on
        ("2026-11-29T18:00:00Z", "2026-11-30T09:15:02Z", True),
        ("2026-11-29T17:00:00Z", "2026-11-30T09:15:02Z", False),  # a change before the events
        ("2026-11-29T17:40:11Z", "2026-11-30T10:00:00Z", False),  # a change after them
    ],
)
def test_a_record_is_explained_when_its_events_hold_every_change_since_the_gate(
    gate, update_time, explained
):
    feed = change_feed([stored(example("deal-change-stage.json"), 7)], typer(), "deal_id")
    assert feed.position == 7
    assert len(feed.records) == 2
    assert all(r["log_position"] is None for r in feed.records)
    moment = dt.datetime.fromisoformat(gate.replace("Z", "+00:00"))
    assert feed.explains(head(8, update_time), moment) is explained
    assert feed.explains(head(9, update_time), moment) is False  # no event of that record
