"""Prometheus metrics of one tap run, in their own registry, pushed at the end of the run."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway

JOB = "tap-pipedrive"


class TapMetrics:
    """The run's counters and gauges (names are part of the dashboards' contract)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        self.retries = Counter(
            "pipeboard_tap_retries_total",
            "Requests retried after a failure.",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "pipeboard_tap_last_success_timestamp_seconds",
            "Unix time the last successful run ended.",
            registry=self.registry,
        )

    def mark_success(self) -> None:
        self.last_success.set(time.time())

    def push(self, gateway_url: str) -> None:
        """Push to a Prometheus Pushgateway (job ``tap-pipedrive``)."""
        push_to_gateway(gateway_url, job=JOB, registry=self.registry, timeout=10)
