"""deal_changes, person_changes, organization_changes against the simulator over real HTTP."""

from __future__ import annotations

import typing as t
from collections import defaultdict

import pytest
from tap_pipedrive.changelog_records import parse_time, rfc3339

DEAL_LOG = "GET /v1/deals/{id}/changelog"
PERSON_LOG = "GET /v1/persons/{id}/changelog"
ORG_LOG = "GET /v1/organizations/{id}/changelog"


@pytest.fixture
def sim(pipedrive_simulator_factory):
    return pipedrive_simulator_factory(seed=11, deals=30, persons=25, organizations=20)


def calls(sim, endpoint):
    return sim.stats()["endpoints"].get(endpoint, {}).get("requests", 0)


def tokens(sim):
    return sum(e["tokens"] for e in sim.stats()["endpoints"].values())


def by_entity(records, id_key):
    out: dict[int, dict[str, dict[str, t.Any]]] = defaultdict(dict)
    for r in records:
        out[r[id_key]][r["id"]] = r
    return out


def columns_by_key(run, stream):
    """Pipedrive key -> column of the entity stream, from its SCHEMA message."""
    schema = next(m["schema"] for m in run.types("SCHEMA") if m["stream"] == stream)
    return {
        p.get("x-pipedrive-key", name): name
        for name, p in schema["properties"].items()
        if not p.get("x-pipedrive-subfield") or p.get("x-pipedrive-subfield") in {"value", "start"}
    }


def test_deal_changes_share_the_stage_streams_calls(sim, run, config_for, catalog_with):
    config = config_for(sim, stage_history_initial_days=None)
    sim.reset_stats()
    alone = run(config, catalog=catalog_with(config, ["deal_stage_changes"]))
    assert alone.error is None
    stage_calls, stage_tokens = calls(sim, DEAL_LOG), tokens(sim)
    assert stage_calls > 0
    sim.reset_stats()
    both = run(config, catalog=catalog_with(config, ["deal_stage_changes", "deal_changes"]))
    assert both.error is None
    # The same calls, the same tokens: deal_changes costs nothing more.
    assert calls(sim, DEAL_LOG) == stage_calls
    assert tokens(sim) == stage_tokens
    assert both.records("deal_stage_changes") == alone.records("deal_stage_changes")
    changes = by_entity(both.records("deal_changes"), "deal_id")
    schema = next(m for m in both.types("SCHEMA") if m["stream"] == "deal_changes")
    first_change = next(
        i
        for i, m in enumerate(both.messages)
        if m["type"] == "RECORD" and m["stream"] == "deal_changes"
    )
    assert both.messages.index(schema) < first_change  # the schema goes out first
    # Every change the simulator logged, with the deals table's column and typed values.
    columns = columns_by_key(run(config, catalog=catalog_with(config, ["deals"])), "deals")
    account = sim.simulator.account
    enums = {f.key: f for f in account.custom["deal"] if f.field_type in {"enum", "set"}}
    checked_enum = 0
    for deal in sim.truth("deals"):
        logged = sim.changelog("deals", deal["id"])
        got = sorted(changes[deal["id"]].values(), key=lambda r: r["changed_at"])
        assert len(got) == len(logged), deal["id"]
        for event, record in zip(logged, got, strict=True):
            key = event["field_key"]
            assert record["field_key"] == key
            assert record["column_name"] == columns[key]
            assert record["changed_at"] == event["time"]
            assert record["user_id"] == event["user_id"]
            new = event["new_value"]
            if key in enums and new is not None:
                fdef = enums[key]
                expected = (
                    fdef.option_label(new)
                    if fdef.field_type == "enum"
                    else [fdef.option_label(v) for v in new]
                )
                assert record["new_value"] == expected
                checked_enum += 1
            elif isinstance(new, str) and key.endswith("_time"):
                assert record["new_value"] == rfc3339(parse_time(new))
            else:
                assert record["new_value"] == new, (deal["id"], key)
    assert checked_enum > 0


def test_deal_changes_alone_read_the_changelogs_themselves(sim, run, config_for, catalog_with):
    config = config_for(sim, stage_history_initial_days=None)
    sim.reset_stats()
    first = run(config, catalog=catalog_with(config, ["deal_changes"]))
    assert first.error is None
    assert calls(sim, DEAL_LOG) == len(sim.truth("deals") + sim.truth("archived_deals"))
    assert {r["deal_id"] for r in first.records("deal_changes")}
    # Incremental: an edit of one deal costs one changelog call next run.
    deal = next(d for d in sim.truth("deals") if d["status"] == "open")
    sim.advance(3600)
    sim.update("deals", deal["id"], value=4321.0)
    sim.reset_stats()
    second = run(config, state=first.state, catalog=catalog_with(config, ["deal_changes"]))
    assert second.error is None
    # Read alone, deal_changes reads every updated deal (not only those that moved).
    assert calls(sim, DEAL_LOG) == 1
    (change,) = [r for r in second.records("deal_changes") if r["column_name"] == "value"][-1:]
    assert (change["deal_id"], change["old_value"], change["new_value"]) == (
        deal["id"],
        deal["value"],
        4321,
    )


@pytest.mark.parametrize(
    ("stream", "entity", "id_key", "endpoint"),
    [
        ("person_changes", "persons", "person_id", PERSON_LOG),
        ("organization_changes", "organizations", "organization_id", ORG_LOG),
    ],
)
def test_contact_changes_read_only_records_changed_since_the_bookmark(
    sim, run, config_for, catalog_with, stream, entity, id_key, endpoint
):
    config = config_for(sim, stage_history_initial_days=None)
    catalog = catalog_with(config, [stream, entity])
    sim.reset_stats()
    first = run(config, catalog=catalog)
    assert first.error is None
    records = sim.truth(entity)
    assert calls(sim, endpoint) == len(records)
    got = by_entity(first.records(stream), id_key)
    columns = columns_by_key(first, entity)
    for rec in records:
        logged = sim.changelog(entity, rec["id"])
        rows = sorted(got[rec["id"]].values(), key=lambda r: r["changed_at"])
        assert [r["field_key"] for r in rows] == [e["field_key"] for e in logged]
        assert all(r["column_name"] == columns[r["field_key"]] for r in rows)
    # Nothing changed: no changelog call.
    sim.reset_stats()
    again = run(config, state=first.state, catalog=catalog)
    assert again.error is None
    assert calls(sim, endpoint) == 0
    # One record changed: one call, its new change typed as the table.
    target = records[3]
    sim.advance(600)
    field = "owner_id"
    other = next(u["id"] for u in sim.truth("users") if u["id"] != target[field])
    sim.update(entity, target["id"], **{field: other})
    sim.reset_stats()
    third = run(config, state=again.state, catalog=catalog)
    assert third.error is None
    assert calls(sim, endpoint) == 1
    newest = max(third.records(stream), key=lambda r: r["changed_at"])
    assert (newest[id_key], newest["column_name"], newest["old_value"], newest["new_value"]) == (
        target["id"],
        "owner_id",
        target["owner_id"],
        other,
    )
    assert newest["change_source"] == "api"


def test_contact_changes_stop_at_max_budget_share_and_resume(
    pipedrive_simulator_factory, run, config_for, catalog_with
):
    # A one-seat Essential account: 30,000 tokens a day; 0.01 of it lets a run spend 300.
    sim = pipedrive_simulator_factory(seed=11, deals=5, persons=25, plan="essential", seats=1)
    config = config_for(sim, stage_history_initial_days=None, max_budget_share=0.01)
    catalog = catalog_with(config, ["person_changes"])
    sim.reset_stats()
    first = run(config, catalog=catalog)
    assert first.error is None
    done = calls(sim, PERSON_LOG)
    assert 0 < done < len(sim.truth("persons"))
    assert tokens(sim) <= 300
    seen = {r["person_id"] for r in first.records("person_changes")}
    rounds = 0
    state = first.state
    while calls(sim, PERSON_LOG) < len(sim.truth("persons")) and rounds < 5:
        rounds += 1
        more = run(config, state=state, catalog=catalog)
        assert more.error is None
        state = more.state
        seen |= {r["person_id"] for r in more.records("person_changes")}
    # Every person read exactly once over the runs.
    assert calls(sim, PERSON_LOG) == len(sim.truth("persons"))
    with_changes = {p["id"] for p in sim.truth("persons") if sim.changelog("persons", p["id"])}
    assert seen == with_changes
