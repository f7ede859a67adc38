"""A simulated day: tokens per day and freshness for polling, recents polling and webhooks mode.

    python bench/simulated_day.py [--deals 3000] [--changes 300] [--hours 24] [--every 5]
                                  [--modes polling,recents,webhooks] [--database-url URL]

Modes: ``polling`` is the tap reading every stream every run (``use_recents: false``,
``refresh_interval_minutes: 0``); ``recents`` the default settings (one ``/v1/recents`` call
decides which streams are read, the lists nothing reports changes of re-read on an interval);
``webhooks`` the default settings with ``webhook_database_url`` (the events, and every
``--poll-every``-th run the recents-based safety net).

One simulator per mode: a one-seat Essential account (30,000 tokens a day) with ``--deals``
deals (the other entities scaled with it). After an initial full sync (not counted), the day
starts at 00:00 simulated time: ``--changes`` changes at random times over the day (deal moves
and edits, person and organization edits, deletes, creations; the same seed in every mode), and
a tap run every ``--every`` simulated minutes (the tap in this process, its state carried over).

- tokens: what the simulator charged during the day (429s and the daily cap as the API has them);
- idle runs: the runs with no change since the previous one, their mean and largest cost;
- freshness: for each change, the simulated time from the change to the end of the first run
  whose output carries it (a record with the new values, a delete marker, a stage-change
  record). A run takes simulated time 0 (the clock moves only between runs); the target's
  commit adds seconds, not minutes, so it is left out. Changes no run of the day delivered are
  counted apart ("not seen").

Webhooks mode runs the receiver (``tap-pipedrive-webhooks serve``) against Postgres, registers
the webhooks, and waits before each run until the simulator's deliveries are acknowledged (the
receiver commits before acknowledging); the tap's settle delay (``events.SETTLE_SECONDS``, for
commits still in flight) is 0 here because nothing is in flight by then.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pipedrive_simulator
import psycopg
import redis
from psycopg import sql
from tap_pipedrive.store import KEY_PREFIX, account_key
from tap_pipedrive.streams import FIELD_STREAM_TYPES
from tap_pipedrive.tap import TapPipedrive
from tap_pipedrive.webhooks import events as event_log
from tap_pipedrive.webhooks.credentials import Credentials
from tap_pipedrive.webhooks.registration import WebhookApi, register

HERE = Path(__file__).resolve().parent
DEFAULT_URL = os.environ.get(
    "PIPEBOARD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
USER, PASSWORD = "bench", "bench-password"


@dataclass
class Change:
    at: int  # seconds after the day's start
    kind: str  # move, edit_deal, edit_person, edit_org, delete_person, delete_org, create_deal
    stream: str = ""
    ident: int = 0
    value: Any = None
    seen_after: int | None = None


@dataclass
class ModeResult:
    mode: str
    runs: int = 0
    failed_runs: int = 0
    tokens: int = 0
    requests: int = 0
    freshness: list[int] = field(default_factory=list)
    not_seen: dict[str, int] = field(default_factory=dict)
    budget_exhausted_at: str | None = None
    seconds: float = 0.0
    idle_tokens: list[int] = field(default_factory=list)
    #: Tokens of the day per endpoint (where the budget goes).
    endpoints: dict[str, int] = field(default_factory=dict)
    #: Idle runs over 100 tokens: simulated time, tokens, and the endpoints read (tokens each).
    costly_idle_runs: list[dict[str, Any]] = field(default_factory=list)


def plan_changes(n: int, seconds: int, seed: int) -> list[tuple[int, str]]:
    rng = random.Random(seed)
    kinds = (
        ["move"] * 35
        + ["edit_deal"] * 25
        + ["edit_person"] * 10
        + ["edit_org"] * 10
        + ["delete_person"] * 5
        + ["delete_org"] * 5
        + ["create_deal"] * 10
    )
    return sorted((rng.randrange(seconds), rng.choice(kinds)) for _ in range(n))


def apply(sim: Any, at: int, kind: str, rng: random.Random) -> Change:
    m = sim.simulator.mutator
    acc = sim.simulator.account
    if kind in {"move", "edit_deal"}:
        deals = [d for d in sim.truth("deals") if d["status"] == "open"]
        deal = rng.choice(deals)
        if kind == "move":
            stages = [
                s["id"]
                for s in sim.truth("stages")
                if s["pipeline_id"] == deal["pipeline_id"] and s["id"] != deal["stage_id"]
            ]
            stage = rng.choice(stages)
            m.move_deal(deal["id"], stage)
            return Change(at, kind, "deals", deal["id"], stage)
        value = float(rng.randint(1, 400) * 250)
        m.update("deals", deal["id"], value=value)
        return Change(at, kind, "deals", deal["id"], value)
    if kind in {"edit_person", "delete_person"}:
        stream, entity = "persons", "persons"
    elif kind == "create_deal":
        rec = m.create("deals", title=f"Created at {at}")
        return Change(at, kind, "deals", rec["id"], rec["title"])
    else:
        stream, entity = "organizations", "organizations"
    ids = [r["id"] for r in sim.truth(entity)]
    ident = rng.choice(ids)
    if kind.startswith("delete"):
        m.delete(entity, ident)
        return Change(at, kind, stream, ident, "deleted")
    name = f"Edited at {at}"
    m.update(entity, ident, name=name)
    del acc
    return Change(at, kind, stream, ident, name)


def seen(change: Change, records: dict[str, list[dict[str, Any]]]) -> bool:
    """Whether a run's output carries the change (the new value, or a delete marker)."""
    expected = {
        "move": ("stage_id", change.value),
        "edit_deal": ("value", change.value),
        "create_deal": ("title", change.value),
    }.get(change.kind, ("name", change.value))
    for record in records.get(change.stream, ()):
        if record.get("id") != change.ident:
            continue
        if change.value == "deleted":
            if record.get("_sdc_deleted_at"):
                return True
        elif record.get(expected[0]) == expected[1]:
            return True
    return False


def run_tap(config: dict[str, Any], state: dict[str, Any]) -> tuple[dict[str, Any], Any, dict]:
    out = io.StringIO()
    error = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            tap = TapPipedrive(config=config, state=state, parse_env_config=False)
            tap.sync_all()
        except Exception as exc:
            error = exc
    records: dict[str, list[dict[str, Any]]] = {}
    new_state = state
    for line in out.getvalue().splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            records.setdefault(message["stream"], []).append(message["record"])
        elif message["type"] == "STATE":
            new_state = message["value"]
    return new_state, error, records


def day(mode: str, args: argparse.Namespace) -> ModeResult:
    result = ModeResult(
        mode if mode != "webhooks" else f"webhooks (poll every {args.poll_every} runs)"
    )
    sim = pipedrive_simulator.start(seed=args.seed, deals=args.deals, plan="essential", seats=1)
    receiver = None
    schema = f"bench_day_{uuid.uuid4().hex[:8]}"
    try:
        config: dict[str, Any] = {
            "api_url": sim.base_url,
            "api_token": sim.api_token,
            "redis_url": args.redis_url,
            "cache_ttl_seconds": 86400,  # expired by hand in simulated time (below)
        }
        if mode == "polling":
            config.update(use_recents=False, refresh_interval_minutes=0)
        # The cache's TTL in simulated time: an hour (cache_ttl_seconds' default). With
        # recents, the field definitions are not expired here: the tap judges their age by the
        # API's clock (the simulated one) and re-reads them on refresh_interval_minutes (their
        # Redis TTL, twice the interval in real time, does not run out within a bench).
        cache = redis.Redis.from_url(args.redis_url)
        cache_keys = f"{KEY_PREFIX}:{account_key(sim.base_url, None, sim.api_token)}:cache:*"
        field_keys = {cls.name for cls in FIELD_STREAM_TYPES}
        if mode == "webhooks":
            receiver = start_receiver(args.database_url, schema)
            register(
                WebhookApi(sim.base_url, sim.api_token), receiver[1], Credentials(USER, PASSWORD)
            )
            config.update(
                webhook_database_url=args.database_url,
                webhook_schema=schema,
                webhook_poll_every_runs=args.poll_every,
            )
            event_log.SETTLE_SECONDS = 0.0
        # Start at midnight of the next simulated day, after the initial full sync.
        state, error, _ = run_tap(config, {})
        assert error is None, error
        now = sim.now
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0)
        sim.advance((midnight - now).total_seconds())
        sim.drain_webhooks()
        sim.reset_stats()
        seconds = int(args.hours * 3600)
        planned = plan_changes(args.changes, seconds, args.seed)
        rng = random.Random(args.seed + 1)
        pending: list[Change] = []
        clock = 0
        started = time.perf_counter()
        for tick in range(args.every * 60, seconds + 1, args.every * 60):
            idle = not (planned and planned[0][0] <= tick)
            while planned and planned[0][0] <= tick:
                at, kind = planned.pop(0)
                sim.advance(at - clock)
                clock = at
                pending.append(apply(sim, at, kind, rng))
            sim.advance(tick - clock)
            clock = tick
            for key in cache.scan_iter(cache_keys):
                name = key.decode().rsplit(":", 1)[1]
                # (Polling, refresh_interval_minutes 0: the field definitions expire too.)
                if (name not in field_keys or mode == "polling") and tick % 3600 == 0:
                    cache.delete(key)
            sim.drain_webhooks()
            before = sim.stats()
            state, error, records = run_tap(config, state)
            result.runs += 1
            if idle:
                after = sim.stats()
                cost = after["total"]["tokens"] - before["total"]["tokens"]
                result.idle_tokens.append(cost)
                if cost > 100:
                    was = before["endpoints"]
                    read = {
                        k: v["tokens"] - was.get(k, {}).get("tokens", 0)
                        for k, v in after["endpoints"].items()
                        if v["tokens"] != was.get(k, {}).get("tokens", 0)
                    }
                    at = f"{tick // 3600:02d}:{tick % 3600 // 60:02d}"
                    result.costly_idle_runs.append({"at": at, "tokens": cost, "read": read})
            if error is not None:
                result.failed_runs += 1
                if result.budget_exhausted_at is None and "budget" in str(error).lower():
                    result.budget_exhausted_at = f"{tick // 3600:02d}:{tick % 3600 // 60:02d}"
            for change in pending:
                if change.seen_after is None and seen(change, records):
                    change.seen_after = tick - change.at
            if tick % 3600 == 0 and args.checkpoint:
                checkpoint(args, result, pending, tick, sim)
            done = [c for c in pending if c.seen_after is not None]
            result.freshness.extend(c.seen_after for c in done if c.seen_after is not None)
            pending = [c for c in pending if c.seen_after is None]
        for change in pending:
            result.not_seen[change.kind] = result.not_seen.get(change.kind, 0) + 1
        all_stats = sim.stats()
        stats = all_stats["total"]
        result.tokens, result.requests = stats["tokens"], stats["requests"]
        result.endpoints = {
            k: v["tokens"]
            for k, v in sorted(all_stats["endpoints"].items(), key=lambda kv: -kv[1]["tokens"])
            if v["tokens"]
        }
        result.seconds = time.perf_counter() - started
        return result
    finally:
        sim.stop()
        if receiver is not None:
            receiver[0].terminate()
            receiver[0].wait(10)
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


def checkpoint(
    args: argparse.Namespace, result: ModeResult, pending: list[Change], tick: int, sim: Any
) -> None:
    """The figures so far (after each simulated hour), for a day cut short."""
    stats = sim.stats()["total"]
    seen_now = [c.seen_after for c in pending if c.seen_after is not None]
    freshness = sorted([*result.freshness, *seen_now])
    line = {
        "mode": result.mode,
        "hours": tick / 3600,
        "runs": result.runs,
        "failed_runs": result.failed_runs,
        "budget_exhausted_at": result.budget_exhausted_at,
        "tokens": stats["tokens"],
        "requests": stats["requests"],
        "changes_seen": len(freshness),
        "changes_pending": len(pending) - len(seen_now),
        "p50_min": percentile(freshness, 0.5) / 60,
        "p95_min": percentile(freshness, 0.95) / 60,
    }
    print(json.dumps(line), file=sys.stderr, flush=True)


def start_receiver(database_url: str, schema: str) -> tuple[subprocess.Popen[str], str]:
    script = shutil.which("tap-pipedrive-webhooks", path=str(Path(sys.executable).parent))
    assert script is not None
    env = {**os.environ, "PIPEBOARD_WEBHOOK_USER": USER, "PIPEBOARD_WEBHOOK_PASSWORD": PASSWORD}
    proc = subprocess.Popen(
        [script, "serve", "--port", "0", "--database-url", database_url, "--schema", schema],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    base = url.rsplit("/pipedrive/", 1)[0]
    import urllib.request

    for _ in range(200):
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                break
        except OSError:
            time.sleep(0.05)
    return proc, url


def percentile(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deals", type=int, default=3000)
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--every", type=int, default=5, help="minutes between runs")
    parser.add_argument("--modes", default="polling,recents,webhooks")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", default="simulated_day")
    parser.add_argument(
        "--poll-every", type=int, default=72, help="webhooks mode: webhook_poll_every_runs"
    )
    parser.add_argument(
        "--checkpoint", action="store_true", help="print the figures so far every simulated hour"
    )
    args = parser.parse_args()
    results = [day(mode, args) for mode in args.modes.split(",")]
    print(
        "| mode | runs (failed) | tokens in the day | % of 30,000 | idle runs: tokens mean / max |"
        " freshness p50 / p95 | not seen in the day | wall time |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        p50 = percentile(r.freshness, 0.5) / 60
        p95 = percentile(r.freshness, 0.95) / 60
        failed = f"{r.failed_runs}" + (
            f", budget out at {r.budget_exhausted_at}" if r.budget_exhausted_at else ""
        )
        missing = ", ".join(f"{k} {v}" for k, v in sorted(r.not_seen.items())) or "none"
        idle = r.idle_tokens or [0]
        print(
            f"| {r.mode} | {r.runs} ({failed}) | {r.tokens:,} | {r.tokens / 300:.1f}% |"
            f" {statistics.mean(idle):.0f} / {max(idle)} ({len(r.idle_tokens)} runs) |"
            f" {p50:.1f} / {p95:.1f} min | {missing} | {r.seconds:.0f} s |"
        )
    for r in results:
        for costly in r.costly_idle_runs[:5]:
            at, tokens, read = costly["at"], costly["tokens"], costly["read"]
            print(f"{r.mode}: idle run at {at}: {tokens} tokens, {read}")
        if len(r.costly_idle_runs) > 5:
            print(f"{r.mode}: {len(r.costly_idle_runs)} idle runs over 100 tokens in all")
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / f"{args.out}.json").write_text(
        json.dumps([r.__dict__ for r in results], indent=1, default=str)
    )
    print(f"median freshness values: {[statistics.median(r.freshness or [0]) for r in results]}")


if __name__ == "__main__":
    main()
