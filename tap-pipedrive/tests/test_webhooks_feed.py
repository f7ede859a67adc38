"""The tap consuming the webhook event log: deletes, stage moves and changes at zero tokens.

Simulator over real HTTP delivering to the receiver process, events in real Postgres, the tap
run in-process.
"""

from __future__ import annotations

import time

import pytest
from tap_pipedrive.webhooks import events as event_log
from tap_pipedrive.webhooks.credentials import Credentials
from tap_pipedrive.webhooks.registration import WebhookApi, register
from webhook_support import PASSWORD, USER, Receiver, stored_events

STREAMS = ("deals", "persons", "organizations", "deal_stage_changes")


@pytest.fixture
def receiver(postgres_url, pg_schema):
    r = Receiver(postgres_url, pg_schema).start()
    yield r
    r.stop()


@pytest.fixture
def webhooks_mode(
    pipedrive_simulator, receiver, postgres_url, pg_schema, run, config_for, catalog_with
):
    """``start(streams, **settings) -> (config, catalog, first run)``: the tap in webhooks mode
    on the simulator (webhooks registered with the receiver), after its first run (which polls)."""
    sim = pipedrive_simulator

    def start(streams, **settings):
        register(WebhookApi(sim.base_url, sim.api_token), receiver.url, Credentials(USER, PASSWORD))
        config = config_for(
            sim, webhook_database_url=postgres_url, webhook_schema=pg_schema, **settings
        )
        catalog = catalog_with(config, streams)
        first = run(config, catalog=catalog)
        assert first.error is None
        return config, catalog, first

    return start


def _settle(sim):
    assert sim.drain_webhooks() == 0
    time.sleep(event_log.SETTLE_SECONDS + 0.2)


def _complete_deal(sim):
    """A deal whose payload holds every column (no time/timerange value: those lack the
    timezone name in webhooks and are fetched)."""
    account = sim.simulator.account
    partial = {f.key for f in account.custom["deal"] if f.field_type in {"time", "timerange"}}
    return next(
        d
        for d in sim.truth("deals")
        if d["status"] == "open"
        and not d.get("is_archived")
        and not any((d.get("custom_fields") or {}).get(k) for k in partial)
    )


def test_deletes_changes_and_moves_arrive_at_zero_tokens(
    pipedrive_simulator, postgres_url, pg_schema, run, config_for, catalog_with, webhooks_mode
):
    sim = pipedrive_simulator
    config, catalog, first = webhooks_mode(STREAMS)
    # An idle run: what polling alone costs now.
    sim.advance(600)
    sim.reset_stats()
    idle = run(config, state=first.state, catalog=catalog)
    assert idle.error is None
    idle_stats = sim.stats()["endpoints"]
    idle_tokens = sim.stats()["total"]["tokens"]

    sim.advance(600)
    person = sim.truth("persons")[0]
    org = sim.truth("organizations")[1]
    deal = _complete_deal(sim)
    stage = next(
        s["id"]
        for s in sim.truth("stages")
        if s["pipeline_id"] == deal["pipeline_id"] and s["id"] != deal["stage_id"]
    )
    enum = next(f for f in sim.simulator.account.custom["organization"] if f.field_type == "enum")
    option = next(
        o["id"] for o in enum.options if o["id"] != (org.get("custom_fields") or {}).get(enum.key)
    )
    sim.delete("persons", person["id"])
    sim.update("organizations", org["id"], name="Changed by webhook", **{enum.key: option})
    sim.move_deal(deal["id"], stage)
    _settle(sim)
    assert {(e[1], e[2]) for e in stored_events(postgres_url, pg_schema)} >= {
        ("person", "delete"),
        ("organization", "change"),
        ("deal", "change"),
    }

    sim.reset_stats()
    second = run(config, state=idle.state, catalog=catalog)
    assert second.error is None
    stats = sim.stats()
    assert stats["total"]["tokens"] == idle_tokens, sorted(
        (k, v["requests"], idle_stats.get(k, {}).get("requests"))
        for k, v in stats["endpoints"].items()
    )
    assert not any("changelog" in e or "flow" in e for e in stats["endpoints"])

    deleted = [r for r in second.records("persons") if r["id"] == person["id"]]
    assert deleted
    assert deleted[-1]["_sdc_deleted_at"] is not None
    assert deleted[-1]["name"] == person["name"]  # the last state, flagged deleted
    moves = [r for r in second.records("deal_stage_changes") if r["deal_id"] == deal["id"]]
    assert [(m["from_stage_id"], m["to_stage_id"], m["source"]) for m in moves] == [
        (deal["stage_id"], stage, "webhook")
    ]
    history = sim.stage_history(deal["id"])
    assert moves[0]["changed_at"] == history[-1]["entered_at"]
    # The organization from the payload is the record polling gives, column for column.
    from_feed = next(r for r in second.records("organizations") if r["id"] == org["id"])
    polled = run(config_for(sim), catalog=catalog_with(config_for(sim), ["organizations"]))
    truth = next(r for r in polled.records("organizations") if r["id"] == org["id"])
    assert from_feed == truth
    assert from_feed["name"] == "Changed by webhook"
    assert second.state["bookmarks"]["persons"]["webhook_position"] > 0

    # Nothing new: the next run reads no event again.
    third = run(config, state=second.state, catalog=catalog)
    assert [r for r in third.records("persons") if r["id"] == person["id"]] == []
    assert third.records("deal_stage_changes") == []


def test_partial_payloads_are_fetched_by_id_in_one_request(pipedrive_simulator, run, webhooks_mode):
    sim = pipedrive_simulator
    config, catalog, first = webhooks_mode(["persons"])
    sim.webhook_switches(omit_fields=["visible_to"])  # "crucial fields only"
    sim.advance(60)
    people = sim.truth("persons")[:5]
    for n, person in enumerate(people):
        sim.update("persons", person["id"], name=f"Partial {n}")
    _settle(sim)
    sim.reset_stats()
    second = run(config, state=first.state, catalog=catalog)
    assert second.error is None
    endpoints = sim.stats()["endpoints"]
    # One request by ids for the five (and no poll: this run is not a polling one).
    assert endpoints["GET /api/v2/persons"]["requests"] == 1
    by_id = {}
    for record in second.records("persons"):
        by_id.setdefault(record["id"], []).append(record)
    for n, person in enumerate(people):
        assert by_id[person["id"]][0]["name"] == f"Partial {n}"
        assert by_id[person["id"]][0]["visible_to"] is not None


def test_every_nth_run_polls_and_catches_what_no_event_brought(
    pipedrive_simulator, run, webhooks_mode
):
    sim = pipedrive_simulator
    config, catalog, first = webhooks_mode(["organizations"], webhook_poll_every_runs=2)  # polls
    org = sim.truth("organizations")[0]
    sim.webhook_switches(stall=True)  # the event never arrives (as during a ban)
    sim.advance(60)
    sim.update("organizations", org["id"], name="Seen by the safety net")
    sim.reset_stats()
    second = run(config, state=first.state, catalog=catalog)  # run 2: events only
    assert "GET /api/v2/organizations" not in sim.stats()["endpoints"]
    assert second.records("organizations") == []
    third = run(config, state=second.state, catalog=catalog)  # run 3 polls
    names = {r["id"]: r["name"] for r in third.records("organizations")}
    assert names[org["id"]] == "Seen by the safety net"
    assert third.state["bookmarks"]["organizations"]["webhook_runs"] == 3


def test_a_merge_flags_the_merged_deal_deleted_and_updates_the_survivor(
    pipedrive_simulator, postgres_url, pg_schema, run, webhooks_mode
):
    sim = pipedrive_simulator
    config, catalog, first = webhooks_mode(["deals"])
    merged, survivor = sim.truth("deals")[:2]
    sim.advance(60)
    sim.merge_deal(merged["id"], survivor["id"])
    _settle(sim)
    events = [e for e in stored_events(postgres_url, pg_schema) if e[1] == "deal"]
    assert [(e[2], int(e[3])) for e in events] == [
        ("delete", merged["id"]),
        ("change", survivor["id"]),
    ]
    sim.reset_stats()
    second = run(config, state=first.state, catalog=catalog)
    assert second.error is None
    by_id = {r["id"]: r for r in second.records("deals")}
    assert by_id[merged["id"]]["_sdc_deleted_at"] is not None
    assert by_id[merged["id"]]["status"] == "deleted"
    assert by_id[survivor["id"]]["_sdc_deleted_at"] is None
    now = next(d for d in sim.truth("deals") if d["id"] == survivor["id"])
    assert by_id[survivor["id"]]["update_time"] == now["update_time"]


def _zoned_deals(sim, count):
    """Open deals holding both a time and a time-range custom-field value."""
    account = sim.simulator.account
    time_key, range_key = (
        next(f.key for f in account.custom["deal"] if f.field_type == kind)
        for kind in ("time", "timerange")
    )
    deals = [
        d
        for d in sim.truth("deals")
        if d["status"] == "open"
        and not d.get("is_archived")
        and (d.get("custom_fields") or {}).get(time_key)
        and (d.get("custom_fields") or {}).get(range_key)
    ]
    return deals[:count], time_key, range_key


def test_time_fields_take_learned_zones_and_cost_nothing(
    pipedrive_simulator, run, config_for, catalog_with, webhooks_mode
):
    sim = pipedrive_simulator
    config, catalog, first = webhooks_mode(["deals"])  # the first run polls: the zones are learned
    sim.advance(600)
    sim.reset_stats()
    idle = run(config, state=first.state, catalog=catalog)
    assert idle.error is None
    idle_tokens = sim.stats()["total"]["tokens"]

    (edited, ranged), _, range_key = _zoned_deals(sim, 2)
    polled = run(config_for(sim), catalog=catalog_with(config_for(sim), ["deals"]))
    before = {r["id"]: r for r in polled.records("deals")}
    sim.advance(60)
    sim.update("deals", edited["id"], value=12345.0)  # the time fields unchanged
    _settle(sim)
    sim.reset_stats()
    second = run(config, state=idle.state, catalog=catalog)
    assert second.error is None
    assert sim.stats()["total"]["tokens"] == idle_tokens, sim.stats()["endpoints"]
    record = next(r for r in second.records("deals") if r["id"] == edited["id"])
    # Column for column the record polling gives (both zone names included).
    assert record == {
        **before[edited["id"]],
        "value": 12345.0,
        "update_time": record["update_time"],
    }
    polled = run(config_for(sim), catalog=catalog_with(config_for(sim), ["deals"]))
    truth = {r["id"]: r for r in polled.records("deals")}
    assert record == truth[edited["id"]]
    zone_columns = [k for k in record if k.endswith("_timezone_name")]
    assert len(zone_columns) == 2
    assert all(record[k] for k in zone_columns)

    # A range whose zone changes is listed in `previous`: that deal is fetched by id.
    new_range = {
        "start": "06:00:00",
        "end": "14:00:00",
        "timezone_id": 2,
        "timezone_name": "Europe/Berlin",
    }
    sim.advance(60)
    sim.update("deals", ranged["id"], **{range_key: new_range})
    _settle(sim)
    sim.reset_stats()
    third = run(config, state=second.state, catalog=catalog)
    assert third.error is None
    endpoints = sim.stats()["endpoints"]
    assert sim.stats()["total"]["tokens"] == idle_tokens + 10, endpoints
    assert endpoints["GET /api/v2/deals"]["requests"] == 1
    polled = run(config_for(sim), catalog=catalog_with(config_for(sim), ["deals"]))
    truth = {r["id"]: r for r in polled.records("deals")}
    fetched = next(r for r in third.records("deals") if r["id"] == ranged["id"])
    assert fetched == truth[ranged["id"]]
    assert "Europe/Berlin" in fetched.values()

    # The fetched range is remembered: an edit of that deal now costs nothing either.
    sim.advance(60)
    sim.update("deals", ranged["id"], value=777.0)
    _settle(sim)
    sim.reset_stats()
    fourth = run(config, state=third.state, catalog=catalog)
    assert fourth.error is None
    assert sim.stats()["total"]["tokens"] == idle_tokens
    record = next(r for r in fourth.records("deals") if r["id"] == ranged["id"])
    assert record == {**fetched, "value": 777.0, "update_time": record["update_time"]}
