"""v2 keyset cursors and v1 offset pagination."""

from __future__ import annotations

import base64
import bisect
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from pipedrive_simulator.errors import bad_request

MAX_LIMIT = 500
DEFAULT_LIMIT = 100


def parse_limit(raw: str | None, *, maximum: int = MAX_LIMIT, default: int = DEFAULT_LIMIT) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"limit must be an integer, got {raw!r}") from None
    if value < 1 or value > maximum:
        raise bad_request(f"limit must be between 1 and {maximum}")
    return value


def parse_start(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"start must be an integer, got {raw!r}") from None
    if value < 0:
        raise bad_request("start must be >= 0")
    return value


# The cursor names the sort field and the position (sort key + id) of the last item served, so
# a page after concurrent updates continues from the same place: an item updated meanwhile moves
# to the end of an update_time ordering and is served again rather than skipped.
def encode_cursor(sort_by: str, direction: str, key: Any) -> str:
    raw = orjson.dumps({"f": sort_by, "d": direction, "k": key})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort_by: str, direction: str) -> Any:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        doc = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        if doc["f"] != sort_by or doc["d"] != direction:
            raise bad_request("cursor does not match sort_by / sort_direction")
        return doc["k"]
    except (ValueError, KeyError, TypeError):
        raise bad_request("Invalid cursor") from None


def keyset_page(
    keys: Sequence[Any],
    *,
    after: Any,
    descending: bool,
    limit: int,
    lo: int = 0,
    hi: int | None = None,
    accept: Callable[[Any], Any],
) -> tuple[list[Any], Any]:
    """Walk sorted ``keys`` from the cursor position; return (accepted items, next key | None).

    ``accept(key)`` returns the item for a key or None to skip it. ``lo``/``hi`` bound the walk
    (e.g. an update_time range found by bisection).
    """
    hi = len(keys) if hi is None else hi
    items: list[Any] = []
    last_key: Any = None
    if not descending:
        pos = lo if after is None else max(lo, bisect.bisect_right(keys, after))
        while pos < hi:
            key = keys[pos]
            pos += 1
            item = accept(key)
            if item is None:
                continue
            if len(items) == limit:
                return items, last_key
            items.append(item)
            last_key = key
    else:
        pos = hi - 1 if after is None else min(hi, bisect.bisect_left(keys, after)) - 1
        while pos >= lo:
            key = keys[pos]
            pos -= 1
            item = accept(key)
            if item is None:
                continue
            if len(items) == limit:
                return items, last_key
            items.append(item)
            last_key = key
    return items, None


def v1_pagination(start: int, limit: int, total: int) -> dict[str, Any]:
    more = start + limit < total
    page: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
    if more:
        page["next_start"] = start + limit
    return page
