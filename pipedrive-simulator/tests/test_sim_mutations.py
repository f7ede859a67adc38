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
    lead = client.ok("/v1/leads", limit=1)["data"][0]
    assert f"{money.key}_currency" in lead
    assert f"{address.key}_locality" in lead
    assert f"{address.key}_formatted_address" in lead
    assert f"{span.key}_until" in lead
    assert "custom_fields" not in lead


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
