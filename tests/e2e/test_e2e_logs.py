"""The plugins run outside Meltano with the project's logging config
(deploy/logging/singer-sdk-json.yml): every line either writes to stderr is a JSON object, with a
line per committed batch (counts, duration) and progress lines (records, rate, ETA)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOG_CONFIG = ROOT / "deploy" / "logging" / "singer-sdk-json.yml"


def _json_lines(stderr: str, plugin: str) -> list[dict[str, Any]]:
    lines = []
    for number, line in enumerate(stderr.splitlines(), 1):
        try:
            parsed = json.loads(line)
        except ValueError:
            raise AssertionError(f"{plugin} stderr line {number} is not JSON: {line!r}") from None
        assert isinstance(parsed, dict), (plugin, line)
        assert {"level", "logger_name", "ts", "message"} <= set(parsed), (plugin, line)
        lines.append(parsed)
    assert lines, f"{plugin} logged nothing"
    return lines


def test_tap_and_target_log_json_lines(
    pipedrive_simulator_factory, postgres_url: str, pg_schema: str, tmp_path: Path
) -> None:
    simulator = pipedrive_simulator_factory(deals=120)
    tap_config = tmp_path / "tap.json"
    tap_config.write_text(
        json.dumps(
            {
                "api_url": simulator.base_url,
                "api_token": simulator.api_token,
                "start_date": "2015-01-01T00:00:00Z",
                "page_size": 25,
                "progress_interval_seconds": 0,
            }
        )
    )
    target_config = tmp_path / "target.json"
    target_config.write_text(
        json.dumps(
            {
                "database_url": postgres_url,
                "default_target_schema": pg_schema,
                "batch_size_rows": 50,
            }
        )
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TAP_PIPEDRIVE", "TARGET_PIPEBOARD", "MELTANO_", "SINGER_SDK"))
    }
    env["SINGER_SDK_LOG_CONFIG"] = str(LOG_CONFIG)
    tap_err, target_err = tmp_path / "tap.err", tmp_path / "target.err"
    with tap_err.open("w") as tap_log, target_err.open("w") as target_log:
        tap = subprocess.Popen(
            [str(BIN / "tap-pipedrive"), "--config", str(tap_config)],
            stdout=subprocess.PIPE,
            stderr=tap_log,
            env=env,
        )
        target = subprocess.run(
            [str(BIN / "target-pipeboard-postgres"), "--config", str(target_config)],
            stdin=tap.stdout,
            stdout=subprocess.DEVNULL,
            stderr=target_log,
            env=env,
            timeout=300,
            check=False,
        )
        assert tap.stdout is not None
        tap.stdout.close()
        assert tap.wait(timeout=60) == 0, tap_err.read_text()[-3000:]
    assert target.returncode == 0, target_err.read_text()[-3000:]

    deals = len(simulator.truth("deals")) + len(simulator.truth("archived_deals"))
    batches = [
        line
        for line in _json_lines(target_err.read_text(), "target")
        if line["extra"].get("event_type") == "batch_committed"
    ]
    deal_batches = [line for line in batches if line["stream_name"] == "deals"]
    # One line per batch, with its counts and duration: batches of at most 50 rows.
    assert sum(line["extra"]["rows"] for line in deal_batches) == deals
    assert len(deal_batches) >= deals // 50
    for line in batches:
        extra = line["extra"]
        assert 0 < extra["rows"] <= 50
        assert extra["bytes"] > 0
        assert extra["duration_seconds"] >= 0
        assert extra["table"] == f"{pg_schema}.{line['stream_name']}"
        assert line["message"].startswith(f"Batch committed: {extra['rows']} rows")

    progress = [
        line
        for line in _json_lines(tap_err.read_text(), "tap")
        if line["extra"].get("event_type") == "progress"
    ]
    deal_progress = [line for line in progress if line["stream_name"] == "deals"]
    assert deal_progress[-1]["extra"]["records"] == deals
    assert all(line["extra"]["rate_per_second"] > 0 for line in deal_progress)
    # Deals are read in update-time order, so most lines estimate the time left.
    estimated = [line["extra"] for line in deal_progress if "eta_seconds" in line["extra"]]
    assert len(estimated) >= len(deal_progress) // 2
    assert all(0 < e["done_fraction"] <= 1 and e["eta_seconds"] >= 0 for e in estimated)
    assert " eta=" in next(
        line["message"] for line in deal_progress if "eta_seconds" in line["extra"]
    )
    # Line items follow no time order: records and rate, no ETA.
    line_items = [line for line in progress if line["stream_name"] == "deal_products"]
    assert line_items
    assert not [line for line in line_items if "eta_seconds" in line["extra"]]
