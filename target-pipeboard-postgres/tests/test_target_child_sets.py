"""Child sets (``x-replace-children-of``): each run's set of a parent's children replaces the
previous one; removed children are retired, other parents' children are untouched."""

from __future__ import annotations

import json
from typing import Any

import pytest
from psycopg import sql as pgsql
from target_pipeboard_postgres import child_sets

SCHEMA = {
    "type": "SCHEMA",
    "stream": "person_emails",
    "key_properties": ["person_id", "position"],
    "schema": {
        "type": "object",
        "x-replace-children-of": ["person_id"],
        "properties": {
            "person_id": {"type": "integer"},
            "position": {"type": "integer"},
            "value": {"type": ["string", "null"]},
            "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
}


def _run(*records: dict[str, Any]) -> str:
    lines = [SCHEMA] + [
        {"type": "RECORD", "stream": "person_emails", "record": {"_sdc_deleted_at": None, **r}}
        for r in records
    ]
    return "\n".join(json.dumps(m) for m in lines) + "\n"


@pytest.mark.parametrize("hard_delete", [False, True], ids=["soft", "hard"])
def test_a_parents_children_are_replaced_by_the_set_sent(run_target, rows, hard_delete):
    run_target(
        _run(
            {"person_id": 1, "position": 0, "value": "a@x"},
            {"person_id": 1, "position": 1, "value": "b@x"},
            {"person_id": 1, "position": 2, "value": "c@x"},
            {"person_id": 2, "position": 0, "value": "d@x"},
            {"person_id": 3, "position": 0, "value": "e@x"},
        ),
        hard_delete=hard_delete,
    )
    # Person 1 lost an address, person 2 lost all (one record marked deleted), person 3 is
    # not in this run and keeps its row.
    run_target(
        _run(
            {"person_id": 1, "position": 0, "value": "a@x"},
            {"person_id": 1, "position": 1, "value": "c@x"},
            {
                "person_id": 2,
                "position": 0,
                "value": None,
                "_sdc_deleted_at": "2026-01-01T00:00:00Z",
            },
        ),
        hard_delete=hard_delete,
    )
    found = rows("person_emails", "person_id, position, value, _sdc_deleted_at", order="1, 2")
    current = [r[:3] for r in found if r[3] is None]
    assert current == [(1, 0, "a@x"), (1, 1, "c@x"), (3, 0, "e@x")]
    # Soft deletes keep (1, 2) and (2, 0), marked deleted; hard deletes remove them.
    assert len(found) == (3 if hard_delete else 5)


def test_a_child_set_without_a_declared_deleted_at_gets_the_column(run_target, rows):
    # a tap that does not declare `_sdc_deleted_at`: retiring a child soft-deletes it all the same
    props = {k: v for k, v in SCHEMA["schema"]["properties"].items() if k != "_sdc_deleted_at"}
    bare = dict(SCHEMA, schema={**SCHEMA["schema"], "properties": props})

    def run(*records: dict[str, Any]) -> None:
        messages = [bare] + [
            {"type": "RECORD", "stream": "person_emails", "record": r} for r in records
        ]
        run_target("".join(json.dumps(m) + "\n" for m in messages))

    run({"person_id": 1, "position": 0, "value": "a@x"}, {"person_id": 1, "position": 1})
    run({"person_id": 1, "position": 0, "value": "b@x"})
    found = rows("person_emails", "position, value, _sdc_deleted_at IS NULL", order="1")
    assert found == [(0, "b@x", True), (1, None, False)]


def test_the_annotation_must_name_key_properties(run_target):
    bad = dict(SCHEMA, schema={**SCHEMA["schema"], "x-replace-children-of": ["value"]})
    with pytest.raises(Exception, match="x-replace-children-of"):
        run_target(json.dumps(bad) + "\n")


def test_retire_sql_names_every_identifier():
    stage = pgsql.Identifier("pb_stage_1")
    text = child_sets.retire_sql(
        "s", "t", stage, ["person_id"], ["person_id", "position"], hard_delete=False
    ).as_string(None)
    assert text.startswith('UPDATE "s"."t" AS t SET "_sdc_deleted_at" = now()')
    assert '("t"."person_id") IN (SELECT DISTINCT "person_id" FROM "pb_stage_1")' in text


@pytest.mark.parametrize("batch_size_rows", [1, 2, 3, 4])
def test_a_batch_bound_never_splits_one_parents_children(run_target, rows, batch_size_rows):
    # Batches of a few rows: a bound falls inside person 1's three addresses (and person 3's
    # two). Were the set split, the second part's batch would retire the first part's rows.
    states = run_target(
        "\n".join(
            [
                _run(
                    {"person_id": 1, "position": 0, "value": "a@x"},
                    {"person_id": 1, "position": 1, "value": "b@x"},
                    {"person_id": 1, "position": 2, "value": "c@x"},
                    {"person_id": 2, "position": 0, "value": "d@x"},
                    {"person_id": 3, "position": 0, "value": "e@x"},
                    {"person_id": 3, "position": 1, "value": "f@x"},
                ).rstrip("\n"),
                json.dumps({"type": "STATE", "value": {"done": True}}),
            ]
        )
        + "\n",
        batch_size_rows=batch_size_rows,
    )
    found = rows("person_emails", "person_id, position, value, _sdc_deleted_at", order="1, 2")
    assert found == [
        (1, 0, "a@x", None),
        (1, 1, "b@x", None),
        (1, 2, "c@x", None),
        (2, 0, "d@x", None),
        (3, 0, "e@x", None),
        (3, 1, "f@x", None),
    ]
    assert states[-1] == {"done": True}


def test_a_parents_children_stay_together_in_the_next_run_too(run_target, rows):
    run_target(
        _run(
            {"person_id": 1, "position": 0, "value": "a@x"},
            {"person_id": 1, "position": 1, "value": "b@x"},
            {"person_id": 2, "position": 0, "value": "d@x"},
        ),
        batch_size_rows=2,
    )
    # Person 1 now has three addresses and person 2 none: a bound after two rows.
    run_target(
        _run(
            {"person_id": 1, "position": 0, "value": "a@x"},
            {"person_id": 1, "position": 1, "value": "b@x"},
            {"person_id": 1, "position": 2, "value": "z@x"},
            {
                "person_id": 2,
                "position": 0,
                "value": None,
                "_sdc_deleted_at": "2026-01-01T00:00:00Z",
            },
        ),
        batch_size_rows=2,
    )
    found = rows("person_emails", "person_id, position, value, _sdc_deleted_at", order="1, 2")
    assert [r[:3] for r in found if r[3] is None] == [(1, 0, "a@x"), (1, 1, "b@x"), (1, 2, "z@x")]
