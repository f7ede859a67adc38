"""Metrics of a real `meltano run` pushed to a real Pushgateway, read back, scraped by a real
Prometheus with deploy/prometheus/prometheus.yml, and every dashboard query answered."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _samples(pushgateway: str) -> dict[tuple[str, frozenset], float]:
    text = requests.get(f"{pushgateway}/metrics", timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def _value(samples: dict, name: str, **labels: str) -> float:
    matches = [
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and set(labels.items()) <= sample_labels
    ]
    assert matches, f"{name}{labels} not pushed"
    return sum(matches)


@pytest.fixture
def synced_with_metrics(pipedrive_simulator_factory, pipeline_factory, pushgateway: str):
    simulator = pipedrive_simulator_factory(deals=80)
    pipeline = pipeline_factory(simulator)
    pipeline.extra_env.update(
        {
            "TAP_PIPEDRIVE_PUSHGATEWAY_URL": pushgateway,
            "TARGET_PIPEBOARD_POSTGRES_PUSHGATEWAY_URL": pushgateway,
        }
    )
    started = time.time()
    pipeline.run()
    return pipeline, simulator, started


def test_metrics_pushed_read_back_and_queried_by_prometheus(
    synced_with_metrics, pushgateway: str, prometheus: str
) -> None:
    """One run: the pushed samples are right, then Prometheus (scraping the Pushgateway with the
    project's config) answers every dashboard query and keeps the alerts quiet; then a failing run
    shows in the PipeboardSyncFailing rule."""
    pipeline, simulator, started = synced_with_metrics
    samples = _samples(pushgateway)
    deals = len(pipeline.truth("deals"))
    tap, target = {"job": "tap-pipedrive"}, {"job": "target-pipeboard-postgres"}
    assert _value(samples, "pipeboard_tap_records_extracted_total", stream="deals", **tap) == deals
    assert (
        _value(samples, "pipeboard_target_records_loaded_total", stream="deals", **target) == deals
    )
    # The tap's request and token counts agree with what the simulator served and charged
    # (the simulator also served Meltano's discovery call, a separate tap process that pushes
    # nothing: hence "at most" for the totals, and exact for the deals list endpoint).
    stats = simulator.stats()
    deals_requests = sum(
        value
        for (name, labels), value in samples.items()
        if name == "pipeboard_tap_api_requests_total"
        and dict(labels).get("endpoint", "").endswith("/api/v2/deals")
    )
    assert deals_requests == stats["endpoints"]["GET /api/v2/deals"]["requests"] > 0
    requests_total = _value(samples, "pipeboard_tap_api_requests_total", **tap)
    assert 0 < requests_total <= stats["total"]["requests"]
    tokens = _value(samples, "pipeboard_tap_api_tokens_spent_total", **tap)
    assert 0 < tokens <= stats["total"]["tokens"]
    for name, job in (
        ("pipeboard_tap_last_success_timestamp_seconds", tap),
        ("pipeboard_target_last_success_timestamp_seconds", target),
    ):
        assert started <= _value(samples, name, **job) <= time.time()
    assert _value(samples, "pipeboard_target_batch_rows_count", **target) >= 1
    _prometheus_answers_every_dashboard_query(prometheus)

    # A failing run: the tap pushes without marking success, and the PipeboardSyncFailing rule
    # sees it in what Prometheus scraped (pending for its `for:` minute, then firing).
    simulator.set_fault("http_500", path="/api/v2/deals")
    failed = pipeline.meltano(
        "run",
        "tap-pipedrive",
        "target-pipeboard-postgres",
        env={"TAP_PIPEDRIVE_MAX_RETRIES": "0"},
        check=False,
    )
    assert failed.returncode != 0
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]
    failing = next(r for r in rules["rules"] if r["alert"] == "PipeboardSyncFailing")
    deadline = time.monotonic() + 30
    while True:
        jobs = {series["metric"].get("job") for series in _query(prometheus, failing["expr"])}
        if "tap-pipedrive" in jobs:
            break
        assert time.monotonic() < deadline, "the failed run never showed in the alert rule"
        time.sleep(0.5)


def _query(prometheus: str, expr: str) -> list:
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]


def _prometheus_answers_every_dashboard_query(prometheus: str) -> None:
    deadline = time.monotonic() + 30
    while not _query(prometheus, "pipeboard_target_last_success_timestamp_seconds"):
        assert time.monotonic() < deadline, "Prometheus never scraped the pushed metrics"
        time.sleep(0.5)
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "pipeboard.json").read_text())
    empty = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            if not _query(prometheus, target["expr"]):
                empty.append(target["expr"])
    # Counters with labels have no series until something happens (no 429, no widened column
    # in a clean run); every other panel has data after one run.
    allowed_empty = ("rate_limited", "retries", "columns_widened", "columns_added")
    assert [e for e in empty if not any(word in e for word in allowed_empty)] == []
    rules = requests.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    alerts = {rule["name"]: rule for group in rules for rule in group["rules"]}
    assert {"PipeboardSyncFailing", "PipeboardSyncStale"} <= set(alerts)
    assert all(rule["health"] != "err" for rule in alerts.values())
    # A successful run: the failing/stale alerts stay quiet.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rules = requests.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        states = {r["name"]: r["state"] for g in rules for r in g["rules"]}
        if all(r.get("lastEvaluation", "0001").startswith("2") for g in rules for r in g["rules"]):
            break
        time.sleep(0.5)
    assert states["PipeboardSyncFailing"] == "inactive"
    assert states["PipeboardSyncStale"] == "inactive"
