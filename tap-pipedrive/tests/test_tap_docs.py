"""Generated documentation stays in step with the code."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from tap_pipedrive.tap import TapPipedrive

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(f"tap_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_settings_table_matches_about():
    readme = (ROOT / "README.md").read_text()
    assert _script("readme_settings").render(readme) == readme, (
        "README settings table drifted: run tap-pipedrive/scripts/readme_settings.py"
    )


def test_readme_names_every_setting():
    readme = (ROOT / "README.md").read_text()
    for name in TapPipedrive.config_jsonschema["properties"]:
        assert f"| {name} |" in readme, name


def test_about_json_lists_the_settings():
    tap = Path(sys.executable).with_name("tap-pipedrive")
    about = json.loads(
        subprocess.run(
            [str(tap), "--about", "--format=json"], capture_output=True, text=True, check=True
        ).stdout
    )
    names = set(about["settings"]["properties"])
    assert {
        "api_token",
        "start_date",
        "request_timeout",
        "user_agent",
        "api_url",
        "company_domain",
        "client_id",
        "client_secret",
        "refresh_token",
        "redis_url",
        "max_budget_share",
        "custom_field_names",
        "reconcile",
        "pushgateway_url",
    } <= names
    assert about["settings"]["properties"]["api_url"]["default"] == "https://api.pipedrive.com"
