"""The tap's output loads into a generic Singer SDK target, not only ours.

The target below is the SDK's minimal JSONL-writing target (a ``Target`` with one
``BatchSink``); the SDK validates every record against the SCHEMA message the tap sent, so this
also proves the records conform to the schemas.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

JSONL_TARGET = """
import json, sys
from pathlib import Path
from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink
from singer_sdk.target_base import Target


class JsonlSink(BatchSink):
    def process_batch(self, context):
        path = Path(self.config["destination"]) / f"{self.stream_name}.jsonl"
        with path.open("a") as handle:
            for record in context["records"]:
                handle.write(json.dumps(record, default=str) + "\\n")


class TargetJsonl(Target):
    name = "target-jsonl-sample"
    config_jsonschema = th.PropertiesList(th.Property("destination", th.StringType)).to_dict()
    default_sink_class = JsonlSink


if __name__ == "__main__":
    TargetJsonl.cli()
"""


def test_tap_into_a_generic_jsonl_target(pipedrive_simulator, config_for, tmp_path: Path):
    sim = pipedrive_simulator
    (tmp_path / "tap.json").write_text(json.dumps(config_for(sim)))
    (tmp_path / "target.py").write_text(JSONL_TARGET)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "target.json").write_text(json.dumps({"destination": str(out)}))
    tap = Path(sys.executable).with_name("tap-pipedrive")
    producer = subprocess.Popen(
        [str(tap), "--config", str(tmp_path / "tap.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    consumer = subprocess.run(
        [sys.executable, str(tmp_path / "target.py"), "--config", str(tmp_path / "target.json")],
        stdin=producer.stdout,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert producer.stdout is not None
    producer.stdout.close()
    assert producer.wait(timeout=60) == 0
    assert consumer.returncode == 0, consumer.stderr[-2000:]
    final_state = json.loads(consumer.stdout.strip().splitlines()[-1])
    assert "bookmarks" in final_state

    def loaded(stream):
        return [json.loads(x) for x in (out / f"{stream}.jsonl").read_text().splitlines()]

    assert sorted(r["id"] for r in loaded("persons")) == sorted(
        r["id"] for r in sim.truth("persons")
    )
    deals = loaded("deals")
    assert len(deals) == len(sim.truth("deals")) + len(sim.truth("archived_deals"))
    assert any(r.get("setup_fee_currency") for r in deals)  # custom-field parts arrived
