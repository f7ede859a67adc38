"""`meltano run` loads the less central objects and the child tables into Postgres: the
simulator's records arrive, projects carry their custom fields as columns, and a removed e-mail,
participant or lead label disappears at the next run. The opt-in per-record streams, selected
through the plugin's `select` extra, load too, and a removed follower or deal participant
disappears at the next run."""

from __future__ import annotations

import json
from typing import Any

from psycopg import sql

# table -> (simulator table in coverage_data, key)
LISTS = {
    "call_logs": ("call_logs", "id"),
    "lead_labels": ("lead_labels", "id"),
    "lead_sources": ("lead_sources", "name"),
    "filters": ("filters", "id"),
    "goals": ("goals", "id"),
    "projects": ("projects", "id"),
    "project_boards": ("boards", "id"),
    "project_phases": ("phases", "id"),
    "project_templates": ("project_templates", "id"),
    "tasks": ("tasks", "id"),
    "roles": ("roles", "id"),
    "permission_sets": ("permission_sets", "id"),
    "mail_threads": ("mail_threads", "id"),
}


def _keys(pipeline: Any, table: str, key: str) -> set[str]:
    rows = pipeline.query(
        sql.SQL("select {}::text from {}").format(sql.Identifier(key), pipeline.table(table))
    )
    return {row[0] for row in rows}


def _live(pipeline: Any, table: str, columns: tuple[str, ...]) -> set[tuple[Any, ...]]:
    query = sql.SQL("select {} from {} where _sdc_deleted_at is null").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns), pipeline.table(table)
    )
    return set(pipeline.query(query))


def test_new_tables_and_child_sets_through_meltano(pipedrive_simulator_factory, pipeline_factory):
    simulator = pipedrive_simulator_factory(deals=60)
    pipeline = pipeline_factory(simulator)
    coverage = simulator.simulator.coverage

    pipeline.run()
    for table, (kind, key) in LISTS.items():
        expected = {str(r[key]) for r in coverage.rows(kind)}
        assert _keys(pipeline, table, key) == expected, table
    model = next(f for f in coverage.project_fields if f.name == "Delivery model")
    stored = dict(
        pipeline.query(
            sql.SQL("select id, delivery_model from {}").format(pipeline.table("projects"))
        )
    )
    for project in coverage.rows("projects"):
        value = project["custom_fields"][model.key]
        assert stored[project["id"]] == (model.option_label(value) if value else None)
    # The opt-in per-parent streams are not read by the default selection.
    tables = {
        row[0]
        for row in pipeline.query(
            "select table_name from information_schema.tables where table_schema = %s",
            pipeline.schema,
        )
    }
    assert "user_permissions" not in tables
    per_record = {
        "deal_participants",
        "deal_followers",
        "deal_discounts",
        "organization_relationships",
        "mail_messages",
    }
    assert not per_record & tables
    assert {"person_emails", "activity_participants", "field_options"} <= tables

    simulator.advance(3600)
    person = next(p for p in simulator.truth("persons") if len(p["emails"]) >= 2)
    simulator.update("persons", person["id"], emails=person["emails"][:1])
    activity = next(a for a in simulator.truth("activities") if a["participants"])
    simulator.update("activities", activity["id"], participants=[])
    lead = next(x for x in simulator.truth("leads") if x["label_ids"])
    simulator.update("leads", lead["id"], label_ids=[])

    pipeline.run()
    assert _live(pipeline, "person_emails", ("person_id", "value")) == {
        (p["id"], e["value"]) for p in simulator.truth("persons") for e in p["emails"]
    }
    assert _live(pipeline, "activity_participants", ("activity_id", "person_id")) == {
        (a["id"], x["person_id"]) for a in simulator.truth("activities") for x in a["participants"]
    }
    leads = simulator.truth("leads") + simulator.truth("archived_leads")
    assert _live(pipeline, "lead_label_assignments", ("lead_id", "label_id")) == {
        (x["id"], label) for x in leads for label in x["label_ids"]
    }


PER_RECORD_PARENTS = ("deals", "persons", "organizations", "products", "mail_threads")
FOLLOWERS = {
    "deal_followers": ("deals", "deal_id"),
    "person_followers": ("persons", "person_id"),
    "organization_followers": ("organizations", "organization_id"),
    "product_followers": ("products", "product_id"),
}


def test_per_record_streams_through_meltano(pipedrive_simulator_factory, pipeline_factory):
    """The per-record streams selected explicitly (the parents and nothing else, to keep the
    runs short): each table holds the simulator's rows; a follower and a participant removed
    are gone after the next run."""
    simulator = pipedrive_simulator_factory(seed=5, deals=20)
    pipeline = pipeline_factory(simulator)
    coverage = simulator.simulator.coverage
    streams = [*PER_RECORD_PARENTS, *FOLLOWERS, "product_variations", "deal_participants"]
    streams += ["deal_discounts", "organization_relationships", "mail_messages"]
    select = json.dumps([f"{name}.*" for name in streams])
    env = {"TAP_PIPEDRIVE__SELECT": select}

    def live(entity: str) -> list[dict[str, Any]]:
        records = simulator.truth(entity)
        if entity == "deals":
            records = records + simulator.truth("archived_deals")
        return [r for r in records if not r.get("is_deleted")]

    def followers(table: str) -> set[tuple[Any, ...]]:
        entity, _ = FOLLOWERS[table]
        return {
            (r["id"], f["user_id"]) for r in live(entity) for f in coverage.followers(entity, r)
        }

    def participants() -> set[tuple[Any, ...]]:
        return {(d["id"], p["person_id"]) for d in live("deals") for p in coverage.participants(d)}

    def stored_participants() -> set[tuple[Any, ...]]:
        query = sql.SQL(
            "select deal_id, (person_id->>'value')::int from {} where _sdc_deleted_at is null"
        ).format(pipeline.table("deal_participants"))
        return set(pipeline.query(query))

    pipeline.run(env=env)
    for table, (_, column) in FOLLOWERS.items():
        assert _live(pipeline, table, (column, "user_id")) == followers(table), table
    assert stored_participants() == participants()
    assert _live(pipeline, "product_variations", ("product_id", "id")) == {
        (p["id"], p["id"] * 10 + k) for p in live("products") if p["id"] % 3 == 0 for k in (1, 2)
    }
    discounts = {x["id"] for d in live("deals") for x in coverage.discounts(d)}
    assert discounts
    assert {r[0] for r in _live(pipeline, "deal_discounts", ("id",))} == discounts
    organizations = {o["id"] for o in live("organizations")}
    relationships = {
        r["id"]
        for r in coverage.rows("organization_relationships")
        if {r["rel_owner_org_id"], r["rel_linked_org_id"]} & organizations
    }
    assert relationships
    assert {r[0] for r in _live(pipeline, "organization_relationships", ("id",))} == relationships
    messages = {m["id"] for t in coverage.rows("mail_threads") for m in coverage.mail_messages(t)}
    assert messages
    assert _keys(pipeline, "mail_messages", "id") == {str(m) for m in messages}

    simulator.advance(3600)
    person = next(p for p in live("persons") if len(coverage.followers("persons", p)) == 2)
    gone = coverage.followers("persons", person)[0]["user_id"]
    coverage.remove_follower("persons", person, gone)
    deal = next(d for d in live("deals") if len(coverage.participants(d)) == 1)
    coverage.remove_participant(deal, coverage.participants(deal)[0]["id"])
    simulator.advance(120)

    pipeline.run(env=env)
    assert _live(pipeline, "person_followers", ("person_id", "user_id")) == followers(
        "person_followers"
    )
    assert (person["id"], gone) not in followers("person_followers")
    assert stored_participants() == participants()
    assert not any(deal_id == deal["id"] for deal_id, _ in stored_participants())
