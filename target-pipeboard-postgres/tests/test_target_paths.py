"""Batch bounds, the SDK record path (stream maps, validation), and an interrupted overwrite."""

from __future__ import annotations

import io
import json

import pytest
from singer_sdk.exceptions import InvalidRecord
from target_pipeboard_postgres.target import TargetPipeboardPostgres

SCHEMA = {
    "type": "SCHEMA",
    "stream": "deals",
    "key_properties": ["id"],
    "schema": {"properties": {"id": {"type": "integer"}, "title": {"type": ["null", "string"]}}},
}


def singer(*records: dict, version: int | None = None) -> str:
    lines = [json.dumps(SCHEMA)]
    for record in records:
        message = {"type": "RECORD", "stream": "deals", "record": record}
        if version is not None:
            message["version"] = version
        lines.append(json.dumps(message))
    return "\n".join(lines) + "\n"


def batches(target: TargetPipeboardPostgres) -> float:
    value = target.metrics.registry.get_sample_value(
        "pipeboard_target_batch_rows_count", {"stream": "deals"}
    )
    return value or 0.0


def test_batches_are_bounded_by_bytes(target_config, rows):
    target = TargetPipeboardPostgres(config={**target_config, "batch_size_bytes": 300})
    text = singer(*({"id": i, "title": "x" * 100} for i in range(10)))
    target.listen(io.StringIO(text))
    assert batches(target) == 5  # two ~140-byte lines fill a batch
    assert len(rows("deals")) == 10


def test_batches_are_bounded_by_rows(target_config):
    target = TargetPipeboardPostgres(config={**target_config, "batch_size_rows": 4})
    target.listen(io.StringIO(singer(*({"id": i} for i in range(10)))))
    assert batches(target) == 3


def test_stream_maps_use_the_sdk_path(run_target, rows):
    run_target(
        singer({"id": 1, "title": "secret"}, {"id": 2, "title": None}),
        stream_maps={"deals": {"title": "__NULL__", "label": "'deal ' + str(id)"}},
    )
    assert rows("deals") == [(1, "deal 1"), (2, "deal 2")]


def test_stream_maps_path_tracks_versions(run_target, rows):
    run_target(singer({"id": 1}, version=3), stream_maps={"deals": {"extra": "1"}})
    assert rows("deals", "id, _sdc_table_version") == [(1, 3)]


def test_validate_records_checks_each_record(run_target):
    with pytest.raises(InvalidRecord):
        run_target(singer({"id": 1, "title": 5}), validate_records="true")


def test_overwrite_interrupted_then_completed(target_config, rows):
    first = TargetPipeboardPostgres(config={**target_config, "load_method": "overwrite"})
    first.listen(io.StringIO(singer({"id": 1, "title": "old"}, {"id": 2, "title": "old"})))
    assert rows("deals", "id, title") == [(1, "old"), (2, "old")]
    # a run that dies after committing a batch: the table is untouched
    killed = TargetPipeboardPostgres(
        config={**target_config, "load_method": "overwrite", "batch_size_rows": 1}
    )
    killed.process_lines(io.StringIO(singer({"id": 3, "title": "new"}, {"id": 4, "title": "x"})))
    killed.target_connector.close()
    assert rows("deals", "id, title") == [(1, "old"), (2, "old")]
    # the next run replaces the contents with exactly its own records
    rerun = TargetPipeboardPostgres(config={**target_config, "load_method": "overwrite"})
    rerun.listen(io.StringIO(singer({"id": 4, "title": "new"}, {"id": 5, "title": "new"})))
    assert rows("deals", "id, title") == [(4, "new"), (5, "new")]


def test_validate_records_loads_valid_records(run_target, rows):
    run_target(singer({"id": 1, "title": "ok"}), validate_records=True)
    assert rows("deals") == [(1, "ok")]


def test_exact_numbers_keeps_every_digit(run_target, rows):
    text = (
        '{"type": "SCHEMA", "stream": "n", "key_properties": ["id"], "schema": {"properties": '
        '{"id": {"type": "integer"}, "x": {"type": "number"}}}}\n'
        '{"type": "RECORD", "stream": "n", "record": {"id": 1, '
        '"x": 12345678901234567890.123456789}}\n'
        '{"type": "RECORD", "stream": "n", "record": {"id": 2, '
        '"x": 0.1000000000000000055511151231257827}}\n'
        '{"type": "RECORD", "stream": "n", "record": {"id": 3, '
        '"x": 123456789012345678901234567890}}\n'
    )
    run_target(text, exact_numbers="true")
    assert rows("n", "x::text", order="id") == [
        ("12345678901234567890.123456789",),
        ("0.1000000000000000055511151231257827",),
        ("123456789012345678901234567890",),
    ]


def test_record_missing_a_required_property(run_target, rows):
    # the SDK's TargetRecordMissingRequiredProperty input (see test_target_sdk_suite.py)
    text = (
        '{"type": "SCHEMA", "stream": "metrics", "key_properties": [], "schema": {"required": '
        '["id"], "type": "object", "properties": {"id": {"type": "integer"}, '
        '"metric": {"type": "integer"}}}}\n'
        '{"type": "RECORD", "stream": "metrics", "record": {"metric": 3215}}\n'
    )
    with pytest.raises(InvalidRecord, match="'id' is a required property"):
        run_target(text, validate_records=True)
    assert rows("metrics") == []
    run_target(text)  # not validated (the default): loaded, the missing value as NULL
    assert rows("metrics", "id, metric") == [(None, 3215)]
