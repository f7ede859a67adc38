"""Requests served, tokens charged and 429s, per endpoint (method + spec path template)."""

from __future__ import annotations

import threading
from typing import Any


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: dict[str, dict[str, int]] = {}

    def record(self, endpoint: str, tokens: int, status: int) -> None:
        with self._lock:
            row = self._endpoints.setdefault(
                endpoint, {"requests": 0, "tokens": 0, "responses_429": 0}
            )
            row["requests"] += 1
            row["tokens"] += tokens
            if status == 429:
                row["responses_429"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            endpoints = {k: dict(v) for k, v in sorted(self._endpoints.items())}
        total = {
            name: sum(row[name] for row in endpoints.values())
            for name in ("requests", "tokens", "responses_429")
        }
        return {"total": total, "endpoints": endpoints}

    def reset(self) -> None:
        with self._lock:
            self._endpoints.clear()
