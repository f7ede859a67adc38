"""Progress of a long extraction: records so far, the rate, and an ETA where one is knowable.

Pipedrive reports no totals (v2 cursors and v1 offsets alike say only whether more follows), so
the ETA comes from time instead: an incremental stream reads in ascending ``update_time`` from
its bookmark, and every record it can still return was updated between that bookmark and the
moment the read began. The ``update_time`` of the last record read therefore tells how much of
that window is behind, and the window's pace so far gives the time left. Updates are rarely
spread evenly over time, so this is an estimate; reads in any other order get none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ProgressReport:
    """What one progress line says."""

    records: int
    elapsed_seconds: float
    rate_per_second: float
    done_fraction: float | None = None
    eta_seconds: float | None = None

    def message(self, stream: str) -> str:
        """The human-readable line."""
        text = f"Progress: stream={stream} records={self.records} rate={self.rate_per_second:.0f}/s"
        if self.done_fraction is not None and self.eta_seconds is not None:
            eta = f"{self.eta_seconds:.1f}" if self.eta_seconds < 10 else f"{self.eta_seconds:.0f}"
            text += f" done={self.done_fraction:.0%} eta={eta}s"
        return text

    def fields(self, stream: str) -> dict[str, object]:
        """The structured fields of the line (JSON fields with structured logging)."""
        fields: dict[str, object] = {
            "event_type": "progress",
            "stream_name": stream,
            "records": self.records,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "rate_per_second": round(self.rate_per_second, 1),
        }
        if self.done_fraction is not None and self.eta_seconds is not None:
            fields["done_fraction"] = round(self.done_fraction, 4)
            fields["eta_seconds"] = round(self.eta_seconds, 1)
        return fields


@dataclass
class _Window:
    until: datetime
    started: float
    since: datetime | None = None


class Progress:
    """Counts a stream's records and says when a progress line is due (every ``every_seconds``)."""

    def __init__(self, every_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_seconds = every_seconds
        self.records = 0
        self._clock = clock
        self._started: float | None = None
        self._last = 0.0
        self._window: _Window | None = None

    def begin(self) -> None:
        """The stream's read begins (the rate counts from here); later calls change nothing."""
        if self._started is None:
            self._started = self._last = self._clock()

    def start_window(self, until: datetime) -> None:
        """A read in ascending update time begins at ``until`` (by the API's clock). The window
        opens at the first record read: a bookmark or start date long before it would count
        an empty stretch of time as work done."""
        self.begin()
        self._window = _Window(until, self._clock())

    def end_window(self) -> None:
        self._window = None

    def advance(
        self, count: int, span: tuple[datetime, datetime] | None = None
    ) -> ProgressReport | None:
        """Count ``count`` more records (in a window: the first and last updated within
        ``span``); returns a report when a progress line is due."""
        now = self._clock()
        if self._started is None:  # no begin(): the rate counts from this page on
            self._started = self._last = now
            self.records += count
            return None
        self.records += count
        window = self._window
        if window is not None and window.since is None and span is not None:
            window.since = span[0]
        if now - self._last < self.every_seconds:
            return None
        self._last = now
        elapsed = now - self._started
        report = ProgressReport(self.records, elapsed, self.records / max(elapsed, 1e-9))
        if window is None or window.since is None or span is None:
            return report
        whole = (window.until - window.since).total_seconds()
        if whole <= 0:
            return report
        done = min(max((span[1] - window.since).total_seconds() / whole, 0.0), 1.0)
        if done <= 0:
            return report
        return ProgressReport(
            report.records,
            report.elapsed_seconds,
            report.rate_per_second,
            done_fraction=done,
            eta_seconds=(now - window.started) * (1 - done) / done,
        )
