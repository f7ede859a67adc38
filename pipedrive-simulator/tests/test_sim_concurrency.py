"""Concurrent clients and concurrent changes: every answer stays whole and consistent."""

import threading

import requests


def test_parallel_full_reads_during_changes(pipedrive_simulator):
    handle = pipedrive_simulator
    errors, results = [], []

    def read_all():
        with requests.Session() as s:
            s.headers["x-api-token"] = handle.api_token
            seen, cursor = {}, None
            while True:
                params = {"limit": 100, "sort_by": "update_time"}
                if cursor:
                    params["cursor"] = cursor
                resp = s.get(handle.base_url + "/api/v2/deals", params=params, timeout=30)
                if resp.status_code != 200:
                    errors.append(resp.text)
                    return
                body = resp.json()
                seen.update({d["id"]: d for d in body["data"]})
                cursor = body["additional_data"]["next_cursor"]
                if cursor is None:
                    results.append(seen)
                    return

    before = {d["id"] for d in handle.truth("deals") if d["status"] != "deleted"}
    threads = [threading.Thread(target=read_all) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(10):
        requests.post(handle.base_url + "/_simulator/advance", json={"seconds": 5}, timeout=10)
        requests.post(
            handle.base_url + "/_simulator/mutate",
            json={"op": "random_changes", "n": 5},
            timeout=10,
        )
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(results) == 4
    after = {d["id"] for d in handle.truth("deals") if d["status"] != "deleted"}
    for seen in results:
        # Deals that existed and stayed readable throughout were all served.
        assert (before & after) <= set(seen)
