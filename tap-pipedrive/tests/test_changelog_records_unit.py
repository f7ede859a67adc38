"""Changelog entries as change records: columns, typed and labelled values, stable ids."""

from __future__ import annotations

from tap_pipedrive.changelog_records import ChangeTyper, change_records, typed
from tap_pipedrive.custom_fields import CustomField

PROPERTIES = {
    "id": {"type": ["integer"]},
    "value": {"type": ["number", "null"]},
    "owner_id": {"type": ["integer", "null"]},
    "is_deleted": {"type": ["boolean", "null"]},
    "won_time": {"type": ["string", "null"], "format": "date-time"},
    "expected_close_date": {"type": ["string", "null"], "format": "date"},
    "label_ids": {"type": ["array", "null"], "items": {"type": "integer"}},
    "title": {"type": ["string", "null"]},
}
SIZE = CustomField("a" * 40, "Deal size", "enum", "deal_size", {7: "Large", 8: "Small"})
TAGS = CustomField("b" * 40, "Tags", "set", "tags", {1: "Red", 2: "Blue"})
BUDGET = CustomField("c" * 40, "Budget", "monetary", "budget")


def entry(key, old, new, time="2026-03-01 10:00:00", **extra):
    return {
        "field_key": key,
        "old_value": old,
        "new_value": new,
        "time": time,
        "actor_user_id": 5,
        "change_source": "app",
        **extra,
    }


def test_values_are_typed_as_the_column():
    assert typed("250", PROPERTIES["value"]) == 250
    assert typed("12.5", PROPERTIES["value"]) == 12.5
    assert typed("7", PROPERTIES["owner_id"]) == 7
    assert typed("true", PROPERTIES["is_deleted"]) is True
    assert typed("false", PROPERTIES["is_deleted"]) is False
    assert typed("2026-03-01 10:00:00", PROPERTIES["won_time"]) == "2026-03-01T10:00:00Z"
    assert typed("2026-03-01T10:00:00Z", PROPERTIES["won_time"]) == "2026-03-01T10:00:00Z"
    assert typed("2026-04-30", PROPERTIES["expected_close_date"]) == "2026-04-30"
    assert typed("1,3", PROPERTIES["label_ids"]) == [1, 3]
    assert typed("", PROPERTIES["label_ids"]) == []
    assert typed(None, PROPERTIES["value"]) is None
    assert typed("not a number", PROPERTIES["value"]) == "not a number"  # kept, not lost


def test_records_name_the_columns_and_label_options():
    typer = ChangeTyper("deals", PROPERTIES, [SIZE, TAGS, BUDGET])
    items = [  # newest first, as the API answers
        entry("c" * 40, None, '{"currency":"EUR","value":500}', "2026-03-02 09:00:00"),
        entry("b" * 40, "1", "1,2"),
        entry("a" * 40, "8", "7"),
        entry("user_id", "4", "5"),  # the v1 key of the deal's owner
        entry("unknown_key", "x", "y"),
    ]
    records = change_records(typer, "deal_id", 42, items)
    got = {(r["field_key"], r["column_name"]): (r["old_value"], r["new_value"]) for r in records}
    assert got == {
        ("a" * 40, "deal_size"): ("Small", "Large"),
        ("b" * 40, "tags"): (["Red"], ["Red", "Blue"]),
        ("c" * 40, "budget"): (None, 500),
        ("c" * 40, "budget_currency"): (None, "EUR"),
        ("user_id", "owner_id"): (4, 5),
        ("unknown_key", None): ("x", "y"),
    }
    # Oldest first, the log's order within a second, and positions counting from the oldest.
    assert [r["log_position"] for r in records] == [1, 2, 3, 4, 5, 5]
    assert records[-1]["changed_at"] == "2026-03-02T09:00:00Z"
    assert all(r["deal_id"] == 42 and r["user_id"] == 5 for r in records)
    # Ids are stable across reads and distinct within one.
    again = change_records(typer, "deal_id", 42, items)
    assert [r["id"] for r in again] == [r["id"] for r in records]
    assert len({r["id"] for r in records}) == len(records)
