"""Dashboards, alert rules and Prometheus config use exactly the metrics the plugins export; the
Alertmanager config is valid, groups per pipeline and keeps its secret out of the file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from tap_pipedrive.metrics import TapMetrics
from target_pipeboard_postgres.metrics import TargetMetrics
from target_pipeboard_postgres.quality import QualityMetrics

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "pipeboard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
# Series the Pushgateway and Prometheus add themselves.
INFRASTRUCTURE_SERIES = {"push_time_seconds", "push_failure_time_seconds", "up"}
METRIC = re.compile(r"\b(pipeboard_[a-z_]+|push_time_seconds|push_failure_time_seconds|up)\b")


def _series_names(registry: CollectorRegistry) -> dict[str, set[str]]:
    """metric family -> the series names Prometheus sees for it."""
    names: dict[str, set[str]] = {}
    for family in registry.collect():
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
            "gauge": [""],
        }[family.type]
        names[family.name] = {family.name + suffix for suffix in suffixes}
    return names


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    families = _series_names(TapMetrics().registry)
    families.update(_series_names(TargetMetrics().registry))
    quality = CollectorRegistry()
    QualityMetrics(quality)  # the data-quality gauges, pushed in the target's registry
    families.update(_series_names(quality))
    return families


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_plugins_export_the_documented_metrics(exported: dict[str, set[str]]) -> None:
    assert {"pipeboard_tap_records_extracted", "pipeboard_target_records_loaded"} <= set(exported)
    assert all(name.startswith(("pipeboard_tap_", "pipeboard_target_")) for name in exported)


def test_dashboard_uses_only_exported_metrics_and_all_of_them(
    exported: dict[str, set[str]],
) -> None:
    series = set().union(*exported.values())
    used = {name for expr in _dashboard_exprs() for name in METRIC.findall(expr)}
    unknown = used - series - INFRASTRUCTURE_SERIES
    assert not unknown, f"dashboard queries metrics no plugin exports: {sorted(unknown)}"
    unused = {family for family, names in exported.items() if not names & used}
    assert not unused, f"exported metrics missing from the dashboard: {sorted(unused)}"


def test_alert_rules_use_only_exported_metrics(exported: dict[str, set[str]]) -> None:
    series = set().union(*exported.values())
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert {"PipeboardSyncFailing", "PipeboardSyncStale"} <= names
    for rule in rules:
        used = set(METRIC.findall(rule["expr"]))
        assert used, rule["alert"]
        assert used <= series | INFRASTRUCTURE_SERIES, (rule["alert"], used - series)


def test_dashboard_queries_filter_by_the_pipeline_variable() -> None:
    """Every run pushes to its pipeline's group: a panel shows the selected pipelines (the
    account-wide budget, as the latest tap run reported it, excepted), through a variable the
    dashboard defines."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["pipeline"]["includeAll"]
    assert variables["pipeline"]["allValue"] == ".*"
    assert "push_time_seconds" in variables["pipeline"]["query"]["query"]
    for expr in _dashboard_exprs():
        used = set(re.findall(r"\$(\w+)", expr))
        assert used <= set(variables), expr
        if "budget_remaining" in expr:
            assert "topk(1, push_time_seconds" in expr
            continue
        for series in re.findall(r"\b(pipeboard_[a-z_]+)(\{[^}]*\})?", expr):
            assert 'pipeline=~"$pipeline"' in series[1], (expr, series[0])


def test_dashboard_is_wired_to_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    uids = {source["uid"] for source in datasources}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"]
    assert dashboard["title"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] in uids
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids


@pytest.fixture(scope="module")
def promtool() -> str:
    subprocess.run(["bash", str(ROOT / "scripts" / "install_test_services.sh")], check=True)
    path = shutil.which("promtool")
    assert path, "scripts/install_test_services.sh did not install promtool"
    return path


def test_prometheus_config_and_rules_are_valid(promtool: str) -> None:
    config = DEPLOY / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_alert_rules_fire_on_failing_and_stale_syncs_only(promtool: str) -> None:
    # alerts_test.yml: a healthy sync fires nothing; a failed run, a stale sync, missing
    # metrics and a low budget each fire their alert with the expected labels and text.
    result = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=DEPLOY / "prometheus",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_alert_rule_is_caught(promtool: str, tmp_path: Path) -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    rules["groups"][0]["rules"][1]["expr"] = rules["groups"][0]["rules"][1]["expr"].replace(
        "7200", "72000"
    )
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    shutil.copy(DEPLOY / "prometheus" / "alerts_test.yml", tmp_path)
    result = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "PipeboardSyncStale" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def amtool() -> str:
    subprocess.run(["bash", str(ROOT / "scripts" / "install_test_services.sh")], check=True)
    path = shutil.which("amtool")
    assert path, "scripts/install_test_services.sh did not install amtool"
    return path


def _check_alertmanager_config(amtool: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)


def test_alertmanager_config_is_valid(amtool: str) -> None:
    # Debian bookworm's amtool (Alertmanager 0.25): the options used must exist there too.
    result = _check_alertmanager_config(amtool, ALERTMANAGER)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "1 receivers" in result.stdout


def test_a_broken_alertmanager_config_is_caught(amtool: str, tmp_path: Path) -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    config["route"]["receiver"] = "nobody"
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    result = _check_alertmanager_config(amtool, tmp_path / "alertmanager.yml")
    assert result.returncode != 0
    assert "nobody" in result.stdout + result.stderr


def test_alertmanager_groups_per_pipeline_and_keeps_its_secret_out() -> None:
    text = ALERTMANAGER.read_text()
    config = yaml.safe_load(text)
    route = config["route"]
    assert route["group_by"] == ["alertname", "pipeline"]
    # Every per-pipeline rule aggregates by the label the route groups by.
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    for rule in rules:
        if "by (job, pipeline)" in rule["expr"]:
            assert "pipeline" in rule["annotations"]["summary"], rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
    (receiver,) = config["receivers"]
    assert route["receiver"] == receiver["name"]
    (slack,) = receiver["slack_configs"]
    # The webhook URL is read from a secret file, never written here.
    assert "api_url" not in slack
    assert slack["api_url_file"].startswith("/run/secrets/")
    assert "http" not in text
    assert "api_url" not in config.get("global", {})
