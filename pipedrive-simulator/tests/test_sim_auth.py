"""API token (header or query) and OAuth2 (authorization code, refresh token, Bearer)."""

from urllib.parse import parse_qs, urlsplit

import requests


def test_api_token_in_header_or_query(pipedrive_simulator):
    url = pipedrive_simulator.base_url + "/api/v2/stages"
    assert (
        requests.get(
            url, headers={"x-api-token": pipedrive_simulator.api_token}, timeout=10
        ).status_code
        == 200
    )
    assert (
        requests.get(
            url, params={"api_token": pipedrive_simulator.api_token}, timeout=10
        ).status_code
        == 200
    )


def test_missing_or_wrong_token_is_401_and_not_charged(pipedrive_simulator):
    url = pipedrive_simulator.base_url + "/api/v2/deals"
    for resp in (
        requests.get(url, timeout=10),
        requests.get(url, headers={"x-api-token": "wrong"}, timeout=10),
        requests.get(url, params={"api_token": "wrong"}, timeout=10),
        requests.get(url, headers={"authorization": "Bearer nope"}, timeout=10),
    ):
        assert resp.status_code == 401
        body = resp.json()
        assert body["success"] is False
        assert body["errorCode"] == 401
        assert pipedrive_simulator.api_token not in resp.text
    stats = pipedrive_simulator.stats()
    assert stats["total"]["requests"] == 4
    assert stats["total"]["tokens"] == 0


def _authorize(handle, redirect_uri="https://app.example.com/callback"):
    resp = requests.get(
        handle.base_url + "/oauth/authorize",
        params={"client_id": handle.oauth_client_id, "redirect_uri": redirect_uri, "state": "xyz"},
        allow_redirects=False,
        timeout=10,
    )
    assert resp.status_code == 302
    location = urlsplit(resp.headers["location"])
    query = parse_qs(location.query)
    assert location.geturl().startswith(redirect_uri)
    assert query["state"] == ["xyz"]
    return query["code"][0]


def _token(handle, data, auth=None):
    return requests.post(
        handle.base_url + "/oauth/token",
        data=data,
        auth=auth or (handle.oauth_client_id, handle.oauth_client_secret),
        timeout=10,
    )


def test_oauth_authorization_code_refresh_and_expiry(pipedrive_simulator):
    handle = pipedrive_simulator
    redirect = "https://app.example.com/callback"
    code = _authorize(handle, redirect)
    resp = _token(
        handle, {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect}
    )
    assert resp.status_code == 200, resp.text
    grant = resp.json()
    assert grant["token_type"] == "Bearer"
    assert grant["expires_in"] == 3599
    assert grant["api_domain"] == handle.base_url
    bearer = {"authorization": f"Bearer {grant['access_token']}"}
    ok = requests.get(handle.base_url + "/api/v2/deals", headers=bearer, timeout=10)
    assert ok.status_code == 200
    assert ok.headers["x-ratelimit-limit"] == "1000000"
    # A code is single-use.
    again = _token(
        handle, {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect}
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    # Access tokens expire on the simulated clock; the refresh token gets a new one.
    handle.advance(3600)
    assert (
        requests.get(handle.base_url + "/api/v2/deals", headers=bearer, timeout=10).status_code
        == 401
    )
    refreshed = _token(
        handle, {"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
    )
    assert refreshed.status_code == 200
    new = refreshed.json()
    assert new["access_token"] != grant["access_token"]
    assert new["api_domain"] == handle.base_url
    fresh = {"authorization": f"Bearer {new['access_token']}"}
    assert requests.get(handle.base_url + "/v1/users", headers=fresh, timeout=10).status_code == 200


def test_oauth_token_endpoint_rejects_bad_clients_and_grants(pipedrive_simulator):
    handle = pipedrive_simulator
    code = handle.oauth_code()
    bad_client = _token(handle, {"grant_type": "authorization_code", "code": code}, auth=("x", "y"))
    assert bad_client.status_code == 401
    no_basic = requests.post(
        handle.base_url + "/oauth/token", data={"grant_type": "refresh_token"}, timeout=10
    )
    assert no_basic.status_code == 401
    bad_grant = _token(handle, {"grant_type": "password"})
    assert bad_grant.status_code == 400
    assert bad_grant.json()["error"] == "unsupported_grant_type"
    bad_refresh = _token(handle, {"grant_type": "refresh_token", "refresh_token": "nope"})
    assert bad_refresh.status_code == 400
    assert bad_refresh.json()["error"] == "invalid_grant"
    assert _token(handle, {"grant_type": "authorization_code", "code": code}).status_code == 200
