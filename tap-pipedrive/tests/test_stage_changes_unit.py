"""Stage-change parsing, records and the two modes' state, without HTTP."""

from __future__ import annotations

import datetime as dt

import pytest
from tap_pipedrive.backfill import (
    MAX_BACKFILL_RETRIES,
    BackfillProgress,
    DealHead,
    IncrementalPlan,
    StageHistoryError,
    parse_time,
)
from tap_pipedrive.streams.history_base import page_items
from tap_pipedrive.streams.stage_changes import (
    StageMove,
    history_is_consistent,
    in_time_order,
    moves_from_changelog,
    moves_from_flow,
    records_for_deal,
)

UTC = dt.UTC


def t(text: str) -> dt.datetime:
    return parse_time(text)


def deal(**overrides) -> DealHead:
    record = {
        "id": 7,
        "add_time": "2026-01-01T08:00:00Z",
        "update_time": "2026-01-05T10:00:00Z",
        "stage_id": 3,
        "pipeline_id": 1,
        "stage_change_time": "2026-01-04T09:00:00Z",
        "creator_user_id": 11,
        **overrides,
    }
    return DealHead.from_record(record)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "2024-02-12 09:14:35", dt.datetime(2024, 2, 12, 9, 14, 35, tzinfo=UTC), id="v1"
        ),
        pytest.param(
            "2024-02-12T09:14:35Z", dt.datetime(2024, 2, 12, 9, 14, 35, tzinfo=UTC), id="z"
        ),
        pytest.param(
            "2024-02-12T11:14:35+02:00",
            dt.datetime(2024, 2, 12, 9, 14, 35, tzinfo=UTC),
            id="offset",
        ),
    ],
)
def test_parse_time(text, expected):
    assert parse_time(text) == expected


def test_parse_time_rejects_garbage():
    with pytest.raises(StageHistoryError, match="not a Pipedrive time"):
        parse_time("yesterday")


def test_changelog_stage_moves_newest_first_to_oldest_first():
    page = [
        {
            "field_key": "stage_id",
            "old_value": "2",
            "new_value": "3",
            "actor_user_id": 5,
            "time": "2026-01-04 09:00:00",
        },
        {
            "field_key": "title",
            "old_value": "a",
            "new_value": "b",
            "actor_user_id": 5,
            "time": "2026-01-03 09:00:00",
        },
        {
            "field_key": "stage_id",
            "old_value": "1",
            "new_value": "2",
            "actor_user_id": 6,
            "time": "2026-01-02T09:00:00Z",
        },
    ]
    assert in_time_order(moves_from_changelog(page)) == [
        StageMove(t("2026-01-02T09:00:00Z"), 1, 2, 6),
        StageMove(t("2026-01-04T09:00:00Z"), 2, 3, 5),
    ]


def test_flow_keeps_only_stage_deal_changes_with_event_ids():
    page = [
        {
            "object": "dealChange",
            "timestamp": "2026-01-04 09:00:00",
            "data": {
                "id": 901,
                "field_key": "stage_id",
                "old_value": 2,
                "new_value": 3,
                "user_id": 5,
                "log_time": "2026-01-04 09:00:00",
                "additional_data": {"old_value_formatted": "B", "new_value_formatted": "C"},
            },
        },
        {
            "object": "dealChange",
            "timestamp": "2026-01-03 09:00:00",
            "data": {"id": 900, "field_key": "value", "old_value": 1, "new_value": 2},
        },
        {"object": "note", "timestamp": "2026-01-03 09:00:00", "data": {"id": 4}},
    ]
    assert moves_from_flow(page) == [StageMove(t("2026-01-04T09:00:00Z"), 2, 3, 5, 901)]


def test_same_second_moves_keep_log_order():
    newest_first = [
        StageMove(t("2026-01-02T09:00:00Z"), 2, 3, 1),
        StageMove(t("2026-01-02T09:00:00Z"), 1, 2, 1),
    ]
    assert [m.to_stage_id for m in in_time_order(newest_first)] == [2, 3]


def test_null_data_is_an_empty_page_and_other_shapes_are_errors():
    assert page_items({"success": True, "data": None}) == []
    with pytest.raises(StageHistoryError, match="'data' is a dict"):
        page_items({"data": {"id": 1}})


def test_records_creation_from_first_move_and_stable_ids():
    moves = [
        StageMove(t("2026-01-02T09:00:00Z"), 1, 2, 6),
        StageMove(t("2026-01-04T09:00:00Z"), 2, 30, 5, 77),
    ]
    records = records_for_deal(deal(), moves, {1: 1, 2: 1, 30: 4}, "flow")
    assert [(r["id"], r["from_stage_id"], r["to_stage_id"], r["pipeline_id"]) for r in records] == [
        ("7:created", None, 1, 1),
        ("7:1767344400:1:2", 1, 2, 1),
        ("7:1767517200:2:30", 2, 30, 4),
    ]
    assert records[0]["changed_at"] == "2026-01-01T08:00:00Z"
    assert records[0]["user_id"] == 11
    assert records[2]["from_pipeline_id"] == 1
    assert records[2]["source_event_id"] == 77


def test_records_without_moves_enter_the_current_stage():
    never_moved = deal(stage_change_time=None)
    assert [
        (r["to_stage_id"], r["pipeline_id"])
        for r in records_for_deal(never_moved, [], {}, "changelog")
    ] == [(3, 1)]


def test_consistency_with_the_deal_record():
    moved = deal()
    assert not history_is_consistent(moved, [])
    assert not history_is_consistent(moved, [StageMove(t("2026-01-02T09:00:00Z"), 1, 2, 6)])
    assert history_is_consistent(moved, [StageMove(t("2026-01-04T09:00:00Z"), 2, 3, 6)])
    assert history_is_consistent(deal(stage_change_time=None), [])


def test_incremental_gate_reads_only_deals_that_entered_a_stage_since():
    plan = IncrementalPlan(gate=t("2026-01-04T09:00:00Z"), gate_ids={7})
    assert not plan.needs_history(deal())  # moved at the gate, already read then
    assert plan.needs_history(deal(id=8))  # moved at the gate second, not read
    assert not plan.needs_history(deal(id=9, stage_change_time="2026-01-03T00:00:00Z"))
    assert plan.needs_history(deal(id=10, stage_change_time="2026-01-04T09:00:01Z"))
    new = deal(id=11, add_time="2026-01-05T00:00:00Z", stage_change_time=None)
    assert plan.needs_history(new)
    assert IncrementalPlan().needs_history(deal(stage_change_time=None))  # first run: all


def test_interrupted_pass_resumes_without_moving_the_gate():
    gate = t("2026-01-01T00:00:00Z")
    plan = IncrementalPlan(gate=gate)
    early = deal(id=1, update_time="2026-01-02T00:00:00Z")
    plan.done(early)
    saved = plan.to_state()
    resumed = IncrementalPlan.from_state({"stage_changes": saved}, None)
    assert resumed.gate == gate  # a later-updated deal moved earlier is still read
    assert resumed.updated_since() == t("2026-01-02T00:00:00Z")
    assert resumed.already_done(early)
    late = deal(id=2, update_time="2026-01-06T00:00:00Z", stage_change_time="2026-01-01T12:00:00Z")
    assert resumed.needs_history(late)
    resumed.done(late)
    resumed.finish_pass()
    assert resumed.gate == t("2026-01-06T00:00:00Z")
    assert resumed.gate_ids == {2}
    assert resumed.resume_from is None


def test_held_back_deals_are_kept_compactly_and_released():
    plan = IncrementalPlan(gate=t("2026-02-01T00:00:00Z"))
    held = deal()
    assert plan.hold_back(held)
    again = IncrementalPlan.from_state({"stage_changes": plan.to_state()}, None)
    assert DealHead.from_record(again.held_back[7]) == held
    assert again.needs_history(held)  # even though older than the gate
    again.release(7)
    assert again.to_state()["held_back"] == []


def test_backfill_progress_estimate_and_summary():
    progress = BackfillProgress(total=100, runs=1)
    for deal_id in range(1, 21):
        progress.record_deal(deal(id=deal_id), 20, "done")
    progress.record_deal(deal(id=21), 20, "gone")
    progress.tokens = 500
    assert progress.after_id == 21
    assert progress.runs_left(tokens_per_run=400) == 4  # 79 deals x 20 tokens / 400
    assert progress.runs_left(tokens_per_run=None) is None
    line = progress.summary(tokens_this_run=440, tokens_per_run=400)
    assert "21/100 deals (21.0%)" in line
    assert "1 removed or merged (404/410) skipped" in line
    assert "about 4 more run(s)" in line
    restored = BackfillProgress.from_state({"backfill": progress.to_state()})
    assert restored == progress


def finished(progress: BackfillProgress) -> bool:
    progress.finish_listing(dt.datetime(2026, 1, 1, tzinfo=UTC))
    return progress.finish(dt.datetime(2026, 1, 1, tzinfo=UTC))


def test_a_complete_backfill_stays_complete():
    progress = BackfillProgress(runs=2, started_at="2025-12-30T00:00:00Z")
    for deal_id in range(1, 6):
        progress.record_deal(deal(id=deal_id), 20, "done")
    assert finished(progress)
    assert (progress.total, progress.runs_left(100)) == (5, 0)
    # The next run reads the same state: still complete, nothing reset.
    again = BackfillProgress.from_state({"backfill": progress.to_state()})
    assert again.complete
    assert (again.after_id, again.done, again.runs) == (5, 5, 2)
    message = again.complete_message()
    assert "complete since 2026-01-01T00:00:00Z" in message
    assert "no deal list or per-deal requests" in message
    assert "after 2025-12-30T00:00:00Z" in message  # no as_of: the run's own clock
    assert "stage_history_mode: incremental" in message
    assert "meltano state clear" in message
    assert "--full-refresh" in message
    again.as_of = "2025-12-29T10:00:00Z"  # the API's newest deal update when it began
    assert "after 2025-12-29T10:00:00Z" in again.complete_message()


def test_held_back_deals_are_kept_by_id_and_block_completion_until_read():
    progress = BackfillProgress()
    progress.record_deal(deal(id=1), 20, "done")
    progress.record_deal(deal(id=2), 20, "held_back")
    progress.record_deal(deal(id=3), 20, "done")
    assert not finished(progress)
    assert (progress.total, progress.runs_left(1000)) == (3, 1)
    saved = BackfillProgress.from_state({"backfill": progress.to_state()})
    assert [DealHead.from_record(h) for h in saved.held_back] == [deal(id=2)]
    assert "1 held back" in saved.summary(0, 1000)
    assert not saved.record_retry(2, 20, "held_back")  # still wrong: one more run
    assert not saved.finish(dt.datetime(2026, 1, 2, tzinfo=UTC))
    assert not saved.record_retry(2, 20, "done")
    assert saved.finish(dt.datetime(2026, 1, 3, tzinfo=UTC))
    assert (saved.done, saved.held_back, saved.given_up, saved.total) == (3, [], [], 3)


def test_held_back_deal_gone_or_given_up():
    progress = BackfillProgress()
    progress.record_deal(deal(id=1), 20, "held_back")
    progress.record_deal(deal(id=2), 20, "held_back")
    assert not finished(progress)
    assert not progress.record_retry(1, 20, "gone")  # merged meanwhile
    outcomes = [progress.record_retry(2, 20, "held_back") for _ in range(MAX_BACKFILL_RETRIES)]
    assert outcomes == [False] * (MAX_BACKFILL_RETRIES - 1) + [True]
    assert progress.finish(dt.datetime(2026, 1, 2, tzinfo=UTC))
    assert (progress.gone, progress.given_up, progress.handled) == (1, [2], 2)
    assert "1 given up after 3 retries (deal ids 2)" in progress.summary(0, None)
    assert "given up (deal ids 2)" in progress.complete_message()


def test_backfill_state_of_an_earlier_version_still_reads():
    old = {"after_id": 9, "done": 8, "held_back": 1, "runs": 1, "page_cursors": {}}
    progress = BackfillProgress.from_state({"backfill": old})
    assert (progress.after_id, progress.done, progress.held_back) == (9, 8, [])
    assert not progress.complete
