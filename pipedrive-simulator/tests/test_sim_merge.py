"""Merging a deal into another: the merged deal is gone (410 on its own endpoints, in no list)."""

import pytest
import requests


def test_a_merged_deal_answers_410_and_leaves_every_list(client):
    handle = client.handle
    merged, survivor = (d["id"] for d in handle.truth("deals")[:2])
    assert client.get(f"/api/v1/deals/{merged}/changelog").status_code == 200
    handle.advance(60)
    kept = handle.merge_deal(merged, survivor)
    assert kept["id"] == survivor

    for path in (f"/api/v1/deals/{merged}/changelog", f"/v1/deals/{merged}/flow"):
        resp = client.get(path)
        assert resp.status_code == 410, path
        body = resp.json()
        assert body["success"] is False
        assert f"merged into deal {survivor}" in body["error"]
        assert body["data"] is None
    assert client.get(f"/api/v1/deals/{survivor}/changelog").status_code == 200
    # Not even as a deleted deal, as a deleted one would be for 30 days.
    listed = client.read_all("/api/v2/deals", limit=500, status="open,won,lost,deleted")
    archived = client.read_all("/api/v2/deals/archived", limit=500, status="open,won,lost,deleted")
    assert merged not in {d["id"] for d in listed + archived}
    assert merged not in {d["id"] for d in handle.truth("deals") + handle.truth("archived_deals")}
    assert client.get(f"/api/v2/deals/{merged}").status_code == 404
    assert next(d for d in listed if d["id"] == survivor)["update_time"] == kept["update_time"]


def test_a_merged_deal_cannot_be_changed_or_merged_again(client):
    handle = client.handle
    a, b, c = (d["id"] for d in handle.truth("deals")[:3])
    with pytest.raises(ValueError, match="itself"):
        handle.merge_deal(a, a)
    handle.merge_deal(a, b)
    for change in (
        lambda: handle.merge_deal(a, c),
        lambda: handle.merge_deal(c, a),
        lambda: handle.update("deals", a, title="x"),
    ):
        with pytest.raises(ValueError, match=f"no deals record with id {a}"):
            change()


def test_merge_through_the_control_api(client):
    handle = client.handle
    merged, survivor = (d["id"] for d in handle.truth("deals")[:2])
    resp = requests.post(
        handle.base_url + "/_simulator/mutate",
        json={"op": "merge_deal", "id": merged, "merge_with_id": survivor},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["result"]["id"] == survivor
    assert client.get(f"/api/v1/deals/{merged}/changelog").status_code == 410
