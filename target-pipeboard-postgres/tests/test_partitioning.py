"""Partitioned tables (`partitioned_tables`, `partition_interval`, `partition_retention_months`):
settings and partition arithmetic without a database, loading against real Postgres."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from target_pipeboard_postgres import identifiers, partitioning
from target_pipeboard_postgres import partitioning_sql as q
from target_pipeboard_postgres.errors import InvalidSettingError, TableSetupError
from target_pipeboard_postgres.partitioning import Bound, PartitionSettings, ranges_to_create
from target_pipeboard_postgres.target import TargetPipeboardPostgres

SCENARIOS = Path(__file__).parent / "scenarios"
CHANGES = {"deal_changes": "changed_at"}
ROW_COLUMNS = "id, deal_id, new_value, changed_at"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# Settings and arithmetic (no database)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param({"deal_changes": "changed_at"}, {"deal_changes": "changed_at"}, id="object"),
        pytest.param(
            ["deal_stage_changes", "deals_history"],
            {"deal_stage_changes": "changed_at", "deals_history": "_valid_from"},
            id="list-known",
        ),
        pytest.param('{"events": "happened_at"}', {"events": "happened_at"}, id="json-text"),
        pytest.param("person_changes, deals_history", None, id="comma-text"),
        pytest.param(
            {"Deal-Changes": "changed_at"}, {"deal_changes": "changed_at"}, id="conformed"
        ),
    ],
)
def test_tables_setting_forms(value, expected):
    got = PartitionSettings.from_config({"partitioned_tables": value}).tables
    if expected is None:
        expected = {"person_changes": "changed_at", "deals_history": "_valid_from"}
    assert dict(got) == expected


@pytest.mark.parametrize(
    ("config", "words"),
    [
        pytest.param({"partitioned_tables": ["events"]}, ["events", "time column"], id="unknown"),
        pytest.param({"partitioned_tables": {"events": ""}}, ["events"], id="empty-column"),
        pytest.param({"partitioned_tables": 5}, ["partitioned_tables"], id="not-object"),
        pytest.param({"partitioned_tables": "{bad"}, ["JSON"], id="bad-json"),
        pytest.param({"partition_interval": "week"}, ["partition_interval", "week"], id="interval"),
        pytest.param({"partition_retention_months": 0}, ["partition_retention_months"], id="ret0"),
        pytest.param({"partition_retention_months": "soon"}, ["soon"], id="ret-text"),
        pytest.param(
            {"partitioned_tables": ["deal_changes"], "load_method": "overwrite"},
            ["overwrite"],
            id="overwrite",
        ),
    ],
)
def test_bad_settings_fail_at_start_naming_the_setting(postgres_url, config, words):
    with pytest.raises(InvalidSettingError) as info:
        TargetPipeboardPostgres(config={"database_url": postgres_url, **config})
    for word in words:
        assert word in str(info.value)


def test_retention_from_an_environment_string_and_its_cutoff():
    settings = PartitionSettings.from_config({"partition_retention_months": "12"})
    assert settings.retention_months == 12
    assert settings.cutoff(date(2026, 12, 7)) == date(2025, 12, 1)
    assert PartitionSettings.from_config({}).cutoff() is None


def test_ranges_months_quarters_gaps_and_cutoff():
    months = [date(2024, 1, 1), date(2024, 2, 1), date(2024, 5, 1)]
    assert ranges_to_create(months, [], 1, None) == [
        (date(2024, 1, 1), date(2024, 2, 1)),
        (date(2024, 2, 1), date(2024, 3, 1)),
        (date(2024, 5, 1), date(2024, 6, 1)),
    ]
    assert ranges_to_create(months, [], 3, None) == [
        (date(2024, 1, 1), date(2024, 4, 1)),
        (date(2024, 4, 1), date(2024, 7, 1)),
    ]
    # Monthly partitions exist; a quarterly setting fills the gap between them, no overlap.
    existing = [
        Bound("a", date(2024, 1, 1), date(2024, 2, 1)),
        Bound("b", date(2024, 3, 1), date(2024, 4, 1)),
    ]
    assert ranges_to_create([date(2024, 2, 1), date(2024, 1, 1)], existing, 3, None) == [
        (date(2024, 2, 1), date(2024, 3, 1))
    ]
    # Nothing that would be expired at once.
    assert ranges_to_create(months, [], 1, date(2024, 3, 1)) == [
        (date(2024, 5, 1), date(2024, 6, 1))
    ]


def test_partition_names_fit_63_bytes_and_keep_their_month():
    long = "x" * 70
    name = q.partition_name(identifiers.identifier(long), date(2024, 3, 1))
    assert len(name.encode()) <= 63
    assert "_p202403_" in name  # the month stays readable before the hash
    assert name != q.partition_name(identifiers.identifier(long), date(2024, 4, 1))
    assert len(q.default_name("é" * 40).encode()) <= 63


# Against Postgres


@pytest.fixture
def other_schema(sibling_schema: Callable[[str], str]) -> str:
    """A second schema for the same input loaded without partitions (dropped afterwards)."""
    return sibling_schema("plain")


@pytest.fixture
def partitions(db: psycopg.Connection[Any], pg_schema: str) -> Callable[[str], dict[str, int]]:
    """Partition name -> rows in it, for a table of the test schema."""

    def fetch(table: str) -> dict[str, int]:
        names = db.execute(q.partitions(), {"schema": pg_schema, "table": table}).fetchall()
        result = {}
        for name, _, _ in names:
            count = db.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(pg_schema, name))
            ).fetchone()
            result[name] = count[0] if count else 0
        return result

    return fetch


def _rows_of(db: psycopg.Connection[Any], schema: str, table: str, columns: str, order: str):
    return db.execute(
        sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
            sql.SQL(columns), sql.Identifier(schema, table), sql.SQL(order)
        )
    ).fetchall()


def test_partitions_created_as_data_arrives_and_upserts_as_unpartitioned(
    run_target, rows, partitions, db, pg_schema, other_schema
):
    for schema, extra in ((pg_schema, {"partitioned_tables": CHANGES}), (other_schema, {})):
        run_target("partitioned_changes_run1.singer", default_target_schema=schema, **extra)
        if schema == pg_schema:
            assert partitions("deal_changes") == {
                "deal_changes_default": 1,
                "deal_changes_p202401": 1,
                "deal_changes_p202402": 2,
                "deal_changes_p202403": 1,
            }
        run_target("partitioned_changes_run2.singer", default_target_schema=schema, **extra)
    got = rows("deal_changes", ROW_COLUMNS)
    assert got == _rows_of(db, other_schema, "deal_changes", ROW_COLUMNS, "1")
    assert got == [
        (1, 10, "a", at("2024-01-15T08:00:00Z")),
        (2, 10, "b3", at("2024-02-12T09:00:00Z")),  # twice in one batch: the last one wins
        (3, 11, "c2", at("2024-04-02T10:00:00Z")),  # moved to April's partition
        (4, 12, "d2", at("2024-01-03T00:00:00Z")),  # out of DEFAULT into January's
        (5, 12, "e", at("2024-03-31T23:30:00Z")),
        (6, 13, "f", at("2024-05-05T05:00:00Z")),
        (7, 13, "g", None),
    ]
    assert partitions("deal_changes") == {
        "deal_changes_default": 1,
        "deal_changes_p202401": 2,
        "deal_changes_p202402": 1,
        "deal_changes_p202403": 1,
        "deal_changes_p202404": 1,
        "deal_changes_p202405": 1,
    }
    kind = db.execute(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = 'deal_changes'",
        (pg_schema,),
    ).fetchone()
    assert kind == ("p",)


def test_rerun_is_idempotent_and_append_only_loads_too(run_target, rows, partitions):
    config = {"partitioned_tables": CHANGES}
    run_target("partitioned_changes_run1.singer", **config)
    run_target("partitioned_changes_run2.singer", **config)
    before, layout = rows("deal_changes", ROW_COLUMNS), partitions("deal_changes")
    run_target("partitioned_changes_run2.singer", **config)
    assert rows("deal_changes", ROW_COLUMNS) == before
    assert partitions("deal_changes") == layout
    # append-only into another partitioned table: every record, each in its month
    run_target(
        SCENARIOS.joinpath("partitioned_changes_run2.singer")
        .read_text()
        .replace('"deal_changes"', '"change_log"'),
        load_method="append-only",
        partitioned_tables={"change_log": "changed_at"},
    )
    assert len(rows("change_log", "id")) == 6
    assert partitions("change_log") == {
        "change_log_default": 1,
        "change_log_p202401": 1,
        "change_log_p202402": 2,
        "change_log_p202404": 1,
        "change_log_p202405": 1,
    }


def _months_ago(months: int, day: int = 10) -> datetime:
    first = partitioning.add_months(datetime.now(tz=UTC).date().replace(day=1), -months)
    return datetime(first.year, first.month, day, 12, tzinfo=UTC)


def _changes_input(records: list[tuple[int, datetime | None]], stream: str = "deal_changes") -> str:
    lines = [
        SCENARIOS.joinpath("partitioned_changes_run1.singer").read_text().splitlines()[0],
    ]
    for key, moment in records:
        record = {"id": key, "deal_id": key, "new_value": str(key)}
        record["changed_at"] = moment.isoformat() if moment else None
        lines.append(json.dumps({"type": "RECORD", "stream": stream, "record": record}))
    return "\n".join(lines) + "\n"


def test_retention_drops_only_old_partitions_never_default_rows(run_target, rows, partitions):
    config = {"partitioned_tables": CHANGES}
    old, edge, recent = _months_ago(30), _months_ago(12), _months_ago(1)
    run_target(_changes_input([(1, old), (2, edge), (3, recent), (4, None)]), **config)
    old_name = f"deal_changes_p{old:%Y%m}"
    assert set(partitions("deal_changes")) == {
        "deal_changes_default",
        old_name,
        f"deal_changes_p{edge:%Y%m}",
        f"deal_changes_p{recent:%Y%m}",
    }
    # Twelve months back from the start of this month: the partition of 12 months ago stays.
    run_target(_changes_input([(5, recent)]), **config, partition_retention_months=12)
    assert partitions("deal_changes") == {
        "deal_changes_default": 1,
        f"deal_changes_p{edge:%Y%m}": 1,
        f"deal_changes_p{recent:%Y%m}": 2,
    }
    assert [r[0] for r in rows("deal_changes", "id")] == [2, 3, 4, 5]
    # A late row for an expired month stays in DEFAULT: no partition is made to be dropped.
    run_target(_changes_input([(6, old)]), **config, partition_retention_months=12)
    assert partitions("deal_changes")["deal_changes_default"] == 2
    assert old_name not in partitions("deal_changes")
    assert [r[0] for r in rows("deal_changes", "id")] == [2, 3, 4, 5, 6]


def test_history_mode_table_partitioned_by_valid_from(
    run_target, rows, partitions, db, pg_schema, other_schema
):
    columns = "id, title, value, _valid_from, _valid_to, _is_current"
    for schema, extra in (
        (pg_schema, {"partitioned_tables": ["deals_history"]}),
        (other_schema, {}),
    ):
        for name in ("history_run1.singer", "history_run2.singer", "history_run3.singer"):
            run_target(name, default_target_schema=schema, history_streams=["deals"], **extra)
    got = rows("deals_history", columns, order="id, _valid_from")
    assert got
    assert got == _rows_of(db, other_schema, "deals_history", columns, "id, _valid_from")
    assert rows("deals", "*") == _rows_of(db, other_schema, "deals", "*", "1")
    layout = partitions("deals_history")
    assert layout.pop("deals_history_default") == 0  # every version got its month
    assert sum(layout.values()) == len(got)
    assert set(layout) == {f"deals_history_p{row[3]:%Y%m}" for row in got}
    # The deals table itself is not partitioned (not named).
    assert partitions("deals") == {}


def test_history_retention_keeps_open_versions(run_target, rows, partitions, db, pg_schema):
    schema_line = SCENARIOS.joinpath("history_run1.singer").read_text().splitlines()[0]
    config = {"partitioned_tables": ["deals_history"], "history_streams": ["deals"]}

    def record(key: int, title: str, moment: datetime) -> str:
        body = {"id": key, "title": title, "value": 1, "update_time": moment.isoformat()}
        return json.dumps({"type": "RECORD", "stream": "deals", "record": body})

    old, newer = _months_ago(30), _months_ago(2)
    lines = [schema_line, record(1, "one", old), record(2, "two", old)]
    run_target("\n".join(lines) + "\n", **config)
    run_target("\n".join([schema_line, record(1, "one, later", newer)]) + "\n", **config)
    run_target(schema_line + "\n", **config, partition_retention_months=12)
    assert f"deals_history_p{old:%Y%m}" not in partitions("deals_history")
    # Deal 1's old version is closed: gone. Deal 2's only version is still open: kept.
    assert rows("deals_history", "id, title, _valid_to", order="id, _valid_from") == [
        (1, "one, later", None),
        (2, "two", None),
    ]
    assert partitions("deals_history")["deals_history_default"] == 1


def test_schema_evolution_reaches_every_partition(run_target, rows, partitions, db, pg_schema):
    config = {"partitioned_tables": CHANGES}
    run_target("partitioned_changes_run1.singer", **config)
    wider = (
        SCENARIOS.joinpath("partitioned_changes_run1.singer")
        .read_text()
        .splitlines()[0]
        .replace('"changed_at"', '"note": {"type": ["null", "string"]}, "changed_at"', 1)
        .replace(
            '"deal_id": {"type": ["null", "integer"]}', '"deal_id": {"type": ["null", "number"]}'
        )
    )
    record = {
        "id": 8,
        "deal_id": 1.5,
        "new_value": "h",
        "note": "new",
        "changed_at": "2024-02-01T00:00:00Z",
    }
    run_target(
        wider
        + "\n"
        + json.dumps({"type": "RECORD", "stream": "deal_changes", "record": record})
        + "\n",
        **config,
    )
    for name in partitions("deal_changes"):
        types = dict(
            db.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s",
                (pg_schema, name),
            ).fetchall()
        )
        assert types["note"] == "text", name
        assert types["deal_id"] == "numeric", name
    assert rows("deal_changes", "id, note", order="id")[-1] == (8, "new")


def test_existing_unpartitioned_table_is_a_clear_error(run_target, rows, pg_schema):
    run_target("partitioned_changes_run1.singer")
    with pytest.raises(TableSetupError) as info:
        run_target("partitioned_changes_run2.singer", partitioned_tables=CHANGES)
    message = str(info.value)
    assert f"{pg_schema}.deal_changes" in message
    assert "not partitioned" in message
    assert "rename" in message
    assert len(rows("deal_changes", "id")) == 5  # nothing loaded is lost


@pytest.mark.parametrize(
    ("column", "words"),
    [
        pytest.param("new_value", ["new_value", "type text"], id="not-a-time"),
        pytest.param("missing", ["missing", "not a column"], id="missing"),
    ],
)
def test_bad_time_column_is_a_clear_error(run_target, column, words):
    with pytest.raises(TableSetupError) as info:
        run_target("partitioned_changes_run1.singer", partitioned_tables={"deal_changes": column})
    for word in words:
        assert word in str(info.value)


def test_through_the_cli(tmp_path, postgres_url, pg_schema, rows, partitions):
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "database_url": postgres_url,
                "default_target_schema": pg_schema,
                "partitioned_tables": json.dumps(CHANGES),  # as an environment variable gives it
                "partition_interval": "quarter",
            }
        )
    )
    for name in ("partitioned_changes_run1.singer", "partitioned_changes_run2.singer"):
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from target_pipeboard_postgres.target import TargetPipeboardPostgres as T; "
                "T.cli()",
                "--config",
                str(config),
            ],
            input=SCENARIOS.joinpath(name).read_text(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "deal_changes" in json.loads(result.stdout.splitlines()[-1])["bookmarks"]
    assert partitions("deal_changes") == {
        "deal_changes_default": 1,
        "deal_changes_p202401": 4,
        "deal_changes_p202404": 2,
    }
    assert len(rows("deal_changes", "id")) == 7


def _stage_input() -> str:
    def schema(stream: str, props: dict[str, Any], key: str = "id") -> dict[str, Any]:
        body = {"type": "object", "properties": props}
        return {"type": "SCHEMA", "stream": stream, "key_properties": [key], "schema": body}

    def record(stream: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"type": "RECORD", "stream": stream, "record": body}

    integer, text = {"type": ["null", "integer"]}, {"type": ["null", "string"]}
    moment = {"type": ["null", "string"], "format": "date-time"}
    messages = [
        schema("stages", {"id": {"type": "integer"}, "name": text, "pipeline_id": integer}),
        *(
            record("stages", {"id": i, "name": name, "pipeline_id": 1})
            for i, name in ((1, "Lead"), (2, "Offer"), (3, "Won"))
        ),
        schema(
            "deals",
            {"id": {"type": "integer"}, "title": text, "stage_id": integer, "add_time": moment},
        ),
        record("deals", {"id": 1, "title": "a", "stage_id": 3, "add_time": "2024-01-05T10:00:00Z"}),
        record("deals", {"id": 2, "title": "b", "stage_id": 2, "add_time": "2024-02-05T10:00:00Z"}),
        schema(
            "deal_stage_changes",
            {
                "id": {"type": "string"},
                "deal_id": integer,
                "from_stage_id": integer,
                "to_stage_id": integer,
                "changed_at": moment,
            },
        ),
    ]
    changes = [
        ("c1", 1, None, 1, "2024-01-05T10:00:00Z"),
        ("c2", 1, 1, 2, "2024-02-01T10:00:00Z"),
        ("c3", 1, 2, 3, "2024-03-15T10:00:00Z"),
        ("c4", 2, None, 1, "2024-02-05T10:00:00Z"),
        ("c5", 2, 1, 2, "2024-04-20T10:00:00Z"),
    ]
    for key, deal, frm, to, when in changes:
        body = {"id": key, "deal_id": deal, "from_stage_id": frm, "to_stage_id": to}
        messages.append(record("deal_stage_changes", {**body, "changed_at": when}))
    return "".join(json.dumps(m) + "\n" for m in messages)


def test_stage_history_tables_partitioned_and_an_unpartitioned_one_rebuilt(
    run_target, rows, partitions, db, pg_schema, other_schema
):
    columns = "deal_id, stay_number, stage_id, entered_at, left_at, is_current"
    run_target(_stage_input())
    expected = rows("deal_stage_history", columns, order="1, 2")
    assert len(expected) == 5
    assert partitions("deal_stage_history") == {}
    # Named later: the derived table is rebuilt partitioned, with the same rows.
    run_target(_stage_input(), partitioned_tables=["deal_stage_history"])
    assert rows("deal_stage_history", columns, order="1, 2") == expected
    assert partitions("deal_stage_history") == {
        "deal_stage_history_default": 0,
        "deal_stage_history_p202401": 1,
        "deal_stage_history_p202402": 2,
        "deal_stage_history_p202403": 1,
        "deal_stage_history_p202404": 1,
    }
    assert len(rows("deal_stage_durations", "*")) > 0  # its views are back
    # From scratch, the stage changes partitioned too.
    tables = ["deal_stage_changes", "deal_stage_history"]
    run_target(_stage_input(), default_target_schema=other_schema, partitioned_tables=tables)
    assert _rows_of(db, other_schema, "deal_stage_history", columns, "1, 2") == expected
    for table in tables:
        found = db.execute(q.partitions(), {"schema": other_schema, "table": table}).fetchall()
        assert len(found) == 5, table  # four months and DEFAULT
