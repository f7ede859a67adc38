"""Benchmark of deal stage history extraction: per-deal calls and API tokens, against the minimum.

    python bench/stage_history_bench.py [--deals 2000] [--moved 50] [--compare]

Against one seeded simulator account (plan unlimited, so nothing is refused; the simulator
counts every request and token per endpoint):

(a) incremental: a first run reads every deal's history, a second run with no change, then a
    run after ``--moved`` deals changed stage (and as many deals were edited without a stage
    change). Minimum per-deal calls: the number of deals that moved.
(b) full backfill (``stage_history_mode: backfill``). Minimum per-deal calls: one per deal
    (every history here fits one page).

With ``--compare``, the PyPI ``tap-pipedrive`` package (singer-io, pinned version installed
into bench/.venvs/pypi-tap-pipedrive by bench/comparison.py) runs its ``dealflow`` stream on the
same account for the same situations. It has no way to point at another API host, so it runs
through a wrapper that sets its ``BASE_URL`` to the simulator.

Figures count only the stage-history work: the deal lists, the stages dictionary and the
per-deal endpoint (the tap's custom-field discovery requests are excluded for both taps).
Results are printed as Markdown and written to bench/out/stage_history.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import comparison
import pipedrive_simulator
from tap_pipedrive.streams.stage_changes import DealStageChangesStream
from tap_pipedrive.tap import TapPipedrive

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PER_DEAL = {
    "changelog": "GET /v1/deals/{id}/changelog",
    "flow": "GET /v1/deals/{id}/flow",
}
LISTS = ("GET /api/v2/deals", "GET /api/v2/deals/archived", "GET /api/v2/stages")
COSTS = {"changelog": 20, "flow": 40, "deals": 10, "archived": 20, "stages": 5}


class StageTap(TapPipedrive):
    """The tap with the stage-change stream (as registered in the tap's stream list)."""

    def discover_streams(self):  # type: ignore[override]
        streams = list(super().discover_streams())
        if not any(s.name == "deal_stage_changes" for s in streams):
            streams.append(DealStageChangesStream(self))
        return streams


def run_ours(sim: Any, state: dict[str, Any], **config: Any) -> dict[str, Any]:
    cfg = {"api_url": sim.base_url, "api_token": sim.api_token, **config}
    catalog = StageTap(config=cfg).catalog_dict
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] == "deal_stage_changes"
    sim.reset_stats()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        StageTap(config=cfg, catalog=catalog, state=state).sync_all()
    states = [
        json.loads(line)["value"]
        for line in out.getvalue().splitlines()
        if line.startswith('{"type":"STATE"') or '"type": "STATE"' in line
    ]
    return states[-1] if states else state


def run_pypi(sim: Any, workdir: Path, state: dict[str, Any]) -> dict[str, Any]:
    # dealflow's schema is static (no custom-field discovery): the catalog of the one stream is
    # the schema file the tap ships, which is what its discovery returns for it.
    sim.reset_stats()
    run = comparison.run_pypi_tap(
        sim.base_url,
        sim.api_token,
        workdir,
        catalog=comparison.shipped_catalog(["dealflow"]),
        state=state,
    )
    if run.returncode != 0:
        raise RuntimeError(f"PyPI tap-pipedrive failed: {run.stderr[-2000:]}")
    return run.last_state(state)


def measure(sim: Any, source: str) -> dict[str, int]:
    endpoints = sim.stats()["endpoints"]

    def of(key: str, what: str) -> int:
        return int(endpoints.get(key, {}).get(what, 0))

    return {
        "per_deal_calls": of(PER_DEAL[source], "requests"),
        "per_deal_tokens": of(PER_DEAL[source], "tokens"),
        "list_calls": sum(of(k, "requests") for k in LISTS),
        "list_tokens": sum(of(k, "tokens") for k in LISTS),
        "tokens": of(PER_DEAL[source], "tokens") + sum(of(k, "tokens") for k in LISTS),
    }


def minimum(active: int, archived: int | None, readers: int, source: str) -> dict[str, int]:
    """Fewest calls and tokens: one per-deal page per deal read, one page per 500 listed deals.

    Every list read costs at least one request (``archived`` None: the archived list is not
    read, as the PyPI tap does not read it).
    """
    lists = max(1, math.ceil(active / 500)) * COSTS["deals"]
    if archived is not None:
        lists += max(1, math.ceil(archived / 500)) * COSTS["archived"]
    return {
        "per_deal_calls": readers,
        "tokens": readers * COSTS[source] + lists + (COSTS["stages"] if readers else 0),
    }


def change_deals(sim: Any, moved: int, edited: int) -> list[int]:
    """Move ``moved`` open deals to another stage of their pipeline; edit ``edited`` others."""
    stages: dict[int, list[int]] = {}
    for stage in sim.truth("stages"):
        stages.setdefault(stage["pipeline_id"], []).append(stage["id"])
    open_deals = [d for d in sim.truth("deals") if d["status"] == "open"]
    sim.advance(3600)
    movers = []
    for deal in open_deals[:moved]:
        target = next(s for s in stages[deal["pipeline_id"]] if s != deal["stage_id"])
        sim.move_deal(deal["id"], target)
        movers.append(deal["id"])
    for deal in open_deals[moved : moved + edited]:
        sim.update("deals", deal["id"], title=deal["title"] + " (edited)")
    sim.advance(60)
    return movers


def bench(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"deals": args.deals, "moved": args.moved, "rows": []}

    def row(name: str, tap: str, got: dict[str, int], best: dict[str, int], secs: float) -> None:
        results["rows"].append({"case": name, "tap": tap, **got, "minimum": best, "seconds": secs})

    for source in ("changelog", "flow"):
        sim = pipedrive_simulator.start(seed=args.seed, deals=args.deals)
        try:
            active, archived = len(sim.truth("deals")), len(sim.truth("archived_deals"))
            total = active + archived
            started = time.perf_counter()
            state = run_ours(sim, {}, stage_history_source=source, stage_history_initial_days=None)
            row(
                "first incremental run (every deal)",
                f"pipeboard ({source})",
                measure(sim, source),
                minimum(active, archived, total, source),
                time.perf_counter() - started,
            )
            started = time.perf_counter()
            state = run_ours(sim, state, stage_history_source=source)
            row(
                "incremental, nothing changed",
                f"pipeboard ({source})",
                measure(sim, source),
                minimum(0, 0, 0, source),
                time.perf_counter() - started,
            )
            movers = change_deals(sim, args.moved, args.moved)
            started = time.perf_counter()
            state = run_ours(sim, state, stage_history_source=source)
            changed = 2 * args.moved
            row(
                f"incremental after {args.moved} moved (+{args.moved} edited)",
                f"pipeboard ({source})",
                measure(sim, source),
                minimum(changed, 0, len(movers), source),
                time.perf_counter() - started,
            )
            started = time.perf_counter()
            # Deleted deals vanish from the API 30 days after deletion: count what is visible now.
            active, archived = len(sim.truth("deals")), len(sim.truth("archived_deals"))
            run_ours(sim, {}, stage_history_source=source, stage_history_mode="backfill")
            got = measure(sim, source)
            best = minimum(active, archived, active + archived, source)
            row("full backfill", f"pipeboard ({source})", got, best, time.perf_counter() - started)
        finally:
            sim.stop()

    if args.compare:
        version = comparison.pypi_tap_installed_version()
        sim = pipedrive_simulator.start(seed=args.seed, deals=args.deals)
        try:
            active, archived = len(sim.truth("deals")), len(sim.truth("archived_deals"))
            with tempfile.TemporaryDirectory() as tmp:
                workdir = Path(tmp)
                started = time.perf_counter()
                state = run_pypi(sim, workdir, {})
                row(
                    "full history (first run)",
                    f"tap-pipedrive {version} dealflow",
                    measure(sim, "flow"),
                    minimum(active, None, active, "flow"),
                    time.perf_counter() - started,
                )
                started = time.perf_counter()
                state = run_pypi(sim, workdir, state)
                row(
                    "incremental, nothing changed",
                    f"tap-pipedrive {version} dealflow",
                    measure(sim, "flow"),
                    minimum(0, None, 0, "flow"),
                    time.perf_counter() - started,
                )
                movers = change_deals(sim, args.moved, args.moved)
                started = time.perf_counter()
                run_pypi(sim, workdir, state)
                row(
                    f"incremental after {args.moved} moved (+{args.moved} edited)",
                    f"tap-pipedrive {version} dealflow",
                    measure(sim, "flow"),
                    minimum(2 * args.moved, None, len(movers), "flow"),
                    time.perf_counter() - started,
                )
        finally:
            sim.stop()
    return results


def bench_expansion(database_url: str, deals: int, touched: int) -> dict[str, Any]:
    """Time the target's SQL expansion on generated tables: all deals, then ``touched``."""
    import random
    import uuid

    import psycopg
    from psycopg import sql
    from target_pipeboard_postgres import stage_history

    schema = f"bench_stage_{uuid.uuid4().hex[:8]}"
    rng = random.Random(1)
    stages = [(p * 10 + k, f"Stage {k} of {p}", p, k) for p in (1, 2, 3) for k in range(1, 8)]
    with psycopg.connect(database_url) as conn:
        s = sql.Identifier(schema)
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(s))
        conn.execute(sql.SQL("CREATE TABLE {}.deals (id bigint PRIMARY KEY, title text)").format(s))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.stages (id bigint PRIMARY KEY, name text, pipeline_id bigint,"
                " order_nr int)"
            ).format(s)
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.deal_stage_changes (id text PRIMARY KEY, deal_id bigint,"
                " pipeline_id bigint, from_stage_id bigint, to_stage_id bigint,"
                " changed_at timestamptz, user_id bigint)"
            ).format(s)
        )
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {}.stages VALUES (%s, %s, %s, %s)").format(s), stages
            )
            with cur.copy(sql.SQL("COPY {}.deals (id, title) FROM STDIN").format(s)) as copy:
                for deal in range(1, deals + 1):
                    copy.write_row((deal, f"deal {deal}"))
            changes = 0
            with cur.copy(sql.SQL("COPY {}.deal_stage_changes FROM STDIN").format(s)) as copy:
                for deal in range(1, deals + 1):
                    pipeline = rng.choice((1, 2, 3))
                    at, stage, previous = 1_700_000_000 + deal * 60, pipeline * 10 + 1, None
                    for _ in range(rng.randint(1, 7)):
                        copy.write_row(
                            (
                                f"{deal}:{at}",
                                deal,
                                pipeline,
                                previous,
                                stage,
                                datetime.fromtimestamp(at, UTC),
                                1,
                            )
                        )
                        changes += 1
                        previous, stage = stage, pipeline * 10 + rng.randint(1, 7)
                        at += rng.randint(3600, 30 * 86400)
        conn.commit()
        settings = stage_history.StageHistorySettings()
        started = time.perf_counter()
        full = stage_history.expand(conn, schema, settings)
        full_seconds = time.perf_counter() - started
        ids = rng.sample(range(1, deals + 1), touched)
        started = time.perf_counter()
        part = stage_history.expand(conn, schema, settings, deal_ids=ids)
        part_seconds = time.perf_counter() - started
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(s))
        conn.commit()
    return {
        "deals": deals,
        "changes": changes,
        "stays": full.history_rows,
        "columns": len(full.columns_added),
        "full_seconds": round(full_seconds, 2),
        "touched": part.deals,
        "touched_seconds": round(part_seconds, 3),
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"{results['deals']} generated deals (seed {results.get('seed')}), simulator plan "
        f"unlimited; {platform.platform()}, Python {platform.python_version()}.",
        "",
        "| case | tap | per-deal calls (min) | tokens (min) | of which lists | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        best = r["minimum"]
        lines.append(
            f"| {r['case']} | {r['tap']} | {r['per_deal_calls']} ({best['per_deal_calls']}) | "
            f"{r['tokens']} ({best['tokens']}) | {r['list_tokens']} | {r['seconds']:.1f} |"
        )
    expansion = results.get("expansion")
    if expansion:
        lines += [
            "",
            f"Target expansion (SQL, same machine, local Postgres): {expansion['deals']} deals "
            f"with {expansion['changes']} stage changes -> {expansion['stays']} stays and "
            f"{expansion['columns']} moved_to_stage_* columns in {expansion['full_seconds']} s "
            "for all deals; "
            f"{expansion['touched']} touched deals in {expansion['touched_seconds']} s.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deals", type=int, default=2000)
    parser.add_argument("--moved", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--compare", action="store_true", help="also the PyPI tap-pipedrive")
    parser.add_argument(
        "--expansion-deals", type=int, default=0, help="also time the target's SQL expansion"
    )
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    results = bench(args) if args.deals else {"deals": 0, "rows": []}
    if args.expansion_deals:
        results["expansion"] = bench_expansion(args.database_url, args.expansion_deals, 1000)
    results["seed"] = args.seed
    OUT.mkdir(exist_ok=True)
    (OUT / "stage_history.json").write_text(json.dumps(results, indent=2, default=str))
    print(markdown(results))


if __name__ == "__main__":
    main()
