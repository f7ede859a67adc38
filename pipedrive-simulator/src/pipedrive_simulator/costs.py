"""Token costs per operation, from the trimmed copy of the vendored specs (spec_costs.json)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def spec_costs() -> dict[str, Any]:
    text = resources.files("pipedrive_simulator").joinpath("spec_costs.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def cost_of(version: str, operation: str) -> int:
    """``version`` is "v1", "v2" or "v1_removed"; ``operation`` like "GET /deals/{id}"."""
    try:
        return int(spec_costs()[version][operation])
    except KeyError:
        raise KeyError(f"no x-token-cost for {version} {operation} in the specs") from None
