"""v2 keyset cursors and filters, v1 offset pagination, and the 400s the real API gives."""

from datetime import timedelta

import pytest
from pipedrive_simulator.timeutil import to_rfc3339


def test_default_limit_is_100_and_cursor_is_null_on_the_last_page(client):
    body = client.ok("/api/v2/deals")
    assert len(body["data"]) == 100
    assert body["additional_data"]["next_cursor"]
    total = len(client.handle.truth("deals")) - sum(
        1 for d in client.handle.truth("deals") if d["status"] == "deleted"
    )
    last = client.ok("/api/v2/deals", limit=500)
    assert len(last["data"]) == total
    assert last["additional_data"]["next_cursor"] is None


@pytest.mark.parametrize("sort_by", ["id", "update_time", "add_time"])
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_cursor_paging_visits_every_record_once_in_order(client, sort_by, direction):
    records = client.read_all(
        "/api/v2/persons", limit=37, sort_by=sort_by, sort_direction=direction
    )
    truth = client.handle.truth("persons")
    assert sorted(r["id"] for r in records) == sorted(p["id"] for p in truth)
    keys = [(r[sort_by], r["id"]) for r in records]
    assert keys == sorted(keys, reverse=direction == "desc")


def test_records_updated_between_pages_are_not_lost(client):
    handle = client.handle
    first = client.ok("/api/v2/deals", limit=50, sort_by="update_time", status="open,won,lost")
    seen = {d["id"]: d for d in first["data"]}
    open_deals = [d for d in handle.truth("deals") if d["status"] == "open"]
    early = first["data"][0]["id"]  # already served
    late = max(open_deals, key=lambda d: d["update_time"])["id"]  # not served yet
    handle.advance(60)
    handle.update("deals", early, title="Changed after it was served")
    handle.update("deals", late, title="Changed before it was served")
    cursor = first["additional_data"]["next_cursor"]
    while cursor:
        body = client.ok(
            "/api/v2/deals", limit=50, sort_by="update_time", status="open,won,lost", cursor=cursor
        )
        for d in body["data"]:
            seen[d["id"]] = d
        cursor = body["additional_data"]["next_cursor"]
    expected = {d["id"] for d in handle.truth("deals") if d["status"] != "deleted"}
    assert set(seen) == expected
    assert seen[early]["title"] == "Changed after it was served"
    assert seen[late]["title"] == "Changed before it was served"


def test_updated_since_is_inclusive_and_updated_until_exclusive(client):
    deals = client.handle.truth("deals")
    pivot = sorted(deals, key=lambda d: d["update_time"])[len(deals) // 2]
    stamp = pivot["update_time"]
    since = client.read_all(
        "/api/v2/deals", limit=500, updated_since=stamp, status="open,won,lost,deleted"
    )
    until = client.read_all(
        "/api/v2/deals", limit=500, updated_until=stamp, status="open,won,lost,deleted"
    )
    assert pivot["id"] in {d["id"] for d in since}
    assert pivot["id"] not in {d["id"] for d in until}
    assert all(d["update_time"] >= stamp for d in since)
    assert all(d["update_time"] < stamp for d in until)
    assert len(since) + len(until) == len(deals)


def test_updated_since_accepts_an_offset_and_means_the_same_instant(client):
    utc = client.read_all("/api/v2/organizations", limit=500, updated_since="2026-05-01T10:00:00Z")
    offset = client.read_all(
        "/api/v2/organizations", limit=500, updated_since="2026-05-01T12:00:00+02:00"
    )
    assert utc == offset


def test_deal_status_filter_and_deleted_only_within_30_days(client):
    handle = client.handle
    open_deal = next(d for d in handle.truth("deals") if d["status"] == "open")
    handle.delete("deals", open_deal["id"])
    deleted = client.read_all("/api/v2/deals", limit=500, status="deleted")
    assert open_deal["id"] in {d["id"] for d in deleted}
    assert all(d["is_deleted"] and d["status"] == "deleted" for d in deleted)
    default = client.read_all("/api/v2/deals", limit=500)
    assert open_deal["id"] not in {d["id"] for d in default}
    won = client.read_all("/api/v2/deals", limit=500, status="won")
    assert won
    assert all(d["status"] == "won" for d in won)
    cutoff = to_rfc3339(handle.now - timedelta(days=30))
    assert all(d["update_time"] >= cutoff for d in deleted)
    handle.advance(31 * 86400)
    later = client.read_all("/api/v2/deals", limit=500, status="deleted")
    assert open_deal["id"] not in {d["id"] for d in later}
    assert client.get(f"/api/v2/deals/{open_deal['id']}").status_code == 404


def test_archived_deals_only_on_their_own_endpoint(client):
    handle = client.handle
    deal = next(d for d in handle.truth("deals") if d["status"] == "won")
    handle.archive_deal(deal["id"])
    archived = client.read_all("/api/v2/deals/archived", limit=500)
    assert deal["id"] in {d["id"] for d in archived}
    assert all(d["is_archived"] for d in archived)
    assert deal["id"] not in {
        d["id"] for d in client.read_all("/api/v2/deals", limit=500, status="open,won,lost,deleted")
    }
    assert sorted(d["id"] for d in archived) == sorted(
        d["id"] for d in handle.truth("archived_deals")
    )


def test_ids_and_equality_filters(client):
    body = client.ok("/api/v2/deals", ids="3,1,2,999999")
    assert [d["id"] for d in body["data"]] == [1, 2, 3]
    stage = client.ok("/api/v2/deals", limit=500, stage_id=2)["data"]
    assert stage
    assert all(d["stage_id"] == 2 for d in stage)
    pipeline_stages = client.ok("/api/v2/stages", pipeline_id=2)["data"]
    assert pipeline_stages
    assert all(s["pipeline_id"] == 2 for s in pipeline_stages)


def test_linked_filters_labels_and_unknown_saved_filters(client):
    handle = client.handle
    deal = next(d for d in handle.truth("deals") if d["person_id"] and d["label_ids"])
    persons = client.ok("/api/v2/persons", deal_id=deal["id"])["data"]
    assert [p["id"] for p in persons] == [deal["person_id"]]
    labelled = client.ok(f"/api/v2/deals/{deal['id']}", include_labels="true")["data"]
    assert [label["id"] for label in labelled["labels"]] == deal["label_ids"]
    assert all(isinstance(label["label"], str) for label in labelled["labels"])
    listed = client.ok("/api/v2/deals", ids=str(deal["id"]), include_labels="true")["data"]
    assert listed[0]["labels"] == labelled["labels"]
    missing = client.get("/api/v2/deals", filter_id=7)
    assert missing.status_code == 404
    assert "Filter" in missing.json()["error"]
    assert client.get("/api/v2/stages", filter_id=7).status_code == 400
    done = client.ok("/api/v2/activities", limit=500, done="true")["data"]
    assert done
    assert all(a["done"] for a in done)


def test_custom_fields_parameter_and_option_labels(client):
    account = client.handle.simulator.account
    enum = next(f for f in account.custom["deal"] if f.field_type == "enum")
    options = next(f for f in account.custom["deal"] if f.field_type == "set")
    body = client.ok(
        "/api/v2/deals",
        limit=200,
        custom_fields=f"{enum.key},{options.key}",
        include_option_labels="true",
    )
    for deal in body["data"]:
        assert set(deal["custom_fields"]) == {enum.key, options.key}
        value = deal["custom_fields"][enum.key]
        if value is not None:
            assert value == {"id": value["id"], "label": enum.option_label(value["id"])}
        many = deal["custom_fields"][options.key]
        if many is not None:
            assert all(set(v) == {"id", "label"} for v in many)
    plain = client.ok("/api/v2/deals", limit=200)["data"]
    assert any(isinstance(d["custom_fields"][enum.key], int) for d in plain)


def test_custom_fields_is_null_when_the_entity_has_none(client):
    handle = client.handle
    deal = client.ok("/api/v2/deals/1")["data"]
    assert isinstance(deal["custom_fields"], dict)
    assert len(deal["custom_fields"]) >= 40
    assert deal == next(d for d in handle.truth("deals") if d["id"] == 1)
    for fdef in list(handle.simulator.account.custom["product"]):
        handle.delete_field("products", fdef.key)
    products = client.ok("/api/v2/products", limit=5)["data"]
    assert products
    assert all(p["custom_fields"] is None for p in products)


def test_include_fields_are_computed_from_the_account(client):
    handle = client.handle
    fields = ",".join(
        (
            "products_count",
            "notes_count",
            "activities_count",
            "done_activities_count",
            "undone_activities_count",
            "next_activity_id",
            "smart_bcc_email",
        )
    )
    deals = client.ok("/api/v2/deals", limit=100, include_fields=fields)["data"]
    notes = handle.truth("notes")
    activities = handle.truth("activities")
    account = handle.simulator.account
    for deal in deals:
        own = [a for a in activities if a["deal_id"] == deal["id"]]
        assert deal["products_count"] == len(account.line_items_of(deal["id"]))
        assert deal["notes_count"] == sum(1 for n in notes if n["deal_id"] == deal["id"])
        assert deal["activities_count"] == len(own)
        assert deal["done_activities_count"] + deal["undone_activities_count"] == len(own)
        undone = sorted((a["due_date"], a["id"]) for a in own if not a["done"])
        assert deal["next_activity_id"] == (undone[0][1] if undone else None)
        assert "@" in deal["smart_bcc_email"]
    assert any(d["notes_count"] for d in deals)
    orgs = client.ok(
        "/api/v2/organizations", limit=50, include_fields="people_count,open_deals_count"
    )["data"]
    persons = handle.truth("persons")
    open_deals = [d for d in handle.truth("deals") if d["status"] == "open"]
    for org in orgs:
        assert org["people_count"] == sum(1 for p in persons if p["org_id"] == org["id"])
        assert org["open_deals_count"] == sum(1 for d in open_deals if d["org_id"] == org["id"])


@pytest.mark.parametrize(
    ("path", "params", "fragment"),
    [
        ("/api/v2/deals", {"limit": "501"}, "limit"),
        ("/api/v2/deals", {"limit": "0"}, "limit"),
        ("/api/v2/deals", {"limit": "ten"}, "limit"),
        ("/api/v2/deals", {"updated_since": "2025-01-01T10:20:00.123Z"}, "fractional"),
        ("/api/v2/deals", {"updated_since": "2025-01-01"}, "RFC 3339"),
        ("/api/v2/pipelines", {"updated_since": "2025-01-01T10:20:00Z"}, "updated_since"),
        ("/api/v2/stages", {"updated_since": "2025-01-01T10:20:00Z"}, "updated_since"),
        ("/api/v2/deals", {"sort_by": "title"}, "sort_by"),
        ("/api/v2/deals", {"sort_direction": "up"}, "sort_direction"),
        ("/api/v2/deals", {"status": "open,closed"}, "status"),
        ("/api/v2/deals", {"cursor": "not-a-cursor"}, "cursor"),
        ("/api/v2/deals", {"ids": ",".join(str(i) for i in range(101))}, "ids"),
        ("/api/v2/deals", {"custom_fields": ",".join(f"k{i}" for i in range(16))}, "custom_fields"),
        ("/api/v2/deals", {"include_fields": "bogus"}, "include_fields"),
        ("/api/v2/deals/products", {}, "deal_ids"),
        ("/api/v2/deals/abc", {}, "id"),
        ("/v1/recents", {}, "since_timestamp"),
        ("/v1/notes", {"start": "-1"}, "start"),
    ],
)
def test_bad_requests_get_400_with_a_reason(client, path, params, fragment):
    resp = client.get(path, **params)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["success"] is False
    assert body["errorCode"] == 400
    assert fragment in body["error"]


def test_a_cursor_is_bound_to_its_sort(client):
    cursor = client.ok("/api/v2/deals", limit=5)["additional_data"]["next_cursor"]
    resp = client.get("/api/v2/deals", limit=5, cursor=cursor, sort_by="update_time")
    assert resp.status_code == 400


def test_v1_offset_pagination_reads_everything(client):
    notes, start = [], 0
    while True:
        body = client.ok("/v1/notes", start=start, limit=100)
        notes.extend(body["data"])
        page = body["additional_data"]["pagination"]
        if not page["more_items_in_collection"]:
            assert "next_start" not in page
            break
        start = page["next_start"]
    assert notes == client.handle.truth("notes")
    leads = client.ok("/v1/leads", limit=500)["data"]
    assert leads == client.handle.truth("leads")
    archived, start = [], 0
    while True:  # the seeded account's few archived leads, two per page
        body = client.ok("/v1/leads/archived", start=start, limit=2)
        archived.extend(body["data"])
        page = body["additional_data"]["pagination"]
        if not page["more_items_in_collection"]:
            break
        start = page["next_start"]
    assert len(archived) > 2
    assert archived == client.handle.truth("archived_leads")
    assert all(lead["is_archived"] and lead["archive_time"] for lead in archived)
    assert not any(lead["is_archived"] for lead in leads)


def test_archiving_a_lead_moves_it_to_the_archived_list(client):
    handle = client.handle
    lead = client.ok("/v1/leads", limit=1)["data"][0]
    handle.advance(60)
    handle.update("leads", lead["id"], is_archived=True)
    assert lead["id"] not in {x["id"] for x in client.ok("/v1/leads", limit=500)["data"]}
    archived = client.ok("/v1/leads/archived", limit=500, sort="update_time ASC")["data"]
    assert archived[-1]["id"] == lead["id"]
    assert archived[-1]["archive_time"] == archived[-1]["update_time"]
    assert [x["update_time"] for x in archived] == sorted(x["update_time"] for x in archived)
    # The archived list documents no updated_since: older archived leads are still listed.
    since = archived[-1]["update_time"][:19] + "Z"
    everything = client.ok("/v1/leads/archived", limit=500)["data"]
    assert len(everything) > 1
    assert client.ok("/v1/leads/archived", limit=500, updated_since=since)["data"] == everything
    assert client.ok("/v1/leads", limit=500, updated_since=since)["data"] == []
    handle.update("leads", lead["id"], is_archived=False)
    restored = client.ok(f"/v1/leads/{lead['id']}")["data"]
    assert restored["is_archived"] is False
    assert restored["archive_time"] is None


def test_v1_notes_updated_since_and_item_shape(client):
    stamp = "2026-05-01 00:00:00"
    notes = client.ok("/v1/notes", limit=500, updated_since=stamp)["data"]
    assert notes
    assert all(n["update_time"] >= stamp for n in notes)
    note = notes[0]
    assert note["add_time"][10] == " "  # v1 timestamps: "YYYY-MM-DD HH:MM:SS"
    assert set(note["user"]) == {"email", "name", "icon_url", "is_you"}


def test_removed_legacy_v1_endpoints_answer_410(client):
    for path in (
        "/v1/deals",
        "/api/v1/persons",
        "/v1/organizations/1",
        "/v1/stages",
        "/v1/deals/collection",
    ):
        resp = client.get(path)
        assert resp.status_code == 410, path
        assert resp.json()["success"] is False


def test_deal_products_take_deal_ids_in_either_array_form(client):
    handle = client.handle
    account = handle.simulator.account
    with_items = [d["id"] for d in handle.truth("deals") if account.line_items_of(d["id"])][:3]
    repeated = client.session.get(
        handle.base_url + "/api/v2/deals/products",
        params=[("deal_ids", i) for i in with_items],
        timeout=10,
    ).json()["data"]
    joined = client.ok("/api/v2/deals/products", deal_ids=",".join(map(str, with_items)))["data"]
    assert repeated == joined
    assert {p["deal_id"] for p in joined} == set(with_items)
    expected = [p for p in handle.truth("deal_products") if p["deal_id"] in with_items]
    assert sorted(joined, key=lambda p: p["id"]) == sorted(expected, key=lambda p: p["id"])


def test_v1_sort_parameter(client):
    notes = client.ok("/v1/notes", limit=500, sort="deal_id DESC, id ASC")["data"]
    with_deal = [n for n in notes if n["deal_id"] is not None]
    assert with_deal
    assert [n["deal_id"] for n in with_deal] == sorted(
        (n["deal_id"] for n in with_deal), reverse=True
    )
    assert any(n["deal_id"] is None for n in notes)
    leads = client.ok("/v1/leads", limit=500, sort="update_time DESC")["data"]
    assert [lead["update_time"] for lead in leads] == sorted(
        (lead["update_time"] for lead in leads), reverse=True
    )
    files = client.ok("/v1/files", limit=100, sort="update_time ASC")["data"]
    assert [f["update_time"] for f in files] == sorted(f["update_time"] for f in files)
    assert client.get("/v1/notes", sort="colour ASC").status_code == 400
    assert client.get("/v1/notes", sort="id SIDEWAYS").status_code == 400
    assert client.get("/v1/files", limit=101).status_code == 400
    # The account's saved filters (coverage_data) are listed by recents as item "filter".
    recents = client.ok("/v1/recents", since_timestamp="2020-01-01 00:00:00", items="filter")
    filters = client.handle.simulator.coverage.rows("filters")
    assert filters
    assert sorted(r["id"] for r in recents["data"]) == sorted(f["id"] for f in filters)
    assert {r["item"] for r in recents["data"]} == {"filter"}
    assert all(" " in r["data"]["update_time"] for r in recents["data"])  # v1 times
    newest = max(f["update_time"] for f in filters)
    later = f"{newest[:10]} {newest[11:19]}"
    assert [
        r["id"] for r in client.ok("/v1/recents", since_timestamp=later, items="filter")["data"]
    ] == [f["id"] for f in filters if f["update_time"] == newest]


def test_line_items_of_purged_deals_are_gone_everywhere(client):
    handle = client.handle
    account = handle.simulator.account
    deal = next(
        d for d in handle.truth("deals") if d["status"] == "open" and account.line_items_of(d["id"])
    )
    handle.delete("deals", deal["id"])
    assert client.ok("/api/v2/deals/products", deal_ids=deal["id"])["data"]
    handle.advance(31 * 86400)
    assert client.ok("/api/v2/deals/products", deal_ids=deal["id"])["data"] == []
    assert deal["id"] not in {p["deal_id"] for p in handle.truth("deal_products")}
    readable = {d["id"] for d in handle.truth("deals") + handle.truth("archived_deals")}
    assert {p["deal_id"] for p in handle.truth("deal_products")} <= readable
