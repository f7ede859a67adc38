"""`meltano run tap-pipedrive target-pipeboard-postgres` through the simulator into Postgres:
a full run, an incremental run after changes, then the weekly reconcile job; each compared with
the simulator's truth."""

from __future__ import annotations

from typing import Any

# Entities whose rows must equal the simulator's records after a full run.
ENTITIES = (
    "deals",
    "persons",
    "organizations",
    "activities",
    "products",
    "notes",
    "users",
    "pipelines",
    "stages",
    "leads",
    "files",
)


def test_full_incremental_and_reconcile_runs_match_the_simulator(
    pipedrive_simulator_factory, pipeline_factory, utc
) -> None:
    # A small company (the other entities scale with the deals), kept small for the suite's time.
    simulator = pipedrive_simulator_factory(deals=200)
    pipeline = pipeline_factory(simulator)

    # 1. Full run: every entity lands, each record once.
    pipeline.run()
    for entity in ENTITIES:
        pipeline.assert_matches_truth(entity)
    state = pipeline.stored_state()
    assert state is not None
    deals_state = state["singer_state"]["bookmarks"]["deals"]
    # One bookmark per partition (open and archived deals).
    bookmarks = [
        utc(part["replication_key_value"]) for part in deals_state.get("partitions", [deals_state])
    ]

    # 2. Changes in Pipedrive, then an incremental run.
    simulator.advance(3600)
    summary: dict[str, Any] = simulator.random_changes(60, seed=7)
    assert sum(summary.values()) > 0
    new_deal = simulator.create("deals", title="Incremental probe deal")
    gone = [record["id"] for record in simulator.truth("persons")[:3]]
    for person_id in gone:
        simulator.delete("persons", person_id)
    pipeline.tamper("deals")

    pipeline.run()

    truth = pipeline.truth("deals")
    tampered = pipeline.tampered("deals")
    assert str(new_deal["id"]) in {str(i) for i in pipeline.ids("deals")}
    # Only deals changed since the bookmark were read again; older rows were left alone.
    changed = {i for i, r in truth.items() if utc(r["update_time"]) > max(bookmarks)}
    unchanged = {i for i, r in truth.items() if utc(r["update_time"]) < min(bookmarks)}
    assert changed
    assert not changed & tampered, "a changed deal was not read again"
    assert unchanged <= tampered, "the incremental run re-read unchanged deals"
    # Deals keep deleted ones (status "deleted"), so they match exactly; entities whose deletions
    # vanish from the API keep their rows until the reconcile job.
    pipeline.assert_matches_truth("deals")
    for entity in ENTITIES:
        pipeline.assert_matches_truth(entity, exact=False)
    assert {str(i) for i in gone} <= pipeline.live_ids("persons")

    # 3. The reconcile job: full reads with ACTIVATE_VERSION retire what Pipedrive deleted.
    sync_state = pipeline.stored_state()
    pipeline.meltano("run", "reconcile")
    # Deals deleted in Pipedrive (status "deleted", still listed for 30 days) are retired too.
    for entity in ENTITIES:
        expected = {i for i, r in pipeline.truth(entity).items() if not r.get("is_deleted")}
        assert pipeline.live_ids(entity) == expected, entity
        pipeline.assert_no_duplicates(entity)
    assert not pipeline.tampered("deals"), "reconcile reads everything"
    # It has its own state ID: the sync's bookmarks are untouched.
    assert pipeline.stored_state("dev:tap-pipedrive--reconcile-to-target-pipeboard-postgres")
    assert pipeline.stored_state() == sync_state
