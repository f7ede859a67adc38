"""Faults served on demand: 5xx, slow answers, connection resets, broken JSON, 429s."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

KINDS = (
    "http_500",
    "http_502",
    "http_503",
    "slow",
    "reset",
    "truncated_json",
    "malformed_json",
    "null_body",
    "burst_429",
    "budget_exhausted",
)


@dataclass
class Fault:
    kind: str
    path: str | None = None
    times: int | None = None
    probability: float | None = None
    delay: float | None = None


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._rng = random.Random(seed)

    def add(
        self,
        kind: str,
        *,
        path: str | None = None,
        times: int | None = None,
        probability: float | None = None,
        delay: float | None = None,
    ) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of: {', '.join(KINDS)}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1")
        if probability is not None and not 0 <= probability <= 1:
            raise ValueError("probability must be between 0 and 1")
        if kind == "slow" and (delay is None or delay < 0):
            raise ValueError("a slow fault needs delay (seconds, >= 0)")
        if path is not None and not path.startswith("/"):
            raise ValueError("path must be a URL path prefix such as /api/v2/deals")
        fault = Fault(kind, path, times, probability, delay)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, path: str) -> Fault | None:
        """The fault to serve for this request, if any (uses up one of its ``times``)."""
        with self._lock:
            for fault in self._faults:
                if fault.path is not None and not path.startswith(fault.path):
                    continue
                if fault.probability is not None and self._rng.random() >= fault.probability:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None
