"""Filtered, sorted id lists behind the v1 offset endpoints.

A list is built once per query and kept while its entity is unchanged, so paging through a
million notes costs one pass over them rather than one per page.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from pipedrive_simulator.store import Store, key_id

KEPT_LISTS = 16


class Listings:
    def __init__(self) -> None:
        self._lists: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()

    def ids(self, store: Store, query: Hashable, build: Callable[[], list[Any]]) -> list[Any]:
        key = (store.name, store.version, query)
        found = self._lists.get(key)
        if found is None:
            found = build()
            self._lists[key] = found
            while len(self._lists) > KEPT_LISTS:
                self._lists.popitem(last=False)
        else:
            self._lists.move_to_end(key)
        return found


def ids_since(store: Store, since: str | None, by_time: bool, descending: bool) -> list[Any]:
    """Ids with update_time >= ``since`` (all when None), by update_time or by id."""
    if since is None and not by_time:
        ids = list(store.ids())
    else:
        keys = store.time_index("update_time")
        lo = 0 if since is None else bisect.bisect_left(keys, since + "|")
        ids = [key_id(k) for k in keys[lo:]]
        if not by_time:
            ids.sort()
    if descending:
        ids.reverse()
    return ids
