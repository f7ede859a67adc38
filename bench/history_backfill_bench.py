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

With ``--database-url``, the history run's output and the deals stream are loaded into a fresh
schema by the target, and the time of the changelog-history rebuild (every deal's versions back
to creation, ``deals_changelog_history``) is measured: whole, and after a later load queued
20 deals (the rebuild then rewrites those deals' versions only).
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


def backfill(
    deals: int, streams: tuple[str, ...], database_url: str | None = None
) -> dict[str, Any]:
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
        rebuild = None
        if database_url:
            rebuild = time_rebuild(sim, cfg, out.getvalue(), database_url)
        return {
            "rebuild": rebuild,
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


TOUCHED_DEALS = 20  # deals a typical later run loads


def time_rebuild(sim: Any, cfg: dict[str, Any], lines: str, database_url: str) -> dict[str, Any]:
    """Load the deals and the backfill's output, then time the changelog-history rebuild."""
    import psycopg
    from psycopg import sql
    from target_pipeboard_postgres import changelog_history
    from target_pipeboard_postgres.target import TargetPipeboardPostgres

    catalog = TapPipedrive(config=cfg, parse_env_config=False).catalog_dict
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] == "deals"
    deals_out = io.StringIO()
    with contextlib.redirect_stdout(deals_out):
        TapPipedrive(config=cfg, catalog=catalog, state={}, parse_env_config=False).sync_all()
    schema = f"bench_history_{int(time.time())}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        config = {"database_url": database_url, "default_target_schema": schema}
        with contextlib.redirect_stdout(io.StringIO()):
            TargetPipeboardPostgres(config=config).listen(io.StringIO(deals_out.getvalue() + lines))
        with psycopg.connect(database_url, autocommit=True) as conn:
            started = time.perf_counter()
            changelog_history.rebuild(conn, schema, force=True)
            seconds = time.perf_counter() - started
            row = conn.execute(
                sql.SQL("SELECT count(*), count(DISTINCT id) FROM {}").format(
                    sql.Identifier(schema, "deals_changelog_history")
                )
            ).fetchone()
            # A later run that loaded a few deals (or their changes): the loader queued their
            # ids in its batch transactions; the rebuild rewrites those deals' versions only.
            with conn.transaction():
                changelog_history.mark_pending(
                    conn,
                    schema,
                    "deals",
                    sql.SQL("(SELECT id FROM {} ORDER BY id DESC LIMIT {}) touched").format(
                        sql.Identifier(schema, "deals"), sql.Literal(TOUCHED_DEALS)
                    ),
                    "id",
                )
            started = time.perf_counter()
            changelog_history.rebuild(conn, schema)
            incremental = time.perf_counter() - started
        assert row is not None
        return {
            "seconds": round(seconds, 2),
            "versions": row[0],
            "deals": row[1],
            "touched_deals": TOUCHED_DEALS,
            "incremental_seconds": round(incremental, 3),
        }
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=2000)
    parser.add_argument("--database-url", help="also time the changelog-history rebuild")
    args = parser.parse_args()
    stage = backfill(args.deals, ("deal_stage_changes",))
    history = backfill(args.deals, ("deal_stage_changes", "deal_changes"), args.database_url)
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
    if history["rebuild"]:
        rebuilt = history["rebuild"]
        print(
            f"changelog-history rebuild: {rebuilt['versions']} versions of {rebuilt['deals']} "
            f"deals in {rebuilt['seconds']} s whole; {rebuilt['touched_deals']} deals queued by "
            f"a later load: {rebuilt['incremental_seconds']} s"
        )


if __name__ == "__main__":
    main()
