"""Prometheus metrics: exact names, values that match the run, pushed on success and failure."""

from __future__ import annotations

import http.server
import threading

import pytest


class _Gateway(http.server.BaseHTTPRequestHandler):
    pushes: list[tuple[str, str]]

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        self.server.pushes.append((self.path, body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, *args):
        pass


@pytest.fixture
def pushgateway():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    server.pushes = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _sample(body, line_start):
    return next(float(x.rsplit(" ", 1)[1]) for x in body.splitlines() if x.startswith(line_start))


def test_metrics_are_pushed_after_a_run(pipedrive_simulator, run, config_for, pushgateway):
    sim = pipedrive_simulator
    url = f"http://127.0.0.1:{pushgateway.server_address[1]}"
    sim.reset_stats()
    result = run(config_for(sim, pushgateway_url=url))
    assert result.error is None
    ((path, body),) = pushgateway.pushes
    assert path == "/metrics/job/tap-pipedrive"
    for name in (
        "pipeboard_tap_records_extracted_total",
        "pipeboard_tap_api_requests_total",
        "pipeboard_tap_api_tokens_spent_total",
        "pipeboard_tap_api_budget_remaining_tokens",
        "pipeboard_tap_rate_limited_total",
        "pipeboard_tap_retries_total",
        "pipeboard_tap_last_success_timestamp_seconds",
    ):
        assert f"# TYPE {name}" in body or f"# TYPE {name.removesuffix('_total')}" in body, name
    stats = sim.stats()["total"]
    assert _sample(body, "pipeboard_tap_api_tokens_spent_total ") == stats["tokens"]
    assert _sample(body, 'pipeboard_tap_records_extracted_total{stream="persons"}') == len(
        sim.truth("persons")
    )
    assert (
        _sample(body, 'pipeboard_tap_api_requests_total{endpoint="/api/v2/persons",status="200"}')
        == 2
    )
    assert _sample(body, "pipeboard_tap_last_success_timestamp_seconds") > 0
    assert _sample(body, "pipeboard_tap_api_budget_remaining_tokens") > 0


def test_metrics_are_pushed_when_the_run_fails(
    pipedrive_simulator, run, config_for, catalog_with, pushgateway
):
    sim = pipedrive_simulator
    url = f"http://127.0.0.1:{pushgateway.server_address[1]}"
    config = config_for(sim, pushgateway_url=url, circuit_breaker_failures=2)
    catalog = catalog_with(config, ["persons"])
    pushgateway.pushes.clear()
    sim.set_fault("http_500", path="/api/v2/persons")
    result = run(config, catalog=catalog)
    assert result.error is not None
    ((_, body),) = pushgateway.pushes
    assert _sample(body, "pipeboard_tap_last_success_timestamp_seconds") == 0
    assert (
        _sample(body, 'pipeboard_tap_api_requests_total{endpoint="/api/v2/persons",status="500"}')
        == 2
    )


def test_long_extractions_log_progress(pipedrive_simulator, run, config_for, catalog_with, caplog):
    sim = pipedrive_simulator
    config = config_for(sim, page_size=100, progress_interval_seconds=0)
    catalog = catalog_with(config, ["persons"])
    with caplog.at_level("INFO"):
        result = run(config, catalog=catalog)
    assert result.error is None
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Progress:")]
    assert lines
    assert lines[-1].startswith(f"Progress: stream=persons records={len(sim.truth('persons'))} ")
    assert lines[-1].endswith("/s")
