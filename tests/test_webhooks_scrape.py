"""Prometheus scrapes the webhook receiver of docker-compose: the job names the compose service
and the port it serves on, at the path the receiver serves its metrics on, and the TLS proxy
does not expose that path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from starlette.routing import Route
from tap_pipedrive.webhooks.credentials import Credentials
from tap_pipedrive.webhooks.server import EVENTS_PATH, ReceiverConfig, create_app

ROOT = Path(__file__).resolve().parents[1]


def _scrape_job(name: str) -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert name in jobs, sorted(jobs)
    job: dict[str, Any] = jobs[name]
    return job


def test_prometheus_scrapes_the_receiver_where_compose_runs_it() -> None:
    job = _scrape_job("pipeboard-webhooks")
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert len(targets) == 1
    host, port = targets[0].split(":")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"][host]
    command = [str(part) for part in service["command"]]
    assert command[command.index("serve") - 1].endswith("tap-pipedrive-webhooks")
    assert command[command.index("--port") + 1] == port
    assert command[command.index("--host") + 1] == "0.0.0.0"  # reachable from prometheus
    # Prometheus runs without a profile; the receiver only with `webhooks`.
    assert "profiles" not in compose["services"]["prometheus"]
    assert service["profiles"] == ["webhooks"]


def test_the_scraped_path_is_the_receivers_metrics_route_and_stays_inside() -> None:
    path = _scrape_job("pipeboard-webhooks").get("metrics_path", "/metrics")
    config = ReceiverConfig("postgresql://unused@127.0.0.1/none", Credentials("user", "secret"))
    app = create_app(config)
    routes = {r.path: r for r in app.routes if isinstance(r, Route)}
    assert path in routes
    assert routes[path].methods is not None
    assert "GET" in routes[path].methods
    # The public side (Caddy) proxies the events path only, never the metrics.
    caddyfile = (ROOT / "deploy" / "webhooks" / "Caddyfile").read_text().splitlines()
    proxied = [line.split()[1] for line in caddyfile if line.strip().startswith("handle /")]
    assert proxied == [EVENTS_PATH]
