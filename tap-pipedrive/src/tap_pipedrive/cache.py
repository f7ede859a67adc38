"""A Redis cache with a TTL for the account's small, slow-changing dictionaries.

Field definitions, stages, pipelines and users are read at every start (discovery needs the
field definitions); caching them saves tokens when many runs start close together. Field
definitions are kept with the time they were read (:meth:`DictionaryCache.get_dated`): nothing
says when they change (no recents item type, no webhook), so they are re-read on the
``refresh_interval_minutes`` interval, one list per run (see ``streams.fields``), and an idle
run reads none of them. Keys name the account (see ``store.account_key``), never the token.
Without ``redis_url`` nothing is cached.
"""

from __future__ import annotations

import datetime as dt
import typing as t

import orjson

from tap_pipedrive.store import KEY_PREFIX
from tap_pipedrive.timestamps import format_time, parse_update_time

if t.TYPE_CHECKING:
    import redis

Records = list[dict[str, t.Any]]


class DictionaryCache:
    """Get/put whole dictionaries (lists of records) by name."""

    def __init__(self, client: redis.Redis[bytes] | None, account: str, ttl_seconds: int) -> None:
        self._redis = client
        self._prefix = f"{KEY_PREFIX}:{account}:cache"
        self._ttl = ttl_seconds

    @property
    def enabled(self) -> bool:
        return self._redis is not None and self._ttl > 0

    def key(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    def _load(self, name: str) -> t.Any:
        """The cached value of ``name`` (``None``: not cached, or no cache)."""
        if not self.enabled:
            return None
        assert self._redis is not None
        raw = self._redis.get(self.key(name))
        return None if raw is None else orjson.loads(raw)

    def _store(self, name: str, value: t.Any, at_least_seconds: int) -> None:
        if not self.enabled:
            return
        assert self._redis is not None
        ttl = max(self._ttl, at_least_seconds)
        self._redis.set(self.key(name), orjson.dumps(value), ex=ttl)

    def get(self, name: str) -> Records | None:
        return t.cast("Records | None", self._load(name))

    def put(self, name: str, records: Records, *, at_least_seconds: int = 0) -> None:
        """Cache ``records`` for the TTL, or ``at_least_seconds`` when that is longer."""
        self._store(name, records, at_least_seconds)

    def get_dated(self, name: str) -> tuple[Records, dt.datetime | None] | None:
        """Records cached by :meth:`put_dated`, with the time they were read (``None`` when
        unknown: an entry of an earlier version, a plain list)."""
        value = self._load(name)
        if isinstance(value, list):
            return t.cast("Records", value), None
        if not isinstance(value, dict) or not isinstance(value.get("records"), list):
            return None
        return t.cast("Records", value["records"]), parse_update_time(value.get("read_at"))

    def put_dated(
        self, name: str, records: Records, read_at: dt.datetime, *, at_least_seconds: int = 0
    ) -> None:
        """Cache ``records`` read at ``read_at`` (the API's clock), as :meth:`put` does."""
        entry = {"read_at": format_time(read_at), "records": records}
        self._store(name, entry, at_least_seconds)
