"""Token-based rate limiting as Pipedrive documents it.

Daily budget: 30,000 tokens x plan multiplier x seats, reset at midnight UTC of the simulated
clock; each request is charged its operation's ``x-token-cost``. Burst limit: requests per
2-second window per token, by plan and by auth kind (API token vs OAuth). Clients that keep
hammering after 429s get a Cloudflare-style 403 HTML page.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import date

from pipedrive_simulator.clock import SimClock

BASE_DAILY_TOKENS = 30_000
WINDOW_SECONDS = 2.0
HAMMER_THRESHOLD = 10  # 429s within one window after which a client gets the 403 page


@dataclass(frozen=True)
class Plan:
    name: str
    multiplier: int
    burst_api_token: int
    burst_oauth: int


PLANS: dict[str, Plan] = {
    p.name: p
    for p in (
        Plan("essential", 1, 20, 80),
        Plan("advanced", 2, 40, 160),
        Plan("professional", 4, 80, 320),
        Plan("power", 5, 100, 400),
        Plan("enterprise", 7, 120, 480),
        # Benchmarks: nothing is refused; headers still report a (huge) budget.
        Plan("unlimited", 1_000_000, 1_000_000, 1_000_000),
    )
}


@dataclass
class Decision:
    status: int  # 200 = go ahead, 429 = refused, 403 = blocked
    headers: dict[str, str]
    reason: str = ""


@dataclass
class _Window:
    started: float
    used: int = 0
    refused: int = 0


class RateLimiter:
    def __init__(self, clock: SimClock, plan: str, seats: int) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self.seats = max(1, seats)
        self.plan = self._plan(plan)
        self._day: date = clock.now.date()
        self.remaining = self.daily_limit
        self._windows: dict[str, _Window] = {}

    @staticmethod
    def _plan(name: str) -> Plan:
        try:
            return PLANS[name]
        except KeyError:
            raise ValueError(f"unknown plan {name!r}; one of: {', '.join(PLANS)}") from None

    @property
    def daily_limit(self) -> int:
        return BASE_DAILY_TOKENS * self.plan.multiplier * self.seats

    def set_plan(self, name: str) -> None:
        with self._lock:
            self.plan = self._plan(name)
            self.remaining = self.daily_limit
            self._windows.clear()

    def set_budget_remaining(self, tokens: int) -> None:
        if tokens < 0:
            raise ValueError("budget_remaining must be >= 0")
        with self._lock:
            self._roll_day()
            self.remaining = min(tokens, self.daily_limit)

    def _roll_day(self) -> None:
        today = self.clock.now.date()
        if today != self._day:
            self._day = today
            self.remaining = self.daily_limit

    def check(self, token: str, kind: str, cost: int) -> Decision:
        """Charge ``cost`` tokens for one request by ``token`` (kind "api_token" or "oauth")."""
        burst = self.plan.burst_oauth if kind == "oauth" else self.plan.burst_api_token
        now = time.monotonic()
        with self._lock:
            self._roll_day()
            window = self._windows.get(token)
            if window is None or now - window.started >= WINDOW_SECONDS:
                window = _Window(started=now)
                self._windows[token] = window
            reset = max(1, math.ceil(WINDOW_SECONDS - (now - window.started)))
            if window.refused >= HAMMER_THRESHOLD:
                window.refused += 1
                return Decision(403, {}, "blocked")
            if self.remaining < cost or self.remaining <= 0:
                window.refused += 1
                return Decision(429, self._headers(burst, burst - window.used, reset), "daily")
            if window.used >= burst:
                window.refused += 1
                return Decision(429, self._headers(burst, 0, reset), "burst")
            window.used += 1
            self.remaining -= cost
            return Decision(200, self._headers(burst, burst - window.used, reset))

    def _headers(self, burst: int, left: int, reset: int) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(burst),
            "x-ratelimit-remaining": str(max(0, left)),
            "x-ratelimit-reset": str(reset),
            "x-daily-ratelimit-token-limit": str(self.daily_limit),
            "x-daily-ratelimit-token-remaining": str(max(0, self.remaining)),
        }

    def headers_for(self, token: str, kind: str) -> dict[str, str]:
        """Headers describing the current state (for faults served instead of an answer)."""
        burst = self.plan.burst_oauth if kind == "oauth" else self.plan.burst_api_token
        with self._lock:
            window = self._windows.get(token)
            used = 0 if window is None else window.used
            return self._headers(burst, burst - used, 2)


BLOCK_PAGE = """<!DOCTYPE html>
<html lang="en-US">
<head><title>Attention Required! | Cloudflare</title>
<meta charset="UTF-8" /><meta name="robots" content="noindex, nofollow" /></head>
<body>
<div id="cf-wrapper"><div id="cf-error-details" class="cf-error-details-wrapper">
<h1 data-translate="block_headline">Sorry, you have been blocked</h1>
<h2 class="cf-subheadline">You are unable to access api.pipedrive.com</h2>
<p>This website is using a security service to protect itself from online attacks.
The action you just performed triggered the security solution.</p>
<p>Cloudflare Ray ID: <strong class="font-semibold">{ray}</strong></p>
</div></div>
</body>
</html>
"""
