"""Unit tests without a server: paginators on bare responses, column naming, flattening."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from singer_sdk.exceptions import ConfigValidationError
from tap_pipedrive.custom_fields import (
    keep_known_columns,
    plan_custom_fields,
    snake_case,
)
from tap_pipedrive.pagination import (
    CursorPaginator,
    MalformedResponseError,
    OffsetPaginator,
    response_body,
)
from tap_pipedrive.record_code import PlainRecordBuilder
from tap_pipedrive.resilience import BurstLimitedError, backoff_waits
from tap_pipedrive.tap import CONFIG_SCHEMA, TapPipedrive, coerce_numbers, number_settings

RECORDED = Path(__file__).resolve().parents[2] / "vendor" / "pipedrive-recorded"


def _response(body: bytes | str | object, url: str = "https://x.test/api/v2/deals"):
    response = requests.Response()
    response.status_code = 200
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    response._content = body.encode() if isinstance(body, str) else body
    response.url = url
    response.request = requests.Request("GET", url).prepare()
    return response


@pytest.mark.parametrize(
    ("body", "next_value", "continue_empty"),
    [
        pytest.param(
            {"data": [{"id": 1}], "additional_data": {"next_cursor": "abc"}},
            "abc",
            True,
            id="cursor",
        ),
        pytest.param(
            {"data": [{"id": 1}], "additional_data": {"next_cursor": None}},
            None,
            False,
            id="last-page-null",
        ),
        pytest.param(
            {"data": [], "additional_data": {"next_cursor": "abc"}},
            "abc",
            True,
            id="empty-page-with-cursor",
        ),
        pytest.param({"data": [{"id": 1}]}, None, False, id="no-additional-data"),
    ],
)
def test_cursor_paginator(body, next_value, continue_empty):
    paginator = CursorPaginator()
    response = _response(body)
    assert paginator.get_next(response) == next_value
    assert paginator.continue_if_empty(response) is continue_empty
    paginator.advance(response)
    assert paginator.finished is (next_value is None)


def test_recorded_last_page_has_null_cursor():
    recorded = json.loads((RECORDED / "nango-recorded" / "stages.json").read_text())
    body = recorded["GET"]["/v2/stages"]["response"]
    assert CursorPaginator().get_next(_response(body)) is None


@pytest.mark.parametrize(
    ("pagination", "expected"),
    [
        pytest.param(
            {"start": 0, "limit": 500, "more_items_in_collection": True, "next_start": 500},
            500,
            id="more",
        ),
        pytest.param(
            {"start": 500, "limit": 500, "more_items_in_collection": False}, None, id="last"
        ),
        pytest.param(
            {"start": 100, "limit": 100, "more_items_in_collection": True},
            200,
            id="more-without-next-start",
        ),
    ],
)
def test_offset_paginator(pagination, expected):
    body = {"data": [{"id": 1}], "additional_data": {"pagination": pagination}}
    assert OffsetPaginator().get_next(_response(body)) == expected


def test_recorded_v1_pages():
    recorded = json.loads((RECORDED / "nango-recorded" / "notes.json").read_text())
    ((path, answer),) = recorded["GET"].items()
    response = _response(answer["response"], url=f"https://x.test{path}")
    expected = answer["response"]["additional_data"]["pagination"].get("next_start")
    assert OffsetPaginator().get_next(response) == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"null", id="literal-null"),
        pytest.param(b'{"success":true,"data":[{"id":1,"title":"Tru', id="truncated"),
        pytest.param(b"<html>502</html>", id="html"),
        pytest.param(b"[1, 2]", id="array"),
    ],
)
def test_bodies_that_are_not_an_envelope_are_retriable(body):
    with pytest.raises(MalformedResponseError):
        response_body(_response(body))


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("Annual budget (EUR)", "annual_budget_eur"),
        ("Région / Land", "region_land"),
        ("2nd contact", "f_2nd_contact"),
        ("???", "field"),
        ("  Spaces   everywhere ", "spaces_everywhere"),
    ],
)
def test_snake_case(name, column):
    assert snake_case(name) == column


def _defn(key, name, ftype="varchar", options=None):
    return {
        "field_code": key,
        "field_name": name,
        "field_type": ftype,
        "options": options,
        "is_custom_field": True,
    }


def test_plan_handles_collisions_limits_and_memory():
    a, b, c, d = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)
    fields = plan_custom_fields(
        [
            _defn(a, "Region"),
            _defn(b, "Region"),
            _defn(c, "Title"),
            _defn(d, "A very long field name " * 4, "address"),
        ],
        reserved={"title", "id"},
    )
    columns = {f.key: f.column for f in fields}
    assert columns[a] == "region"
    assert columns[b] == "region_bbbbbbbb"
    assert columns[c] == "title_cccccccc"
    long_field = next(f for f in fields if f.key == d)
    assert all(len(column) <= 63 for _, column, _ in long_field.parts)
    assert long_field.column.endswith("_dddddddd")

    # A later run keeps the remembered names, even after a rename in Pipedrive.
    again = plan_custom_fields(
        [_defn(a, "Sales region"), _defn(b, "Region")], reserved={"title"}, known=columns
    )
    assert {f.key: f.column for f in again} == {a: "region", b: "region_bbbbbbbb"}

    raw = plan_custom_fields([_defn(a, "Region", "monetary")], reserved=(), raw_keys=True)
    assert [column for _, column, _ in raw[0].parts] == [a, f"{a}_currency"]


def test_schema_from_recorded_v1_field_definitions():
    lines = (RECORDED / "airbyte" / "expected_records_subset.v1.jsonl").read_text().splitlines()
    definitions = [
        json.loads(x)["data"] for x in lines if json.loads(x)["stream"].endswith("_fields")
    ]
    # Treat the recorded definitions as custom fields to exercise both option-id styles:
    # activity types use string ids ("call"), organization labels integer ids (5).
    custom = [{**d, "is_custom_field": True} for d in definitions]
    fields = {f.name: f for f in plan_custom_fields(custom, reserved=())}
    assert set(fields) == {"Type", "Label", "Title"}
    props = {}
    for f in fields.values():
        props.update(f.schema_properties())
    assert props["type"]["type"] == ["string", "null"]
    assert props["title"]["x-pipedrive-key"] == "title"
    flatten = PlainRecordBuilder(fields.values())
    row = flatten({"custom_fields": {"type": "call", "label": 6, "title": "Deal"}})
    assert row == {"type": "Call", "label": "Hot lead", "title": "Deal"}


def test_flattener_value_shapes():
    enum, tags, money, span, addr = ("e" * 40, "s" * 40, "m" * 40, "r" * 40, "d" * 40)
    fields = plan_custom_fields(
        [
            _defn(enum, "Stage kind", "enum", [{"id": 1, "label": "One"}]),
            _defn(tags, "Tags", "set", [{"id": 1, "label": "One"}, {"id": 2, "label": "Two"}]),
            _defn(money, "Budget", "monetary"),
            _defn(span, "Contract", "daterange"),
            _defn(addr, "HQ address", "address"),
        ],
        reserved=(),
    )
    flatten = PlainRecordBuilder(fields)
    row = flatten(
        {
            "custom_fields": {
                enum: {"id": 1, "label": "One"},
                tags: "1,2",
                money: {"value": 10.5, "currency": "EUR"},
                span: {"start": "2024-01-01", "end": "2024-12-31"},
                addr: None,
            }
        }
    )
    assert row["stage_kind"] == "One"
    assert row["tags"] == ["One", "Two"]
    assert (row["budget"], row["budget_currency"]) == (10.5, "EUR")
    assert (row["contract"], row["contract_until"]) == ("2024-01-01", "2024-12-31")
    assert row["hq_address"] is None
    assert row["hq_address_locality"] is None
    assert flatten({"custom_fields": {enum: 99}})["stage_kind"] == "99"  # unknown option kept
    # v2 sends a set as a list of ids; any other element shape still becomes its label.
    listed = [2, 1, {"id": 1, "label": "Uno"}, {"id": 2}, "1", 7]
    assert flatten({"custom_fields": {tags: listed}})["tags"] == [
        "Two",
        "One",
        "Uno",
        "Two",
        "One",
        "7",
    ]
    assert flatten({"custom_fields": {tags: []}})["tags"] == []
    assert flatten({"custom_fields": {tags: None}})["tags"] is None
    assert flatten({"custom_fields": None})["tags"] is None


def test_v1_flattener_reads_top_level_keys_of_a_recorded_lead():
    lines = (RECORDED / "airbyte" / "expected_records_subset.v1.jsonl").read_text().splitlines()
    lead = next(json.loads(x)["data"] for x in lines if json.loads(x)["stream"] == "leads")
    seats, code = (
        "befdcfc4f54b8410b8d9105ba6d44658fd5965b9",
        "3ce5b1409718d65a8adc965be1f0da8821d8b9ab",
    )
    money, tags, span = "m" * 40, "s" * 40, "r" * 40
    definitions = [
        _defn(seats, "Seats", "double"),
        _defn(code, "Code", "varchar"),
        # Not set on the recorded lead, so (as v1 documents) absent from it.
        _defn(money, "Budget", "monetary"),
        _defn(tags, "Tags", "set", [{"id": 1, "label": "One"}, {"id": 2, "label": "Two"}]),
        _defn(span, "Contract", "daterange"),
    ]
    flatten = PlainRecordBuilder(plan_custom_fields(definitions, reserved=set(lead)), v1=True)
    row = flatten(dict(lead))
    assert (row["seats"], row["code"]) == (10, "Test")
    assert (row["budget"], row["budget_currency"], row["tags"], row["contract"]) == (None,) * 4
    assert not any(len(key) == 40 for key in row)
    assert {k: v for k, v in row.items() if k in lead} == {
        k: v for k, v in lead.items() if len(k) != 40
    }

    set_values = {
        money: 99.5,
        f"{money}_currency": "EUR",
        tags: "2,1",
        span: "2024-01-01",
        f"{span}_until": "2024-06-30",
    }
    row = flatten({"id": "x", **set_values})
    assert (row["budget"], row["budget_currency"]) == (99.5, "EUR")
    assert row["tags"] == ["Two", "One"]
    assert (row["contract"], row["contract_until"]) == ("2024-01-01", "2024-06-30")
    # Hash columns are the v1 keys themselves.
    raw = PlainRecordBuilder(plan_custom_fields(definitions, reserved=(), raw_keys=True), v1=True)
    row = raw({"id": "x", **set_values})
    assert (row[money], row[f"{money}_currency"], row[tags]) == (99.5, "EUR", ["Two", "One"])
    assert (row[span], row[f"{span}_until"], row[seats]) == ("2024-01-01", "2024-06-30", None)


def test_catalog_keeps_remembered_columns():
    key = "f" * 40
    entry = {
        "tap_stream_id": "deals",
        "schema": {
            "properties": {
                "new_name": {
                    "type": ["number", "null"],
                    "x-pipedrive-key": key,
                    "x-pipedrive-field-type": "monetary",
                    "x-pipedrive-subfield": "value",
                },
                "new_name_currency": {
                    "type": ["string", "null"],
                    "x-pipedrive-key": key,
                    "x-pipedrive-field-type": "monetary",
                    "x-pipedrive-subfield": "currency",
                },
            }
        },
        "metadata": [{"breadcrumb": ["properties", "new_name"], "metadata": {"selected": True}}],
    }
    keep_known_columns(entry, {key: "old_name"})
    assert set(entry["schema"]["properties"]) == {"old_name", "old_name_currency"}
    assert entry["metadata"][0]["breadcrumb"] == ["properties", "old_name"]


def test_backoff_waits_grow_with_full_jitter_and_skip_burst_waits():
    waits = backoff_waits(1.0, 8.0)
    next(waits)
    values = [waits.send(RuntimeError()) for _ in range(6)]
    caps = [1, 2, 4, 8, 8, 8]
    assert all(cap / 10 <= v <= cap for v, cap in zip(values, caps, strict=True))
    assert waits.send(BurstLimitedError("429", retry_after=2.0)) == 0.0


def test_every_number_setting_is_coerced():
    assert number_settings(CONFIG_SCHEMA) == (
        "max_budget_share",
        "burst_window_seconds",
        "retry_initial_wait_seconds",
        "retry_max_wait_seconds",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("0.5", 0.5, id="fraction"),
        pytest.param(" 60 ", 60.0, id="whole-padded"),
        pytest.param(".25", 0.25, id="leading-dot"),
        pytest.param("1e-3", 0.001, id="exponent"),
        pytest.param(0.3, 0.3, id="number-untouched"),
        pytest.param(2, 2, id="integer-untouched"),
        pytest.param(None, None, id="null-untouched"),
    ],
)
def test_numbers_given_as_strings_become_numbers(value, expected):
    config = {"max_budget_share": value, "api_token": "0.5"}
    coerce_numbers(config, ["max_budget_share"])
    assert config == {"max_budget_share": expected, "api_token": "0.5"}
    assert type(config["max_budget_share"]) is type(expected)


@pytest.mark.parametrize("value", ["half", "", "0,5", "nan", "inf", "1e999", "1_000", "0.5s"])
def test_a_number_setting_that_is_not_a_number_is_named(value):
    with pytest.raises(ConfigValidationError) as info:
        coerce_numbers({"retry_max_wait_seconds": value}, ["retry_max_wait_seconds"])
    message = f"Setting `retry_max_wait_seconds`: expected a number, got {value!r}"
    assert str(info.value) == message
    assert info.value.errors == [message]


_TAP_CONFIG = {"api_token": "token", "api_url": "http://127.0.0.1:9"}


def test_the_tap_converts_numbers_before_the_sdk_validates_them():
    tap = TapPipedrive(
        config={**_TAP_CONFIG, "max_budget_share": "0.5", "retry_initial_wait_seconds": "0.25"},
        parse_env_config=False,
        setup_mapper=False,
    )
    assert tap.config["max_budget_share"] == 0.5
    assert tap.config["retry_initial_wait_seconds"] == 0.25


def test_numbers_from_the_sdks_own_environment_parsing(monkeypatch):
    # `tap-pipedrive --config=ENV` leaves number settings as strings, as Meltano does.
    monkeypatch.setenv("TAP_PIPEDRIVE_MAX_BUDGET_SHARE", "0.3")
    monkeypatch.setenv("TAP_PIPEDRIVE_BURST_WINDOW_SECONDS", "2.5")
    tap = TapPipedrive(config=dict(_TAP_CONFIG), parse_env_config=True, setup_mapper=False)
    assert tap.config["max_budget_share"] == 0.3
    assert tap.config["burst_window_seconds"] == 2.5


def test_the_tap_names_a_number_setting_that_is_not_a_number():
    with pytest.raises(ConfigValidationError, match="`max_budget_share`: expected a number"):
        TapPipedrive(
            config={**_TAP_CONFIG, "max_budget_share": "half"},
            parse_env_config=False,
            setup_mapper=False,
        )
