"""meltano.yml: settings in step with the plugins, no secrets, jobs and schedules Meltano sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PLUGINS = {"tap-pipedrive": "extractors", "target-pipeboard-postgres": "loaders"}


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "meltano.yml").read_text())


@pytest.fixture(scope="module", params=sorted(PLUGINS))
def plugin(request: pytest.FixtureRequest, project: dict[str, Any]) -> tuple[dict, dict]:
    """(meltano.yml definition, --about of the installed plugin) for each plugin."""
    name = request.param
    definition = next(p for p in project["plugins"][PLUGINS[name]] if p["name"] == name)
    about = json.loads(_run([str(BIN / name), "--about", "--format=json"], check=True).stdout)
    return definition, about


def _expected_kind(schema: dict[str, Any]) -> str:
    types = schema.get("type", "string")
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    if "boolean" in types:  # booleans that also accept "true"/"false" strings
        return "boolean"
    if schema.get("enum"):
        return "options"
    if types == ["string"] and schema.get("format") == "date-time":
        return "date_iso8601"
    return {
        "string": "string",
        "integer": "integer",
        # Not "decimal": Meltano 4.4 cannot write a decimal setting set from an environment
        # variable to the plugin's config (scripts/meltano_settings.py); the plugins convert.
        "number": "string",
        "object": "object",
        "array": "array",
    }[types[0]]


def test_every_setting_matches_the_config_schema_both_ways(plugin: tuple[dict, dict]) -> None:
    definition, about = plugin
    declared = {setting["name"]: setting for setting in definition["settings"]}
    schema = about["settings"]["properties"]
    assert set(declared) - set(schema) == set(), "in meltano.yml, unknown to the plugin"
    assert set(schema) - set(declared) == set(), "in the plugin, missing from meltano.yml"
    for name, prop in schema.items():
        setting = declared[name]
        assert setting["kind"] == _expected_kind(prop), name
        assert bool(setting.get("sensitive")) == bool(prop.get("secret")), name
        assert setting.get("description"), name
        if "number" in prop.get("type", []):
            assert "A number" in setting["description"], name
        if "value" in setting:
            assert setting["value"] == prop.get("default"), name
        if setting["kind"] == "options":
            assert [o["value"] for o in setting["options"]] == [
                v for v in prop["enum"] if v is not None
            ], name


def test_capabilities_match_the_plugin(plugin: tuple[dict, dict]) -> None:
    definition, about = plugin
    assert sorted(definition["capabilities"]) == sorted(about["capabilities"])
    assert definition["executable"] == about["name"]


def test_no_setting_is_a_decimal(project: dict[str, Any]) -> None:
    """Meltano 4.4 crashes on a `decimal` setting given as an environment variable."""
    for plugins in project["plugins"].values():
        for plugin in plugins:
            for setting in plugin.get("settings") or []:
                assert setting.get("kind") != "decimal", f"{plugin['name']}: {setting['name']}"


def test_settings_helper_agrees() -> None:
    result = _run([sys.executable, str(ROOT / "scripts" / "meltano_settings.py"), "--check"])
    assert result.returncode == 0, result.stdout + result.stderr


def _config_blocks(project: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(where, plugin name, config) for every config block in the project file."""
    blocks = []
    for plugins in project["plugins"].values():
        for plugin in plugins:
            blocks.append(("plugins", plugin["name"], plugin.get("config") or {}))
    for environment in project["environments"]:
        for plugins in (environment.get("config") or {}).get("plugins", {}).values():
            for plugin in plugins:
                blocks.append((environment["name"], plugin["name"], plugin.get("config") or {}))
    return blocks


def _parent(project: dict[str, Any], name: str) -> dict[str, Any]:
    for plugins in project["plugins"].values():
        for plugin in plugins:
            if plugin["name"] == name:
                return (
                    _parent(project, plugin["inherit_from"]) if "inherit_from" in plugin else plugin
                )
    raise AssertionError(f"no plugin {name}")


def test_every_configured_key_is_a_declared_setting_and_no_secret_is_set(
    project: dict[str, Any],
) -> None:
    for where, name, config in _config_blocks(project):
        settings = {s["name"]: s for s in _parent(project, name)["settings"]}
        for key, value in config.items():
            assert key in settings, f"{where}/{name}: {key} is not a setting of the plugin"
            if settings[key].get("sensitive"):
                # A secret setting holds a reference to the environment, or a URL without a
                # password (the dev environment's embedded://<directory>).
                text_value = str(value)
                url = urlsplit(text_value)
                harmless = text_value.startswith("$") or (
                    "://" in text_value and url.password is None and url.username is None
                )
                assert harmless, f"{where}/{name}: secret {key} in meltano.yml"


def test_environments_jobs_and_inline_plugins(project: dict[str, Any]) -> None:
    assert {e["name"] for e in project["environments"]} == {"dev", "staging", "prod"}
    assert project["default_environment"] == "dev"
    assert {j["name"] for j in project["jobs"]} == {
        "sync",
        "reconcile",
        "stage-history-backfill",
        "sync-webhooks",
    }
    for name, kind in PLUGINS.items():
        definition = next(p for p in project["plugins"][kind] if p["name"] == name)
        assert definition["pip_url"].startswith(f"-e ./{name}")
        assert definition["namespace"] == name.replace("-", "_")
    assert project["venv"]["backend"] == "uv"
    dev = next(e for e in project["environments"] if e["name"] == "dev")
    target = dev["config"]["plugins"]["loaders"][0]["config"]
    assert target["database_url"] == "embedded://$MELTANO_PROJECT_ROOT/.meltano/postgres"


def test_meltano_yml_follows_meltanos_own_schema() -> None:
    result = _run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.meltano",
            str(ROOT / "meltano.yml"),
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schedules_are_visible_to_meltano() -> None:
    result = _run(["meltano", "schedule", "list", "--format=json"], check=True)
    schedules = {s["name"]: s for s in json.loads(result.stdout)["schedules"]["job"]}
    assert schedules["sync-every-30-minutes"]["cron_interval"] == "*/30 * * * *"
    assert schedules["sync-every-30-minutes"]["job"]["tasks"] == [
        "tap-pipedrive target-pipeboard-postgres"
    ]
    assert schedules["reconcile-weekly"]["job"]["name"] == "reconcile"
    assert schedules["stage-history-backfill-nightly"]["job"]["name"] == "stage-history-backfill"


def test_inherited_plugins_carry_their_job_settings() -> None:
    def printed(plugin: str) -> dict[str, Any]:
        result = _run(["meltano", "--environment=prod", "config", "print", plugin], check=True)
        return json.loads(result.stdout)

    reconcile = printed("tap-pipedrive--reconcile")
    assert reconcile["reconcile"] is True
    assert reconcile["api_url"] == "https://api.pipedrive.com"
    webhooks = printed("tap-pipedrive--webhooks")
    assert webhooks["webhook_schema"] == "pipeboard_webhooks"
    assert "webhook_database_url" not in reconcile
    stage_history = printed("tap-pipedrive--stage-history")
    assert stage_history["stage_history_mode"] == "backfill"
    assert 0 < stage_history["max_budget_share"] < 1
