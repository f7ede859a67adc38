"""A failing pipeline's alert reaches the team: the plugins push a failed run's metrics to a real
Pushgateway, a real Prometheus (the project's config and alert rules) fires PipeboardSyncFailing
and sends it to a real Alertmanager (the project's alertmanager.yml), which posts it to the Slack
webhook whose URL it reads from a file: here a local HTTP server run by the test."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml
from tap_pipedrive.metrics import TapMetrics
from target_pipeboard_postgres.metrics import TargetMetrics

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
FAILING = "prod:tap-pipedrive"
HEALTHY = "prod:tap-pipedrive--stage-history"
# Push to notification: a scrape and an evaluation (1 s each), the shortened `for:` (5 s), the
# test Alertmanager's group_wait (1 s) and a post; with room for a busy machine.
DELIVERY_TIMEOUT_S = 40


def _rules_with_short_for(directory: Path) -> Path:
    """A copy of alerts.yml with PipeboardSyncFailing's `for: 1m` cut to 5 s, so the test need
    not wait a minute; its expression, threshold and labels are the shipped ones (the other rules
    keep their `for:` of a minute or more and cannot fire within the test)."""
    rules = yaml.safe_load(ALERTS.read_text())
    (failing,) = [r for r in rules["groups"][0]["rules"] if r["alert"] == "PipeboardSyncFailing"]
    assert failing["for"] == "1m"
    assert "> 300" in failing["expr"]
    failing["for"] = "5s"
    others = [r for r in rules["groups"][0]["rules"] if r is not failing]
    assert all(r["for"].endswith(("m", "h")) for r in others)
    path = directory / "alerts.yml"
    path.write_text(yaml.safe_dump(rules))
    return path


def _run(pushgateway: str, pipeline: str, *, succeeded_seconds_ago: float | None) -> None:
    """One tap-to-target run of ``pipeline`` as the plugins push it: successful (its last
    success ``succeeded_seconds_ago``, as if the push came that much later) or, with None, failed
    (the plugins then carry the group's previous success over)."""
    tap, target = TapMetrics(), TargetMetrics()
    tap.records_extracted.labels("deals").inc(40)
    tap.budget_remaining.set(50_000)
    target.batch_committed("deals", 40, 0.2)
    if succeeded_seconds_ago is not None:
        tap.mark_success()
        target.run_succeeded()
        tap.last_success.set(time.time() - succeeded_seconds_ago)
        target.last_success.set(time.time() - succeeded_seconds_ago)
    tap.push(pushgateway, pipeline)
    target.push(pushgateway, pipeline)


def _firing_for(pipeline: str) -> Callable[[dict[str, Any]], bool]:
    def matches(post: dict[str, Any]) -> bool:
        (attachment,) = post["attachments"]
        return bool(
            attachment["title"] == f"[FIRING] PipeboardSyncFailing ({pipeline})"
            and "tap-pipedrive (" in attachment["text"]
            and "target-pipeboard-postgres (" in attachment["text"]
        )

    return matches


def test_a_failing_sync_is_posted_to_the_team(
    pushgateway: str,
    alertmanager: str,
    alert_receiver: Any,  # conftest.AlertReceiver
    start_prometheus: Callable[..., str],
    tmp_path: Path,
) -> None:
    """The sync last succeeded 15 minutes ago and its latest run failed; the backfill succeeded
    just now. Within seconds the webhook gets one PipeboardSyncFailing notification for the
    sync's pipeline, naming the tap's and the target's failure, and nothing about the
    backfill."""
    prometheus = start_prometheus(
        rule_files=[_rules_with_short_for(tmp_path)], alertmanager=alertmanager
    )
    started = time.monotonic()
    _run(pushgateway, FAILING, succeeded_seconds_ago=900)
    _run(pushgateway, FAILING, succeeded_seconds_ago=None)
    _run(pushgateway, HEALTHY, succeeded_seconds_ago=0)

    post = alert_receiver.wait_for(_firing_for(FAILING), DELIVERY_TIMEOUT_S)
    elapsed = time.monotonic() - started
    assert elapsed >= 5, "fired before the rule's `for:` had passed"
    # The URL came from the api_url_file, not from the config.
    assert post["path"] == "/services/T0/B0/test"
    (attachment,) = post["attachments"]
    assert attachment["color"] == "danger"
    # One line per alert, the rule's annotations filled in (900 s between success and push).
    lines = sorted(attachment["text"].splitlines())
    assert len(lines) == 2, lines
    for job, line in zip(("tap-pipedrive", "target-pipeboard-postgres"), lines, strict=True):
        assert re.fullmatch(
            rf"• Pipeboard {job} \({FAILING}\): the last run failed\. The last run of {job} in"
            rf" pipeline {FAILING} ended 15m [0-9]s after its last successful run\. Check the"
            r" Meltano logs of the run\.",
            line,
        ), line

    # Alertmanager holds exactly the sync's two alerts, with the rule's labels.
    alerts = requests.get(f"{alertmanager}/api/v2/alerts", timeout=10).json()
    assert {
        (
            a["labels"]["alertname"],
            a["labels"]["job"],
            a["labels"]["pipeline"],
            a["status"]["state"],
        )
        for a in alerts
    } == {
        ("PipeboardSyncFailing", "tap-pipedrive", FAILING, "active"),
        ("PipeboardSyncFailing", "target-pipeboard-postgres", FAILING, "active"),
    }
    assert {a["labels"]["severity"] for a in alerts} == {"critical"}
    assert all(HEALTHY not in str(p) for p in alert_receiver.posts)
    # Prometheus agrees: the rule fires for the failing pipeline only.
    rules = requests.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    (failing,) = [r for g in rules for r in g["rules"] if r["name"] == "PipeboardSyncFailing"]
    assert failing["state"] == "firing"
    assert {a["labels"]["pipeline"] for a in failing["alerts"]} == {FAILING}
