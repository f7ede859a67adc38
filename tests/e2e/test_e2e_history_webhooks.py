"""Change records from webhook events end to end: the simulator delivers v2 payloads to
`tap-pipedrive-webhooks serve`, `meltano run sync-webhooks` turns each change event's `previous`
into `deal_changes`, `person_changes` and `organization_changes` rows at no token cost (the
changelog calls for those records are skipped), typed and labelled as the changelog-derived ones,
with the ids a later changelog read of the same changes gives (no duplicate row after it)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from psycopg import sql

SETTLE_SECONDS = 2.5  # the tap reads events stored at least 2 s ago (see events.py)


@pytest.fixture
def webhooks_pipeline(pipedrive_simulator_factory, webhooks_pipeline_factory, history_streams):
    sim = pipedrive_simulator_factory(deals=30, persons=12, organizations=8)
    pipeline, _ = webhooks_pipeline_factory(sim, **history_streams)
    return sim, pipeline


def settle_and_sync(sim: Any, pipeline: Any) -> dict[str, Any]:
    """Deliver what is due, let the receiver's rows settle, run the webhooks job; its stats."""
    assert sim.drain_webhooks() == 0
    time.sleep(SETTLE_SECONDS)
    sim.reset_stats()
    pipeline.meltano("run", "sync-webhooks")
    return dict(sim.stats())


def changes(pipeline: Any, table: str, id_key: str, ident: int) -> list[tuple[Any, ...]]:
    return pipeline.query(
        sql.SQL(
            "select id, field_key, column_name, old_value, new_value, changed_at, log_position"
            " from {} where {} = %s order by changed_at, field_key, column_name"
        ).format(pipeline.table(table), sql.Identifier(id_key)),
        ident,
    )


def test_change_events_become_change_records_at_no_cost(webhooks_pipeline):
    sim, pipeline = webhooks_pipeline
    account = sim.simulator.account
    # An organization whose one filled custom field is an enum: its edits are whole events
    # (previous leaves empty fields out, so other filled fields would make an edit ambiguous).
    enum = next(f for f in account.custom["organization"] if f.field_type == "enum")
    org = sim.truth("organizations")[2]
    emptied = {f.key: None for f in account.custom["organization"]}
    sim.update("organizations", org["id"], **{**emptied, enum.key: enum.options[0]["id"]})
    settle_and_sync(sim, pipeline)
    sim.advance(300)
    idle = settle_and_sync(sim, pipeline)  # what an idle run costs

    sim.advance(300)
    # Records whose payloads hold every column (time and time-range custom fields lack their
    # time-zone name: such a record is fetched by id, which is the entity stream's cost).
    timed = {
        entity: {f.key for f in account.custom[entity] if f.field_type in {"time", "timerange"}}
        for entity in ("deal", "person")
    }
    person = next(
        p
        for p in sim.truth("persons")[1:]
        if not any((p["custom_fields"] or {}).get(k) for k in timed["person"])
    )
    sim.update("persons", person["id"], name="Renamed by webhook")
    sim.update("organizations", org["id"], **{enum.key: enum.options[1]["id"]}, name="Org v2")
    deal = next(
        d
        for d in sim.truth("deals")
        if d["status"] == "open"
        and not any((d["custom_fields"] or {}).get(k) for k in timed["deal"])
    )
    stage = next(
        s["id"]
        for s in sim.truth("stages")
        if s["pipeline_id"] == deal["pipeline_id"] and s["id"] != deal["stage_id"]
    )
    sim.move_deal(deal["id"], stage)
    sim.update("deals", deal["id"], value=4242.0)
    stats = settle_and_sync(sim, pipeline)

    # No token for them: the run costs what an idle run costs, and no changelog was read.
    extra = {
        e: v
        for e, v in stats["endpoints"].items()
        if v["tokens"] != idle["endpoints"].get(e, {}).get("tokens")
    }
    assert stats["total"]["tokens"] == idle["total"]["tokens"], extra
    assert not any("changelog" in e for e in stats["endpoints"]), stats["endpoints"]

    renamed = changes(pipeline, "person_changes", "person_id", person["id"])
    assert [(r[1], r[2], r[3], r[4]) for r in renamed if r[4] == "Renamed by webhook"] == [
        ("name", "name", person["name"], "Renamed by webhook")
    ]
    org_rows = [r for r in changes(pipeline, "organization_changes", "organization_id", org["id"])]
    labels = [o["label"] for o in enum.options[:2]]
    column = next(r[2] for r in org_rows if r[1] == enum.key)
    assert column is not None
    assert column != enum.key
    assert [(r[3], r[4]) for r in org_rows if r[1] == enum.key][-1] == tuple(labels)
    assert [(r[3], r[4]) for r in org_rows if r[1] == "name"][-1] == (org["name"], "Org v2")
    deal_rows = changes(pipeline, "deal_changes", "deal_id", deal["id"])
    assert (deal["stage_id"], stage) in [(r[3], r[4]) for r in deal_rows if r[1] == "stage_id"]
    assert [(r[3], r[4]) for r in deal_rows if r[1] == "value"][-1] == (deal["value"], 4242)
    from_webhooks = [*renamed, *org_rows, *deal_rows]
    assert any(r[6] is None for r in from_webhooks)  # log_position: unknown to an event

    # Typed as the entity table: the enum's column there holds the same label.
    in_table = pipeline.query(
        sql.SQL("select {} from {} where id = %s").format(
            sql.Identifier(column), pipeline.table("organizations")
        ),
        org["id"],
    )
    assert in_table == [(labels[1],)]

    # The changelog read of the same changes (the regular sync reads the changelogs of the
    # records updated recently) gives the same ids: one row per change, now with its place in
    # the log.
    pipeline.run()
    for table, id_key, ident, rows in (
        ("person_changes", "person_id", person["id"], renamed),
        ("organization_changes", "organization_id", org["id"], org_rows),
        ("deal_changes", "deal_id", deal["id"], deal_rows),
    ):
        after = changes(pipeline, table, id_key, ident)
        by_id = {r[0]: r for r in after}
        for row in rows:
            assert row[0] in by_id, (table, row)
            assert by_id[row[0]][1:6] == row[1:6], (table, row)
        keys = [(r[1], r[2], r[5]) for r in after]
        assert len(keys) == len(set(keys)), (table, after)  # no change twice
    read = changes(pipeline, "person_changes", "person_id", person["id"])
    assert all(r[6] is not None for r in read if r[4] == "Renamed by webhook")
    for table in ("deal_changes", "person_changes", "organization_changes"):
        pipeline.assert_no_duplicates(table)
