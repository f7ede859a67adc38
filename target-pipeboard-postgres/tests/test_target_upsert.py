"""Upserts: duplicates within a batch keep the last record, later runs update in place."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal


def test_upsert_across_runs_keeps_last_record_per_key(run_target, rows):
    states = run_target("upsert_run1.singer")
    assert states == [{"bookmarks": {"deals": {"updated": "2024-05-01T12:00:00Z"}}}]
    assert rows("deals", "id, title, value") == [
        (1, "first, edited", Decimal("11")),
        (2, "second", Decimal("20")),
    ]

    states = run_target("upsert_run2.singer")
    assert states == [{"bookmarks": {"deals": {"updated": "2024-05-02T10:00:00Z"}}}]
    assert rows("deals", "id, title, value, updated") == [
        (1, "first, edited", Decimal("11"), datetime(2024, 5, 1, 12, tzinfo=UTC)),
        (2, "second, edited", None, datetime(2024, 5, 2, 9, tzinfo=UTC)),
        (3, "", Decimal("30"), datetime(2024, 5, 2, 10, tzinfo=UTC)),
    ]


def test_duplicates_within_one_batch_keep_the_last_record(run_target, rows):
    # one batch per stream, keys repeated within it (single and composite, interleaved)
    states = run_target("duplicates_in_batch.singer")
    assert states == [{"bookmarks": {"persons": 12, "deal_products": 13}}]
    assert rows("persons", "id, name, email") == [
        (1, "Ada Lovelace", "ada@example.org"),
        (2, "Bob", None),  # the last record's null wins over the earlier value
        (3, "Cy", None),
    ]
    assert rows("deal_products", "deal_id, product_id, quantity", order="1, 2") == [
        (10, "A", None),
        (10, "B", 5),
        (11, "A", 2),
    ]


def test_duplicates_split_across_batches_keep_last(run_target, rows):
    lines = [
        '{"type": "SCHEMA", "stream": "s", "key_properties": ["k"], "schema": {"properties": '
        '{"k": {"type": "string"}, "n": {"type": "integer"}}}}'
    ]
    lines += [
        f'{{"type": "RECORD", "stream": "s", "record": {{"k": "k{i % 7}", "n": {i}}}}}'
        for i in range(50)
    ]
    run_target("\n".join(lines) + "\n", batch_size_rows=6)
    expected = sorted((f"k{r}", max(i for i in range(50) if i % 7 == r)) for r in range(7))
    assert rows("s", "k, n") == expected


def test_batches_queue_their_deals_for_stage_history(run_target, db, pg_schema):
    # new keys (loaded without staging) and updated keys (staged) are both queued
    run_target("upsert_run1.singer")
    run_target("upsert_run2.singer")
    pending = db.execute(
        f'SELECT deal_id FROM "{pg_schema}"._pipeboard_stage_pending ORDER BY 1'
    ).fetchall()
    assert pending == [(1,), (2,), (3,)]


def test_existing_table_without_unique_key_is_upserted_by_update_then_insert(
    run_target, rows, db, pg_schema
):
    # a table another loader made: no primary key, a narrower type, an extra column
    db.execute(
        f'CREATE TABLE "{pg_schema}".deals (id bigint, title varchar(20), value integer, '
        "legacy text)"
    )
    db.execute(f"INSERT INTO \"{pg_schema}\".deals VALUES (1, 'from before', 5, 'kept')")
    run_target("upsert_run1.singer")
    run_target("upsert_run2.singer")
    assert rows("deals", "id, title, value, legacy") == [
        (1, "first, edited", Decimal("11"), "kept"),
        (2, "second, edited", None, None),
        (3, "", Decimal("30"), None),
    ]
