"""The committed spec_costs.json is what the build script makes from the vendored specs."""

import importlib.util
from pathlib import Path

from pipedrive_simulator.costs import spec_costs

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_spec_costs.py"
COMMITTED = Path(__file__).resolve().parents[1] / "src" / "pipedrive_simulator" / "spec_costs.json"


def _script():
    spec = importlib.util.spec_from_file_location("build_spec_costs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_costs_are_current():
    module = _script()
    assert COMMITTED.read_text(encoding="utf-8") == module.build(module.SPEC_DIR), (
        "spec_costs.json is stale: run pipedrive-simulator/scripts/build_spec_costs.py"
    )


def test_costs_match_the_documented_figures():
    costs = spec_costs()
    assert costs["v2"]["GET /deals"] == 10
    assert costs["v2"]["GET /deals/{id}"] == 1
    assert costs["v2"]["GET /stages"] == 5
    assert costs["v1"]["GET /deals/{id}/flow"] == 40
    assert costs["v1"]["GET /deals/{id}/changelog"] == 20
    assert costs["v1"]["GET /recents"] == 20
    assert "GET /deals" in costs["v1_removed"]
    assert "GET /deals" not in costs["v1"]
