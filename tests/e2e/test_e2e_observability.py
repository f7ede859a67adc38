"""Metrics of real `meltano run`s pushed to a real Pushgateway, one group per pipeline, read
back, scraped by a real Prometheus with deploy/prometheus/prometheus.yml, every dashboard query
answered and the alert rules matching the pushed labels; the runs' logs are JSON lines."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql
from tap_pipedrive.metrics import TapMetrics
from tap_pipedrive.metrics import default_pipeline as tap_pipeline
from target_pipeboard_postgres.metrics import TargetMetrics
from target_pipeboard_postgres.metrics import default_pipeline as target_pipeline

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
TAP_LAST_SUCCESS = "pipeboard_tap_last_success_timestamp_seconds"
TARGET_LAST_SUCCESS = "pipeboard_target_last_success_timestamp_seconds"


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


def _rule(name: str) -> dict[str, Any]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]
    rule: dict[str, Any] = next(r for r in rules["rules"] if r["alert"] == name)
    return rule


def test_each_pipeline_pushes_to_a_group_of_its_own(pushgateway: str) -> None:
    """Both plugins, in the sync and the backfill pipeline, push to a real Pushgateway: each
    group is read back on its own, and a failed sync replaces the sync's numbers only and
    keeps the sync's last success; a pipeline that never succeeded has none."""
    sync = {"MELTANO_ENVIRONMENT": "prod", "MELTANO_EXTRACTOR_NAME": "tap-pipedrive"}
    backfill = {**sync, "MELTANO_EXTRACTOR_NAME": "tap-pipedrive--stage-history"}
    reconcile = {**sync, "MELTANO_EXTRACTOR_NAME": "tap-pipedrive--reconcile"}
    assert tap_pipeline(sync) == target_pipeline(sync) == "prod:tap-pipedrive"

    def run(environ: dict[str, str], records: int, *, succeed: bool) -> None:
        tap, target = TapMetrics(), TargetMetrics()
        tap.records_extracted.labels("deals").inc(records)
        target.batch_committed("deals", records, 0.5)
        if succeed:
            tap.mark_success()
            target.run_succeeded()
        tap.push(pushgateway, tap_pipeline(environ))
        target.push(pushgateway, target_pipeline(environ))

    run(sync, 80, succeed=True)
    sync_success = _value(_samples(pushgateway), TAP_LAST_SUCCESS, pipeline="prod:tap-pipedrive")
    run(backfill, 7, succeed=True)
    run(sync, 3, succeed=False)
    run(reconcile, 11, succeed=False)

    samples = _samples(pushgateway)
    groups = {
        (dict(labels)["job"], dict(labels).get("pipeline"))
        for (name, labels) in samples
        if name == "push_time_seconds"
    }
    assert groups == {
        (job, pipeline)
        for job in ("tap-pipedrive", "target-pipeboard-postgres")
        for pipeline in (
            "prod:tap-pipedrive",
            "prod:tap-pipedrive--stage-history",
            "prod:tap-pipedrive--reconcile",
        )
    }
    for job, extracted, success in (
        ("tap-pipedrive", "pipeboard_tap_records_extracted_total", TAP_LAST_SUCCESS),
        ("target-pipeboard-postgres", "pipeboard_target_records_loaded_total", TARGET_LAST_SUCCESS),
    ):

        def value(name: str, pipeline: str, job: str = job) -> float:
            return _value(samples, name, job=job, pipeline=pipeline)

        # The failed sync's own numbers, the backfill's untouched.
        assert value(extracted, "prod:tap-pipedrive") == 3
        assert value(extracted, "prod:tap-pipedrive--stage-history") == 7
        assert value(extracted, "prod:tap-pipedrive--reconcile") == 11
        # The failed sync kept the last success of the good run, not 0.
        assert value(success, "prod:tap-pipedrive") == pytest.approx(sync_success, abs=5)
        assert value(success, "prod:tap-pipedrive--stage-history") >= sync_success
        assert value(success, "prod:tap-pipedrive") < value(
            "push_time_seconds", "prod:tap-pipedrive"
        )
        assert not [
            labels
            for (name, labels) in samples
            if name == success and ("pipeline", "prod:tap-pipedrive--reconcile") in labels
        ], "a pipeline that never succeeded has no last success"


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
    # Meltano's own lines JSON too (the option, not MELTANO_CLI_LOG_FORMAT: Meltano logs its
    # first line before it reads its settings). Small pages and no progress interval, so a
    # short read logs progress lines as well.
    result = pipeline.meltano(
        "--log-format=json",
        "run",
        "tap-pipedrive",
        "target-pipeboard-postgres",
        env={
            "MELTANO_CLI_LOG_LEVEL": "info",
            "TAP_PIPEDRIVE_PAGE_SIZE": "20",
            "TAP_PIPEDRIVE_PROGRESS_INTERVAL_SECONDS": "0",
        },
    )
    return pipeline, simulator, started, result.stderr


def _assert_json_logs_with_batches_and_progress(pipeline: Any, stderr: str) -> None:
    """Every line a `meltano run` wrote is a JSON object; the target's batch lines and the
    tap's progress lines carry their numbers as fields."""
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert all(isinstance(line, dict) for line in lines)
    deals = len(pipeline.truth("deals"))
    batches = [line for line in lines if line.get("event_type") == "batch_committed"]
    assert batches, "no batch line"
    assert sum(b["rows"] for b in batches if b["stream_name"] == "deals") == deals
    assert all(b["duration_seconds"] >= 0 and b["bytes"] > 0 for b in batches)
    assert all(b["name"] == "target-pipeboard-postgres" for b in batches)
    progress = [
        line
        for line in lines
        if line.get("event_type") == "progress" and line.get("stream_name") == "deals"
    ]
    assert progress, "no progress line"
    assert progress[-1]["records"] == deals
    assert all(p["rate_per_second"] > 0 and p["name"] == "tap-pipedrive" for p in progress)
    # deals are read in update-time order: an ETA (from the second page of a partition on;
    # the first may span no time at all); their line items are not: none.
    estimated = [p for p in progress if "eta_seconds" in p]
    assert estimated
    assert all(0 < p["done_fraction"] <= 1 and p["eta_seconds"] >= 0 for p in estimated)
    line_items = [
        line
        for line in lines
        if line.get("event_type") == "progress" and line.get("stream_name") == "deal_products"
    ]
    assert line_items
    assert not [line for line in line_items if "eta_seconds" in line]


# Extended stage (`make test-extended`): a real Prometheus scraping a pushed run (about 80 s); the
# pushes themselves are checked by the other tests of this module.
@pytest.mark.extended
def test_metrics_pushed_read_back_and_queried_by_prometheus(
    synced_with_metrics, pushgateway: str, prometheus: str
) -> None:
    """One run: its log lines are JSON, the pushed samples are right, then Prometheus (scraping
    the Pushgateway with the project's config) answers every dashboard query and keeps the
    alerts quiet; then a failing first run of another pipeline and a failing sync each show in
    their rule, for their own pipeline, and the sync's last success survives its failure."""
    pipeline, simulator, started, stderr = synced_with_metrics
    _assert_json_logs_with_batches_and_progress(pipeline, stderr)
    samples = _samples(pushgateway)
    deals = len(pipeline.truth("deals"))
    sync = "dev:tap-pipedrive"
    tap = {"job": "tap-pipedrive", "pipeline": sync}
    target = {"job": "target-pipeboard-postgres", "pipeline": sync}
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
    for name, job in ((TAP_LAST_SUCCESS, tap), (TARGET_LAST_SUCCESS, target)):
        assert started <= _value(samples, name, **job) <= time.time()
    assert _value(samples, "pipeboard_target_batch_rows_count", **target) >= 1
    _assert_quality_recorded(pipeline, samples, target, deals)
    _prometheus_answers_every_dashboard_query(prometheus)
    sync_success = _value(samples, TAP_LAST_SUCCESS, **tap)

    # The reconcile job's first run fails: a group of its own, with no success to show; the
    # sync's group is untouched.
    simulator.set_fault("http_500", path="/api/v2/deals")
    failed = pipeline.meltano(
        "run",
        "tap-pipedrive--reconcile",
        "target-pipeboard-postgres",
        env={"TAP_PIPEDRIVE_MAX_RETRIES": "0"},
        check=False,
    )
    assert failed.returncode != 0
    reconcile = {"job": "tap-pipedrive", "pipeline": "dev:tap-pipedrive--reconcile"}
    samples = _samples(pushgateway)
    assert _value(samples, "push_time_seconds", **reconcile) > sync_success
    assert not [k for k in samples if k[0] == TAP_LAST_SUCCESS and set(reconcile.items()) <= k[1]]
    assert _value(samples, "pipeboard_tap_records_extracted_total", stream="deals", **tap) == deals
    _until_in_rule(prometheus, _rule("PipeboardSyncNeverSucceeded")["expr"], reconcile)

    # Then the sync fails: its group now holds the failed run, with the last success kept, so
    # PipeboardSyncFailing sees it (its threshold of 5 minutes lowered to 0 here: the two runs
    # are seconds apart; alerts_test.yml tests the threshold) and PipeboardSyncStale does not.
    failed = pipeline.meltano(
        "run",
        "tap-pipedrive",
        "target-pipeboard-postgres",
        # Polling, not /v1/recents: nothing changed since the good run, and the fault is on a
        # list the change feed would skip.
        env={"TAP_PIPEDRIVE_MAX_RETRIES": "0", "TAP_PIPEDRIVE_USE_RECENTS": "false"},
        check=False,
    )
    assert failed.returncode != 0
    samples = _samples(pushgateway)
    assert _value(samples, TAP_LAST_SUCCESS, **tap) == sync_success
    assert _value(samples, "push_time_seconds", **tap) > sync_success
    failing = _rule("PipeboardSyncFailing")["expr"]
    assert "> 300" in failing
    _until_in_rule(prometheus, failing.replace("> 300", "> 0"), tap)
    assert _query(prometheus, _rule("PipeboardSyncStale")["expr"]) == []


def _assert_quality_recorded(
    pipeline: Any, samples: dict, target: dict[str, str], deals: int
) -> None:
    """The run's data-quality figures: a `_pipeboard_quality` row per stream, and the same
    figures pushed."""
    rows = pipeline.query(
        sql.SQL(
            "SELECT rows_received, rows_inserted, rows_updated, succeeded, replication_key, "
            "freshness_lag_seconds, null_share FROM {} WHERE stream = %s"
        ).format(pipeline.table("_pipeboard_quality")),
        "deals",
    )
    (row,) = rows
    received, inserted, updated, succeeded, key, lag, null_share = row
    assert (received, inserted, updated, succeeded) == (deals, deals, 0, True)
    assert key == "update_time"
    assert lag > 0
    assert null_share["id"] == 0.0
    assert all(0 <= share <= 1 for share in null_share.values())
    streams = {
        r[0]
        for r in pipeline.query(
            sql.SQL("SELECT stream FROM {}").format(pipeline.table("_pipeboard_quality"))
        )
    }
    assert {"deals", "persons", "stages", "deal_products"} <= streams
    quality = {"stream": "deals", **target}
    assert _value(samples, "pipeboard_target_quality_rows", outcome="inserted", **quality) == deals
    assert _value(samples, "pipeboard_target_quality_freshness_lag_seconds", **quality) == lag
    assert _value(samples, "pipeboard_target_quality_null_share", column="id", **quality) == 0


def _until_in_rule(prometheus: str, expr: str, labels: dict[str, str]) -> None:
    """Wait until Prometheus (scraping every second) has a series with ``labels`` for ``expr``."""
    deadline = time.monotonic() + 30
    while True:
        found = [s["metric"] for s in _query(prometheus, expr)]
        if any(set(labels.items()) <= set(metric.items()) for metric in found):
            return
        assert time.monotonic() < deadline, f"{labels} never showed in {expr}: {found}"
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
    # Grafana sends a variable's "All" as its allValue.
    variables = {v["name"]: v["allValue"] for v in dashboard["templating"]["list"]}
    for variable in variables:
        values = _query(prometheus, variable_query(dashboard, variable))
        assert {series["metric"].get(variable) for series in values} >= {"dev:tap-pipedrive"}
    empty = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(f"${name}", value)
            if not _query(prometheus, expr):
                empty.append(target["expr"])
    # Counters with labels have no series until something happens (no 429, no widened column
    # in a clean run); every other panel has data after one run.
    # The NULL-share jump compares with the previous run, and this is the first; the tap drops
    # no value of the simulator's records.
    allowed_empty = (
        "rate_limited",
        "retries",
        "columns_widened",
        "columns_added",
        "null_share_previous",
        "values_dropped",
    )
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


def variable_query(dashboard: dict[str, Any], name: str) -> str:
    """The series selector of a ``label_values(<selector>, <label>)`` template variable."""
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == name)
    query = variable["query"]["query"]
    assert query.startswith("label_values("), query
    assert query.endswith(f", {name})"), query
    return str(query.removeprefix("label_values(").removesuffix(f", {name})"))
