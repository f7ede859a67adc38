"""Side by side, by instruction count: this checkout's tap and target against another
checkout's (e.g. the commit before a refactor), under ``valgrind --tool=callgrind``.

    python bench/callgrind_compare.py --baseline-bin /work/wt/arch-base/.venv/bin \
        [--deals 3000] [--rows 5000] [--repeat 1]

On a shared machine wall and CPU seconds vary by tens of percent from minute to minute; the
number of instructions a process executes does not depend on the load, so two versions can be
compared to a percent. Each plugin runs as its own process under callgrind (about 50 times
slower; only the plugin's process is counted: the simulator and Postgres are separate):

- tap: the ``deals`` stream of a simulator account (seed 1, ``--deals`` deals, 500 a page,
  output to a file), and the same run with no stream selected (interpreter, imports,
  discovery); the difference per record is the figure to compare.
- target: a generated Singer file of ``--rows`` deals-like records (``bench/target_bench.py``'s
  generator) loaded into an empty schema, then again as an upsert pass; and an empty input
  (start-up) for the per-row figure.

``PYTHONHASHSEED=0`` makes dictionary and set orders, and so the counts, repeatable.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql
from tap_bench import Simulator, select
from target_bench import DEFAULT_URL, OUT, generate

BIN = Path(sys.executable).parent
SMALL = [
    *("--persons", "10", "--organizations", "10", "--activities", "10", "--notes", "10"),
    *("--leads", "10", "--files", "10", "--products", "10"),
]
_COLLECTED = re.compile(rb"Collected : (\d+)")


def instructions(argv: list[str], stdin: Path | None, stdout: Path) -> int:
    """Instructions executed by ``argv`` (a Python console script) under callgrind."""
    script = Path(argv[0])
    python = script.parent / "python"
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={tmp}/callgrind.out",
            str(python),
            *argv,
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        with (
            stdin.open("rb") if stdin else open(os.devnull, "rb") as source,
            stdout.open("wb") as sink,
        ):
            proc = subprocess.run(
                command, stdin=source, stdout=sink, stderr=subprocess.PIPE, env=env, check=False
            )
    found = _COLLECTED.search(proc.stderr)
    if proc.returncode != 0 or found is None:
        tail = proc.stderr.decode(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{tail}")
    return int(found.group(1))


def tap_figures(bins: dict[str, Path], deals: int, repeat: int) -> dict[str, dict[str, float]]:
    sim = Simulator("--seed", "1", "--deals", str(deals), "--plan", "unlimited", *SMALL)
    figures: dict[str, dict[str, float]] = {}
    try:
        config = {"api_url": sim.base_url, "api_token": sim.token}
        with tempfile.TemporaryDirectory() as tmp:
            config_path = Path(tmp) / "config.json"
            config_path.write_text(json.dumps(config))
            catalogs = {}
            for name, which in (("deals", {"deals"}), ("idle", set())):
                path = Path(tmp) / f"catalog_{name}.json"
                path.write_text(json.dumps(select(config, which)))
                catalogs[name] = path
            out = Path(tmp) / "out.jsonl"
            samples: dict[tuple[str, str], list[int]] = {}
            for _ in range(repeat):
                for label, bin_dir in bins.items():
                    for name, catalog in catalogs.items():
                        argv = [str(bin_dir / "tap-pipedrive"), "--config", str(config_path)]
                        argv += ["--catalog", str(catalog)]
                        count = instructions(argv, None, out)
                        samples.setdefault((label, name), []).append(count)
                        if name == "deals":
                            records = sum(1 for x in out.open("rb") if b'"type":"RECORD"' in x)
                            figures.setdefault(label, {})["records"] = records
        for label in bins:
            run = min(samples[(label, "deals")])
            idle = min(samples[(label, "idle")])
            records = figures[label]["records"]
            figures[label].update(run=run, idle=idle, per_record=(run - idle) / max(records, 1))
    finally:
        sim.stop()
    return figures


def target_figures(
    bins: dict[str, Path],
    rows: int,
    repeat: int,
    phases: tuple[str, ...] = ("initial", "upsert"),
    extra: dict[str, object] | None = None,
) -> dict[str, dict[str, float]]:
    OUT.mkdir(exist_ok=True)
    data = OUT / f"deals_{rows}.singer"
    if not data.exists():
        generate(data, rows)
    empty = OUT / "empty.singer"
    empty.write_bytes(b"")
    figures: dict[str, dict[str, float]] = {}
    samples: dict[tuple[str, str], list[int]] = {}
    for _ in range(repeat):
        for label, bin_dir in bins.items():
            schema = f"bench_cg_{re.sub(r'[^a-z0-9]', '_', label.lower())}_{os.getpid()}"
            config = OUT / f"config_{schema}.json"
            config.write_text(
                json.dumps(
                    {"database_url": DEFAULT_URL, "default_target_schema": schema, **(extra or {})}
                )
            )
            with psycopg.connect(DEFAULT_URL, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
            argv = [str(bin_dir / "target-pipeboard-postgres"), "--config", str(config)]
            sink = OUT / f"state_{schema}.jsonl"
            for phase, source in ((p, data) for p in phases):
                samples.setdefault((label, phase), []).append(instructions(argv, source, sink))
            for phase, source in (("idle", empty),):
                samples.setdefault((label, phase), []).append(instructions(argv, source, sink))
            with psycopg.connect(DEFAULT_URL, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
    for label in bins:
        idle = min(samples[(label, "idle")])
        figures[label] = {"idle": idle, "rows": rows}
        for phase in phases:
            count = min(samples[(label, phase)])
            figures[label][phase] = count
            figures[label][f"{phase}_per_row"] = (count - idle) / rows
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline-bin", type=Path, required=True)
    parser.add_argument("--deals", type=int, default=3000)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (minimum kept)")
    parser.add_argument("--only", choices=("tap", "target"))
    parser.add_argument("--side", choices=("baseline", "this checkout"), help="one side only")
    parser.add_argument("--no-upsert", action="store_true", help="target: initial load only")
    parser.add_argument(
        "--target-config", type=json.loads, default={}, help="target: settings to add (JSON)"
    )
    args = parser.parse_args()
    bins = {"baseline": args.baseline_bin, "this checkout": BIN}
    if args.side:
        bins = {args.side: bins[args.side]}
    phases = ("initial",) if args.no_upsert else ("initial", "upsert")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()
    lines = [f"started {started}, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}", ""]
    if args.only in (None, "tap"):
        tap = tap_figures(bins, args.deals, args.repeat)
        lines += [
            "| tap | records | instructions, deals run | start-up (no stream) | per record |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, f in tap.items():
            lines.append(
                f"| {label} | {f['records']:,.0f} | {f['run']:,.0f} | {f['idle']:,.0f} | "
                f"{f['per_record']:,.0f} |"
            )
        base, new = tap["baseline"]["per_record"], tap["this checkout"]["per_record"]
        lines += ["", f"tap per record: {new / base - 1:+.2%} against the baseline", ""]
    if args.only in (None, "target"):
        target = target_figures(bins, args.rows, args.repeat, phases, args.target_config)
        lines += [
            "| target | rows | initial load | upsert pass | start-up (empty input) | "
            "per row, initial | per row, upsert |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, f in target.items():
            upsert = f"{f['upsert']:,.0f}" if "upsert" in f else "-"
            upsert_row = f"{f['upsert_per_row']:,.0f}" if "upsert" in f else "-"
            lines.append(
                f"| {label} | {f['rows']:,.0f} | {f['initial']:,.0f} | {upsert} | "
                f"{f['idle']:,.0f} | {f['initial_per_row']:,.0f} | {upsert_row} |"
            )
        if len(target) == 2:
            base_t, new_t = target["baseline"], target["this checkout"]
            for phase in phases:
                change = new_t[f"{phase}_per_row"] / base_t[f"{phase}_per_row"] - 1
                lines.append(f"\ntarget per row, {phase}: {change:+.2%} against the baseline")
    load = os.getloadavg()
    lines += ["", f"ended {time.strftime('%H:%M UTC', time.gmtime())}, load {load[0]:.1f}"]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
