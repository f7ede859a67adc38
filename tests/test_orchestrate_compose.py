"""docker-compose.yml: valid against the Compose specification, every file it mounts or builds
from exists and parses, and the services are wired to each other consistently."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
BIN = Path(sys.executable).parent
EXPECTED_SERVICES = {
    "postgres",
    "redis",
    "pipeline",
    "pushgateway",
    "prometheus",
    "alertmanager",
    "grafana",
    "metabase",
    "metabase-setup",
    "webhooks",
    "webhooks-proxy",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _check_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
    )


def test_valid_against_the_compose_specification() -> None:
    result = _check_schema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_invalid_compose_file_is_rejected(tmp_path: Path, compose: dict) -> None:
    broken = dict(compose)
    broken["services"] = {
        **compose["services"],
        "redis": {**compose["services"]["redis"], "restart": ["always"]},
    }
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    assert _check_schema(path).returncode != 0


def test_the_whole_stack_is_there(compose: dict) -> None:
    assert set(compose["services"]) == EXPECTED_SERVICES
    grafana = compose["services"]["grafana"]
    assert any("provisioning/dashboards" in volume for volume in grafana["volumes"])


def _bind_mounts(compose: dict) -> list[tuple[str, Path, str]]:
    mounts = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                mounts.append((name, ROOT / source, target))
    return mounts


def test_every_mounted_file_exists_and_parses(compose: dict) -> None:
    mounts = _bind_mounts(compose)
    assert len(mounts) == 9
    for service, source, _ in mounts:
        assert source.exists(), f"{service} mounts {source}, which does not exist"
        files = sorted(source.rglob("*")) if source.is_dir() else [source]
        files = [f for f in files if f.is_file()]
        assert files, f"{service} mounts an empty directory {source}"
        for path in files:
            text = path.read_text()
            if path.suffix in {".yml", ".yaml"}:
                assert yaml.safe_load(text) is not None, path
            elif path.suffix == ".json":
                json.loads(text)
            elif path.suffix == ".py":
                compile(text, str(path), "exec")
            elif path.suffix == ".sql":
                assert re.search(r"(?im)^create database \w+;", text), path
            elif path.name == "Caddyfile":
                assert "reverse_proxy webhooks:8080" in text, path
            else:
                pytest.fail(f"{service} mounts {path}, a file type this test cannot check")


def test_mount_targets_match_what_the_services_read(compose: dict) -> None:
    services = compose["services"]
    prometheus_command = " ".join(services["prometheus"]["command"])
    config_file = re.search(r"--config.file=(\S+)", prometheus_command).group(1)
    mounted = {target: source for _, source, target in _bind_mounts(compose)}
    assert config_file in mounted
    prometheus = yaml.safe_load(mounted[config_file].read_text())
    rules_dir = Path(config_file).parent
    for rule_file in prometheus["rule_files"]:
        assert str(rules_dir / rule_file) in mounted, rule_file
    scrape_targets = [
        t
        for job in prometheus["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    ]
    # The Pushgateway, and the webhook receiver's service on the port it serves.
    assert scrape_targets == ["pushgateway:9091", "webhooks:8080"]
    assert "webhooks" in services
    # Prometheus sends its alerts to the Alertmanager service (on its default port 9093).
    alertmanagers = [
        t
        for am in prometheus["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    ]
    assert alertmanagers == ["alertmanager:9093"]
    alertmanager = services["alertmanager"]
    assert "alertmanager" in services["prometheus"]["depends_on"]
    am_command = " ".join(alertmanager["command"])
    assert "--web.listen-address" not in am_command
    assert "127.0.0.1:9093:9093" in alertmanager["ports"]
    am_config_file = re.search(r"--config.file=(\S+)", am_command).group(1)
    assert mounted[am_config_file] == ROOT / "deploy/alertmanager/alertmanager.yml"
    # The receivers' secret files are the compose secrets the service is given.
    am_config = yaml.safe_load(mounted[am_config_file].read_text())
    secret_files = {
        config["api_url_file"]
        for receiver in am_config["receivers"]
        for config in receiver.get("slack_configs", [])
    }
    assert secret_files
    assert secret_files == {f"/run/secrets/{name}" for name in alertmanager["secrets"]}
    # Grafana's dashboard provider reads the directory the dashboards are mounted at.
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/pipeboard.yml").read_text()
    )["providers"][0]
    assert provider["options"]["path"] in mounted
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"


def test_pipeline_service_is_configured_like_the_meltano_project(compose: dict) -> None:
    services = compose["services"]
    env = services["pipeline"]["environment"]
    assert env["MELTANO_ENVIRONMENT"] == "prod"
    assert env["MELTANO_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert env["MELTANO_DATABASE_URI"].endswith("@postgres:5432/meltano")
    assert env["TAP_PIPEDRIVE_REDIS_URL"] == "redis://redis:6379/0"
    assert env["TAP_PIPEDRIVE_PUSHGATEWAY_URL"] == "http://pushgateway:9091"
    assert env["TARGET_PIPEBOARD_POSTGRES_PUSHGATEWAY_URL"] == "http://pushgateway:9091"
    # Every TAP_/TARGET_ variable is a setting the plugins declare in meltano.yml.
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    settings = {
        f"{plugin['name'].upper().replace('-', '_')}_{s['name'].upper()}"
        for plugins in project["plugins"].values()
        for plugin in plugins
        for s in plugin.get("settings", [])
    }
    for key in env:
        if key.startswith(("TAP_", "TARGET_")):
            assert key in settings, key
    # Metabase is pointed at the database and schema the pipeline loads.
    setup = services["metabase-setup"]["environment"]
    target_url = env["TARGET_PIPEBOARD_POSTGRES_DATABASE_URL"]
    assert target_url.endswith(f"@{setup['PIPEBOARD_DB_HOST']}:5432/{setup['PIPEBOARD_DB_NAME']}")
    assert setup["PIPEBOARD_SCHEMA"] == env["TARGET_PIPEBOARD_POSTGRES_DEFAULT_TARGET_SCHEMA"]
    init_sql = (ROOT / "deploy/postgres/init.sql").read_text().lower()
    assert "create database meltano;" in init_sql
    assert f"create database {services['metabase']['environment']['MB_DB_DBNAME']};" in init_sql


def test_the_webhook_receiver_sits_behind_the_tls_proxy(compose: dict) -> None:
    services = compose["services"]
    receiver, proxy = services["webhooks"], services["webhooks-proxy"]
    assert receiver["profiles"] == proxy["profiles"] == ["webhooks"]
    assert receiver["command"][0].endswith("/tap-pipedrive-webhooks")
    assert receiver["command"][1] == "serve"
    # The receiver publishes no port: only the proxy (80 for the ACME challenge, 443) does.
    assert "ports" not in receiver
    assert sorted(proxy["ports"]) == ["443:443", "80:80"]
    assert "/healthz" in " ".join(receiver["healthcheck"]["test"])
    assert proxy["depends_on"]["webhooks"]["condition"] == "service_healthy"
    env = receiver["environment"]
    assert env["PIPEBOARD_WEBHOOK_DATABASE_URL"].endswith("@postgres:5432/analytics")
    port = receiver["command"][receiver["command"].index("--port") + 1]
    caddyfile = (ROOT / "deploy/webhooks/Caddyfile").read_text()
    assert f"reverse_proxy webhooks:{port}" in caddyfile
    assert "handle /pipedrive/webhooks" in caddyfile


def test_the_pipeline_image_builds_from_files_that_exist(compose: dict) -> None:
    build = compose["services"]["pipeline"]["build"]
    dockerfile = ROOT / build["context"] / build["dockerfile"]
    sources = [
        line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("COPY ")
    ]
    assert "orchestrate/cron/pipeboard.crontab" in sources
    ignore = Path(f"{dockerfile}.dockerignore").read_text().splitlines()
    assert "**" in ignore  # the build context is only what the image copies
    for source in sources:
        assert (ROOT / build["context"] / source).exists(), source
        assert f"!{source}" in ignore, f"{source} is left out of the build context"
    entrypoint = ROOT / "deploy/pipeline/entrypoint.sh"
    assert subprocess.run(["sh", "-n", str(entrypoint)]).returncode == 0


def test_the_entrypoint_hands_settings_to_meltano_but_nothing_else(tmp_path: Path) -> None:
    # Run the entrypoint's env-file step with /project replaced by a temporary directory.
    script = (ROOT / "deploy/pipeline/entrypoint.sh").read_text().replace("/project", str(tmp_path))
    env = {
        "PATH": os.environ["PATH"],
        "TAP_PIPEDRIVE_API_TOKEN": "t0ken",
        "MELTANO_ENVIRONMENT": "prod",
        "UNRELATED": "x",
    }
    subprocess.run(["sh", "-c", script, "entrypoint", "true"], env=env, check=True)
    written = (tmp_path / ".env").read_text().splitlines()
    assert sorted(written) == ["MELTANO_ENVIRONMENT=prod", "TAP_PIPEDRIVE_API_TOKEN=t0ken"]
    assert oct((tmp_path / ".env").stat().st_mode & 0o777) == "0o600"


def test_every_variable_the_stack_needs_is_in_the_example_env(compose: dict) -> None:
    variables = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    # Compose secrets read from the environment (.env) too.
    secrets = {secret["environment"] for secret in compose["secrets"].values()}
    assert secrets == {"SLACK_WEBHOOK_URL"}
    example = (ROOT / "deploy/stack.env.example").read_text()
    documented = set(re.findall(r"(?m)^(\w+)=", example))
    assert variables | secrets <= documented, (variables | secrets) - documented
    # The example carries no secret values.
    for line in example.splitlines():
        if re.match(r"^\w*(TOKEN|PASSWORD|WEBHOOK_URL)=", line):
            assert line.endswith("="), line


def test_the_crontab_runs_every_schedule() -> None:
    crontab = (ROOT / "orchestrate/cron/pipeboard.crontab").read_text().splitlines()
    schedules = json.loads(
        subprocess.run(
            ["meltano", "schedule", "list", "--format=json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        ).stdout
    )["schedules"]["job"]
    entries = [
        line for line in crontab if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(entries) == len(schedules)
    for schedule, entry in zip(schedules, entries, strict=True):
        assert entry.startswith(schedule["cron_interval"] + " ")
        assert entry.split(" run ")[1].split()[0] == schedule["job"]["name"]
