"""Prometheus metrics of a target run, in a registry of their own, pushed at the end of a run.

Each pipeline (the sync, the reconcile and backfill jobs, a parallel pod's stream group) pushes to
its own Pushgateway group, ``job="target-pipeboard-postgres", pipeline="<pipeline>"``, so one run
never replaces another pipeline's numbers. A push replaces the pipeline's group with this run's
values; after a failed run the last-success time of the previous successful run is carried over,
so the failure shows as "failing", not also as "stale".
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, push_to_gateway
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

JOB = "target-pipeboard-postgres"
LAST_SUCCESS = "pipeboard_target_last_success_timestamp_seconds"
logger = logging.getLogger(__name__)


def default_pipeline(environ: Mapping[str, str] = os.environ) -> str:
    """The pipeline's name as Meltano names its state ID, without the loader part (the tap names
    its metrics the same way, so the two plugins' groups of one run carry the same label).

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


class TargetMetrics:
    """The metrics one target instance records."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.succeeded = False
        self.records_loaded = Counter(
            "pipeboard_target_records_loaded_total",
            "Records committed to Postgres.",
            ["stream"],
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "pipeboard_target_batch_rows",
            "Rows per committed batch.",
            ["stream"],
            buckets=(10, 100, 1_000, 5_000, 10_000, 50_000, 100_000),
            registry=self.registry,
        )
        self.batch_duration = Histogram(
            "pipeboard_target_batch_duration_seconds",
            "Seconds to load and commit one batch.",
            ["stream"],
            registry=self.registry,
        )
        self.columns_added = Counter(
            "pipeboard_target_columns_added_total",
            "Columns added to target tables.",
            ["stream"],
            registry=self.registry,
        )
        self.columns_widened = Counter(
            "pipeboard_target_columns_widened_total",
            "Columns whose type was widened in place.",
            ["stream"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            LAST_SUCCESS,
            "Unix time of the end of the last successful run.",
            registry=self.registry,
        )

    def batch_committed(self, stream: str, rows: int, seconds: float) -> None:
        """Record one committed batch."""
        self.records_loaded.labels(stream=stream).inc(rows)
        self.batch_rows.labels(stream=stream).observe(rows)
        self.batch_duration.labels(stream=stream).observe(seconds)

    def run_succeeded(self) -> None:
        """Mark the run as successfully finished."""
        self.succeeded = True
        self.last_success.set(time.time())

    def push(self, gateway: str | None, pipeline: str) -> None:
        """Replace the group ``job="target-pipeboard-postgres", pipeline=<pipeline>`` with this
        run; a failing push is logged, never fatal.

        After a failure the group keeps the previous success time (read back from the
        Pushgateway); a pipeline that never succeeded has none.
        """
        if not gateway:
            return
        registry: Collector = self.registry
        try:
            if not self.succeeded:
                previous = previous_last_success(gateway, JOB, pipeline, LAST_SUCCESS)
                if previous is None:
                    registry = _Without(self.registry, LAST_SUCCESS)
                else:
                    self.last_success.set(previous)
        except (OSError, ValueError) as exc:
            logger.warning("Could not read the last success time from %s: %s", gateway, exc)
            registry = _Without(self.registry, LAST_SUCCESS)
        try:
            push_to_gateway(
                gateway, job=JOB, grouping_key={"pipeline": pipeline}, registry=registry, timeout=10
            )
        except OSError as exc:
            logger.warning("Could not push metrics to %s: %s", gateway, exc)
