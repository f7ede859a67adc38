"""A snapshot of ``--discover`` against the default seeded account.

Regenerate after an intended change with ``PIPEBOARD_UPDATE_SNAPSHOTS=1 pytest <this file>``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("snapshots") / "discover.json"


def _summary(catalog):
    out = {}
    for entry in sorted(catalog["streams"], key=lambda e: e["tap_stream_id"]):
        root = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
        props = {}
        for name, prop in sorted(entry["schema"]["properties"].items()):
            kinds = prop.get("type")
            text = "|".join(kinds) if isinstance(kinds, list) else str(kinds or "any")
            if prop.get("format"):
                text += f" ({prop['format']})"
            if "x-pipedrive-field-type" in prop:
                text += f" <{prop['x-pipedrive-field-type']}"
                text += (
                    f".{prop['x-pipedrive-subfield']}>" if "x-pipedrive-subfield" in prop else ">"
                )
            props[name] = text
        out[entry["tap_stream_id"]] = {
            "key_properties": entry.get("key_properties"),
            "replication_key": root.get("valid-replication-keys"),
            "replication_method": root.get("forced-replication-method"),
            "properties": props,
        }
    return out


def test_discover_matches_snapshot(pipedrive_simulator, config_for, tmp_path: Path):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config_for(pipedrive_simulator)))
    tap = Path(sys.executable).with_name("tap-pipedrive")
    proc = subprocess.run(
        [str(tap), "--config", str(config_file), "--discover"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    summary = _summary(json.loads(proc.stdout))
    if os.environ.get("PIPEBOARD_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    assert summary == json.loads(SNAPSHOT.read_text())
    # Every custom-field column carries the key it came from.
    deals = json.loads(proc.stdout)["streams"]
    deal_props = next(e for e in deals if e["tap_stream_id"] == "deals")["schema"]["properties"]
    assert all("x-pipedrive-key" in p for n, p in deal_props.items() if n != "_sdc_deleted_at")
