"""Benchmark-sized accounts are generated on demand; a 500-deal page is served fast."""

import time

from pipedrive_simulator.protocol import Request
from pipedrive_simulator.simulator import Simulator


def _page(sim, **query):
    req = Request(
        "GET",
        "/api/v2/deals",
        {k: str(v) for k, v in query.items()},
        {"x-api-token": sim.api_token},
    )
    out = sim.handle(req)
    assert out.response is not None
    assert out.response.status == 200
    return out.response


def test_a_million_deals_start_instantly_and_page_by_id():
    started = time.monotonic()
    sim = Simulator(seed=1, deals=1_000_000)
    assert time.monotonic() - started < 2
    assert len(sim.account.stores["deals"]) == 1_000_000
    started = time.monotonic()
    body = _page(sim, limit=500, cursor="eyJmIjoiaWQiLCJkIjoiYXNjIiwiayI6OTk5MDAwfQ").body
    assert time.monotonic() - started < 2
    assert b'"id":999001' in body
    # The last page of a million: cursor null.
    assert body.endswith(b'"next_cursor":null}}') or b'"next_cursor":"' in body


def test_small_account_page_of_500_serves_in_milliseconds():
    sim = Simulator(seed=2)
    _page(sim, limit=500)  # warm: records serialised once
    timings = []
    for _ in range(15):
        started = time.perf_counter()
        _page(sim, limit=500)
        timings.append(time.perf_counter() - started)
    timings.sort()
    assert timings[len(timings) // 2] < 0.02, timings


def test_unmemoised_entities_sort_by_update_time_from_the_seed():
    sim = Simulator(seed=3, deals=30_000)  # persons (36,000) exceed the memo limit
    req = Request(
        "GET",
        "/api/v2/persons",
        {"limit": "500", "sort_by": "update_time", "updated_since": "2026-05-20T00:00:00Z"},
        {"x-api-token": sim.api_token},
    )
    out = sim.handle(req)
    assert out.response is not None
    import orjson

    data = orjson.loads(out.response.body)["data"]
    stamps = [p["update_time"] for p in data]
    assert data
    assert stamps == sorted(stamps)
    assert stamps[0] >= "2026-05-20T00:00:00Z"
    again = sim.account.stores["persons"].get(data[0]["id"])
    assert again == sim.account.stores["persons"].get(data[0]["id"])
    assert again is not None
    assert again["update_time"] == data[0]["update_time"]


def test_spliced_json_equals_the_rendered_record():
    import orjson
    from pipedrive_simulator.mutations import Mutator
    from pipedrive_simulator.render import v2_bytes, v2_record

    sim = Simulator(seed=4, deals=300)
    account = sim.account
    mutator = Mutator(account)

    def check():
        for stream in ("deals", "persons", "organizations", "products"):
            store = account.stores[stream]
            for rec in store.iter_records(list(store.ids())[:150]):
                assert orjson.loads(v2_bytes(account, stream, rec)) == v2_record(
                    account, stream, rec
                )

    check()
    mutator.add_field("deals", "Late addition", "varchar")
    mutator.delete_field("persons", account.custom["person"][0].key)
    mutator.update("deals", 5, title="Edited")
    check()


def test_unmemoised_reads_keep_no_json():
    sim = Simulator(seed=3, deals=24_000)  # deals are memoised, persons (28,800) are not
    for path in ("/api/v2/persons", "/api/v2/deals"):
        req = Request("GET", path, {"limit": "500"}, {"x-api-token": sim.api_token})
        assert sim.handle(req).response is not None
    assert len(sim.account.stores["persons"].serialized) == 0
    assert len(sim.account.stores["deals"].serialized) == 500


def test_v1_offset_pages_of_a_large_entity_cost_one_pass():
    import orjson
    from pipedrive_simulator.mutations import Mutator

    sim = Simulator(seed=5, deals=100_000)  # 100,000 notes, not memoised

    def page(**query):
        req = Request(
            "GET",
            "/v1/notes",
            {k: str(v) for k, v in query.items()},
            {"x-api-token": sim.api_token},
        )
        out = sim.handle(req)
        assert out.response is not None
        assert out.response.status == 200
        return orjson.loads(out.response.body)

    first = page(start=0, limit=500, updated_since="2026-05-01T00:00:00Z")
    total_pages = []
    started = time.monotonic()
    start = 500
    for _ in range(20):
        body = page(start=start, limit=500, updated_since="2026-05-01T00:00:00Z")
        total_pages.append(body)
        start += 500
    assert time.monotonic() - started < 5
    stamps = [n["update_time"] for n in first["data"]]
    assert stamps
    assert min(stamps) >= "2026-05-01 00:00:00"
    whole = page(start=90_000, limit=500)
    assert whole["additional_data"]["pagination"]["start"] == 90_000
    assert [n["id"] for n in whole["data"]] == list(range(90_001, 90_501))
    Mutator(sim.account).delete("notes", 90_001)
    again = page(start=90_000, limit=500)
    assert [n["id"] for n in again["data"]] == list(range(90_002, 90_502))
