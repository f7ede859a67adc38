"""Retry timing and the circuit breaker, and the errors that end a run cleanly.

Retries go through the SDK's backoff hook (``RESTStream.request_decorator``); the wait between
attempts is exponential with full jitter, except after a burst-limit 429 where the API says how
long to wait. A ``pybreaker`` circuit breaker counts consecutive failures across the whole run
and stops it instead of retrying forever.
"""

from __future__ import annotations

import random
import typing as t

import click
import pybreaker
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError


class RunStopped(click.ClickException):
    """Ends the run with a clear message (no traceback) and a non-zero exit code."""

    exit_code = 2


class BudgetExhaustedError(RunStopped):
    """The daily token budget (or the share of it this run may use) is spent."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class CircuitOpenError(RunStopped):
    """Too many consecutive failures: the API is down or rejecting us."""

    exit_code = 69  # EX_UNAVAILABLE


class AuthenticationError(RunStopped):
    """The credentials were rejected."""

    exit_code = 77  # EX_NOPERM


class GoneError(FatalAPIError):
    """A 404 or 410: the API answered that the item does not exist (any more).

    An answer, not a malfunction: callers that expect it (a deal removed or merged while the
    stage-history backfill runs) skip the item, and the circuit breaker does not count it.
    """


class BurstLimitedError(RetriableAPIError):
    """A 429 from the short burst window: wait ``retry_after`` seconds and try again."""

    def __init__(self, message: str, retry_after: float, response: t.Any = None) -> None:
        super().__init__(message, response)
        self.retry_after = retry_after


def backoff_waits(
    initial: float, maximum: float, rng: random.Random | None = None
) -> t.Generator[float, BaseException | None, None]:
    """Wait generator for ``backoff.on_exception``; it is sent each failure's exception.

    Full jitter: a uniform draw in ``[0, min(maximum, initial * 2**attempt)]``, floored at a
    tenth of the step so two workers never hammer in lockstep at zero.
    """
    draw = rng or random.Random()
    attempt = 0
    exc = yield 0.0
    while True:
        if isinstance(exc, BurstLimitedError):
            wait = 0.0  # the burst limiter already blocks every request until the window ends
        else:
            step = min(maximum, initial * (2**attempt))
            wait = draw.uniform(step / 10, step)
            attempt += 1
        exc = yield wait


def make_breaker(fail_max: int, name: str = "pipedrive-api") -> pybreaker.CircuitBreaker:
    """One breaker per tap run; burst-limit waits are not failures."""
    return pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=60,
        exclude=[BurstLimitedError, BudgetExhaustedError, AuthenticationError, GoneError],
        name=name,
    )
