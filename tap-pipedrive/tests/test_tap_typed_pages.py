"""API v2 pages decoded into typed rows: the same records as plain JSON, and a safe way back."""

from __future__ import annotations

import copy
import logging

import orjson
import pytest
from tap_pipedrive.api import OPENAPI
from tap_pipedrive.client import PipedriveStream
from tap_pipedrive.custom_fields import plan_custom_fields
from tap_pipedrive.pagination import MalformedResponseError
from tap_pipedrive.record_code import PlainRecordBuilder
from tap_pipedrive.tap import TapPipedrive
from tap_pipedrive.typed_pages import TypedPages

TYPED_STREAMS = {
    "deals",
    "deal_products",
    "persons",
    "organizations",
    "activities",
    "products",
    "projects",
    "project_templates",
    "tasks",
    "deal_installments",
}


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[bool]]:
    """Per stream, whether each page it requested was decoded into typed rows."""
    seen: dict[str, list[bool]] = {}
    original = PipedriveStream._request

    def request(self, prepared, context):
        response = original(self, prepared, context)
        body = response.__dict__.get("_pipedrive_body") or {}
        rows = body.get("data") or []
        rows = rows if isinstance(rows, list) else []  # e.g. {"goals": [...]}
        seen.setdefault(self.name, []).append(bool(rows) and not isinstance(rows[0], dict))
        return response

    monkeypatch.setattr(PipedriveStream, "_request", request)
    return seen


def _plain_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PipedriveStream, "_typed_pages", property(lambda self: None))


def test_typed_and_plain_pages_give_the_same_records(
    pipedrive_simulator, run, config_for, decoded, monkeypatch
):
    config = config_for(pipedrive_simulator)
    typed = run(config)
    assert typed.error is None
    assert {name for name, pages in decoded.items() if any(pages)} == TYPED_STREAMS
    decoded.clear()
    _plain_pages(monkeypatch)
    plain = run(config)
    assert plain.error is None
    assert not any(any(pages) for pages in decoded.values())

    for stream in TYPED_STREAMS:
        columns = set(typed.schema(stream)["properties"])
        got, expected = typed.records(stream), plain.records(stream)
        assert expected, f"the seeded account has {stream}"
        assert len(got) == len(expected), stream
        for record, reference in zip(got, expected, strict=True):
            # Every column is present; the ones the API did not send are null.
            assert set(record) == columns, stream
            assert record == {**dict.fromkeys(columns), **reference}, stream
    # The same state, and the other streams exactly as before.
    assert typed.state == plain.state
    for stream in {m["stream"] for m in plain.types("RECORD")} - TYPED_STREAMS:
        assert typed.records(stream) == plain.records(stream), stream

    # The paths' parts were all exercised: delete markers, archived deals, labels, composites.
    deals = typed.records("deals")
    assert any(d["_sdc_deleted_at"] for d in deals)
    assert any(d["is_archived"] for d in deals)
    assert any(d.get("delivery_address_locality") for d in deals)
    assert any(d.get("products_of_interest") for d in deals)


def test_a_key_the_schema_does_not_know_takes_the_plain_path(
    pipedrive_simulator, run, config_for, catalog_with, decoded, monkeypatch, caplog
):
    # As when Pipedrive adds a property after this tap was released: persons' label_ids is
    # taken out of what the tap knows, so every persons page carries a key its rows lack.
    monkeypatch.delitem(OPENAPI.streams["persons"]["schema"]["properties"], "label_ids")
    config = config_for(pipedrive_simulator)
    caplog.set_level(logging.INFO)
    result = run(config, catalog=catalog_with(config, ["persons", "deals"]))
    assert result.error is None
    assert decoded["persons"]
    assert not any(decoded["persons"])
    assert all(decoded["deals"])
    persons = result.records("persons")
    assert sorted(p["id"] for p in persons) == sorted(
        p["id"] for p in pipedrive_simulator.truth("persons")
    )
    assert not any("label_ids" in p for p in persons)
    assert "Properties ['label_ids'] of 'persons' are not in the catalog schema" in caplog.text
    # Counted for the data-quality metrics: one dropped value per person the API sent it for.
    assert result.tap is not None
    dropped = result.tap.api.metrics.registry.get_sample_value(
        "pipeboard_tap_values_dropped_total", {"stream": "persons", "reason": "not_in_schema"}
    )
    sent = sum(1 for p in pipedrive_simulator.truth("persons") if "label_ids" in p)
    assert dropped == sent > 0


def test_unselected_columns_and_carried_keys_are_not_emitted(
    pipedrive_simulator, run, config_for, catalog_with
):
    config = config_for(pipedrive_simulator)
    catalog = catalog_with(config, ["deals", "deal_products"])
    dropped = {"title", "delivery_address_locality", "region", "_sdc_deleted_at"}
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == "deals")
    for meta in entry["metadata"]:
        if meta["breadcrumb"][-1:] and meta["breadcrumb"][-1] in dropped:
            meta["metadata"]["selected"] = False
    result = run(config, catalog=catalog)
    assert result.error is None
    deals = result.records("deals")
    assert deals
    expected = set(result.schema("deals")["properties"]) - dropped
    assert all(set(d) == expected for d in deals)
    assert not any("products_count" in d for d in deals)
    # products_count still decided which deals' line items were requested.
    assert result.records("deal_products")


def test_a_list_item_that_is_not_an_object_is_named(pipedrive_simulator, config_for):
    tap = TapPipedrive(config=config_for(pipedrive_simulator), parse_env_config=False)
    with pytest.raises(MalformedResponseError, match="/api/v1/notes sent a list item that is not"):
        tap.streams["notes"].post_process(5)


def _fields():
    def definition(key, name, field_type, options=None):
        return {
            "field_code": key,
            "field_name": name,
            "field_type": field_type,
            "options": options,
            "is_custom_field": True,
        }

    return plan_custom_fields(
        [
            definition("e" * 40, "Kind", "enum", [{"id": 1, "label": "One"}]),
            definition(
                "s" * 40, "Tags", "set", [{"id": 1, "label": "One"}, {"id": 2, "label": "Two"}]
            ),
            definition("m" * 40, "Budget", "monetary"),
            definition("a" * 40, "HQ address", "address"),
            definition("n" * 40, "Seats", "double"),
        ],
        reserved=("id", "update_time"),
    )


def _pages(columns=None, **kwargs):
    fields = _fields()
    if columns is None:
        columns = ["id", "update_time", "is_deleted", "_sdc_deleted_at"]
        for f in fields:
            columns += [column for _, column, _ in f.parts]
    return TypedPages(
        keys=["id", "update_time", "is_deleted", "custom_fields"],
        custom_fields=fields,
        columns=columns,
        deleted_flags=(("is_deleted", True),),
        deleted_column="_sdc_deleted_at",
        **kwargs,
    )


ROWS = [
    {
        "id": 1,
        "update_time": "2026-01-01T00:00:00Z",
        "is_deleted": True,
        "custom_fields": {
            "e" * 40: 1,
            "s" * 40: [2, 1, 9],
            "m" * 40: {"value": 10.5, "currency": "EUR"},
            "a" * 40: {"value": "Main St 1, Tallinn", "locality": "Tallinn"},
            "n" * 40: 12345678901234567890,
            "x" * 40: "a field created after discovery",
        },
    },
    {"id": 2, "update_time": "2026-01-01T00:00:01Z", "is_deleted": False, "custom_fields": None},
    {"id": 3, "update_time": "2026-01-01T00:00:02Z", "custom_fields": {"e" * 40: 7}},
]


def test_typed_rows_build_what_the_flattener_makes():
    pages = _pages()
    body = orjson.dumps({"success": True, "data": ROWS, "additional_data": {"next_cursor": "c"}})
    envelope = pages.decode(body)
    assert envelope is not None
    assert envelope["additional_data"] == {"next_cursor": "c"}
    built = [pages.build(row) for row in envelope["data"]]

    flatten = PlainRecordBuilder(_fields())
    for record, row in zip(built, copy.deepcopy(ROWS), strict=True):
        reference = flatten(row)
        reference["_sdc_deleted_at"] = row["update_time"] if row.get("is_deleted") else None
        assert record == {**dict.fromkeys(record), **reference}
    assert built[0]["kind"] == "One"
    assert built[0]["tags"] == ["Two", "One", "9"]
    assert built[0]["budget_currency"] == "EUR"
    assert built[0]["hq_address_locality"] == "Tallinn"
    assert built[0]["seats"] == 12345678901234567890
    assert built[0]["_sdc_deleted_at"] == "2026-01-01T00:00:00Z"
    assert built[1]["kind"] is None
    assert built[1]["_sdc_deleted_at"] is None
    assert built[2]["kind"] == "7"
    assert built[2]["is_deleted"] is None
    assert pages.value(envelope["data"][2], "update_time") == "2026-01-01T00:00:02Z"
    assert pages.value(envelope["data"][2], "no_such_key") is None


def test_only_selected_columns_and_carried_keys_are_built():
    pages = _pages(columns=["id", "hq_address_locality"], carried=("products_count",))
    body = b'{"data": [{"id": 5, "products_count": 2, "custom_fields": {}}]}'
    envelope = pages.decode(body)
    assert envelope is not None
    assert pages.build(envelope["data"][0]) == {
        "id": 5,
        "hq_address_locality": None,
        "products_count": 2,
    }


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"data": [{"id": 1, "brand_new": true}]}', id="unknown-key"),
        pytest.param(b'{"data": [1, 2]}', id="rows-not-objects"),
        pytest.param(b'{"data": {"id": 1}}', id="data-not-a-list"),
        pytest.param(b"null", id="null-body"),
        pytest.param(b"[]", id="array-body"),
        pytest.param(b'{"data": [{"id": 1}', id="truncated"),
        pytest.param(b"<html>", id="not-json"),
    ],
)
def test_bodies_that_do_not_fit_are_left_to_the_plain_path(body):
    assert _pages().decode(body) is None


def test_null_data_keeps_its_envelope():
    envelope = _pages().decode(b'{"success": true, "data": null}')
    assert envelope == {"success": True, "data": None, "additional_data": None}


def test_delete_markers_must_be_constants():
    with pytest.raises(TypeError, match="Delete marker of 'is_deleted' must be a constant"):
        TypedPages(
            keys=["id", "is_deleted"],
            custom_fields=[],
            columns=["id", "_sdc_deleted_at"],
            deleted_flags=(("is_deleted", object()),),
            deleted_column="_sdc_deleted_at",
        )
