"""Request pacing from the ``x-ratelimit-*`` headers, optionally shared through Redis.

Pipedrive allows ``x-ratelimit-limit`` requests per short window (2 s) and says how many are
left (``x-ratelimit-remaining``) and when the window resets (``x-ratelimit-reset``, seconds).
Every process reserves a slot in a sliding window before sending; when the window is full, or
the API said nothing is left, it sleeps until a slot frees up. With Redis the slot log and the
'wait until' deadline are shared, so parallel taps never exceed the limit together.
"""

from __future__ import annotations

import time
import typing as t
from collections.abc import Callable, Mapping

from tap_pipedrive.store import KEY_PREFIX, CounterStore

# Slots a window may hold while the API has not said its limit yet: never blocks, only logs.
_UNKNOWN_LIMIT = 1_000_000


def header_number(headers: Mapping[str, str], name: str) -> float | None:
    """A numeric header, or None when absent or unparsable."""
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


class BurstLimiter:
    """Paces requests to the account's burst limit."""

    def __init__(
        self,
        store: CounterStore,
        account: str,
        *,
        window_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._prefix = f"{KEY_PREFIX}:{account}:burst"
        self._window = window_seconds
        self._limit: int | None = None
        self._sleep = sleep
        self._clock = clock
        self.waited_seconds = 0.0

    def acquire(self) -> None:
        """Block until a request may be sent."""
        while True:
            now = self._clock()
            blocked_until = self._store.get_until(f"{self._prefix}:until")
            if blocked_until > now:
                self._pause(blocked_until - now)
                continue
            # A sliding window (with a little slack for network latency, and one slot of
            # headroom for requests whose arrival other processes' jitter reorders) keeps any
            # window the API measures within the limit, however its windows are aligned. Before
            # the first answer tells the limit, requests are still logged in the shared window,
            # so processes starting together count each other's first requests.
            limit = _UNKNOWN_LIMIT if self._limit is None else max(1, self._limit - 1)
            wait = self._store.reserve(f"{self._prefix}:slots", limit, self._window + 0.2)
            if wait <= 0:
                return
            self._pause(wait)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn the limit and honour an exhausted window reported by the API."""
        limit = header_number(headers, "x-ratelimit-limit")
        if limit is not None and limit > 0:
            self._limit = int(limit)
        remaining = header_number(headers, "x-ratelimit-remaining")
        reset = header_number(headers, "x-ratelimit-reset")
        if remaining is not None and remaining <= 0:
            self.block_for(reset if reset is not None else self._window)

    def block_for(self, seconds: float) -> None:
        """Make every process sharing the store wait ``seconds``."""
        if seconds > 0:
            self._store.set_until(f"{self._prefix}:until", self._clock() + seconds)

    @property
    def limit(self) -> int | None:
        return self._limit

    def _pause(self, seconds: float) -> None:
        seconds = max(seconds, 0.005)
        self.waited_seconds += seconds
        self._sleep(seconds)


def retry_after_seconds(headers: Mapping[str, t.Any], default: float) -> float:
    """How long a 429 asks us to wait: ``Retry-After`` or ``x-ratelimit-reset``."""
    for name in ("retry-after", "x-ratelimit-reset"):
        value = header_number(headers, name)
        if value is not None and value >= 0:
            return value
    return default
