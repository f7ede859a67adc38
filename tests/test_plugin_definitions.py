"""The plugin definitions (tap-pipedrive/plugin.yml, target-pipeboard-postgres/plugin.yml) are
current with the plugins' --about and are definitions Meltano accepts.

`meltano add --from-ref` with them in a new project is tests/e2e/test_e2e_plugin_definitions.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from meltano.core.plugin.base import PluginDefinition, PluginType

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCRIPT = ROOT / "scripts" / "plugin_definitions.py"
PLUGINS = {"tap-pipedrive": PluginType.EXTRACTORS, "target-pipeboard-postgres": PluginType.LOADERS}


def _script() -> ModuleType:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("plugin_definitions", SCRIPT)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPT.parent))


def _about(name: str) -> dict[str, Any]:
    result = subprocess.run(
        [str(BIN / name), "--about", "--format=json"], capture_output=True, text=True, check=True
    )
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def test_committed_definitions_are_current() -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_names_a_stale_definition_and_the_script_rewrites_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script()
    shutil.copy(ROOT / "meltano.yml", tmp_path / "meltano.yml")
    for name in PLUGINS:
        (tmp_path / name).mkdir()
        shutil.copy(ROOT / name / "plugin.yml", tmp_path / name / "plugin.yml")
    stale = tmp_path / "target-pipeboard-postgres" / "plugin.yml"
    document = yaml.safe_load(stale.read_text())
    document["settings"] = document["settings"][1:]
    stale.write_text(yaml.safe_dump(document, sort_keys=False))
    script.PROJECT_ROOT = tmp_path
    assert script.main(["--check"]) == 1
    assert "target-pipeboard-postgres/plugin.yml" in capsys.readouterr().out
    assert script.main([]) == 0
    assert script.main(["--check"]) == 0
    assert stale.read_text() == (ROOT / "target-pipeboard-postgres" / "plugin.yml").read_text()


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_definition_carries_every_setting_of_the_config_schema(name: str) -> None:
    definition = yaml.safe_load((ROOT / name / "plugin.yml").read_text())
    about = _about(name)
    schema = about["settings"]["properties"]
    settings = {s["name"]: s for s in definition["settings"]}
    assert list(settings) == list(schema)
    for setting_name, prop in schema.items():
        setting = settings[setting_name]
        assert bool(setting.get("sensitive")) == bool(prop.get("secret")), setting_name
        assert setting.get("description"), setting_name
        assert setting["kind"] in {
            "string",
            "integer",
            "boolean",
            "options",
            "object",
            "array",
            "date_iso8601",
        }
    assert definition["capabilities"] == sorted(about["capabilities"])
    assert definition["executable"] == name
    assert definition["namespace"] == name.replace("-", "_")
    # Installs from the package's directory of the repository.
    assert definition["pip_url"].startswith("git+https://")
    assert definition["pip_url"].endswith(f".git#subdirectory={name}")
    # The header tells how to add it, with Meltano 4's syntax.
    kind = PLUGINS[name].singular
    assert (
        f"meltano add --plugin-type {kind} {name} --from-ref"
        in ((ROOT / name / "plugin.yml").read_text().splitlines()[2])
    )


def test_settings_groups_are_the_projects() -> None:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    tap = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-pipedrive")
    definition = yaml.safe_load((ROOT / "tap-pipedrive" / "plugin.yml").read_text())
    assert definition["settings_group_validation"] == tap["settings_group_validation"]
    assert ["api_token"] in definition["settings_group_validation"]


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_meltano_parses_the_definition(name: str) -> None:
    document = yaml.safe_load((ROOT / name / "plugin.yml").read_text())
    parsed = PluginDefinition.parse({"plugin_type": PLUGINS[name], **document})
    assert parsed.name == name
    variant = parsed.find_variant("pipeboard")
    assert variant.pip_url == document["pip_url"]
    assert [s.name for s in variant.settings] == [s["name"] for s in document["settings"]]
