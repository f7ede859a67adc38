"""The nightly `stage-history-backfill` job: every deal's stage history, with its own state."""

from __future__ import annotations


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
