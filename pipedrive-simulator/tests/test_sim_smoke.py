"""Every main endpoint answers over real HTTP with the documented envelope."""

import pytest
import requests


@pytest.fixture
def session(pipedrive_simulator):
    s = requests.Session()
    s.headers["x-api-token"] = pipedrive_simulator.api_token
    yield s
    s.close()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/deals",
        "/api/v2/deals/archived",
        "/api/v2/persons",
        "/api/v2/organizations",
        "/api/v2/activities",
        "/api/v2/products",
        "/api/v2/pipelines",
        "/api/v2/stages",
        "/api/v2/dealFields",
        "/api/v2/personFields",
        "/api/v2/organizationFields",
        "/api/v2/productFields",
        "/api/v2/activityFields",
    ],
)
def test_v2_lists_answer_with_cursor_envelope(pipedrive_simulator, session, path):
    resp = session.get(pipedrive_simulator.base_url + path, params={"limit": 5})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["success"] is True
    assert 0 < len(body["data"]) <= 5
    assert "next_cursor" in body["additional_data"]


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1"])
@pytest.mark.parametrize(
    "path",
    [
        "/notes",
        "/leads",
        "/leads/archived",
        "/files",
        "/dealFields",
        "/personFields",
        "/leadFields",
    ],
)
def test_v1_lists_answer_with_offset_pagination(pipedrive_simulator, session, prefix, path):
    resp = session.get(pipedrive_simulator.base_url + prefix + path, params={"limit": 3})
    assert resp.status_code == 200, resp.text
    pagination = resp.json()["additional_data"]["pagination"]
    assert pagination["start"] == 0
    assert pagination["limit"] == 3
    assert pagination["more_items_in_collection"] is True
    assert pagination["next_start"] == 3


def test_v1_users_are_unpaginated(pipedrive_simulator, session):
    body = session.get(pipedrive_simulator.base_url + "/v1/users").json()
    assert len(body["data"]) == len(pipedrive_simulator.truth("users"))
    assert "pagination" not in body["additional_data"]


def test_full_read_of_deals_equals_truth(pipedrive_simulator, session):
    seen, cursor = [], None
    while True:
        params = {"limit": 500, "status": "open,won,lost,deleted"}
        if cursor:
            params["cursor"] = cursor
        body = session.get(pipedrive_simulator.base_url + "/api/v2/deals", params=params).json()
        seen.extend(body["data"])
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            break
    assert seen == pipedrive_simulator.truth("deals")
    assert len(seen) > 400
