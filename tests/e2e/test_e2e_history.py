"""Complete history through `meltano run`: the changelogs loaded by the regular sync and the
history backfill job, every past version rebuilt, and an as-of query at several past times equal
to the simulator's records as they were, for every deal, person and organization."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
# The comparison helpers live beside the target's own history test (importlib mode does not put
# test directories on sys.path).
sys.path.insert(0, str(ROOT / "target-pipeboard-postgres" / "tests"))
from history_truth import ENTITIES, as_of, differences, flatteners, truth_rows  # noqa: E402

BACKFILL_STATE_ID = "dev:tap-pipedrive--stage-history-to-target-pipeboard-postgres"
CHANGELOG = "GET /v1/deals/{id}/changelog"
# The first sync reads the changes of every record (its first run reaches back past them all).
READ_ALL = {"TAP_PIPEDRIVE_STAGE_HISTORY_INITIAL_DAYS": "5000"}


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_as_of(pipeline: Any, simulator: Any, times: list[dt.datetime]) -> None:
    flat = flatteners(simulator)
    with psycopg.connect(pipeline.database_url) as conn:
        for entity in ENTITIES:
            ids = {int(i) for i in pipeline.ids(entity)}
            assert ids
            for moment in times:
                at = stamp(moment)
                got = as_of(conn, pipeline.schema, f"{entity}_changelog_history", at)
                truth = truth_rows(simulator, entity, at, flat[entity])
                assert differences(got, truth, ids) == [], (entity, at)


def test_history_rebuilt_from_the_changelogs_equals_the_truth(
    pipedrive_simulator_factory, pipeline_factory, history_streams
) -> None:
    simulator = pipedrive_simulator_factory(deals=40, persons=30, organizations=20)
    pipeline = pipeline_factory(simulator)
    pipeline.extra_env.update(history_streams)
    start = simulator.now
    simulator.advance(3600)
    deal = next(d for d in simulator.truth("deals") if d["status"] == "open")
    simulator.update("deals", deal["id"], value=999.0)
    simulator.advance(60)

    pipeline.run(env=READ_ALL)
    times = [start - dt.timedelta(days=d) for d in (400, 120, 30, 3)]
    times += [start, simulator.now]
    check_as_of(pipeline, simulator, times)
    for table in ("deal_changes", "person_changes", "organization_changes"):
        pipeline.assert_no_duplicates(table)

    # Between runs: a deal moves (its changelog is read again, shared with the stage stream),
    # a person and an organization are edited (read again: they changed since the bookmark).
    simulator.advance(3600)
    target = next(
        s["id"]
        for s in simulator.truth("stages")
        if s["pipeline_id"] == deal["pipeline_id"] and s["id"] != deal["stage_id"]
    )
    simulator.move_deal(deal["id"], target)
    person = simulator.truth("persons")[0]
    simulator.update("persons", person["id"], name="Renamed Since")
    org = simulator.truth("organizations")[0]
    simulator.update("organizations", org["id"], employee_count=321)
    simulator.advance(60)
    simulator.reset_stats()
    pipeline.run()
    endpoints = simulator.stats()["endpoints"]
    assert endpoints[CHANGELOG]["requests"] == 1  # the moved deal only, for both streams
    assert endpoints["GET /v1/persons/{id}/changelog"]["requests"] == 1
    assert endpoints["GET /v1/organizations/{id}/changelog"]["requests"] == 1
    check_as_of(pipeline, simulator, [*times, simulator.now - dt.timedelta(seconds=61)])

    # The history backfill job: every deal's whole changelog once, same result, no duplicates.
    simulator.reset_stats()
    pipeline.meltano("run", "stage-history-backfill")
    deals = pipeline.truth("deals")
    assert simulator.stats()["endpoints"][CHANGELOG]["requests"] == len(deals)
    state = pipeline.stored_state(BACKFILL_STATE_ID)
    assert state is not None
    assert state["singer_state"]["bookmarks"]["deal_stage_changes"]["backfill"]["completed_at"]
    pipeline.assert_no_duplicates("deal_changes")
    check_as_of(pipeline, simulator, [*times, simulator.now])
    daily = pipeline.query(
        f'select count(*) from "{pipeline.schema}".deal_pipeline_daily where day = %s',
        (start - dt.timedelta(days=30)).date(),
    )
    assert daily[0][0] > 0
