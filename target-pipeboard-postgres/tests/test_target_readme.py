"""The README's settings table is the one `--about --format=markdown` generates."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "update_readme.py"


def _script():
    spec = importlib.util.spec_from_file_location("update_readme", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_settings_table_is_current():
    script = _script()
    readme = script.README.read_text()
    assert script.render(readme) == readme, (
        "run: python target-pipeboard-postgres/scripts/update_readme.py"
    )


def test_table_lists_every_setting():
    script = _script()
    table = script.settings_table()
    from target_pipeboard_postgres.target import TargetPipeboardPostgres

    for name in TargetPipeboardPostgres.config_jsonschema["properties"]:
        assert f"| {name} |" in table


def test_drift_is_detected(tmp_path):
    script = _script()
    readme = script.README.read_text().replace(
        "| batch_size_rows | False | 10000 |", "| batch_size_rows | False | 500 |"
    )
    assert script.render(readme) != readme
