"""Prometheus metrics of one tap run, in their own registry, pushed at the end of the run.

Each pipeline (the sync, the reconcile and backfill jobs, a parallel pod's stream group) pushes to
its own Pushgateway group, ``job="tap-pipedrive", pipeline="<pipeline>"``, so one run never
replaces another pipeline's numbers. A push replaces the pipeline's group with this run's values;
after a failed run the last-success time of the previous successful run is carried over, so the
failure shows as "failing", not also as "stale".
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

JOB = "tap-pipedrive"
LAST_SUCCESS = "pipeboard_tap_last_success_timestamp_seconds"
logger = logging.getLogger(__name__)


def default_pipeline(environ: Mapping[str, str] = os.environ) -> str:
    """The pipeline's name as Meltano names its state ID, without the loader part.

    ``meltano run`` exports ``MELTANO_ENVIRONMENT`` and ``MELTANO_EXTRACTOR_NAME`` to both
    plugins (and ``MELTANO_RUN_STATE_ID_SUFFIX`` reaches them when the suffix is given that way):
    ``prod:tap-pipedrive``, ``prod:tap-pipedrive--reconcile``, ``prod:tap-pipedrive:deals``.
    Outside Meltano there is no pipeline to name: ``standalone``.
    """
    extractor = environ.get("MELTANO_EXTRACTOR_NAME")
    if not extractor:
        return "standalone"
    parts = (
        environ.get("MELTANO_ENVIRONMENT"),
        extractor,
        environ.get("MELTANO_RUN_STATE_ID_SUFFIX"),
    )
    return ":".join(part for part in parts if part)


def previous_last_success(
    gateway: str, job: str, pipeline: str, metric: str, timeout: float = 10
) -> float | None:
    """The last-success time the group ``job``/``pipeline`` holds now (Pushgateway API v1)."""
    base = (gateway if "://" in gateway else f"http://{gateway}").rstrip("/")
    with urllib.request.urlopen(f"{base}/api/v1/metrics", timeout=timeout) as response:  # noqa: S310 - the configured gateway
        groups = json.load(response).get("data") or []
    for group in groups:
        if group.get("labels") != {"job": job, "pipeline": pipeline}:
            continue
        samples = (group.get(metric) or {}).get("metrics") or []
        values = [float(sample["value"]) for sample in samples if "value" in sample]
        return max(values) if values else None
    return None


class _Without(Collector):
    """A registry's metrics except one family."""

    def __init__(self, registry: CollectorRegistry, name: str) -> None:
        self._registry = registry
        self._name = name

    def collect(self) -> Iterable[Metric]:
        return (metric for metric in self._registry.collect() if metric.name != self._name)


class TapMetrics:
    """The run's counters and gauges (names are part of the dashboards' contract)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.succeeded = False
        self.records_extracted = Counter(
            "pipeboard_tap_records_extracted_total",
            "Records extracted from Pipedrive.",
            ["stream"],
            registry=self.registry,
        )
        self.api_requests = Counter(
            "pipeboard_tap_api_requests_total",
            "HTTP requests sent to the Pipedrive API.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.tokens_spent = Counter(
            "pipeboard_tap_api_tokens_spent_total",
            "Pipedrive API tokens the requests cost.",
            registry=self.registry,
        )
        self.budget_remaining = Gauge(
            "pipeboard_tap_api_budget_remaining_tokens",
            "Daily token budget left, as last reported or estimated.",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "pipeboard_tap_rate_limited_total",
            "429 responses, by kind (burst window or daily budget).",
            ["kind"],
            registry=self.registry,
        )
        self.values_dropped = Counter(
            "pipeboard_tap_values_dropped_total",
            "Values the tap received but did not emit, by reason (not_in_schema: a property "
            "Pipedrive sent that the stream's schema does not know).",
            ["stream", "reason"],
            registry=self.registry,
        )
        self.retries = Counter(
            "pipeboard_tap_retries_total",
            "Requests retried after a failure.",
            registry=self.registry,
        )
        self.last_success = Gauge(
            LAST_SUCCESS,
            "Unix time the last successful run ended.",
            registry=self.registry,
        )

    def mark_success(self) -> None:
        self.succeeded = True
        self.last_success.set(time.time())

    def push(self, gateway_url: str, pipeline: str) -> None:
        """Replace the group ``job="tap-pipedrive", pipeline=<pipeline>`` with this run.

        After a failure the group keeps the previous success time (read back from the
        Pushgateway); a pipeline that never succeeded has none.
        """
        registry: Collector = self.registry
        if not self.succeeded:
            previous: float | None = None
            try:
                previous = previous_last_success(gateway_url, JOB, pipeline, LAST_SUCCESS)
            except (OSError, ValueError) as exc:
                logger.warning("Could not read the last success time from %s: %s", gateway_url, exc)
            if previous is None:
                registry = _Without(self.registry, LAST_SUCCESS)
            else:
                self.last_success.set(previous)
        push_to_gateway(
            gateway_url, job=JOB, grouping_key={"pipeline": pipeline}, registry=registry, timeout=10
        )
