"""Rate limits, the daily budget, server faults, the circuit breaker and credentials."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from tap_pipedrive.resilience import AuthenticationError, BudgetExhaustedError, CircuitOpenError

PERSONS = "/api/v2/persons"


def _persons_run(sim, run, config, catalog_with, state=None):
    return run(config, state=state, catalog=catalog_with(config, ["persons"]))


def _complete_persons(sim, result):
    assert result.error is None, result.error
    ids = result.ids("persons")
    assert sorted(ids) == sorted(r["id"] for r in sim.truth("persons"))
    assert len(ids) == len(set(ids))


def _metric(result, name, **labels):
    value = result.tap.api.metrics.registry.get_sample_value(name, labels or None)
    return value or 0.0


@pytest.mark.parametrize(
    ("kind", "times"),
    [
        pytest.param("http_500", 3, id="500"),
        pytest.param("http_502", 2, id="502-html"),
        pytest.param("http_503", 2, id="503-html"),
        pytest.param("reset", 2, id="connection-reset"),
        pytest.param("truncated_json", 2, id="truncated-json"),
        pytest.param("malformed_json", 1, id="malformed-json"),
        pytest.param("null_body", 2, id="200-null-body"),
    ],
)
def test_transient_faults_are_retried_without_loss(
    pipedrive_simulator, run, config_for, catalog_with, kind, times
):
    sim = pipedrive_simulator
    config = config_for(sim, page_size=100)
    sim.set_fault(kind, path=PERSONS, times=times)
    result = _persons_run(sim, run, config, catalog_with)
    _complete_persons(sim, result)
    assert _metric(result, "pipeboard_tap_retries_total") == times


def test_timeout_is_retried(pipedrive_simulator, run, config_for, catalog_with):
    sim = pipedrive_simulator
    config = config_for(sim, request_timeout=1)
    sim.set_fault("slow", path=PERSONS, times=1, delay=3)
    result = _persons_run(sim, run, config, catalog_with)
    _complete_persons(sim, result)
    assert _metric(result, "pipeboard_tap_retries_total") == 1


def test_circuit_breaker_stops_a_storm(pipedrive_simulator, run, config_for, catalog_with):
    sim = pipedrive_simulator
    config = config_for(sim, circuit_breaker_failures=4, max_retries=20)
    sim.set_fault("http_500", path=PERSONS)
    sim.reset_stats()
    result = _persons_run(sim, run, config, catalog_with)
    assert isinstance(result.error, CircuitOpenError)
    assert "circuit breaker" in str(result.error)
    assert sim.stats()["endpoints"]["GET /api/v2/persons"]["requests"] == 4
    assert result.messages[-1]["type"] == "STATE"


def test_burst_429_waits_for_the_window(pipedrive_simulator, run, config_for, catalog_with):
    sim = pipedrive_simulator
    config = config_for(sim, page_size=100)
    sim.set_fault("burst_429", path=PERSONS, times=1)
    started = time.monotonic()
    result = _persons_run(sim, run, config, catalog_with)
    _complete_persons(sim, result)
    assert _metric(result, "pipeboard_tap_rate_limited_total", kind="burst") == 1
    assert _metric(result, "pipeboard_tap_rate_limited_total", kind="budget") == 0
    assert time.monotonic() - started >= 1.0  # waited for the window (x-ratelimit-reset)


def test_paces_requests_to_the_burst_limit(pipedrive_simulator, run, config_for, catalog_with):
    sim = pipedrive_simulator
    sim.set_plan("essential")  # 20 requests per 2 s window for an API token
    config = config_for(sim, page_size=25)  # 5 field lists + 24 pages of persons
    sim.reset_stats()
    result = _persons_run(sim, run, config, catalog_with)
    _complete_persons(sim, result)
    assert sim.stats()["total"]["responses_429"] == 0


def test_exhausted_budget_stops_cleanly_and_resumes(
    pipedrive_simulator, run, config_for, catalog_with
):
    sim = pipedrive_simulator
    config = config_for(sim, page_size=100)
    catalog = catalog_with(config, ["persons"])
    # discovery reads five field lists (50 tokens), then three pages of persons fit
    sim.set_budget_remaining(80)
    first = run(config, catalog=catalog)
    assert isinstance(first.error, BudgetExhaustedError)
    assert first.error.exit_code != 0
    assert "resets at" in str(first.error)
    assert first.messages[-1]["type"] == "STATE"
    got = first.ids("persons")
    assert 0 < len(got) < len(sim.truth("persons"))

    sim.set_plan("unlimited")
    second = run(config, state=first.state, catalog=catalog)
    assert second.error is None
    assert set(got) | set(second.ids("persons")) == {r["id"] for r in sim.truth("persons")}


def test_budget_429_is_told_from_burst(pipedrive_simulator, run, config_for, catalog_with):
    sim = pipedrive_simulator
    config = config_for(sim)
    sim.set_fault("budget_exhausted", path=PERSONS, times=1)
    result = _persons_run(sim, run, config, catalog_with)
    assert isinstance(result.error, BudgetExhaustedError)
    assert _metric(result, "pipeboard_tap_rate_limited_total", kind="budget") == 1
    assert _metric(result, "pipeboard_tap_rate_limited_total", kind="burst") == 0


def test_run_budget_share_caps_spending(pipedrive_simulator, run, config_for, catalog_with):
    sim = pipedrive_simulator
    sim.set_plan("essential")
    daily = int(
        requests.get(
            f"{sim.base_url}/api/v2/pipelines", headers={"x-api-token": sim.api_token}, timeout=10
        ).headers["x-daily-ratelimit-token-limit"]
    )
    share = 100 / daily  # a cap of 100 tokens
    config = config_for(sim, page_size=50, max_budget_share=share)
    result = _persons_run(sim, run, config, catalog_with)
    assert isinstance(result.error, BudgetExhaustedError)
    assert "max_budget_share" in str(result.error)
    assert result.tap.api.budget.spent_this_run <= 100


def test_wrong_token_is_a_clear_error_without_the_token(pipedrive_simulator, run, tmp_path):
    sim = pipedrive_simulator
    secret = "wrong-token-5f1c2d9e"
    config = {"api_url": sim.base_url, "api_token": secret}
    result = run(config)
    assert isinstance(result.error, AuthenticationError)
    assert "api_token" in str(result.error)
    assert secret not in str(result.error)

    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    tap = Path(sys.executable).with_name("tap-pipedrive")
    proc = subprocess.run(
        [str(tap), "--config", str(config_file)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == AuthenticationError.exit_code
    assert "401" in proc.stderr
    assert secret not in proc.stderr + proc.stdout


def test_budget_exhaustion_exit_code_and_message_from_cli(
    pipedrive_simulator, config_for, tmp_path
):
    sim = pipedrive_simulator
    sim.set_fault("budget_exhausted", path="/api/v2/deals", times=1)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config_for(sim)))
    tap = Path(sys.executable).with_name("tap-pipedrive")
    proc = subprocess.run(
        [str(tap), "--config", str(config_file)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == BudgetExhaustedError.exit_code
    assert "resets at" in proc.stderr
    last = json.loads(proc.stdout.splitlines()[-1])
    assert last["type"] == "STATE"
    assert sim.api_token not in proc.stderr + proc.stdout


def _refresh_token(sim):
    code = sim.oauth_code()
    answer = requests.post(
        f"{sim.base_url}/oauth/token",
        data={"grant_type": "authorization_code", "code": code},
        auth=(sim.oauth_client_id, sim.oauth_client_secret),
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()["refresh_token"]


def test_oauth_refreshes_and_uses_the_api_domain(pipedrive_simulator, run, catalog_with):
    from tap_pipedrive.tap import TapPipedrive

    sim = pipedrive_simulator
    config = {
        # api_url stays the default: requests must go to the api_domain the token names
        "client_id": sim.oauth_client_id,
        "client_secret": sim.oauth_client_secret,
        "refresh_token": _refresh_token(sim),
        "oauth_token_url": f"{sim.base_url}/oauth/token",
        "retry_initial_wait_seconds": 0.01,
    }
    catalog = catalog_with(config, ["persons"])
    tap = TapPipedrive(config=config, catalog=catalog, parse_env_config=False)
    assert tap.api.base_url == sim.base_url
    sim.advance(4000)  # the access token from discovery has expired
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tap.sync_all()
    assert tap.api.auth.refresh_count == 2
    ids = [json.loads(x)["record"]["id"] for x in out.getvalue().splitlines() if '"RECORD"' in x]
    assert sorted(ids) == sorted(r["id"] for r in sim.truth("persons"))
