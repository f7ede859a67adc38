"""Data-quality figures: one `_pipeboard_quality` row per stream per run, and their gauges."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import sql
from target_pipeboard_postgres.errors import BatchLoadError
from target_pipeboard_postgres.quality import refusal_reason
from target_pipeboard_postgres.target import TargetPipeboardPostgres

SCHEMA = {
    "type": "SCHEMA",
    "stream": "deals",
    "key_properties": ["id"],
    "bookmark_properties": ["update_time"],
    "schema": {
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": ["string", "null"]},
            "value": {"type": ["number", "null"]},
            "update_time": {"type": ["string", "null"], "format": "date-time"},
        }
    },
}


def _lines(*messages: dict[str, Any]) -> str:
    return "".join(json.dumps(m) + "\n" for m in messages)


def _record(id_: int, title: str | None, value: float | None, update_time: str) -> dict[str, Any]:
    return {
        "type": "RECORD",
        "stream": "deals",
        "record": {"id": id_, "title": title, "value": value, "update_time": update_time},
    }


def _run(config: dict[str, Any], text: str) -> TargetPipeboardPostgres:
    target = TargetPipeboardPostgres(config=config)
    target.listen(io.StringIO(text))
    return target


def _quality_rows(db: Any, schema: str) -> list[dict[str, Any]]:
    cur = db.execute(
        sql.SQL("SELECT * FROM {} ORDER BY run_ended_at").format(
            sql.Identifier(schema, "_pipeboard_quality")
        )
    )
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _gauge(target: TargetPipeboardPostgres, name: str, **labels: str) -> float | None:
    """A quality gauge's value: ``name`` without the ``pipeboard_target_quality_`` prefix."""
    return target.metrics.registry.get_sample_value(f"pipeboard_target_quality_{name}", labels)


def test_inserted_updated_unchanged_nulls_duplicates_and_freshness(
    target_config, db, pg_schema, capsys
) -> None:
    recent = (datetime.now(tz=UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    first = _lines(
        SCHEMA,
        _record(1, "one", 10, "2024-05-01T00:00:00Z"),
        _record(2, None, 20, "2024-05-01T00:00:00Z"),
        _record(3, "three\u0000", None, "2024-05-02T00:00:00Z"),
        _record(4, None, None, recent),
    )
    target = _run(target_config, first)
    (run1,) = _quality_rows(db, pg_schema)
    assert run1["stream"] == "deals"
    assert run1["table_name"] == "deals"
    assert run1["succeeded"] is True
    assert (run1["rows_received"], run1["rows_inserted"], run1["rows_updated"]) == (4, 4, 0)
    assert run1["null_share"] == {"id": 0.0, "title": 0.5, "value": 0.5, "update_time": 0.0}
    assert run1["nul_characters_stripped"] == 1
    assert run1["replication_key"] == "update_time"
    assert run1["newest_replication_value"] == datetime.fromisoformat(recent)
    assert 2 * 3600 - 60 < run1["freshness_lag_seconds"] < 2 * 3600 + 600
    assert (run1["columns_added"], run1["columns_widened"]) == (0, 0)  # a new table
    assert _gauge(target, "null_share", stream="deals", column="title") == 0.5
    assert _gauge(target, "rows", stream="deals", outcome="inserted") == 4
    assert _gauge(target, "values_changed", stream="deals", change="nul_stripped") == 1

    # Second run: 1 unchanged, 2 updated (one twice in the batch), 1 new; nothing newer; a new
    # property adds a column and a number where integers were widens one.
    evolved = json.loads(json.dumps(SCHEMA))
    evolved["schema"]["properties"]["stage"] = {"type": ["string", "null"]}
    evolved["schema"]["properties"]["id"] = {"type": "number"}
    second = _lines(
        evolved,
        _record(1, "one", 10, "2024-05-01T00:00:00Z"),
        _record(2, "two", 20, "2024-05-01T00:00:00Z"),
        _record(3, "three, edited", None, "2024-05-02T00:00:00Z"),
        _record(3, "three, edited again", None, "2024-05-02T00:00:00Z"),
        _record(5, "five", 50, "2024-05-03T00:00:00Z"),
    )
    target = _run(target_config, second)
    capsys.readouterr()
    run2 = _quality_rows(db, pg_schema)[1]
    assert run2["run_id"] != run1["run_id"]
    assert run2["rows_received"] == 5
    assert run2["duplicate_keys"] == 1
    assert (run2["rows_inserted"], run2["rows_updated"], run2["rows_unchanged"]) == (1, 2, 1)
    assert (run2["columns_added"], run2["columns_widened"]) == (1, 1)
    assert run2["null_share"]["title"] == 0.0
    assert run2["null_share"]["stage"] == 1.0
    # The newest value loaded so far is still the first run's.
    assert run2["newest_replication_value"] == datetime.fromisoformat(recent)
    assert run2["freshness_lag_seconds"] > run1["freshness_lag_seconds"]
    # The previous run's null share goes out next to this run's (the alert compares them).
    assert _gauge(target, "null_share_previous", stream="deals", column="title") == 0.5
    assert _gauge(target, "duplicate_keys", stream="deals") == 1


def test_activate_version_retires_rows(target_config, db, pg_schema) -> None:
    version = {"type": "ACTIVATE_VERSION", "stream": "deals", "version": 2}
    old = dict(_record(1, "a", 1, "2024-05-01T00:00:00Z"), version=1)
    old2 = dict(_record(2, "b", 2, "2024-05-01T00:00:00Z"), version=1)
    new = dict(_record(1, "a", 1, "2024-05-01T00:00:00Z"), version=2)
    _run(target_config, _lines(SCHEMA, old, old2))
    _run(target_config, _lines(SCHEMA, new, version))
    run2 = _quality_rows(db, pg_schema)[1]
    assert run2["rows_retired"] == 1


def test_a_refused_value_is_recorded_with_its_reason(target_config, db, pg_schema) -> None:
    schema = json.loads(json.dumps(SCHEMA))
    schema["schema"]["properties"]["value"] = {"type": ["number", "null"]}
    bad = _record(2, "b", 1, "2024-05-01T00:00:00Z")
    bad["record"]["value"] = "not a number"
    text = _lines(schema, _record(1, "a", 1, "2024-05-01T00:00:00Z"), bad)
    target = TargetPipeboardPostgres(config=target_config)
    with pytest.raises(BatchLoadError):
        target.listen(io.StringIO(text))
    (row,) = _quality_rows(db, pg_schema)
    assert row["succeeded"] is False
    assert row["records_refused"] == 1
    assert row["refused_reasons"] == {"number_refused": 1}
    assert _gauge(target, "records_refused", stream="deals", reason="number_refused") == 1


def test_refusal_reasons_are_short_and_stable() -> None:
    assert refusal_reason(BatchLoadError("s", 'invalid input syntax for type uuid: "x"')) == (
        "invalid_string"
    )
    assert refusal_reason(BatchLoadError("s", "value out of range for type integer")) == (
        "number_refused"
    )
    assert refusal_reason(BatchLoadError("s", "deadlock detected")) == "refused_by_database"


def test_data_quality_off_writes_and_pushes_nothing(target_config, db, pg_schema) -> None:
    target = _run(
        {**target_config, "data_quality": "false"},
        _lines(SCHEMA, _record(1, None, 1, "2024-05-01T00:00:00Z")),
    )
    tables = db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (pg_schema,)
    ).fetchall()
    assert ("deals",) in tables
    assert ("_pipeboard_quality",) not in tables
    assert _gauge(target, "rows_received", stream="deals") is None


def test_a_column_without_equality_leaves_the_batch_unclassified_not_failed(
    target_config, db, pg_schema
) -> None:
    schema = json.loads(json.dumps(SCHEMA))
    schema["schema"]["properties"]["extra"] = {"type": ["object", "null"], "x-sql-datatype": "json"}
    records = [dict(_record(i, "t", i, "2024-05-01T00:00:00Z")) for i in (1, 2)]
    for record in records:
        record["record"]["extra"] = {"a": 1}
    _run(target_config, _lines(schema, *records))
    _run(target_config, _lines(schema, *records, records[0]))  # an update, through the stage
    runs = _quality_rows(db, pg_schema)
    assert [r["rows_received"] for r in runs] == [2, 3]
    # Not comparable: counted as unclassified, not as inserted/updated/unchanged guesses.
    assert runs[1]["duplicate_keys"] == 1
    assert runs[1]["rows_unclassified"] == 2
    assert (runs[1]["rows_inserted"], runs[1]["rows_updated"], runs[1]["rows_unchanged"]) == (
        0,
        0,
        0,
    )
    count = db.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(pg_schema, "deals"))
    ).fetchone()
    assert count == (2,)


def test_null_share_of_a_large_batch_is_estimated_from_a_sample(
    target_config, db, pg_schema
) -> None:
    # 6,000 records in one batch, `title` NULL in 40% of them in a periodic pattern.
    records = [
        _record(i, None if i % 5 < 2 else "t", i, "2024-05-01T00:00:00Z") for i in range(6000)
    ]
    _run(target_config, _lines(SCHEMA, *records))
    (row,) = _quality_rows(db, pg_schema)
    assert row["rows_received"] == 6000
    assert row["rows_inserted"] == 6000
    assert abs(row["null_share"]["title"] - 0.4) < 0.07
    assert row["null_share"]["id"] == 0.0
