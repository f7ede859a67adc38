"""The daily token budget: what each request costs, what is left, and the per-run cap.

Pipedrive charges every request a number of tokens (``x-token-cost`` in the specs) against a
daily company budget, reported in ``x-daily-ratelimit-token-limit`` / ``-remaining``. The tap
counts what it spends (shared through Redis when configured, so parallel runs add up) and stops
cleanly before it would spend more than ``max_budget_share`` of the daily budget.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping

from tap_pipedrive.ratelimit import header_number
from tap_pipedrive.resilience import BudgetExhaustedError
from tap_pipedrive.store import KEY_PREFIX, CounterStore

_DAY_SECONDS = 86_400


def next_reset(now: dt.datetime, headers: Mapping[str, str] | None = None) -> dt.datetime:
    """When the daily budget resets: from a reset header if sent, else the next UTC midnight."""
    if headers is not None:
        for name in ("x-daily-ratelimit-reset", "x-daily-ratelimit-token-reset"):
            seconds = header_number(headers, name)
            if seconds is not None and seconds >= 0:
                return (now + dt.timedelta(seconds=seconds)).replace(microsecond=0)
    tomorrow = (now + dt.timedelta(days=1)).date()
    return dt.datetime.combine(tomorrow, dt.time(), tzinfo=dt.UTC)


class TokenBudget:
    """Counts tokens and enforces the share of the daily budget one run may use."""

    def __init__(
        self,
        store: CounterStore,
        account: str,
        *,
        max_share: float = 1.0,
        daily_budget: int | None = None,
    ) -> None:
        if not 0 < max_share <= 1:
            msg = f"max_budget_share must be in (0, 1], got {max_share}"
            raise ValueError(msg)
        self._store = store
        self._account = account
        self._max_share = max_share
        self.daily_limit: int | None = daily_budget
        self.remaining: int | None = None
        self.spent_this_run = 0
        self._lock = threading.Lock()

    def _day_key(self) -> str:
        today = dt.datetime.now(dt.UTC).date().isoformat()
        return f"{KEY_PREFIX}:{self._account}:tokens:{today}"

    @property
    def run_cap(self) -> int | None:
        """Most tokens this run may spend, once the daily limit is known."""
        if self.daily_limit is None:
            return None
        return int(self.daily_limit * self._max_share)

    def check(self, cost: int) -> None:
        """Refuse a request that would break the run's cap or the known remaining budget."""
        cap = self.run_cap
        if cap is not None and self.spent_this_run + cost > cap:
            reset = next_reset(dt.datetime.now(dt.UTC))
            msg = (
                f"Stopping: this run has spent {self.spent_this_run} Pipedrive API tokens and "
                f"the next request costs {cost}; max_budget_share={self._max_share} of the "
                f"daily budget ({self.daily_limit}) allows {cap}. State was saved; the run "
                f"can continue after the budget resets at {reset.isoformat()}."
            )
            raise BudgetExhaustedError(msg)
        if self.remaining is not None and self.remaining < cost:
            raise self.exhausted(None)

    def charge(self, cost: int) -> int:
        """Record a sent request; returns the tokens spent today by every process sharing us."""
        with self._lock:
            self.spent_this_run += cost
        return self._store.incr(self._day_key(), cost, _DAY_SECONDS * 2)

    def spent_today(self) -> int:
        return self._store.get_int(self._day_key())

    def observe(self, headers: Mapping[str, str]) -> None:
        limit = header_number(headers, "x-daily-ratelimit-token-limit")
        if limit is not None and limit > 0:
            self.daily_limit = int(limit)
        remaining = header_number(headers, "x-daily-ratelimit-token-remaining")
        if remaining is not None:
            self.remaining = int(remaining)

    def estimated_remaining(self) -> int | None:
        if self.remaining is not None:
            return self.remaining
        if self.daily_limit is not None:
            return max(0, self.daily_limit - self.spent_today())
        return None

    def exhausted(self, headers: Mapping[str, str] | None) -> BudgetExhaustedError:
        """The error for a spent daily budget, saying when it resets."""
        reset = next_reset(dt.datetime.now(dt.UTC), headers)
        msg = (
            "Stopping: the Pipedrive daily API token budget is exhausted"
            f"{f' (limit {self.daily_limit})' if self.daily_limit else ''}. State was saved; "
            f"the budget resets at {reset.isoformat()} and the next run continues from there."
        )
        return BudgetExhaustedError(msg)
