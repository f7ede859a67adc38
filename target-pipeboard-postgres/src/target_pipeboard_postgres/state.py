"""When a STATE may be emitted: once every record that arrived before it is committed."""

from __future__ import annotations

from collections import deque
from typing import Any


class StateGate:
    """Holds STATE messages until the records they cover are committed.

    Records are numbered as they arrive. A STATE received after record ``n`` covers records
    ``1..n``; it may be emitted once the oldest record not yet committed (in any stream) is
    newer than ``n``. Each time batches commit, the newest such STATE is released.
    """

    def __init__(self) -> None:
        self._waiting: deque[tuple[int, dict[str, Any]]] = deque()
        self._last_released: dict[str, Any] | None = None

    def received(self, after_record: int, state: dict[str, Any]) -> None:
        """A STATE arrived after record number ``after_record``."""
        self._waiting.append((after_record, state))

    def release(self, oldest_uncommitted: int | None) -> dict[str, Any] | None:
        """The newest STATE now fully committed (None if none, or if unchanged)."""
        newest: dict[str, Any] | None = None
        while self._waiting and (
            oldest_uncommitted is None or self._waiting[0][0] < oldest_uncommitted
        ):
            newest = self._waiting.popleft()[1]
        if newest is None or newest == self._last_released:
            return None
        self._last_released = newest
        return newest

    @property
    def pending(self) -> int:
        """STATE messages not yet released."""
        return len(self._waiting)
