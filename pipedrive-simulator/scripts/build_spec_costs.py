"""Trim the vendored Pipedrive OpenAPI specs to what the simulator needs at run time.

Writes ``src/pipedrive_simulator/spec_costs.json``: every operation's token cost (``x-token-cost``)
keyed by method and path template, per API version, plus the legacy v1 operations that the older
v1 snapshot still documents but the current v1 spec no longer has (removed by Pipedrive).

Usage: ``python scripts/build_spec_costs.py [--check]`` (``--check`` exits 1 if the file is stale).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SPEC_DIR = HERE.parents[1] / "vendor" / "pipedrive-openapi"
OUT = HERE.parent / "src" / "pipedrive_simulator" / "spec_costs.json"
METHODS = ("get", "post", "put", "patch", "delete")


def _load(spec_dir: Path, name: str) -> dict[str, Any]:
    with (spec_dir / name).open(encoding="utf-8") as fh:
        loaded: dict[str, Any] = yaml.load(fh, Loader=yaml.CSafeLoader)
    return loaded


def _costs(spec: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for path, item in spec["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is not None and "x-token-cost" in op:
                out[f"{method.upper()} {path}"] = int(op["x-token-cost"])
    return dict(sorted(out.items()))


def build(spec_dir: Path = SPEC_DIR) -> str:
    """Return the trimmed JSON text built from the specs in ``spec_dir``."""
    v2 = _costs(_load(spec_dir, "pipedrive-api-v2.openapi.yaml"))
    v1 = _costs(_load(spec_dir, "pipedrive-api-v1.openapi.yaml"))
    v1_old = _costs(_load(spec_dir, "pipedrive-api-v1.2026-01.openapi.yaml"))
    removed = {key: cost for key, cost in v1_old.items() if key not in v1}
    doc = {
        "source": "shared/pipedrive-openapi (v2, v1 2026-08, v1 2026-01 snapshot)",
        "v2": v2,
        "v1": v1,
        "v1_removed": dict(sorted(removed.items())),
    }
    return json.dumps(doc, indent=1, sort_keys=False) + "\n"


def main() -> int:
    text = build()
    if "--check" in sys.argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is stale: run scripts/build_spec_costs.py")
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
