"""Prometheus metrics of a target run, in a registry of their own, pushed at the end of a run."""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, push_to_gateway

JOB = "target-pipeboard-postgres"
logger = logging.getLogger(__name__)


class TargetMetrics:
    """The metrics one target instance records."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
            "pipeboard_target_last_success_timestamp_seconds",
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
        self.last_success.set(time.time())

    def push(self, gateway: str | None) -> None:
        """Push the metrics to a Pushgateway; a failing push is logged, never fatal."""
        if not gateway:
            return
        try:
            push_to_gateway(gateway, job=JOB, registry=self.registry, timeout=10)
        except OSError as exc:
            logger.warning("Could not push metrics to %s: %s", gateway, exc)
