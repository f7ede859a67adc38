"""deploy/metabase/setup_metabase.py points Metabase at the schema the stack loads."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "metabase" / "setup_metabase.py"


def _module():
    spec = importlib.util.spec_from_file_location("setup_metabase", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_database_it_adds_is_the_one_the_pipeline_loads() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = {
        key: str(value)
        for key, value in compose["services"]["metabase-setup"]["environment"].items()
    }
    payload = _module().database_payload(env)
    assert payload["engine"] == "postgres"
    details = payload["details"]
    assert (details["host"], details["port"], details["dbname"]) == ("postgres", 5432, "analytics")
    # Only the loaded schema is synced into Metabase.
    assert details["schema-filters-type"] == "inclusion"
    pipeline_env = compose["services"]["pipeline"]["environment"]
    assert (
        details["schema-filters-patterns"]
        == (pipeline_env["TARGET_PIPEBOARD_POSTGRES_DEFAULT_TARGET_SCHEMA"])
    )


def test_missing_settings_are_named_and_nothing_is_called() -> None:
    env = {"PATH": os.environ["PATH"], "MB_URL": "http://127.0.0.1:9", "MB_ADMIN_EMAIL": "a@b.c"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "MB_ADMIN_PASSWORD" in result.stdout
    assert "PIPEBOARD_DB_PASSWORD" in result.stdout
    assert "MB_ADMIN_EMAIL" not in result.stdout
