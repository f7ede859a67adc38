"""Webhooks mode end to end: the simulator delivers to `tap-pipedrive-webhooks serve` over real
HTTP, events land in Postgres, `meltano run sync-webhooks` turns them into rows.

A person deleted, an organization changed and a deal moved arrive with no token charged for them
(the run costs what an idle run costs); a receiver killed with SIGKILL while deliveries are under
way loses nothing (Pipedrive's retry delivers) and stores nothing twice.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tap-pipedrive" / "tests"))

from webhook_support import (
    Receiver,
    stored_events,
)

SETTLE_SECONDS = 2.5  # the tap reads events stored at least 2 s ago (see events.py)


@pytest.fixture
def webhooks_pipeline(pipedrive_simulator_factory, webhooks_pipeline_factory):
    sim = pipedrive_simulator_factory(deals=60)
    pipeline, receiver = webhooks_pipeline_factory(sim)
    return sim, pipeline, receiver


def _settle(sim):
    assert sim.drain_webhooks() == 0
    time.sleep(SETTLE_SECONDS)


def _sync(pipeline):
    pipeline.meltano("run", "sync-webhooks")


def test_delete_change_and_move_arrive_with_no_tokens_charged(webhooks_pipeline):
    sim, pipeline, receiver = webhooks_pipeline
    _sync(pipeline)
    sim.advance(300)
    sim.reset_stats()
    _sync(pipeline)  # idle: what the safety-net poll costs
    idle_tokens = sim.stats()["total"]["tokens"]

    sim.advance(300)
    person = sim.truth("persons")[0]
    org = sim.truth("organizations")[1]
    account = sim.simulator.account
    timed = {f.key for f in account.custom["deal"] if f.field_type in {"time", "timerange"}}
    deal = next(
        d
        for d in sim.truth("deals")
        if d["status"] == "open" and not any((d["custom_fields"] or {}).get(k) for k in timed)
    )
    stage = next(
        s["id"]
        for s in sim.truth("stages")
        if s["pipeline_id"] == deal["pipeline_id"] and s["id"] != deal["stage_id"]
    )
    sim.delete("persons", person["id"])
    sim.update("organizations", org["id"], name="Renamed through a webhook")
    sim.move_deal(deal["id"], stage)
    _settle(sim)

    sim.reset_stats()
    _sync(pipeline)
    stats = sim.stats()
    assert stats["total"]["tokens"] == idle_tokens, stats["endpoints"]
    assert not any("changelog" in e for e in stats["endpoints"])

    deleted_at = pipeline.query(
        sql.SQL("select _sdc_deleted_at from {} where id = %s").format(pipeline.table("persons")),
        person["id"],
    )
    assert deleted_at[0][0] is not None
    name = pipeline.query(
        sql.SQL("select name from {} where id = %s").format(pipeline.table("organizations")),
        org["id"],
    )
    assert name == [("Renamed through a webhook",)]
    moved = pipeline.query(
        sql.SQL(
            "select from_stage_id, to_stage_id, source from {} where deal_id = %s"
            " and source = 'webhook'"
        ).format(pipeline.table("deal_stage_changes")),
        deal["id"],
    )
    assert moved == [(deal["stage_id"], stage, "webhook")]
    stage_now = pipeline.query(
        sql.SQL("select stage_id from {} where id = %s").format(pipeline.table("deals")),
        deal["id"],
    )
    assert stage_now == [(stage,)]
    pipeline.assert_no_duplicates("deal_stage_changes")
    assert receiver.alive()


def test_a_receiver_killed_while_deliveries_run_loses_nothing_and_stores_once(
    webhooks_pipeline, postgres_url, events_schema
):
    sim, pipeline, receiver = webhooks_pipeline
    _sync(pipeline)
    sim.webhook_switches(duplicate=True)  # Pipedrive sends some events twice, too
    people = sim.truth("persons")[:8]
    delivered = threading.Event()

    def edit():
        for n, person in enumerate(people):
            sim.update("persons", person["id"], name=f"Edited {n}")
            time.sleep(0.05)
        delivered.set()

    editor = threading.Thread(target=edit)
    editor.start()
    deadline = time.monotonic() + 30
    while len(stored_events(postgres_url, events_schema)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    receiver.kill()  # SIGKILL, mid-stream
    editor.join()
    sim.drain_webhooks()
    report = sim.webhook_report()
    failed = [d for d in report["deliveries"] if d["outcome"] == "failed"]
    assert failed, "no delivery failed: the receiver was not killed mid-stream"
    restarted = Receiver(postgres_url, events_schema, port=receiver.port).start()
    try:
        for step in (3, 30, 150):
            sim.advance(step)
            sim.drain_webhooks()
        rows = stored_events(postgres_url, events_schema)
        person_events = [r for r in rows if r[1] == "person"]
        assert len(person_events) == len(people)  # each edit once: nothing lost, none twice
        assert len({r[0] for r in rows}) == len(rows)
        time.sleep(SETTLE_SECONDS)
        _sync(pipeline)
        names = dict(
            pipeline.query(
                sql.SQL("select id, name from {} where id = any(%s)").format(
                    pipeline.table("persons")
                ),
                [p["id"] for p in people],
            )
        )
        assert names == {p["id"]: f"Edited {n}" for n, p in enumerate(people)}
    finally:
        restarted.stop()
