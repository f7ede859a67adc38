"""The less central objects (call logs ... user permissions) and the child tables: each stream
carries the simulator's records exactly, works alone, and child sets follow additions and
removals into Postgres."""

from __future__ import annotations

import io
import json
import typing as t

import psycopg
import pytest
from psycopg import sql
from tap_pipedrive.streams import OPT_IN_STREAM_TYPES, STREAM_TYPES
from tap_pipedrive.streams.bases import ChildRowsStream
from target_pipeboard_postgres.target import TargetPipeboardPostgres

# stream -> the simulator's table (coverage_data) it mirrors, and its key.
SIMPLE = {
    "call_logs": ("call_logs", "id"),
    "lead_labels": ("lead_labels", "id"),
    "lead_sources": ("lead_sources", "name"),
    "filters": ("filters", "id"),
    "goals": ("goals", "id"),
    "project_boards": ("boards", "id"),
    "project_phases": ("phases", "id"),
    "project_templates": ("project_templates", "id"),
    "tasks": ("tasks", "id"),
    "mail_threads": ("mail_threads", "id"),
    "permission_sets": ("permission_sets", "id"),
    "roles": ("roles", "id"),
}
NEW_STREAMS = sorted(
    {
        *SIMPLE,
        "lead_fields",
        "note_fields",
        "goal_results",
        "projects",
        "project_fields",
        "project_deals",
        "deal_installments",
        "role_assignments",
        "role_settings",
        "permission_set_assignments",
        "user_permissions",
        "person_emails",
        "person_phones",
        "organization_addresses",
        "activity_participants",
        "activity_attendees",
        "lead_label_assignments",
        "field_options",
        "person_followers",
        "organization_followers",
        "product_followers",
        "product_variations",
    }
)


def _by(rows: t.Iterable[dict[str, t.Any]], key: str) -> dict[t.Any, dict[str, t.Any]]:
    return {row[key]: row for row in rows}


def _assert_carries(records: list[dict[str, t.Any]], truth: list[dict[str, t.Any]], key: str):
    got = _by(records, key)
    assert sorted(got, key=str) == sorted((r[key] for r in truth), key=str)
    for row in truth:
        assert {k: got[row[key]].get(k) for k in row} == row, row[key]


@pytest.fixture
def small_account(pipedrive_simulator_factory):
    return pipedrive_simulator_factory(seed=11, deals=120)


@pytest.fixture
def everything(small_account, run, config_for, catalog_with):
    """One run with every new stream selected (opt-in ones too)."""
    sim = small_account
    config = config_for(sim)
    catalog = catalog_with(config, NEW_STREAMS)
    sim.reset_stats()
    result = run(config, catalog=catalog)
    assert result.error is None
    return sim, result


def test_list_streams_carry_the_simulators_records(everything):
    sim, result = everything
    coverage = sim.simulator.coverage
    for stream, (kind, key) in SIMPLE.items():
        truth = coverage.rows(kind)
        if stream == "roles":  # counts are derived per request
            truth = [{k: v for k, v in r.items()} for r in truth]
        _assert_carries(result.records(stream), truth, key)
    # Mail threads of every folder arrive (each is in one folder in the seeded mailbox).
    folders = {f for r in result.records("mail_threads") for f in r["folders"]}
    assert folders == {"inbox", "drafts", "sent", "archive"}
    # Inactive goals too (the API lists active ones unless asked).
    assert {r["is_active"] for r in result.records("goals")} == {True, False}


def test_field_lists_and_installments(everything):
    sim, result = everything
    account = sim.simulator.account
    lead_keys = {f.key for f in account.field_defs("lead")}
    assert set(result.ids("lead_fields", "key")) == lead_keys
    assert set(result.ids("note_fields", "key")) == {f.key for f in account.field_defs("note")}
    defs = sim.simulator.coverage.project_fields
    assert set(result.ids("project_fields", "field_code")) == {f.key for f in defs}
    # Installments of every deal with line items (read 100 deals per request with them).
    expected = [
        r
        for r in sim.simulator.coverage.rows("installments")
        if sim.simulator.account.line_items_of(r["deal_id"])
    ]
    assert expected
    _assert_carries(result.records("deal_installments"), expected, "id")


def test_projects_with_custom_fields_labels_and_deals(everything):
    sim, result = everything
    coverage = sim.simulator.coverage
    truth = coverage.rows("projects")
    got = _by(result.records("projects"), "id")
    assert sorted(got) == sorted(r["id"] for r in truth)
    assert any(r["archive_time"] for r in truth), "the seeded account has archived projects"
    custom = {f.name: f for f in coverage.project_fields if f.is_custom}
    for row in truth:
        record = got[row["id"]]
        for key in ("title", "status", "phase_id", "label_ids", "deal_ids", "archive_time"):
            assert record[key] == row[key], (row["id"], key)
        values = row["custom_fields"]
        model = custom["Delivery model"]
        expected = model.option_label(values[model.key]) if values[model.key] else None
        assert record["delivery_model"] == expected
        budget = values[custom["Project budget"].key]
        assert record["project_budget"] == (budget and budget["value"])
        assert record["project_budget_currency"] == (budget and budget["currency"])
        assert record["budget_hours"] == values[custom["Budget hours"].key]
        # Projects are read in full, so one without deals is sent as an empty-set marker.
        links = [d for d in result.records("project_deals") if d["_sdc_deleted_at"] is None]
        deals = [(d["project_id"], d["deal_id"]) for d in links]
        assert [d for d in deals if d[0] == row["id"]] == [(row["id"], d) for d in row["deal_ids"]]


def test_per_parent_streams(everything):
    sim, result = everything
    coverage = sim.simulator.coverage
    users = sim.truth("users")
    perms = {r["user_id"]: r for r in result.records("user_permissions")}
    assert sorted(perms) == sorted(u["id"] for u in users)
    for user in users:
        assert {k: perms[user["id"]][k] for k in coverage.user_permissions(user["id"])} == (
            coverage.user_permissions(user["id"])
        )
    settings = _by(result.records("role_settings"), "role_id")
    for role_id in coverage.tables["roles"]:
        assert {k: settings[role_id][k] for k in coverage.role_settings(role_id)} == (
            coverage.role_settings(role_id)
        )
    members = {(r["role_id"], r["user_id"]) for r in result.records("role_assignments")}
    assert members == {(coverage.role_of(u), u["id"]) for u in users}
    sets = {
        (r["permission_set_id"], r["user_id"]) for r in result.records("permission_set_assignments")
    }
    assert sets == {(coverage.permission_set_of(u), u["id"]) for u in users}
    results = _by(result.records("goal_results"), "goal_id")
    assert sorted(results) == sorted(coverage.tables["goals"])
    for goal_id, row in results.items():
        assert row["progress"] == coverage.goal_progress(goal_id)
        assert row["period_start"] == coverage.tables["goals"][goal_id]["duration"]["start"]


def test_child_tables_come_from_the_parents_without_requests(everything):
    sim, result = everything
    persons = sim.truth("persons")
    emails = {(r["person_id"], r["position"]): r["value"] for r in result.records("person_emails")}
    assert emails == {
        (p["id"], n): e["value"] for p in persons for n, e in enumerate(p["emails"] or ())
    }
    # A first read sends no empty-set markers.
    assert all(r["_sdc_deleted_at"] is None for r in result.records("person_emails"))
    options = result.records("field_options")
    deal_fields = sim.truth("deal_fields")
    assert {(r["field_code"], r["id"], r["label"]) for r in options if r["entity"] == "deal"} == {
        (f["field_code"], o["id"], o["label"]) for f in deal_fields for o in f["options"] or ()
    }
    assert {r["entity"] for r in options} >= {"deal", "person", "organization", "project"}
    # No endpoint of its own was requested for any child table.
    endpoints = set(sim.stats()["endpoints"])
    assert not any("emails" in e or "participants" in e for e in endpoints)


@pytest.mark.parametrize("stream", NEW_STREAMS)
def test_each_stream_works_alone(small_account, run, config_for, catalog_with, stream):
    config = config_for(small_account)
    result = run(config, catalog=catalog_with(config, [stream]))
    assert result.error is None
    assert result.records(stream), stream
    emitted = {m["stream"] for m in result.types("RECORD")}
    assert emitted == {stream}


def test_the_opt_in_streams_are_the_per_parent_ones():
    names = {cls.name for cls in OPT_IN_STREAM_TYPES}
    assert names == {
        "deal_stage_changes",
        "deal_changes",
        "person_changes",
        "organization_changes",
        "goal_results",
        "role_assignments",
        "role_settings",
        "permission_set_assignments",
        "user_permissions",
        "person_followers",
        "organization_followers",
        "product_followers",
        "product_variations",
        "deal_followers",
        "deal_participants",
        "deal_discounts",
        "organization_relationships",
        "mail_messages",
    }
    children = {cls.name for cls in STREAM_TYPES if issubclass(cls, ChildRowsStream)}
    assert not children & names  # free: selected by default


def _load(messages: list[dict[str, t.Any]], postgres_url: str, schema: str) -> None:
    text = "\n".join(json.dumps(m) for m in messages) + "\n"
    target = TargetPipeboardPostgres(
        config={"database_url": postgres_url, "default_target_schema": schema},
        parse_env_config=False,
    )
    target.listen(io.StringIO(text))


def _live(postgres_url: str, schema: str, table: str, columns: str) -> set[tuple[t.Any, ...]]:
    query = sql.SQL("SELECT {} FROM {} WHERE _sdc_deleted_at IS NULL").format(
        sql.SQL(columns), sql.Identifier(schema, table)
    )
    with psycopg.connect(postgres_url) as conn:
        return set(conn.execute(query).fetchall())


def test_added_and_removed_children_are_reflected_after_the_next_run(
    pipedrive_simulator_factory, run, config_for, catalog_with, postgres_url, pg_schema
):
    sim = pipedrive_simulator_factory(seed=5, deals=60)
    config = config_for(sim)
    streams = [
        "persons",
        "person_emails",
        "activities",
        "activity_participants",
        "leads",
        "lead_label_assignments",
    ]
    catalog = catalog_with(config, streams)
    first = run(config, catalog=catalog)
    assert first.error is None
    _load(first.messages, postgres_url, pg_schema)

    sim.advance(3600)
    persons = sim.truth("persons")
    two = next(p for p in persons if len(p["emails"]) >= 2)
    one = next(p for p in persons if len(p["emails"]) == 1)
    sim.update("persons", two["id"], emails=two["emails"][1:])  # the first address removed
    sim.update(
        "persons",
        one["id"],
        emails=[*one["emails"], {"value": "new@example.org", "primary": False, "label": "home"}],
    )
    sim.update("persons", persons[-1]["id"], emails=[])
    activities = sim.truth("activities")
    with_one = next(a for a in activities if a["participants"])
    sim.update("activities", with_one["id"], participants=[])
    without = next(a for a in activities if not a["participants"])
    sim.update("activities", without["id"], participants=[{"person_id": 1, "primary": True}])
    leads = sim.truth("leads")
    labelled = next(x for x in leads if x["label_ids"])
    sim.update("leads", labelled["id"], label_ids=labelled["label_ids"][1:])
    plain = next(x for x in leads if not x["label_ids"])
    hot = next(iter(sim.simulator.coverage.tables["lead_labels"]))
    sim.update("leads", plain["id"], label_ids=[hot])

    second = run(config, state=first.state, catalog=catalog)
    assert second.error is None
    # Only the changed parents' children were sent again.
    assert {r["person_id"] for r in second.records("person_emails")} == {
        r["id"] for r in second.records("persons")
    }
    assert len(second.records("persons")) == 3
    _load(second.messages, postgres_url, pg_schema)

    assert _live(postgres_url, pg_schema, "person_emails", "person_id, value") == {
        (p["id"], e["value"]) for p in sim.truth("persons") for e in p["emails"]
    }
    assert _live(postgres_url, pg_schema, "activity_participants", "activity_id, person_id") == {
        (a["id"], x["person_id"]) for a in sim.truth("activities") for x in a["participants"]
    }
    every_lead = sim.truth("leads") + sim.truth("archived_leads")
    assert _live(postgres_url, pg_schema, "lead_label_assignments", "lead_id, label_id") == {
        (x["id"], label) for x in every_lead for label in x["label_ids"]
    }


def test_per_record_streams_read_only_the_records_changed_since_the_bookmark(
    pipedrive_simulator_factory, run, config_for, catalog_with
):
    sim = pipedrive_simulator_factory(seed=3, deals=40)
    config = config_for(sim)
    streams = [
        "person_followers",
        "organization_followers",
        "product_followers",
        "product_variations",
    ]
    # The parents' bookmarks advance only for selected parents (as in the sync job).
    catalog = catalog_with(config, [*streams, "persons", "organizations", "products"])
    first = run(config, catalog=catalog)
    assert first.error is None
    users = sim.simulator.account.gen.user_ids

    def followers(rec):
        extra = users[rec["id"] % len(users)]
        found = {rec.get("owner_id") or users[0]}
        if rec["id"] % 3 == 0:
            found.add(extra)
        return found

    for stream, parent, column in (
        ("person_followers", "persons", "person_id"),
        ("organization_followers", "organizations", "organization_id"),
        ("product_followers", "products", "product_id"),
    ):
        got = {(r[column], r["user_id"]) for r in first.records(stream)}
        live = [r for r in sim.truth(parent) if not r.get("is_deleted")]
        assert got == {(r["id"], u) for r in live for u in followers(r)}, stream
    variations = first.records("product_variations")
    assert {(r["product_id"], r["id"]) for r in variations} == {
        (p["id"], p["id"] * 10 + k)
        for p in sim.truth("products")
        if p["id"] % 3 == 0
        for k in (1, 2)
    }

    sim.advance(3600)
    person = sim.truth("persons")[4]
    product = next(p for p in sim.truth("products") if p["id"] % 3 == 0)
    sim.update("persons", person["id"], name="Renamed person")
    sim.update("products", product["id"], name="Renamed product")
    sim.reset_stats()
    second = run(config, state=first.state, catalog=catalog)
    assert second.error is None
    endpoints = sim.stats()["endpoints"]
    assert endpoints["GET /api/v2/persons/{id}/followers"]["requests"] == 1
    assert endpoints["GET /api/v2/products/{id}/followers"]["requests"] == 1
    assert endpoints["GET /api/v2/products/{id}/variations"]["requests"] == 1
    assert "GET /api/v2/organizations/{id}/followers" not in endpoints
    assert {r["person_id"] for r in second.records("person_followers")} == {person["id"]}
    assert {r["product_id"] for r in second.records("product_variations")} == {product["id"]}
