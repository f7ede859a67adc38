"""Token-based rate limiting: costs from the spec, burst windows, daily budget, 429s, 403 page."""

import requests
from pipedrive_simulator.costs import cost_of


def _session(handle, bearer=None):
    s = requests.Session()
    if bearer:
        s.headers["authorization"] = f"Bearer {bearer}"
    else:
        s.headers["x-api-token"] = handle.api_token
    return s


def test_headers_and_charges_follow_plan_and_spec(pipedrive_simulator_factory):
    handle = pipedrive_simulator_factory(plan="professional", users=3)
    s = _session(handle)
    resp = s.get(handle.base_url + "/api/v2/deals", timeout=10)
    assert resp.status_code == 200
    h = resp.headers
    assert h["x-ratelimit-limit"] == "80"
    assert h["x-ratelimit-remaining"] == "79"
    assert h["x-ratelimit-reset"] in {"1", "2"}
    assert h["x-daily-ratelimit-token-limit"] == str(30_000 * 4 * 3)
    assert h["x-daily-ratelimit-token-remaining"] == str(30_000 * 4 * 3 - 10)
    s.get(handle.base_url + "/api/v2/deals/1", timeout=10)
    s.get(handle.base_url + "/v1/deals/1/flow", timeout=10)
    s.get(handle.base_url + "/v1/deals/1/changelog", timeout=10)
    s.get(handle.base_url + "/api/v2/stages", timeout=10)
    stats = handle.stats()
    endpoints = stats["endpoints"]
    assert endpoints["GET /api/v2/deals"]["tokens"] == cost_of("v2", "GET /deals") == 10
    assert endpoints["GET /api/v2/deals/{id}"]["tokens"] == cost_of("v2", "GET /deals/{id}") == 1
    assert (
        endpoints["GET /v1/deals/{id}/flow"]["tokens"]
        == cost_of("v1", "GET /deals/{id}/flow")
        == 40
    )
    assert endpoints["GET /v1/deals/{id}/changelog"]["tokens"] == 20
    assert endpoints["GET /api/v2/stages"]["tokens"] == 5
    assert stats["total"] == {"requests": 5, "tokens": 76, "responses_429": 0}
    handle.reset_stats()
    assert handle.stats()["total"]["requests"] == 0


def test_burst_limit_gives_429_then_the_403_page_when_hammered(pipedrive_simulator_factory):
    handle = pipedrive_simulator_factory(plan="essential")
    s = _session(handle)
    url = handle.base_url + "/api/v2/stages"
    statuses = [s.get(url, timeout=10).status_code for _ in range(20)]
    assert statuses == [200] * 20
    refused = s.get(url, timeout=10)
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.json()["success"] is False
    for _ in range(9):
        s.get(url, timeout=10)
    blocked = s.get(url, timeout=10)
    assert blocked.status_code == 403
    assert blocked.headers["content-type"].startswith("text/html")
    assert "Cloudflare" in blocked.text
    assert handle.stats()["total"]["responses_429"] == 10


def test_oauth_tokens_get_the_oauth_burst_limit(pipedrive_simulator_factory):
    handle = pipedrive_simulator_factory(plan="advanced")
    resp = requests.post(
        handle.base_url + "/oauth/token",
        data={"grant_type": "authorization_code", "code": handle.oauth_code()},
        auth=(handle.oauth_client_id, handle.oauth_client_secret),
        timeout=10,
    )
    s = _session(handle, bearer=resp.json()["access_token"])
    first = s.get(handle.base_url + "/api/v2/stages", timeout=10)
    assert first.headers["x-ratelimit-limit"] == "160"


def test_exhausted_budget_is_429_until_the_daily_reset(pipedrive_simulator_factory):
    handle = pipedrive_simulator_factory(plan="essential")
    s = _session(handle)
    url = handle.base_url + "/api/v2/deals"
    handle.set_budget_remaining(15)
    ok = s.get(url, timeout=10)
    assert ok.status_code == 200
    assert ok.headers["x-daily-ratelimit-token-remaining"] == "5"
    for _ in range(3):
        refused = s.get(url, timeout=10)
        assert refused.status_code == 429
        assert refused.headers["x-daily-ratelimit-token-remaining"] == "5"
    # A cheaper request still fits the remaining budget.
    assert s.get(url + "/1", timeout=10).status_code == 200
    now = handle.now
    handle.advance((24 - now.hour) * 3600)
    after = s.get(url, timeout=10)
    assert after.status_code == 200
    limit = int(after.headers["x-daily-ratelimit-token-limit"])
    assert int(after.headers["x-daily-ratelimit-token-remaining"]) == limit - 10


def test_plan_switch_over_the_control_api(pipedrive_simulator):
    s = _session(pipedrive_simulator)
    base = pipedrive_simulator.base_url
    assert (
        requests.post(
            base + "/_simulator/plan", json={"plan": "enterprise"}, timeout=10
        ).status_code
        == 200
    )
    assert s.get(base + "/api/v2/stages", timeout=10).headers["x-ratelimit-limit"] == "120"
    assert (
        requests.post(
            base + "/_simulator/plan", json={"budget_remaining": 0}, timeout=10
        ).status_code
        == 200
    )
    assert s.get(base + "/api/v2/stages", timeout=10).status_code == 429
    assert (
        requests.post(base + "/_simulator/plan", json={"plan": "gold"}, timeout=10).status_code
        == 400
    )
