"""The simulated clock: every timestamp the API returns comes from it; it moves only when told."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from pipedrive_simulator.timeutil import to_rfc3339

DEFAULT_START = datetime(2026, 6, 1, 9, 0, 0, tzinfo=UTC)


class SimClock:
    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self._now = start.astimezone(UTC).replace(microsecond=0)
        self._lock = threading.Lock()

    @property
    def now(self) -> datetime:
        with self._lock:
            return self._now

    def now_text(self) -> str:
        return to_rfc3339(self.now)

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the simulated clock only moves forward: seconds must be >= 0")
        with self._lock:
            self._now += timedelta(seconds=int(seconds))
            return self._now
