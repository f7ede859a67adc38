"""Measure how fast the simulator serves deal pages (figures go to bench/RESULTS.md).

Usage: ``python pipedrive-simulator/scripts/bench_serve.py``. Prints a Markdown table.
"""

from __future__ import annotations

import http.client
import statistics
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from pipedrive_simulator import start
from pipedrive_simulator.protocol import Request
from pipedrive_simulator.simulator import Simulator


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _in_process(sim: Simulator, **query: str) -> Callable[[], object]:
    def call() -> object:
        req = Request("GET", "/api/v2/deals", dict(query), {"x-api-token": sim.api_token})
        out = sim.handle(req)
        assert out.response is not None
        assert out.response.status == 200
        return out

    return call


def main() -> None:
    rows: list[tuple[str, str]] = []
    sim = Simulator(seed=42)
    page = _in_process(sim, limit="500")
    started = time.perf_counter()
    page()
    rows.append(
        (
            "500-deal page, default account, first read (builds + serialises)",
            f"{(time.perf_counter() - started) * 1000:.1f} ms",
        )
    )
    rows.append(
        (
            "500-deal page, default account, warm, in-process handler (median of 50)",
            f"{_median_ms(page, 50):.2f} ms",
        )
    )
    labels = _in_process(sim, limit="500", include_option_labels="true")
    rows.append(
        (
            "500-deal page with include_option_labels (median of 20)",
            f"{_median_ms(labels, 20):.1f} ms",
        )
    )

    handle = start(seed=42)
    try:
        url = urlsplit(handle.base_url)
        conn = http.client.HTTPConnection(url.hostname, url.port)
        headers = {"x-api-token": handle.api_token}
        size = 0

        def over_http() -> None:
            nonlocal size
            conn.request("GET", "/api/v2/deals?limit=500", headers=headers)
            resp = conn.getresponse()
            size = len(resp.read())

        over_http()
        rows.append(
            (
                f"500-deal page over HTTP keep-alive, body {size / 1e6:.2f} MB (median of 50)",
                f"{_median_ms(over_http, 50):.2f} ms",
            )
        )
        conn.close()
    finally:
        handle.stop()

    started = time.perf_counter()
    big = Simulator(seed=1, deals=1_000_000)
    rows.append(
        ("1,000,000-deal account: start (lazy)", f"{(time.perf_counter() - started) * 1000:.0f} ms")
    )
    by_id = _in_process(big, limit="500", cursor="eyJmIjoiaWQiLCJkIjoiYXNjIiwiayI6NTAwMDAwfQ")
    by_id()
    rows.append(
        (
            "1M deals: 500-deal page by id, built from the seed (median of 10)",
            f"{_median_ms(by_id, 10):.1f} ms",
        )
    )
    started = time.perf_counter()
    big.account.stores["deals"].time_index("update_time")
    rows.append(
        (
            "1M deals: update_time index, built once on first use",
            f"{time.perf_counter() - started:.1f} s",
        )
    )
    by_time = _in_process(
        big, limit="500", sort_by="update_time", updated_since="2026-05-01T00:00:00Z"
    )
    rows.append(
        (
            "1M deals: 500-deal page by update_time (median of 10)",
            f"{_median_ms(by_time, 10):.1f} ms",
        )
    )

    print("| measurement | result |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
