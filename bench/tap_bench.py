"""Benchmark tap-pipedrive against the simulator: API cost of full and incremental syncs,
and extraction throughput.

Usage: python bench/tap_bench.py [--deals-throughput 25000] [--skip-cost] [--pypi] [--plan P]
[--redis-url URL]

``--deals-throughput 0`` skips the throughput part (the API-cost part counts requests and
tokens, so it does not depend on the machine's load). ``--pypi`` also runs the PyPI
``tap-pipedrive`` (singer-io, pinned in bench/comparison.py, installed into
bench/.venvs/pypi-tap-pipedrive) against a simulator seeded the same way: its discovery, every
stream in a process of its own (a full sync, then a no-change incremental run from the state it
wrote), so that one failing stream does not hide the cost of the others, then one process with
every stream selected (and, if some stream calls a path the simulator does not serve, one with
every other stream). Requests, tokens and 429s per endpoint come from the simulator's
``GET /_simulator/stats``; the PyPI tap's logs and the figures go to bench/out/pypi_tap/.
The API-cost runs use plan ``unlimited`` (nothing refused); ``--plan essential`` (or another
plan) applies that plan's burst limits, so 429s show.

The throughput part also runs ``bench/floor_reader.py`` before each tap run (the same pages
fetched, parsed and written as RECORD lines, nothing else), so the tap's rate can be read
against what the machine allowed in the same minutes. Both rates are after start-up: each
program's start-up is measured alone (the tap with no stream selected, the floor with
``--start-up-only``) and taken off its CPU time.

Prints a Markdown section for bench/RESULTS.md (heading "Tap"). Each tap run is a separate
process (the console script), so its CPU time is measured alone with ``getrusage``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import comparison

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TAP = BIN / "tap-pipedrive"
SIM = BIN / "pipedrive-simulator"
OUT = Path(__file__).resolve().parent / "out"
FLOOR = Path(__file__).resolve().with_name("floor_reader.py")

PAGED_V2 = {
    "deals": "/api/v2/deals",
    "archived_deals": "/api/v2/deals/archived",
    "persons": "/api/v2/persons",
    "organizations": "/api/v2/organizations",
    "activities": "/api/v2/activities",
    "products": "/api/v2/products",
    "pipelines": "/api/v2/pipelines",
    "stages": "/api/v2/stages",
}
PAGED_V1 = {
    "leads": "/v1/leads",
    "archived_leads": "/v1/leads/archived",
    "notes": "/v1/notes",
    "files": "/v1/files",
}
DICTIONARIES = (
    "dealFields",
    "personFields",
    "organizationFields",
    "productFields",
    "activityFields",
)
SINGLE_V1 = ("/v1/users", "/v1/activityTypes", "/v1/currencies")


class Simulator:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(SIM), "--port", "0", *args], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().split()
        self.base_url = first[1]
        self.token = first[2].split("=", 1)[1]
        # Keep draining the server's output so it can never block on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def get(self, path: str):
        with urllib.request.urlopen(f"{self.base_url}{path}", timeout=600) as answer:
            return json.loads(answer.read())

    def post(self, path: str, body: dict | None = None):
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=json.dumps(body or {}).encode(),
            method="POST",
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=600) as answer:
            return json.loads(answer.read() or b"null")

    def count(self, entity: str) -> int:
        return len(self.get(f"/_simulator/truth/{entity}"))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def run_tap(
    config: dict, *, state: dict | None = None, catalog: dict | None = None, tap: Path = TAP
) -> tuple[list[str], float, float]:
    """Run the tap; return (stdout lines, wall seconds, CPU seconds of the tap process)."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [str(tap), "--config", f"{tmp}/config.json"]
        Path(f"{tmp}/config.json").write_text(json.dumps(config))
        if state is not None:
            Path(f"{tmp}/state.json").write_text(json.dumps(state))
            args += ["--state", f"{tmp}/state.json"]
        if catalog is not None:
            Path(f"{tmp}/catalog.json").write_text(json.dumps(catalog))
            args += ["--catalog", f"{tmp}/catalog.json"]
        out_path = Path(tmp) / "out.jsonl"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        with out_path.open("wb") as out:
            subprocess.run(args, stdout=out, stderr=subprocess.DEVNULL, check=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return out_path.read_text().splitlines(), wall, cpu


def last_state(lines: list[str]) -> dict:
    states = [
        json.loads(x)["value"]
        for x in lines
        if x.startswith('{"type":"STATE"') or '"type": "STATE"' in x
    ]
    return states[-1]


def select(config: dict, streams: set[str]) -> dict:
    proc = subprocess.run(
        [str(TAP), "--config", "/dev/stdin", "--discover"],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        check=True,
    )
    catalog = json.loads(proc.stdout)
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def cost_section(plan: str, redis_url: str | None = None) -> list[str]:
    sim = Simulator("--seed", "42", "--plan", plan)
    try:
        config = {"api_url": sim.base_url, "api_token": sim.token}
        if redis_url:
            config["redis_url"] = redis_url
        sim.post("/_simulator/reset-stats")
        lines, wall, _cpu = run_tap(config)
        full = sim.get("/_simulator/stats")
        records = sum(1 for x in lines if '"type":"RECORD"' in x)
        streams = {json.loads(x)["stream"] for x in lines if '"type":"SCHEMA"' in x}
        counts = {e: sim.count(e) for e in (*PAGED_V2, *PAGED_V1)}
        deal_items = sim.get("/_simulator/truth/deal_products")
        visible = {
            d["id"] for e in ("deals", "archived_deals") for d in sim.get(f"/_simulator/truth/{e}")
        }
        deals_with_items = len({i["deal_id"] for i in deal_items if i["deal_id"] in visible})
        items = sum(1 for i in deal_items if i["deal_id"] in visible)
        minimum_500 = (
            sum(max(1, math.ceil(n / 500)) for n in counts.values())
            + len(DICTIONARIES)
            + len(SINGLE_V1)
            + max(1, math.ceil(items / 500))
        )
        # What the API allows at best: files pages hold 100, line items need deal ids (100
        # deals per request).
        api_min = (
            sum(max(1, math.ceil(n / 500)) for e, n in counts.items() if e != "files")
            + max(1, math.ceil(counts["files"] / 100))
            + len(DICTIONARIES)
            + len(SINGLE_V1)
            + math.ceil(deals_with_items / 100)
        )
        sim.post("/_simulator/reset-stats")
        inc_lines, inc_wall, _ = run_tap(config, state=last_state(lines))
        incremental = sim.get("/_simulator/stats")
        inc_records = sum(1 for x in inc_lines if '"type":"RECORD"' in x)
        per_endpoint = "; ".join(
            f"{k.split(' ', 1)[1]} {v['requests']}"
            for k, v in sorted(incremental["endpoints"].items())
        )
        full_per_endpoint = "; ".join(
            f"{k.split(' ', 1)[1]} {v['requests']} ({v['tokens']} tokens)"
            for k, v in sorted(full["endpoints"].items())
        )
    finally:
        sim.stop()
    return [
        f"### API cost (seed 42, default account, plan {plan})",
        "",
        f"Full sync: {records} records, {sum(counts.values()) + items} of them in paged lists "
        f"({items} line items of {deals_with_items} deals).",
        "",
        "| run | requests | tokens | 429s | wall s |",
        "|---|---|---|---|---|",
        f"| full sync (all {len(streams)} streams) | {full['total']['requests']} | "
        f"{full['total']['tokens']} | {full['total']['responses_429']} | {wall:.1f} |",
        f"| minimum, ceil(records/500) per paged list + 1 per dictionary | {minimum_500} | | | |",
        f"| minimum the API allows (files 100/page, line items by 100 deals) | {api_min} | | | |",
        f"| incremental run, no changes | {incremental['total']['requests']} | "
        f"{incremental['total']['tokens']} | {incremental['total']['responses_429']} | "
        f"{inc_wall:.1f} |",
        "",
        f"The full sync sent: {full_per_endpoint}.",
        "",
        f"The no-change incremental run emitted {inc_records} records (the full-table "
        f"dictionaries) and sent: {per_endpoint}.",
        "",
    ]


def run_floor(sim: Simulator, *options: str) -> tuple[int, float]:
    """Run bench/floor_reader.py against ``sim``; return (records, CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile() as out:
        subprocess.run(
            [sys.executable, str(FLOOR), sim.base_url, sim.token, *options],
            stdout=out,
            check=True,
        )
        out.seek(0)
        records = sum(1 for _ in out)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return records, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def throughput_section(deals: int) -> list[str]:
    small = [
        "--persons",
        "10",
        "--organizations",
        "10",
        "--activities",
        "10",
        "--notes",
        "10",
        "--leads",
        "10",
        "--files",
        "10",
        "--products",
        "10",
    ]
    sim = Simulator("--seed", "1", "--deals", str(deals), "--plan", "unlimited", *small)
    try:
        config = {"api_url": sim.base_url, "api_token": sim.token}
        catalog = select(config, {"deals"})
        fields = sum(1 for d in sim.get("/_simulator/truth/deal_fields") if d["is_custom_field"])
        run_tap(config, catalog=catalog)  # warm the simulator's page cache
        # Start-up cost: the same run with no stream selected (interpreter, imports, discovery).
        idle = min(run_tap(config, catalog=select(config, set()))[2] for _ in range(3))
        floor_idle = min(run_floor(sim, "--start-up-only")[1] for _ in range(3))
        results = []
        floors = []
        for _ in range(3):
            floors.append(run_floor(sim))
            lines, wall, cpu = run_tap(config, catalog=catalog)
            records = sum(1 for x in lines if '"type":"RECORD"' in x)
            results.append((records, wall, cpu))
    finally:
        sim.stop()
    best = min(results, key=lambda r: r[2])
    records, wall, cpu = best
    floor_records, floor_cpu = min(floors, key=lambda r: r[1])
    floor_rate = floor_records / max(floor_cpu - floor_idle, 1e-9)
    return [
        "### Throughput (plan unlimited, deals only)",
        "",
        f"{records:,} deals with {fields} custom fields, 500 per page, output to a file; best "
        "of 3 runs. CPU is the tap process's own user+system time (it runs on one core; the "
        f"simulator is a separate process). Start-up (interpreter, imports, discovery) costs "
        f"{idle:.2f} s CPU, measured by the same run with no stream selected. The floor is "
        "`bench/floor_reader.py`, run before each tap run: the same pages read with requests, "
        "parsed and written as RECORD lines with orjson, nothing else (no custom-field "
        f"columns, no schema or state); best of 3, {floor_records:,} records in "
        f"{floor_cpu:.2f} s CPU, of which {floor_idle:.2f} s start-up (its imports, measured "
        f"alone): {floor_rate:,.0f} records / CPU s after start-up, the figure to read beside "
        "the tap's. This machine's speed varies from hour to hour; the floor shows what it was "
        "during these runs.",
        "",
        "| records | wall s | tap CPU s | records / wall s | records / CPU s | records / "
        "CPU s after start-up | floor records / CPU s after start-up | tap / floor |",
        "|---|---|---|---|---|---|---|---|",
        f"| {records:,} | {wall:.2f} | {cpu:.2f} | {records / wall:,.0f} | "
        f"{records / cpu:,.0f} | {records / max(cpu - idle, 1e-9):,.0f} | "
        f"{floor_rate:,.0f} | {(records / max(cpu - idle, 1e-9)) / floor_rate:.0%} |",
        "",
    ]


def _endpoints(stats: dict[str, Any], run: comparison.PypiRun) -> dict[str, dict[str, int]]:
    """Per-endpoint figures; a path the simulator does not serve is named from the tap's error."""
    endpoints = {k: dict(v) for k, v in stats["endpoints"].items()}
    unknown = endpoints.pop("GET (unknown path)", None)
    if unknown is not None:
        found = re.search(r"Unknown method (\S+ \S+)", run.error or "")
        name = f"{found.group(1)} (404: not served)" if found else "GET (unknown path, 404)"
        endpoints[name] = unknown
    return endpoints


def _outcome(run: comparison.PypiRun) -> str:
    if run.returncode == 0:
        return "ok"
    error = run.error or "failed"
    found = re.search(r"HTTP-error-code: (\d+)", error)
    return f"failed: HTTP {found.group(1)}" if found else f"failed: {error[:80]}"


def pypi_section(plan: str) -> list[str]:
    version = comparison.pypi_tap_installed_version()
    work = OUT / "pypi_tap"
    work.mkdir(parents=True, exist_ok=True)
    sim = Simulator("--seed", "42", "--plan", plan)
    raw: dict[str, Any] = {"version": version, "plan": plan}

    def measured(name: str, **kwargs: Any) -> tuple[comparison.PypiRun, dict[str, Any]]:
        sim.post("/_simulator/reset-stats")
        run = comparison.run_pypi_tap(sim.base_url, sim.token, work / name, **kwargs)
        stats = sim.get("/_simulator/stats")
        (work / f"{name}.log").write_text(run.stderr)
        raw[name] = {
            "returncode": run.returncode,
            "error": run.error,
            "failed_stream": run.failed_stream,
            "records": run.records(),
            "seconds": round(run.seconds, 2),
            "total": stats["total"],
            "endpoints": _endpoints(stats, run),
        }
        return run, stats

    try:
        discovery, discovery_stats = measured("discover", discover=True)
        catalog = discovery.catalog or comparison.shipped_catalog(comparison.PYPI_TAP_STREAMS)
        per_stream = {}
        for stream in comparison.PYPI_TAP_STREAMS:
            one = comparison.select_streams(catalog, {stream})
            full, full_stats = measured(f"{stream}_full", catalog=one)
            inc, inc_stats = measured(f"{stream}_incremental", catalog=one, state=full.last_state())
            per_stream[stream] = (full, full_stats, inc, inc_stats)
        # One process as it would be run: every stream; and, when some stream calls a path the
        # simulator does not serve (a simulator gap, not the API's answer), every other stream.
        everything = set(comparison.PYPI_TAP_STREAMS)
        not_served = {
            s for s, (full, *_) in per_stream.items() if "Unknown method" in (full.error or "")
        }
        whole_runs = [("every stream selected", everything)]
        if not_served:
            names = ", ".join(f"`{s}`" for s in sorted(not_served))
            whole_runs.append((f"every stream but {names}", everything - not_served))
        wholes = []
        for n, (label, chosen) in enumerate(whole_runs):
            catalog_n = comparison.select_streams(catalog, chosen)
            wholes.append((label, *measured(f"one_process_{n}", catalog=catalog_n)))
    finally:
        sim.stop()
    (OUT / "tap_pypi.json").write_text(json.dumps(raw, indent=1))

    def totals(stats: dict[str, Any]) -> str:
        t = stats["total"]
        return f"{t['requests']} requests, {t['tokens']} tokens, {t['responses_429']} 429s"

    lines = [
        f"### The PyPI `tap-pipedrive` ({version}) against the same simulator",
        "",
        f"Seed 42, default account, plan {plan}, `start_date` 2000-01-01; run through a wrapper "
        "that sets its hard-coded `BASE_URL` to the simulator.",
        "",
    ]
    if discovery.returncode == 0:
        lines.append(f"- Discovery: {totals(discovery_stats)}; the catalog it wrote is used below.")
    else:
        lines.append(
            f"- Discovery failed ({discovery.error}) after {totals(discovery_stats)}; the runs "
            "below use a catalog built from the schema files it ships."
        )
    for label, whole, whole_stats in wholes:
        whole_records = sum(whole.records().values())
        if whole.returncode == 0:
            lines.append(
                f"- One process, {label}: finished; {totals(whole_stats)}, {whole_records} records."
            )
        else:
            lines.append(
                f"- One process, {label}: stopped in stream `{whole.failed_stream}` "
                f"({whole.error}) after {totals(whole_stats)} and {whole_records} records; "
                "the streams after it never ran."
            )
    lines += [
        "",
        "Every stream in a process of its own (its custom-field request included), then a "
        "no-change incremental run from the state it wrote:",
        "",
        "| stream | full: requests | tokens | 429s | records | incremental: requests | tokens "
        "| 429s | records | outcome |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    sums = [0] * 8
    for stream, (full, full_stats, inc, inc_stats) in per_stream.items():
        f, i = full_stats["total"], inc_stats["total"]
        values = [
            f["requests"],
            f["tokens"],
            f["responses_429"],
            sum(full.records().values()),
            i["requests"],
            i["tokens"],
            i["responses_429"],
            sum(inc.records().values()),
        ]
        sums = [a + b for a, b in zip(sums, values, strict=True)]
        outcome = _outcome(full)
        if _outcome(inc) != outcome:
            outcome += f" (incremental: {_outcome(inc)})"
        if full.error:
            outcome += f": {full.error.split('Error: ', 1)[-1][:90]}"
        lines.append(f"| {stream} | " + " | ".join(str(v) for v in values) + f" | {outcome} |")
    lines.append("| **total** | " + " | ".join(f"**{v}**" for v in sums) + " | |")
    merged: dict[str, dict[str, int]] = {}
    for full, full_stats, inc, inc_stats in per_stream.values():
        for phase, run, stats in (("full", full, full_stats), ("inc", inc, inc_stats)):
            for endpoint, row in _endpoints(stats, run).items():
                slot = merged.setdefault(endpoint, {})
                for key, value in row.items():
                    slot[f"{phase}_{key}"] = slot.get(f"{phase}_{key}", 0) + value
    lines += [
        "",
        "Per endpoint, summed over those runs:",
        "",
        "| endpoint | full: requests | tokens | 429s | incremental: requests | tokens | 429s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for endpoint, row in sorted(merged.items(), key=lambda kv: -kv[1].get("full_tokens", 0)):
        cells = [
            row.get(f"{phase}_{key}", 0)
            for phase in ("full", "inc")
            for key in ("requests", "tokens", "responses_429")
        ]
        lines.append(f"| `{endpoint}` | " + " | ".join(str(c) for c in cells) + " |")
    lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--deals-throughput", type=int, default=25_000, help="deals for throughput (0: skip)"
    )
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--pypi", action="store_true", help="also the PyPI tap-pipedrive")
    parser.add_argument(
        "--plan", default="unlimited", help="simulator plan for the API-cost runs (rate limits)"
    )
    parser.add_argument(
        "--redis-url", help="the tap's redis_url in the API-cost runs (dictionary cache)"
    )
    args = parser.parse_args()
    lines = [
        "## Tap",
        "",
        f"Measured with `bench/tap_bench.py` on {time.strftime('%Y-%m-%d')} "
        f"({os.cpu_count()} shared cores).",
        "",
    ]
    if not args.skip_cost:
        lines += cost_section(args.plan, args.redis_url)
    if args.pypi:
        lines += pypi_section(args.plan)
    if args.deals_throughput:
        lines += throughput_section(args.deals_throughput)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
