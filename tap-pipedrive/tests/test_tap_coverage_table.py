"""The README's coverage table is what scripts/readme_coverage.py generates from the code and a
measured sync of the demo account."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tap_pipedrive.streams import STREAM_TYPES

ROOT = Path(__file__).resolve().parents[1]


def _script():
    path = ROOT / "scripts" / "readme_coverage.py"
    spec = importlib.util.spec_from_file_location("tap_readme_coverage", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_coverage_table_matches_the_code_and_the_measured_costs():
    readme = (ROOT / "README.md").read_text()
    assert _script().render(readme) == readme, (
        "README coverage table drifted: run tap-pipedrive/scripts/readme_coverage.py"
    )


def test_every_stream_has_a_row():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- coverage:start -->")[1].split("<!-- coverage:end -->")[0]
    for cls in STREAM_TYPES:
        assert f"| `{cls.name}`" in block, cls.name
