"""Prometheus metrics: exact names, values that match the run, pushed on success and failure to
the pipeline's own group; progress lines with counts, rate and (where knowable) an ETA."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from tap_pipedrive.metrics import default_pipeline
from tap_pipedrive.progress import Progress
from tap_pipedrive.timestamps import parse_update_time

PIPELINE_ENV = {"MELTANO_ENVIRONMENT": "prod", "MELTANO_EXTRACTOR_NAME": "tap-pipedrive--reconcile"}


class _Gateway(http.server.BaseHTTPRequestHandler):
    """Records pushes; answers the API v1 group listing with ``server.groups``."""

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        self.server.pushes.append((self.command, unquote(self.path), body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT

    def do_GET(self):
        assert self.path == "/api/v1/metrics"
        body = json.dumps({"status": "success", "data": self.server.groups}).encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def pushgateway(monkeypatch):
    for name, value in PIPELINE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MELTANO_RUN_STATE_ID_SUFFIX", raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    server.pushes = []
    server.groups = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _group(job, pipeline, last_success):
    """A group as the Pushgateway's /api/v1/metrics lists it."""
    labels = {"job": job, "pipeline": pipeline}
    return {
        "labels": labels,
        "pipeboard_tap_last_success_timestamp_seconds": {
            "type": "GAUGE",
            "metrics": [{"labels": {**labels, "instance": ""}, "value": str(last_success)}],
        },
    }


def _sample(body, line_start):
    return next(float(x.rsplit(" ", 1)[1]) for x in body.splitlines() if x.startswith(line_start))


def test_metrics_are_pushed_after_a_run(pipedrive_simulator, run, config_for, pushgateway):
    sim = pipedrive_simulator
    url = f"http://127.0.0.1:{pushgateway.server_address[1]}"
    sim.reset_stats()
    result = run(config_for(sim, pushgateway_url=url))
    assert result.error is None
    ((method, path, body),) = pushgateway.pushes
    # PUT: the pipeline's group holds exactly this run.
    assert method == "PUT"
    assert path == "/metrics/job/tap-pipedrive/pipeline/prod:tap-pipedrive--reconcile"
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


def _fail_persons(sim, config_for, catalog_with, pushgateway, **settings):
    url = f"http://127.0.0.1:{pushgateway.server_address[1]}"
    config = config_for(sim, pushgateway_url=url, circuit_breaker_failures=2, **settings)
    catalog = catalog_with(config, ["persons"])
    pushgateway.pushes.clear()
    sim.set_fault("http_500", path="/api/v2/persons")
    return config, catalog


def test_a_failed_run_keeps_the_last_success_of_its_pipeline(
    pipedrive_simulator, run, config_for, catalog_with, pushgateway
):
    sim = pipedrive_simulator
    config, catalog = _fail_persons(sim, config_for, catalog_with, pushgateway)
    pushgateway.groups = [
        _group("tap-pipedrive", "prod:tap-pipedrive--reconcile", 1_700_000_000.5),
        # Other pipelines' groups, and the same pipeline of the other plugin, are not its own.
        _group("tap-pipedrive", "prod:tap-pipedrive", 1_800_000_000),
        _group("target-pipeboard-postgres", "prod:tap-pipedrive--reconcile", 1_800_000_000),
    ]
    result = run(config, catalog=catalog)
    assert result.error is not None
    ((method, path, body),) = pushgateway.pushes
    assert (method, path) == (
        "PUT",
        "/metrics/job/tap-pipedrive/pipeline/prod:tap-pipedrive--reconcile",
    )
    assert _sample(body, "pipeboard_tap_last_success_timestamp_seconds") == 1_700_000_000.5
    assert (
        _sample(body, 'pipeboard_tap_api_requests_total{endpoint="/api/v2/persons",status="500"}')
        == 2
    )


def test_a_pipeline_that_never_succeeded_pushes_no_last_success(
    pipedrive_simulator, run, config_for, catalog_with, pushgateway
):
    sim = pipedrive_simulator
    config, catalog = _fail_persons(
        sim, config_for, catalog_with, pushgateway, metrics_pipeline="nightly-persons"
    )
    pushgateway.groups = [_group("tap-pipedrive", "prod:tap-pipedrive--reconcile", 1_700_000_000)]
    result = run(config, catalog=catalog)
    assert result.error is not None
    ((_, path, body),) = pushgateway.pushes
    # The setting names the group; that group has no success to keep.
    assert path == "/metrics/job/tap-pipedrive/pipeline/nightly-persons"
    assert "pipeboard_tap_last_success_timestamp_seconds" not in body
    assert "pipeboard_tap_api_requests_total" in body


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param(
            {"MELTANO_ENVIRONMENT": "prod", "MELTANO_EXTRACTOR_NAME": "tap-pipedrive"},
            "prod:tap-pipedrive",
            id="sync",
        ),
        pytest.param(
            {
                "MELTANO_ENVIRONMENT": "prod",
                "MELTANO_EXTRACTOR_NAME": "tap-pipedrive",
                "MELTANO_RUN_STATE_ID_SUFFIX": "deals",
            },
            "prod:tap-pipedrive:deals",
            id="parallel-pod",
        ),
        pytest.param(
            {"MELTANO_EXTRACTOR_NAME": "tap-pipedrive--stage-history"},
            "tap-pipedrive--stage-history",
            id="no-environment",
        ),
        pytest.param({"MELTANO_ENVIRONMENT": "prod"}, "standalone", id="outside-meltano"),
    ],
)
def test_default_pipeline_follows_meltanos_state_id(environ, expected):
    assert default_pipeline(environ) == expected


def test_long_extractions_log_progress(pipedrive_simulator, run, config_for, catalog_with, caplog):
    sim = pipedrive_simulator
    config = config_for(sim, page_size=100, progress_interval_seconds=0)
    catalog = catalog_with(config, ["persons"])
    with caplog.at_level("INFO"):
        result = run(config, catalog=catalog)
    assert result.error is None
    lines = [r for r in caplog.records if getattr(r, "event_type", None) == "progress"]
    assert len(lines) >= 2
    total = len(sim.truth("persons"))
    last = lines[-1]
    assert last.getMessage().startswith(f"Progress: stream=persons records={total} rate=")
    assert (last.stream_name, last.records) == ("persons", total)
    assert last.rate_per_second > 0
    # persons are read in update-time order: each line says how far, and the time left.
    shares = [r.done_fraction for r in lines]
    assert shares == sorted(shares)
    assert all(0 < share <= 1 for share in shares)
    assert all(r.eta_seconds >= 0 for r in lines)
    assert " done=" in last.getMessage()
    assert " eta=" in last.getMessage()


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_eta_extrapolates_the_update_time_window():
    clock = _Clock()
    progress = Progress(every_seconds=10, clock=clock)
    until = datetime(2026, 6, 1, tzinfo=UTC)
    # A bookmark far before the first record does not count as work done: the window opens
    # at the first record read.
    progress.start_window(until)
    first = until - timedelta(days=100)
    clock.now += 5
    assert progress.advance(500, (first, first + timedelta(days=10))) is None  # not due yet
    clock.now += 15
    report = progress.advance(500, (first + timedelta(days=10), first + timedelta(days=25)))
    assert report is not None
    assert report.records == 1000
    assert report.rate_per_second == pytest.approx(1000 / 20)
    assert report.done_fraction == pytest.approx(0.25)
    # 20 s for the first quarter of the window: 60 s for the rest.
    assert report.eta_seconds == pytest.approx(60)
    assert (
        report.message("deals") == "Progress: stream=deals records=1000 rate=50/s done=25% eta=60s"
    )
    assert report.fields("deals")["eta_seconds"] == 60


def test_progress_without_a_window_has_no_eta():
    clock = _Clock()
    progress = Progress(every_seconds=0, clock=clock)
    progress.begin()
    clock.now += 2
    report = progress.advance(300)
    assert report is not None
    assert (
        report.message("deal_products") == "Progress: stream=deal_products records=300 rate=150/s"
    )
    fields = report.fields("deal_products")
    assert "eta_seconds" not in fields
    assert "done_fraction" not in fields
    # A window whose records are all at its opening instant says nothing about the rest.
    until = datetime(2026, 6, 1, tzinfo=UTC)
    progress.start_window(until)
    clock.now += 1
    stamp = until - timedelta(days=1)
    assert progress.advance(10, (stamp, stamp)).eta_seconds is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2026-05-01T10:00:00Z", datetime(2026, 5, 1, 10, tzinfo=UTC), id="v2"),
        pytest.param("2026-05-01 10:00:00", datetime(2026, 5, 1, 10, tzinfo=UTC), id="v1"),
        pytest.param(None, None, id="missing"),
        pytest.param("yesterday", None, id="garbage"),
    ],
)
def test_update_times_of_both_api_versions_parse(value, expected):
    assert parse_update_time(value) == expected
