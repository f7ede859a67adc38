"""Mutations, the simulated clock, and the control API over HTTP."""

import pytest
import requests
from pipedrive_simulator.timeutil import to_rfc3339


def test_clock_stamps_every_change(client):
    handle = client.handle
    start = handle.now
    handle.advance(90)
    assert (handle.now - start).total_seconds() == 90
    person = handle.create("persons", name="Ada Lovelace")
    assert person["add_time"] == person["update_time"] == to_rfc3339(handle.now)
    served = client.ok(f"/api/v2/persons/{person['id']}")["data"]
    assert served["name"] == "Ada Lovelace"
    with pytest.raises(ValueError, match="forward"):
        handle.advance(-1)


def test_create_update_delete_show_up_in_incremental_reads(client):
    handle = client.handle
    handle.advance(3600)
    since = to_rfc3339(handle.now)
    deal = handle.create("deals", title="Fresh deal", value=1234.5, stage_id=2)
    org = handle.truth("organizations")[0]
    handle.update("organizations", org["id"], name="Renamed Org")
    person = handle.truth("persons")[0]
    handle.delete("persons", person["id"])
    changed = client.read_all(
        "/api/v2/deals", limit=500, updated_since=since, sort_by="update_time"
    )
    assert [d["id"] for d in changed] == [deal["id"]]
    assert changed[0]["title"] == "Fresh deal"
    assert changed[0]["stage_id"] == 2
    assert handle.stage_history(deal["id"])[0]["stage_id"] == 2
    orgs = client.read_all("/api/v2/organizations", limit=500, updated_since=since)
    assert [(o["id"], o["name"]) for o in orgs] == [(org["id"], "Renamed Org")]
    assert person["id"] not in {p["id"] for p in client.read_all("/api/v2/persons", limit=500)}
    assert client.get(f"/api/v2/persons/{person['id']}").json()["data"]["is_deleted"] is True


def test_deal_fields_with_their_own_operation_are_refused(client):
    handle = client.handle
    for key, value in (("pipeline_id", 2), ("is_deleted", True), ("is_archived", True)):
        with pytest.raises(ValueError, match=key):
            handle.update("deals", 1, **{key: value})
    with pytest.raises(ValueError, match="status"):
        handle.update("deals", 1, status="deleted")
    with pytest.raises(ValueError, match="no deals record"):
        handle.update("deals", 10**9, title="x")


def test_custom_field_values_can_be_set_and_fields_changed(client):
    handle = client.handle
    key = handle.add_field("deals", "Churn risk", "enum", options=["Low", "High"])
    assert len(key) == 40
    fields = client.ok("/api/v2/dealFields", limit=500)["data"]
    added = next(f for f in fields if f["field_code"] == key)
    assert [o["label"] for o in added["options"]] == ["Low", "High"]
    high = added["options"][1]["id"]
    assert client.ok("/api/v2/deals/1")["data"]["custom_fields"][key] is None
    handle.update("deals", 1, **{key: high})
    deal = client.ok("/api/v2/deals/1", include_option_labels="true")["data"]
    assert deal["custom_fields"][key] == {"id": high, "label": "High"}
    option = handle.add_field_option("deals", key, "Medium")
    labels = [
        o["label"]
        for o in next(
            f for f in client.ok("/api/v2/dealFields", limit=500)["data"] if f["field_code"] == key
        )["options"]
    ]
    assert labels == ["Low", "High", "Medium"]
    assert option > high
    handle.rename_field("deals", key, "Churn probability")
    v1_fields = client.ok("/v1/dealFields", limit=500)["data"]
    assert next(f for f in v1_fields if f["key"] == key)["name"] == "Churn probability"
    handle.delete_field("deals", key)
    assert key not in client.ok("/api/v2/deals/1")["data"]["custom_fields"]
    assert key not in {f["field_code"] for f in client.ok("/api/v2/dealFields", limit=500)["data"]}
    with pytest.raises(ValueError, match="field_type"):
        handle.add_field("deals", "Bad", "hologram")


def test_v1_shapes_of_custom_fields_on_leads(client):
    handle = client.handle
    account = handle.simulator.account
    money = next(f for f in account.custom["deal"] if f.field_type == "monetary")
    address = next(f for f in account.custom["deal"] if f.field_type == "address")
    span = next(f for f in account.custom["deal"] if f.field_type == "daterange")
    choice = next(f for f in account.custom["deal"] if f.field_type == "set")
    leads = client.ok("/v1/leads", limit=500)["data"]
    stored = {lead["id"]: account.stores["leads"].get(lead["id"]) for lead in leads}
    for fdef, siblings in (
        (money, ("_currency",)),
        (address, ("_locality", "_formatted_address")),
        (span, ("_until",)),
    ):
        value_of = {i: (rec["custom_fields"] or {}).get(fdef.key) for i, rec in stored.items()}
        with_value = [lead for lead in leads if value_of[lead["id"]] is not None]
        without = [lead for lead in leads if value_of[lead["id"]] is None]
        assert with_value, fdef.field_type
        assert without, fdef.field_type
        for lead in with_value:
            assert all(f"{fdef.key}{suffix}" in lead for suffix in ("", *siblings))
        # As the spec says: a custom field not set on the lead is not in the response.
        for lead in without:
            assert not any(key.startswith(fdef.key) for key in lead), fdef.field_type
    lead = next(lead for lead in leads if choice.key in lead)
    assert lead[choice.key] == ",".join(
        str(i) for i in stored[lead["id"]]["custom_fields"][choice.key]
    )
    assert all("custom_fields" not in lead for lead in leads)


def test_field_options_can_be_renamed_and_deleted(client):
    handle = client.handle
    region = next(f for f in handle.simulator.account.custom["deal"] if f.name == "Region")
    emea, latam = (
        next(o["id"] for o in region.options if o["label"] == x) for x in ("EMEA", "LATAM")
    )
    handle.update("deals", 1, **{region.key: emea})
    handle.update("deals", 2, **{region.key: latam})
    before = client.ok("/api/v2/deals/1")["data"]["update_time"]
    handle.advance(30)

    handle.rename_field_option("deals", region.key, emea, "Europe")
    deal = client.ok("/api/v2/deals/1", include_option_labels="true")["data"]
    assert deal["custom_fields"][region.key] == {"id": emea, "label": "Europe"}
    assert deal["update_time"] == before  # relabelling an option changes no record
    v2_def = client.ok(f"/api/v2/dealFields/{region.key}")["data"]
    assert [o["label"] for o in v2_def["options"]][:2] == ["Europe", "North America"]
    assert v2_def["options"][0]["id"] == emea

    handle.delete_field_option("deals", region.key, latam)
    v2_def = client.ok(f"/api/v2/dealFields/{region.key}")["data"]
    assert latam not in {o["id"] for o in v2_def["options"]}
    v1_def = client.ok(f"/v1/dealFields/{region.id}")["data"]
    assert v1_def["options_deleted"] == [{"id": latam, "label": "LATAM"}]
    assert latam not in {o["id"] for o in v1_def["options"]}
    assert "options_deleted" not in next(
        f for f in client.ok("/v1/dealFields", limit=500)["data"] if f["key"] != region.key
    )
    # Records that held the deleted option keep its id.
    assert client.ok("/api/v2/deals/2")["data"]["custom_fields"][region.key] == latam
    # Leads carry the deal fields, so their definitions follow.
    lead_def = next(
        f for f in client.ok("/v1/leadFields", limit=500)["data"] if f["key"] == region.key
    )
    assert lead_def["options"][0]["label"] == "Europe"

    with pytest.raises(ValueError, match="no option"):
        handle.rename_field_option("deals", region.key, latam, "Gone")
    with pytest.raises(ValueError, match="no option"):
        handle.delete_field_option("deals", region.key, 10**6)
    seats = next(f for f in handle.simulator.account.custom["deal"] if f.name == "Seats")
    with pytest.raises(ValueError, match="no option"):
        handle.rename_field_option("deals", seats.key, 1, "One")


def test_lead_and_note_field_definitions(client):
    account = client.handle.simulator.account
    lead_fields = client.ok("/v1/leadFields", limit=500)["data"]
    keys = [f["key"] for f in lead_fields]
    assert {"title", "owner_id", "person_id", "organization_id", "value"} <= set(keys)
    # Leads inherit the deal custom fields (same keys, same ids).
    custom = [(f["id"], f["key"]) for f in lead_fields if len(f["key"]) == 40]
    assert custom == [(f.id, f.key) for f in account.custom["deal"]]
    page = client.ok("/v1/leadFields", start=5, limit=5)
    assert [f["key"] for f in page["data"]] == keys[5:10]
    assert page["additional_data"]["pagination"]["next_start"] == 10

    body = client.ok("/v1/noteFields")
    notes = body["data"]
    assert {f["key"] for f in notes} >= {"content", "deal_id", "person_id", "pinned_to_deal_flag"}
    assert set(notes[0]) == {
        "id",
        "key",
        "name",
        "field_type",
        "active_flag",
        "edit_flag",
        "bulk_edit_allowed",
        "mandatory_flag",
        "options",
    }
    pinned = next(f for f in notes if f["key"] == "pinned_to_deal_flag")
    assert pinned["options"] == [{"id": 1, "label": "Yes"}, {"id": 0, "label": "No"}]
    assert body["additional_data"]["pagination"]["more_items_in_collection"] is False
    with pytest.raises(ValueError, match="no custom fields"):
        client.handle.add_field("notes", "Mood", "varchar")
    # A field added through leads is a deal field.
    key = client.handle.add_field("leads", "Lead score", "double")
    assert key in {f["field_code"] for f in client.ok("/api/v2/dealFields", limit=500)["data"]}


def test_stages_rename_and_add(client):
    handle = client.handle
    handle.advance(10)
    handle.rename_stage(1, "Qualified (renamed)")
    new_id = handle.add_stage(1, "Security review")
    stages = {s["id"]: s for s in client.ok("/api/v2/stages", limit=500)["data"]}
    assert stages[1]["name"] == "Qualified (renamed)"
    assert stages[1]["update_time"] == to_rfc3339(handle.now)
    assert stages[new_id]["pipeline_id"] == 1
    deal = next(d for d in handle.truth("deals") if d["status"] == "open")
    handle.move_deal(deal["id"], new_id)
    assert client.ok(f"/api/v2/deals/{deal['id']}")["data"]["stage_id"] == new_id


def test_random_changes_are_deterministic_and_visible(pipedrive_simulator_factory):
    a = pipedrive_simulator_factory(seed=5, deals=200)
    b = pipedrive_simulator_factory(seed=5, deals=200)
    assert a.truth("deals") == b.truth("deals")
    summary = a.random_changes(60, seed=1)
    assert summary == b.random_changes(60, seed=1)
    assert sum(summary.values()) > 40
    assert a.truth("deals") == b.truth("deals")
    assert a.truth("persons") == b.truth("persons")
    c = pipedrive_simulator_factory(seed=6, deals=200)
    assert c.truth("deals") != a.truth("deals")


def test_control_api_over_http(pipedrive_simulator):
    base = pipedrive_simulator.base_url + "/_simulator"
    token = {"x-api-token": pipedrive_simulator.api_token}
    before = requests.get(base + "/clock", timeout=10).json()["now"]
    after = requests.post(base + "/advance", json={"seconds": 120}, timeout=10).json()["now"]
    assert after > before
    created = requests.post(
        base + "/mutate",
        json={"op": "create", "entity": "deals", "fields": {"title": "Via HTTP"}},
        timeout=10,
    )
    assert created.status_code == 200, created.text
    deal_id = created.json()["result"]["id"]
    moved = requests.post(
        base + "/mutate", json={"op": "move_deal", "id": deal_id, "stage_id": 3}, timeout=10
    )
    assert moved.status_code == 200, moved.text
    history = requests.get(base + f"/stage-history/{deal_id}", timeout=10).json()
    assert [h["stage_id"] for h in history] == [1, 3]
    key = requests.post(
        base + "/mutate",
        json={"op": "add_field", "entity": "persons", "name": "Hobby", "field_type": "varchar"},
        timeout=10,
    ).json()["result"]
    assert len(key) == 40
    region = next(
        f for f in pipedrive_simulator.truth("deal_fields") if f["field_name"] == "Region"
    )
    first, second = (o["id"] for o in region["options"][:2])
    for body in (
        {"op": "rename_field_option", "option_id": first, "label": "Europe"},
        {"op": "delete_field_option", "option_id": second},
    ):
        resp = requests.post(
            base + "/mutate",
            json={**body, "entity": "deals", "key": region["field_code"]},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
    options = next(
        f
        for f in pipedrive_simulator.truth("deal_fields")
        if f["field_code"] == region["field_code"]
    )["options"]
    assert options[0] == {"id": first, "label": "Europe", "color": None}
    assert second not in {o["id"] for o in options}
    summary = requests.post(
        base + "/mutate", json={"op": "random_changes", "n": 10, "seed": 3}, timeout=10
    ).json()["result"]
    assert sum(summary.values()) > 0
    truth = requests.get(base + "/truth/deals", timeout=10).json()
    assert any(d["id"] == deal_id and d["title"] == "Via HTTP" for d in truth)
    requests.get(pipedrive_simulator.base_url + "/api/v2/deals", headers=token, timeout=10)
    stats = requests.get(base + "/stats", timeout=10).json()
    assert stats["endpoints"]["GET /api/v2/deals"] == {
        "requests": 1,
        "tokens": 10,
        "responses_429": 0,
    }
    assert not any(k.startswith("GET /_simulator") for k in stats["endpoints"])
    requests.post(base + "/reset-stats", timeout=10)
    assert requests.get(base + "/stats", timeout=10).json()["total"]["requests"] == 0
    for bad in (
        {"op": "explode"},
        {"op": "move_deal", "id": deal_id, "stage_id": 999},
        {"op": "update", "entity": "deals", "id": 1, "fields": {"nope": 1}},
        {"op": "rename_field_option", "entity": "deals", "key": key, "option_id": 1, "label": "x"},
    ):
        resp = requests.post(base + "/mutate", json=bad, timeout=10)
        assert resp.status_code == 400, bad
        assert resp.json()["success"] is False
    assert requests.get(base + "/truth/unicorns", timeout=10).status_code == 400


def test_truth_covers_every_stream(pipedrive_simulator):
    for entity in (
        "deals",
        "archived_deals",
        "persons",
        "organizations",
        "activities",
        "products",
        "deal_products",
        "leads",
        "archived_leads",
        "notes",
        "users",
        "pipelines",
        "stages",
        "files",
        "activity_types",
        "currencies",
        "deal_fields",
        "person_fields",
        "organization_fields",
        "product_fields",
        "activity_fields",
    ):
        assert pipedrive_simulator.truth(entity), entity
