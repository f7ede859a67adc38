"""One entity's records: lazily built base records, mutated overrides and sort indexes."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from typing import Any

# Above this many base records an entity is not memoised: records are rebuilt from the seed on
# every read, so a million-deal account needs memory only for what was mutated. (A memoised deal
# with its cached JSON costs about 10 KB of resident memory.)
MEMO_LIMIT = 25_000

Record = dict[str, Any]


def time_key(value: str | int | None, ident: int) -> str:
    """A composite sort key: RFC 3339 UTC strings sort in time order; ids break ties."""
    if isinstance(value, int):
        return f"{value:012d}|{ident:012d}"
    return f"{value or ''}|{ident:012d}"


def key_id(key: str) -> int:
    return int(key.rsplit("|", 1)[1])


class Store:
    def __init__(
        self,
        name: str,
        base_ids: Callable[[], Sequence[Any]],
        build: Callable[[Any], Record | None],
        base_time: Callable[[Any, str], str] | None = None,
        memo: bool = True,
    ) -> None:
        self.name = name
        self._base_ids_factory = base_ids
        self._base_ids: Sequence[Any] | None = None
        self._base_set: Container[Any] | None = None
        self._build = build
        self._base_time = base_time
        self._memo = memo
        self._records: dict[Any, Record] = {}
        self._created: list[Any] = []
        self._all_ids: list[Any] | None = None
        self._indexes: dict[str, list[str]] = {}
        self.serialized: dict[Any, bytes] = {}
        self.version = 0  # bumped by every change, so derived lists know when to rebuild
        # JSON of shared custom-field value sets, keyed by id() (the value holds the set itself).
        self.fragments: dict[int, tuple[dict[str, Any], bytes]] = {}
        # Told of every stored change (old record or None, new record); see webhooks.py.
        self.on_put: Callable[[Record | None, Record], None] | None = None

    # -- ids ---------------------------------------------------------------------------------
    def _base(self) -> Sequence[Any]:
        if self._base_ids is None:
            ids = self._base_ids_factory()
            self._base_ids = ids
            self._base_set = ids if isinstance(ids, range) else set(ids)
        return self._base_ids

    def ids(self) -> Sequence[Any]:
        """All ids in id order (creation order for non-integer ids)."""
        base = self._base()
        if not self._created:
            return base
        if self._all_ids is None:
            self._all_ids = [*base, *self._created]
        return self._all_ids

    def __len__(self) -> int:
        return len(self._base()) + len(self._created)

    def exists(self, ident: Any) -> bool:
        if ident in self._records:
            return True
        self._base()
        assert self._base_set is not None
        try:
            return ident in self._base_set
        except TypeError:
            return False

    # -- records -----------------------------------------------------------------------------
    def get(self, ident: Any) -> Record | None:
        rec = self._records.get(ident)
        if rec is not None:
            return rec
        if not self.exists(ident):
            return None
        rec = self._build(ident)
        if rec is not None and self._memo:
            self._records[ident] = rec
        return rec

    def peek(self, ident: Any) -> Record | None:
        """The record if it is kept (memoised or changed); None for one not built yet."""
        return self._records.get(ident)

    def iter_records(self, ids: Iterable[Any]) -> Iterator[Record]:
        for ident in ids:
            rec = self.get(ident)
            if rec is not None:
                yield rec

    def put(self, rec: Record) -> None:
        """Store a changed record (keeps the sort indexes current)."""
        ident = rec["id"]
        old = self.get(ident)
        if old is None:
            self._created.append(ident)
            self._all_ids = None
        self._records[ident] = rec
        self.version += 1
        self.serialized.pop(ident, None)
        for field, keys in self._indexes.items():
            if old is not None:
                old_key = time_key(old.get(field), ident)
                pos = bisect.bisect_left(keys, old_key)
                if pos < len(keys) and keys[pos] == old_key:
                    del keys[pos]
            bisect.insort(keys, time_key(rec.get(field), ident))
        if self.on_put is not None:
            self.on_put(old, rec)

    def remember_serialized(self, ident: Any, data: bytes) -> None:
        """Keep a record's JSON if the record itself is kept (memoised or mutated)."""
        if self._memo or ident in self._records:
            self.serialized[ident] = data

    def forget_serialized(self) -> None:
        self.serialized.clear()
        self.fragments.clear()

    # -- sort indexes ------------------------------------------------------------------------
    def time_index(self, field: str) -> list[str]:
        """Composite keys ``time|id`` sorted ascending, for keyset pages by time."""
        keys = self._indexes.get(field)
        if keys is None:
            keys = []
            for ident in self.ids():
                rec = self._records.get(ident)
                if rec is None and self._base_time is not None and not self._memo:
                    keys.append(time_key(self._base_time(ident, field), ident))
                    continue
                rec = self.get(ident)
                if rec is not None:
                    keys.append(time_key(rec.get(field), ident))
            keys.sort()
            self._indexes[field] = keys
        return keys
