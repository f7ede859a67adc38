"""The backfill commands of docs/operations.md, run for real on one synced account:
`meltano state clear`, `meltano run --full-refresh`, and a per-stream backfill from a date."""

from __future__ import annotations

import pytest
from psycopg import sql

# Extended stage (`make test-extended`): full syncs and backfills through meltano run (about
# 90 s), outside `make test` to keep the suite under 15 minutes.
pytestmark = pytest.mark.extended


def test_backfills_restore_the_data_without_duplicates(
    pipedrive_simulator_factory, pipeline_factory, utc
) -> None:
    simulator = pipedrive_simulator_factory(deals=80)
    pipeline = pipeline_factory(simulator)
    pipeline.run()
    deals = set(pipeline.truth("deals"))
    assert pipeline.tamper("deals") == len(deals)

    # 1. meltano state clear: the next run reads all history again.
    pipeline.meltano("state", "clear", "--force", pipeline.state_id)
    assert pipeline.stored_state() is None
    pipeline.run()
    assert not pipeline.tampered("deals")
    pipeline.assert_matches_truth("deals")
    pipeline.assert_matches_truth("persons")
    state = pipeline.stored_state()
    assert state is not None

    # 2. meltano run --full-refresh: ignores the bookmarks for one run, then saves new ones.
    pipeline.tamper("deals")
    pipeline.run("--full-refresh")
    assert not pipeline.tampered("deals")
    pipeline.assert_matches_truth("deals")
    pipeline.assert_no_duplicates("deal_products")
    refreshed = pipeline.stored_state()
    assert refreshed is not None
    assert (
        refreshed["singer_state"]["bookmarks"].keys() == state["singer_state"]["bookmarks"].keys()
    )

    # 3. Backfill one stream from a date. Lose the newer half of the deals in Postgres and tamper
    # with the older half: the backfill restores the newer half and leaves the older half alone.
    times = sorted(utc(record["update_time"]) for record in pipeline.truth("deals").values())
    since = times[len(times) // 2].strftime("%Y-%m-%dT%H:%M:%SZ")
    table = pipeline.table("deals")
    lost = pipeline.query(
        sql.SQL("delete from {} where update_time >= %s returning id").format(table), since
    )
    assert lost
    older = pipeline.tamper("deals")
    persons_before = pipeline.ids("persons")
    simulator.reset_stats()

    # The documented command (docs/operations.md, "Backfill one stream from a date").
    suffix = f"backfill-deals-{since[:10]}"
    pipeline.run(
        env={
            "TAP_PIPEDRIVE__SELECT_FILTER": '["deals"]',
            "TAP_PIPEDRIVE_START_DATE": since,
            "MELTANO_RUN_STATE_ID_SUFFIX": suffix,
        },
    )

    pipeline.assert_no_duplicates("deals")
    assert {str(i) for i in pipeline.ids("deals")} == deals
    assert len(pipeline.tampered("deals")) == older, "rows older than the date were re-read"
    restored = pipeline.query(
        sql.SQL("select count(*) from {} where update_time >= %s").format(table), since
    )[0][0]
    assert restored == len(lost)
    # Only the deals stream was read; the sync's bookmarks were not touched; the backfill has
    # its own, so an interrupted backfill resumes.
    endpoints = simulator.stats()["endpoints"]
    assert not any("persons" in key or "activities" in key for key in endpoints), endpoints
    assert pipeline.ids("persons") == persons_before
    assert pipeline.stored_state() == refreshed
    backfill = pipeline.stored_state(f"{pipeline.state_id}:{suffix}")
    assert backfill is not None
    assert "deals" in backfill["singer_state"]["bookmarks"]
