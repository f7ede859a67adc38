"""History mode (`history_streams`) against real Postgres, from scenario files."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from target_pipeboard_postgres.errors import InvalidSettingError, SchemaError
from target_pipeboard_postgres.target import TargetPipeboardPostgres

VERSION_COLUMNS = "_valid_from, _valid_to, _is_current"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def assert_chained(versions: list[tuple]) -> None:
    """Versions of one key (ordered by _valid_from, last three columns the version columns) do
    not overlap, leave no gap, and only an open last one is current."""
    for before, after in itertools.pairwise(versions):
        assert before[-2] == after[-3], versions  # ends exactly where the next one starts
        assert before[-1] is False, versions
    for version in versions:
        assert version[-1] is (version[-2] is None), versions


def test_versions_across_runs_unchanged_records_and_deletes(run_target, rows, column_types):
    history = ["deals"]
    run_target("history_run1.singer", history_streams=history)
    run_target("history_run2.singer", history_streams=history)
    run_target("history_run3.singer", history_streams=history)
    types = column_types("deals_history")
    assert {"_valid_from", "_valid_to", "_is_current"} <= set(types)
    assert types["_valid_from"] == "timestamp with time zone"
    assert types["_is_current"] == "boolean"
    got = rows("deals_history", f"id, title, value, {VERSION_COLUMNS}", order="id, _valid_from")
    assert got == [
        (
            1,
            "Big deal",
            Decimal(100),
            at("2024-05-01T10:00:00Z"),
            at("2024-05-02T09:30:00Z"),
            False,
        ),
        (
            1,
            "Big deal",
            Decimal(250),
            at("2024-05-02T09:30:00Z"),
            at("2024-05-03T08:00:00Z"),
            False,
        ),
        (1, "Big deal, won", Decimal(250), at("2024-05-03T08:00:00Z"), None, True),
        # re-sent unchanged in run 2: no new version; deleted in run 3: closed at the delete
        (
            2,
            "Small deal",
            Decimal(5),
            at("2024-05-01T11:00:00Z"),
            at("2024-05-03T09:00:00Z"),
            False,
        ),
        # re-sent unchanged in run 3: still one version
        (3, "New deal", None, at("2024-05-02T10:00:00Z"), None, True),
    ]
    for deal in (1, 2, 3):
        assert_chained([r for r in got if r[0] == deal])
    # The current table is loaded as without history mode.
    assert rows("deals", "id, title, _sdc_deleted_at IS NOT NULL") == [
        (1, "Big deal, won", False),
        (2, "Small deal", True),
        (3, "New deal", False),
    ]
    # A rerun of everything adds nothing (every record equals the version in effect then).
    for name in ("history_run1.singer", "history_run2.singer", "history_run3.singer"):
        run_target(name, history_streams=history)
    assert (
        rows("deals_history", f"id, title, value, {VERSION_COLUMNS}", order="id, _valid_from")
        == got
    )


def test_singer_metadata_alone_is_no_new_version(run_target, rows):
    config = {"history_streams": ["deals"], "add_record_metadata": True}
    run_target("history_run1.singer", **config)
    run_target("history_run1.singer", **config)  # new _sdc_received_at, _sdc_batched_at, ...
    assert rows("deals_history", "id, _is_current") == [(1, True), (2, True)]
    received = rows("deals", "_sdc_received_at")
    assert rows("deals_history", "_sdc_received_at") != received  # the first run's metadata


def test_an_as_of_query_reads_the_table_at_any_time(run_target, db, pg_schema):
    for name in ("history_run1.singer", "history_run2.singer", "history_run3.singer"):
        run_target(name, history_streams=["deals"])
    query = (
        f'SELECT id, title, value FROM "{pg_schema}".deals_history '
        "WHERE _valid_from <= %(t)s AND (_valid_to IS NULL OR _valid_to > %(t)s) ORDER BY id"
    )
    assert db.execute(query, {"t": at("2024-05-02T00:00:00Z")}).fetchall() == [
        (1, "Big deal", Decimal(100)),
        (2, "Small deal", Decimal(5)),
    ]
    assert db.execute(query, {"t": at("2024-05-03T10:00:00Z")}).fetchall() == [
        (1, "Big deal, won", Decimal(250)),
        (3, "New deal", None),
    ]


def test_out_of_order_versions_take_their_place_in_the_chain(run_target, rows):
    run_target("history_out_of_order.singer", history_streams=["deals"], batch_size_rows=1)
    got = rows("deals_history", f"title, {VERSION_COLUMNS}", order="_valid_from")
    assert got == [
        ("v0", at("2024-05-31T00:00:00Z"), at("2024-06-01T00:00:00Z"), False),
        ("v1", at("2024-06-01T00:00:00Z"), at("2024-06-02T00:00:00Z"), False),
        ("v2", at("2024-06-02T00:00:00Z"), at("2024-06-03T00:00:00Z"), False),
        ("v3", at("2024-06-03T00:00:00Z"), None, True),
    ]
    assert_chained(got)
    # The current table holds the last record received, as always (last write wins).
    assert rows("deals", "title") == [("v0",)]


def test_same_instant_versions_the_later_one_replaces_the_earlier(run_target, rows):
    run_target("history_same_second.singer", history_streams=["deals"], batch_size_rows=1)
    assert rows("deals_history", f"title, {VERSION_COLUMNS}", order="_valid_from") == [
        ("second", at("2024-06-01T12:00:00Z"), at("2024-06-01T12:00:01Z"), False),
        ("third", at("2024-06-01T12:00:01Z"), None, True),
    ]


def test_hard_deletes_close_the_current_version(run_target, rows):
    config = {"history_streams": ["deals"], "hard_delete": True}
    run_target("history_run1.singer", **config)
    run_target("history_run3.singer", **config)
    assert rows("deals", "id") == [(1,), (3,)]
    assert rows("deals_history", f"id, title, {VERSION_COLUMNS}", order="id, _valid_from") == [
        (1, "Big deal", at("2024-05-01T10:00:00Z"), at("2024-05-03T08:00:00Z"), False),
        (1, "Big deal, won", at("2024-05-03T08:00:00Z"), None, True),
        (2, "Small deal", at("2024-05-01T11:00:00Z"), at("2024-05-03T09:00:00Z"), False),
        (3, "New deal", at("2024-05-02T10:00:00Z"), None, True),
    ]


@pytest.mark.parametrize("hard_delete", [False, True], ids=["soft", "hard"])
def test_activate_version_retirement_closes_versions(run_target, rows, hard_delete):
    config = {"history_streams": ["*"], "hard_delete": hard_delete}
    started = datetime.now(tz=UTC)
    run_target("activate_version.singer", **config)
    run_target("activate_version_next.singer", **config)
    current = rows("pipelines_history", "id, _is_current", order="id, _valid_from")
    live = {row[0] for row in rows("pipelines", "id, _sdc_deleted_at") if row[1] is None}
    open_ids = {row[0] for row in current if row[1]}
    assert open_ids == live
    closed = rows("pipelines_history", "id, _valid_to", order="id, _valid_from")
    retired = {i for i, _ in closed} - live
    assert retired, "the scenario retires some pipelines"
    for deal_id, valid_to in closed:
        if deal_id in retired:
            assert valid_to is not None
            assert valid_to >= started - timedelta(seconds=5)


def test_schema_evolution_and_renamed_fields_reach_the_history_table(
    run_target, rows, column_types
):
    config = {"history_streams": ["accounts"]}
    run_target("history_evolution_run1.singer", **config)
    run_target("history_evolution_run2.singer", **config)
    table, history = column_types("accounts"), column_types("accounts_history")
    version_columns = {"_valid_from", "_valid_to", "_is_current"}
    assert {k: v for k, v in history.items() if k not in version_columns} == table
    assert history["amount"] == "numeric"
    assert "note" in history
    assert "sales_region" not in history  # the renamed field kept its column
    assert rows("accounts_history", f"id, amount, region, note, {VERSION_COLUMNS}") == [
        (
            1,
            Decimal(10),
            "EMEA",
            None,
            at("2024-01-01T00:00:00Z"),
            at("2024-01-02T00:00:00Z"),
            False,
        ),
        (1, Decimal("10.5"), "EMEA", "upsold", at("2024-01-02T00:00:00Z"), None, True),
    ]


def test_a_generic_taps_stream_keeps_history(run_target, rows):
    config = {"history_streams": ["shop-orders"]}
    run_target("history_generic_orders_run1.singer", **config)
    run_target("history_generic_orders_run2.singer", **config)
    got = rows(
        "orders_history",
        f"shop_id, order_id, status, line_items, {VERSION_COLUMNS}",
        order="shop_id, order_id, _valid_from",
    )
    # `paid` and `shipped` came in one run, one after the other: each is a version.
    items = [{"sku": "x", "qty": 2}]
    assert got == [
        (1, "A-1", "open", items, at("2024-03-01T08:00:00Z"), at("2024-03-02T07:00:00Z"), False),
        (1, "A-1", "paid", items, at("2024-03-02T07:00:00Z"), at("2024-03-03T07:00:00Z"), False),
        (1, "A-1", "shipped", items, at("2024-03-03T07:00:00Z"), None, True),
        (2, "A-1", "open", [], at("2024-03-01T09:00:00Z"), None, True),
    ]


def test_without_a_replication_key_versions_start_at_the_load_time(run_target, rows):
    schema = (
        '{"type": "SCHEMA", "stream": "notes", "key_properties": ["id"], "schema": '
        '{"properties": {"id": {"type": "integer"}, "body": {"type": "string"}}}}\n'
    )
    before = datetime.now(tz=UTC)
    run_target(
        schema + '{"type": "RECORD", "stream": "notes", "record": {"id": 1, "body": "a"}}\n',
        history_streams=["notes"],
    )
    middle = datetime.now(tz=UTC)
    run_target(
        schema + '{"type": "RECORD", "stream": "notes", "record": {"id": 1, "body": "b"}}\n',
        history_streams=["notes"],
    )
    after = datetime.now(tz=UTC)
    (first, second) = rows("notes_history", f"body, {VERSION_COLUMNS}", order="_valid_from")
    assert (first[0], second[0]) == ("a", "b")
    assert before <= first[1] <= middle <= second[1] <= after
    assert first[2] == second[1]
    assert (first[3], second[2], second[3]) == (False, None, True)


def test_history_needs_upsert(target_config):
    for method in ("append-only", "overwrite"):
        config = {**target_config, "history_streams": ["deals"], "load_method": method}
        with pytest.raises(InvalidSettingError, match="history mode needs load_method `upsert`"):
            TargetPipeboardPostgres(config=config)


def test_a_named_stream_without_keys_is_an_error_and_star_skips_it(run_target, rows, caplog):
    keyless = (
        '{"type": "SCHEMA", "stream": "events", "key_properties": [], "schema": '
        '{"properties": {"id": {"type": "integer"}}}}\n'
        '{"type": "RECORD", "stream": "events", "record": {"id": 1}}\n'
    )
    with pytest.raises(SchemaError, match=r"history mode .* needs key properties") as info:
        run_target(keyless, history_streams=["events"])
    assert "events" in str(info.value)
    run_target(keyless, history_streams=["*"])
    assert rows("events", "id") == [(1,)]
    assert "loaded without history" in caplog.text


def test_history_streams_given_as_text_is_read():
    from target_pipeboard_postgres.history_mode import HistorySettings

    assert HistorySettings.from_config('["deals", "persons"]', "upsert").streams == {
        "deals",
        "persons",
    }
    assert HistorySettings.from_config("deals,persons", None).streams == {"deals", "persons"}
    with pytest.raises(InvalidSettingError, match="expected a list of stream names"):
        HistorySettings.from_config({"deals": True}, None)


def test_history_streams_from_an_environment_variable_reach_the_target(target_config):
    config = {**target_config, "history_streams": '["deals", "persons"]'}
    target = TargetPipeboardPostgres(config=config)
    assert target.config["history_streams"] == ["deals", "persons"]
    assert target.history.applies("persons")
    assert not target.history.applies("stages")
