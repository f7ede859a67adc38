"""Faults on demand, each as a client sees it over real HTTP."""

import json
import time

import pytest
import requests


@pytest.fixture
def s(pipedrive_simulator):
    session = requests.Session()
    session.headers["x-api-token"] = pipedrive_simulator.api_token
    yield session
    session.close()


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_then_recovery(pipedrive_simulator, s, status):
    handle = pipedrive_simulator
    handle.set_fault(f"http_{status}", path="/api/v2/deals", times=2)
    url = handle.base_url + "/api/v2/deals"
    assert [s.get(url, timeout=10).status_code for _ in range(3)] == [status, status, 200]
    assert s.get(handle.base_url + "/api/v2/stages", timeout=10).status_code == 200


def test_slow_answer_passes_a_client_timeout(pipedrive_simulator, s):
    handle = pipedrive_simulator
    handle.set_fault("slow", path="/api/v2/persons", delay=1.0, times=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        s.get(handle.base_url + "/api/v2/persons", timeout=0.3)
    started = time.monotonic()
    assert s.get(handle.base_url + "/api/v2/persons", timeout=10).status_code == 200
    assert time.monotonic() - started < 0.9


def test_connection_reset(pipedrive_simulator, s):
    handle = pipedrive_simulator
    handle.set_fault("reset", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        s.get(handle.base_url + "/api/v2/deals", timeout=10)
    assert s.get(handle.base_url + "/api/v2/deals", timeout=10).status_code == 200


@pytest.mark.parametrize("kind", ["truncated_json", "malformed_json"])
def test_broken_json(pipedrive_simulator, s, kind):
    handle = pipedrive_simulator
    handle.set_fault(kind, path="/v1/notes", times=1)
    resp = s.get(handle.base_url + "/v1/notes", timeout=10)
    assert resp.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.text)
    good = s.get(handle.base_url + "/v1/notes", timeout=10)
    assert good.json()["success"] is True
    if kind == "truncated_json":
        assert good.content.startswith(resp.content)
        assert len(resp.content) < len(good.content)


def test_null_body_on_flow(pipedrive_simulator, s):
    handle = pipedrive_simulator
    handle.set_fault("null_body", path="/v1/deals/", times=1)
    resp = s.get(handle.base_url + "/v1/deals/1/flow", timeout=10)
    assert resp.status_code == 200
    assert resp.json()["data"] is None
    assert s.get(handle.base_url + "/v1/deals/1/flow", timeout=10).json()["data"] is not None


@pytest.mark.parametrize(
    ("kind", "header"),
    [
        ("burst_429", "x-ratelimit-remaining"),
        ("budget_exhausted", "x-daily-ratelimit-token-remaining"),
    ],
)
def test_429_faults(pipedrive_simulator, s, kind, header):
    handle = pipedrive_simulator
    handle.set_fault(kind, times=1)
    resp = s.get(handle.base_url + "/api/v2/deals", timeout=10)
    assert resp.status_code == 429
    assert resp.headers[header] == "0"
    assert handle.stats()["total"]["responses_429"] == 1


def test_probability_and_clear(pipedrive_simulator, s):
    handle = pipedrive_simulator
    handle.set_fault("http_500", probability=0.5)
    codes = [s.get(handle.base_url + "/api/v2/stages", timeout=10).status_code for _ in range(40)]
    assert 5 < codes.count(500) < 35
    handle.clear_faults()
    assert s.get(handle.base_url + "/api/v2/stages", timeout=10).status_code == 200


def test_faults_over_the_control_api(pipedrive_simulator, s):
    base = pipedrive_simulator.base_url
    r = requests.post(
        base + "/_simulator/faults",
        json={"kind": "http_503", "path": "/api/v2/deals", "times": 1},
        timeout=10,
    )
    assert r.status_code == 200
    assert s.get(base + "/api/v2/deals", timeout=10).status_code == 503
    requests.post(base + "/_simulator/faults", json={"kind": "http_500"}, timeout=10)
    assert requests.delete(base + "/_simulator/faults", timeout=10).status_code == 200
    assert s.get(base + "/api/v2/deals", timeout=10).status_code == 200
    bad = requests.post(base + "/_simulator/faults", json={"kind": "gremlins"}, timeout=10)
    assert bad.status_code == 400
    assert "gremlins" in bad.json()["error"]


def test_an_unexpected_handler_error_is_a_500_and_the_server_keeps_serving(
    pipedrive_simulator, s, capsys
):
    import dataclasses

    router = pipedrive_simulator.simulator.router
    index = next(i for i, r in enumerate(router.routes) if r.endpoint == "GET /api/v2/pipelines")

    def broken(req):
        raise RuntimeError("simulated bug")

    original = router.routes[index]
    router.routes[index] = dataclasses.replace(original, handler=broken)
    resp = s.get(pipedrive_simulator.base_url + "/api/v2/pipelines", timeout=10)
    assert resp.status_code == 500
    assert resp.json()["success"] is False
    assert "simulated bug" in capsys.readouterr().err
    router.routes[index] = original
    assert s.get(pipedrive_simulator.base_url + "/api/v2/pipelines", timeout=10).status_code == 200
