"""`meltano run` loads the less central objects and the child tables into Postgres: the
simulator's records arrive, projects carry their custom fields as columns, and a removed e-mail,
participant or lead label disappears at the next run."""

from __future__ import annotations

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
