"""Cheap polling through `meltano run`: /v1/recents decides which streams are read.

The sync job (everything selected, Redis configured as in a deployment): an idle run asks
/v1/recents and reads no stream recents covers, within 100 tokens; a changed organization is
read (and only organizations among the covered streams) and lands in Postgres; a pause longer
than the window falls back to polling every stream.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

RECENTS = "GET /v1/recents"
COVERED = {
    "GET /api/v2/deals",
    "GET /api/v2/deals/archived",
    "GET /api/v2/persons",
    "GET /api/v2/organizations",
    "GET /api/v2/activities",
    "GET /api/v2/products",
    "GET /v1/notes",
    "GET /v1/files",
    "GET /v1/users",
    "GET /api/v2/pipelines",
    "GET /api/v2/stages",
    "GET /v1/activityTypes",
    "GET /v1/filters",
}
# Dictionaries the tap keeps in the Redis cache (cache_ttl_seconds).
CACHED = {"GET /v1/users", "GET /api/v2/pipelines", "GET /api/v2/stages"}


def _sent(simulator: Any) -> dict[str, int]:
    return {k: v["requests"] for k, v in simulator.stats()["endpoints"].items()}


def test_recents_decides_what_an_incremental_meltano_run_reads(
    pipedrive_simulator_factory: Any, pipeline_factory: Any, redis_url: str
) -> None:
    simulator = pipedrive_simulator_factory(deals=100)
    pipeline = pipeline_factory(simulator)
    pipeline.extra_env["TAP_PIPEDRIVE_REDIS_URL"] = redis_url

    pipeline.run()
    pipeline.assert_matches_truth("organizations")

    # Idle: recents and the uncovered lists only, within 100 tokens.
    simulator.advance(1800)
    simulator.reset_stats()
    pipeline.run()
    stats = simulator.stats()
    assert stats["endpoints"][RECENTS]["requests"] == 1
    assert not set(stats["endpoints"]) & COVERED, stats["endpoints"]
    assert stats["total"]["tokens"] <= 100, stats

    # One organization changes: it is read, and it arrives in Postgres.
    simulator.advance(600)
    organization = simulator.truth("organizations")[0]
    simulator.update("organizations", organization["id"], name="Changed through recents")
    simulator.advance(120)
    simulator.reset_stats()
    pipeline.run()
    sent = _sent(simulator)
    assert sent[RECENTS] == 1
    # Listed by `organizations` and by `organization_changes` (which reads the changed ones'
    # changelogs): each once.
    assert sent["GET /api/v2/organizations"] == 2
    assert not set(sent) & (COVERED - {"GET /api/v2/organizations"}), sent
    rows = pipeline.query(
        sql.SQL("select name from {} where id = %s").format(pipeline.table("organizations")),
        organization["id"],
    )
    assert rows == [("Changed through recents",)]
    pipeline.assert_matches_truth("organizations")

    # Longer than the window: every stream is polled, nothing missed.
    simulator.advance(8 * 24 * 3600)
    deal = simulator.truth("deals")[0]
    simulator.update("deals", deal["id"], title="Changed after a long pause")
    simulator.reset_stats()
    pipeline.run()
    sent = _sent(simulator)
    # With the field definitions cached, recents is the run's first request: the API's clock
    # (its Date header) is known only from its answer, which is then not used.
    assert sent.get(RECENTS, 0) <= 1
    # Every covered list is polled (users, pipelines and stages come from the Redis cache).
    assert sent.keys() >= COVERED - CACHED
    pipeline.assert_matches_truth("deals")
