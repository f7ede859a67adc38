"""Tokens of a full history backfill against the stage-history backfill it replaces.

    python bench/history_backfill_bench.py [--deals 2000]

Two fresh, identical seeded simulator accounts (plan unlimited; the simulator counts every
request and token per endpoint). On each, the backfill (``stage_history_mode: backfill``) runs
from an empty state until it is complete:

(a) the stage-history backfill as it was: only ``deal_stage_changes`` selected;
(b) the history backfill: ``deal_stage_changes`` and ``deal_changes`` selected (the project's
    ``stage-history-backfill`` job), one changelog call per deal feeding both streams.

The two must send the same requests and spend the same tokens. Figures count every request the
runs sent (field definitions included, the same in both). Printed as Markdown and written to
bench/out/history_backfill.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any

import pipedrive_simulator
from tap_pipedrive.tap import TapPipedrive

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
CHANGELOG = "GET /v1/deals/{id}/changelog"


def backfill(deals: int, streams: tuple[str, ...]) -> dict[str, Any]:
    sim = pipedrive_simulator.start(seed=42, deals=deals)
    try:
        cfg = {
            "api_url": sim.base_url,
            "api_token": sim.api_token,
            "stage_history_mode": "backfill",
        }
        catalog = TapPipedrive(config=cfg, parse_env_config=False).catalog_dict
        for entry in catalog["streams"]:
            for meta in entry["metadata"]:
                if meta["breadcrumb"] == []:
                    meta["metadata"]["selected"] = entry["tap_stream_id"] in streams
        sim.reset_stats()
        out = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(out):
            TapPipedrive(config=cfg, catalog=catalog, state={}, parse_env_config=False).sync_all()
        seconds = time.perf_counter() - started
        records: dict[str, int] = {}
        for line in out.getvalue().splitlines():
            message = json.loads(line)
            if message["type"] == "RECORD":
                records[message["stream"]] = records.get(message["stream"], 0) + 1
        endpoints = sim.stats()["endpoints"]
        return {
            "streams": list(streams),
            "requests": sum(e["requests"] for e in endpoints.values()),
            "tokens": sum(e["tokens"] for e in endpoints.values()),
            "changelog_requests": endpoints.get(CHANGELOG, {}).get("requests", 0),
            "changelog_tokens": endpoints.get(CHANGELOG, {}).get("tokens", 0),
            "records": records,
            "seconds": round(seconds, 1),
        }
    finally:
        sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=2000)
    args = parser.parse_args()
    stage = backfill(args.deals, ("deal_stage_changes",))
    history = backfill(args.deals, ("deal_stage_changes", "deal_changes"))
    OUT.mkdir(exist_ok=True)
    (OUT / "history_backfill.json").write_text(
        json.dumps({"deals": args.deals, "stage": stage, "history": history}, indent=2)
    )
    print(f"| backfill of {args.deals} deals | requests | tokens | changelog calls | records |")
    print("|---|---|---|---|---|")
    for label, row in (("stage history (deal_stage_changes)", stage), ("history", history)):
        records = ", ".join(f"{k} {v}" for k, v in sorted(row["records"].items()))
        print(
            f"| {label} | {row['requests']} | {row['tokens']} | {row['changelog_requests']} "
            f"| {records} |"
        )
    same = (stage["requests"], stage["tokens"]) == (history["requests"], history["tokens"])
    print(f"\nsame requests and tokens: {same}")


if __name__ == "__main__":
    main()
