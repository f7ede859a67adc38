"""The nightly `stage-history-backfill` job: every deal's stage history, with its own state;
once complete, its runs request nothing, new deals are the sync's, and `--full-refresh` starts
it over."""

from __future__ import annotations

import pytest


def test_stage_history_backfill_job_reads_every_deal(
    pipedrive_simulator_factory, pipeline_factory
) -> None:
    simulator = pipedrive_simulator_factory(deals=60)
    pipeline = pipeline_factory(simulator)
    pipeline.meltano("run", "stage-history-backfill")

    deals = set(pipeline.truth("deals"))
    with_history = {
        str(row[0])
        for row in pipeline.query(
            f'select distinct deal_id from "{pipeline.schema}".deal_stage_changes'
        )
    }
    assert with_history == deals
    pipeline.assert_no_duplicates("deal_stage_changes")
    job_state = pipeline.stored_state(
        "dev:tap-pipedrive--stage-history-to-target-pipeboard-postgres"
    )
    assert job_state is not None
    assert "deal_stage_changes" in job_state["singer_state"]["bookmarks"]
    # Its own state ID: the 30-minute sync's bookmarks are not where the job's progress lives.
    assert pipeline.stored_state() is None
    # Only deal_stage_changes is selected: no other entity table was loaded.
    tables = {
        row[0]
        for row in pipeline.query(
            "select table_name from information_schema.tables where table_schema = %s",
            pipeline.schema,
        )
    }
    assert "persons" not in tables
    assert "activities" not in tables


BACKFILL_STATE_ID = "dev:tap-pipedrive--stage-history-to-target-pipeboard-postgres"
CHANGELOG = "GET /v1/deals/{id}/changelog"


# Extended stage (`make test-extended`): four meltano runs (about 2 minutes); a completed
# backfill that makes no request is also checked in tap-pipedrive/tests/test_stage_history_sim.py.
@pytest.mark.extended
def test_a_complete_backfill_job_stays_done_until_started_over(
    pipedrive_simulator_factory, pipeline_factory
) -> None:
    simulator = pipedrive_simulator_factory(deals=30)
    pipeline = pipeline_factory(simulator)
    deals = set(pipeline.truth("deals"))
    simulator.reset_stats()
    pipeline.meltano("run", "stage-history-backfill")
    assert simulator.stats()["endpoints"][CHANGELOG]["requests"] == len(deals)
    done = pipeline.stored_state(BACKFILL_STATE_ID)
    assert done is not None
    progress = done["singer_state"]["bookmarks"]["deal_stage_changes"]["backfill"]
    assert progress["completed_at"]

    # The next night: no deal list, no per-deal call, the same state, and a log line saying so.
    simulator.reset_stats()
    again = pipeline.meltano("run", "stage-history-backfill", env={"MELTANO_CLI_LOG_LEVEL": "info"})
    endpoints = simulator.stats()["endpoints"]
    assert CHANGELOG not in endpoints
    assert "GET /api/v2/deals" not in endpoints
    assert "stage history backfill: complete since" in again.stdout + again.stderr
    after = pipeline.stored_state(BACKFILL_STATE_ID)
    assert after is not None
    assert after["singer_state"]["bookmarks"]["deal_stage_changes"]["backfill"] == progress

    # A deal created since is the 30-minute sync's (deal_stage_changes, incremental mode).
    fresh = simulator.create("deals", title="Created after the backfill", stage_id=1)
    pipeline.run()
    table = f'"{pipeline.schema}".deal_stage_changes'
    assert pipeline.query(f"select count(*) from {table} where deal_id = %s", fresh["id"]) == [(1,)]

    # Starting over is explicit: --full-refresh reads every deal again.
    simulator.reset_stats()
    pipeline.meltano("run", "--full-refresh", "stage-history-backfill")
    assert simulator.stats()["endpoints"][CHANGELOG]["requests"] == len(deals) + 1
    pipeline.assert_no_duplicates("deal_stage_changes")
