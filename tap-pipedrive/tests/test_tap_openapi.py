"""The trimmed OpenAPI JSON shipped in the package is what the script makes of the specs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "trim_openapi.py"


def test_trimmed_spec_is_current():
    spec = importlib.util.spec_from_file_location("tap_trim_openapi", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.OUTPUT.read_text() == module.render(), "run tap-pipedrive/scripts/trim_openapi.py"
