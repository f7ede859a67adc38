"""Throughput of the webhook receiver (`tap-pipedrive-webhooks serve`) with durable commits.

    python bench/webhook_receiver_bench.py [--events 6000] [--connections 32] [--database-url URL]

The receiver runs as its own process pinned to one CPU (``taskset -c 1``); the load comes from
``--connections`` keep-alive HTTP/1.1 connections (raw ``http.client``, pinned to the other CPU)
posting distinct webhook v2 events (the vendored deal-change example with a fresh ``meta.id``)
with the right Basic credentials. Every event is committed to Postgres before its 2xx
(``synchronous_commit`` as the server has it, reported). Prints events/s and acknowledgement
latency percentiles as measured by the clients, checks that every event is stored exactly once,
and writes a Markdown row to stdout.
"""

from __future__ import annotations

import argparse
import base64
import copy
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "vendor" / "pipedrive-webhooks" / "examples" / "deal-change-stage.json"
DEFAULT_URL = os.environ.get(
    "PIPEBOARD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
USER, PASSWORD = "bench", "bench-password"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()
    schema = f"bench_webhooks_{uuid.uuid4().hex[:8]}"
    script = shutil.which("tap-pipedrive-webhooks", path=str(Path(sys.executable).parent))
    assert script is not None
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    env = {**os.environ, "PIPEBOARD_WEBHOOK_USER": USER, "PIPEBOARD_WEBHOOK_PASSWORD": PASSWORD}
    proc = subprocess.Popen(
        [
            *pin,
            script,
            "serve",
            "--port",
            "0",
            "--database-url",
            args.database_url,
            "--schema",
            schema,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        port = int(url.split(":")[2].split("/")[0])
        _wait_healthy(port)
        template = json.loads(EXAMPLE.read_text())
        bodies = []
        for _ in range(args.events):
            body = copy.deepcopy(template)
            body["meta"]["id"] = str(uuid.uuid4())
            bodies.append(json.dumps(body).encode())
        if shutil.which("taskset"):
            os.sched_setaffinity(0, {0})
        latencies: list[float] = []
        lock = threading.Lock()
        per_conn = [bodies[i :: args.connections] for i in range(args.connections)]
        auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

        def client(chunk: list[bytes]) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine = []
            for body in chunk:
                started = time.perf_counter()
                conn.request(
                    "POST",
                    "/pipedrive/webhooks",
                    body=body,
                    headers={"authorization": auth, "content-type": "application/json"},
                )
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200, resp.status
                mine.append(time.perf_counter() - started)
            conn.close()
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=client, args=(c,)) for c in per_conn]
        cpu_before = _cpu_seconds(proc.pid)
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(proc.pid) - cpu_before
        with psycopg.connect(args.database_url) as conn:
            stored = conn.execute(
                sql.SQL("SELECT count(*), count(DISTINCT event_id) FROM {}.events").format(
                    sql.Identifier(schema)
                )
            ).fetchone()
            sync_commit = conn.execute("SHOW synchronous_commit").fetchone()
            fsync = conn.execute("SHOW fsync").fetchone()
        assert stored == (args.events, args.events), stored
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        rate = args.events / elapsed
        print(
            f"| {args.events} events, {args.connections} connections, receiver on 1 CPU "
            f"(synchronous_commit={sync_commit[0] if sync_commit else '?'}, "
            f"fsync={fsync[0] if fsync else '?'}) | {rate:,.0f} events/s wall, "
            f"{args.events / cpu:,.0f} per receiver CPU second | "
            f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.0f} ms |"
        )
    finally:
        proc.terminate()
        proc.wait(10)
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), children included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _wait_healthy(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the receiver did not become healthy")


if __name__ == "__main__":
    main()
