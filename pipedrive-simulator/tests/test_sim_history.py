"""Deal flow and changelog serve the same stage history as stage_history()."""

import itertools

from pipedrive_simulator.timeutil import to_v1


def _changelog(client, deal_id):
    entries, cursor = [], None
    while True:
        params = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = client.ok(f"/v1/deals/{deal_id}/changelog", **params)
        entries.extend(body["data"])
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            return entries


def _flow(client, deal_id):
    items, start = [], 0
    while True:
        body = client.ok(f"/v1/deals/{deal_id}/flow", start=start, limit=4)
        items.extend(body["data"])
        page = body["additional_data"]["pagination"]
        if not page["more_items_in_collection"]:
            return items
        start = page["next_start"]


def _timeline_from_changes(first_stage, changes):
    """Rebuild [(stage_id, entered_at)] from stage_id changes, oldest first."""
    return [(first_stage, None)] + [(int(c["new"]), c["time"]) for c in changes]


def test_flow_and_changelog_agree_with_stage_history(client):
    handle = client.handle
    deals = handle.truth("deals")
    rich = sorted(deals, key=lambda d: -len(handle.stage_history(d["id"])))[:15]
    backward = pipeline_moves = 0
    for deal in rich:
        history = handle.stage_history(deal["id"])
        assert history[-1]["stage_id"] == deal["stage_id"]
        assert history[-1]["pipeline_id"] == deal["pipeline_id"]
        assert [h["entered_at"] for h in history] == sorted(h["entered_at"] for h in history)
        log = [e for e in _changelog(client, deal["id"]) if e["field_key"] == "stage_id"]
        log.reverse()  # the API returns newest first
        flow = [
            i["data"] for i in _flow(client, deal["id"]) if i["data"]["field_key"] == "stage_id"
        ]
        flow.reverse()
        expected = [(h["stage_id"], to_v1(h["entered_at"])) for h in history[1:]]
        assert [(int(e["new_value"]), e["time"]) for e in log] == expected
        assert [(d["new_value"], d["log_time"]) for d in flow] == expected
        assert [int(e["old_value"]) for e in log] == [h["stage_id"] for h in history[:-1]]
        assert all(isinstance(e["old_value"], str) for e in log)  # changelog values are strings
        for prev, cur in itertools.pairwise(history):
            if prev["pipeline_id"] != cur["pipeline_id"]:
                pipeline_moves += 1
            elif cur["stage_id"] < prev["stage_id"]:
                backward += 1
    assert backward > 0
    assert pipeline_moves > 0


def test_moves_through_the_api_extend_every_view(client):
    handle = client.handle
    deal = next(d for d in handle.truth("deals") if d["status"] == "open")
    before = handle.stage_history(deal["id"])
    target = next(s for s in handle.truth("stages") if s["pipeline_id"] != deal["pipeline_id"])
    handle.advance(3600)
    user = handle.truth("users")[1]["id"]
    moved = handle.move_deal(deal["id"], target["id"], user_id=user)
    assert moved["stage_id"] == target["id"]
    assert moved["pipeline_id"] == target["pipeline_id"]
    after = handle.stage_history(deal["id"])
    assert after[:-1] == before
    assert after[-1] == {
        "stage_id": target["id"],
        "pipeline_id": target["pipeline_id"],
        "entered_at": moved["update_time"],
        "user_id": user,
    }
    log = _changelog(client, deal["id"])
    assert log[0]["field_key"] in {"stage_id", "pipeline_id"}
    newest = {e["field_key"]: e for e in log[:2]}
    assert newest["stage_id"]["new_value"] == str(target["id"])
    assert newest["pipeline_id"]["new_value"] == str(target["pipeline_id"])
    assert newest["stage_id"]["actor_user_id"] == user
    flow = _flow(client, deal["id"])
    assert flow[0]["data"]["field_key"] in {"stage_id", "pipeline_id"}
    served = client.ok(f"/api/v2/deals/{deal['id']}")["data"]
    assert served["stage_change_time"] == moved["update_time"]


def test_status_changes_are_logged(client):
    handle = client.handle
    deal = next(d for d in handle.truth("deals") if d["status"] == "open")
    handle.advance(60)
    handle.update("deals", deal["id"], status="won")
    log = _changelog(client, deal["id"])
    assert (log[0]["field_key"], log[0]["old_value"], log[0]["new_value"]) == (
        "status",
        "open",
        "won",
    )
    served = client.ok(f"/api/v2/deals/{deal['id']}")["data"]
    assert served["status"] == "won"
    assert served["won_time"] == served["update_time"]


def test_flow_related_objects_and_items_filter(client):
    deal = max(
        client.handle.truth("deals"), key=lambda d: len(client.handle.stage_history(d["id"]))
    )
    body = client.ok(f"/v1/deals/{deal['id']}/flow")
    assert str(deal["id"]) in body["related_objects"]["deal"]
    change = body["data"][0]["data"]
    if change["field_key"] == "stage_id":
        assert change["additional_data"]["new_value_formatted"]
    assert client.ok(f"/v1/deals/{deal['id']}/flow", items="activity")["data"] == []


def test_flow_shows_custom_field_changes_only_with_all_changes(client):
    handle = client.handle
    key = handle.simulator.account.custom["deal"][0].key
    handle.advance(60)
    handle.update("deals", 3, **{key: "Changed text"})
    default = [i["data"]["field_key"] for i in _flow(client, 3)]
    everything = client.ok("/v1/deals/3/flow", all_changes="1")["data"]
    assert key not in default
    assert everything[0]["data"]["field_key"] == key
    assert everything[0]["data"]["new_value"] == "Changed text"
    assert _changelog(client, 3)[0]["field_key"] == key
