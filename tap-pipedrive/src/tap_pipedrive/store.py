"""Counters shared by the limiter and the budget: in memory, or in Redis across processes.

Keys are namespaced per Pipedrive account (see ``account_key``) and never contain a secret.
"""

from __future__ import annotations

import collections
import hashlib
import threading
import time
import typing as t
import uuid

if t.TYPE_CHECKING:
    import redis

KEY_PREFIX = "pipeboard:tap-pipedrive"


def account_key(api_url: str, company_domain: str | None, credential: str | None) -> str:
    """A stable, non-secret name for the account the tap reads.

    The company domain when configured; otherwise a one-way digest of the API URL and the
    credential, so two processes using the same token share limits without the token ever
    being stored.
    """
    if company_domain:
        return f"domain:{company_domain.lower()}"
    digest = hashlib.sha256(f"{api_url}\0{credential or ''}".encode()).hexdigest()[:16]
    return f"acct:{digest}"


class CounterStore(t.Protocol):
    """Atomic counters with expiry, a sliding-window slot log and a 'blocked until' time."""

    def reserve(self, key: str, limit: int, window_seconds: float) -> float: ...

    def incr(self, key: str, amount: int, ttl_seconds: float) -> int: ...

    def get_int(self, key: str) -> int: ...

    def set_until(self, key: str, epoch: float) -> None: ...

    def get_until(self, key: str) -> float: ...


class MemoryStore:
    """Process-local counters (the default, when no ``redis_url`` is set)."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[float, float]] = {}
        self._slots: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str, limit: int, window_seconds: float) -> float:
        """Take a slot if fewer than ``limit`` were taken in the last window; else the wait."""
        now = time.time()
        with self._lock:
            slots = self._slots.setdefault(key, collections.deque())
            while slots and slots[0] <= now - window_seconds:
                slots.popleft()
            if len(slots) < limit:
                slots.append(now)
                return 0.0
            return slots[0] + window_seconds - now

    def _live(self, key: str, now: float) -> float:
        value, expires = self._values.get(key, (0.0, 0.0))
        return value if expires > now else 0.0

    def incr(self, key: str, amount: int, ttl_seconds: float) -> int:
        now = time.time()
        with self._lock:
            value, expires = self._values.get(key, (0.0, 0.0))
            if expires <= now:
                value, expires = 0.0, now + ttl_seconds
            value += amount
            self._values[key] = (value, expires)
            return int(value)

    def get_int(self, key: str) -> int:
        with self._lock:
            return int(self._live(key, time.time()))

    def set_until(self, key: str, epoch: float) -> None:
        with self._lock:
            current = self._live(key, time.time())
            if epoch > current:
                self._values[key] = (epoch, epoch)

    def get_until(self, key: str) -> float:
        with self._lock:
            return self._live(key, time.time())


class RedisStore:
    """The same counters in Redis, so parallel tap processes for one account add up."""

    # Sliding-window log in a sorted set, atomically: prune, count, then take a slot or report
    # how long until the oldest slot leaves the window.
    _RESERVE = """
    local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
        tonumber(ARGV[3])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    if redis.call('ZCARD', key) < limit then
        redis.call('ZADD', key, now, ARGV[4])
        redis.call('PEXPIRE', key, math.ceil(window * 1000) + 1000)
        return '0'
    end
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return tostring(tonumber(oldest[2]) + window - now)
    """

    def __init__(self, client: redis.Redis[bytes]) -> None:
        self._redis = client
        self._reserve = client.register_script(self._RESERVE)

    def reserve(self, key: str, limit: int, window_seconds: float) -> float:
        member = f"{time.time():.6f}:{uuid.uuid4().hex[:8]}"
        wait = self._reserve(keys=[key], args=[time.time(), window_seconds, limit, member])
        return float(wait)

    def incr(self, key: str, amount: int, ttl_seconds: float) -> int:
        pipe = self._redis.pipeline()
        pipe.incrby(key, amount)
        pipe.expire(key, max(1, int(ttl_seconds + 0.999)), nx=True)
        value, _ = pipe.execute()
        return int(value)

    def get_int(self, key: str) -> int:
        value = self._redis.get(key)
        return int(value) if value is not None else 0

    def set_until(self, key: str, epoch: float) -> None:
        ttl_ms = int((epoch - time.time()) * 1000)
        if ttl_ms <= 0:
            return
        # Keep the later of two deadlines set by different processes.
        current = self.get_until(key)
        if epoch > current:
            self._redis.set(key, repr(epoch), px=ttl_ms)

    def get_until(self, key: str) -> float:
        value = self._redis.get(key)
        if value is None:
            return 0.0
        return float(value)
