"""Cheap polling: one ``GET /v1/recents`` says which item types changed since the last run.

An incremental run first asks ``/v1/recents`` (20 tokens) for the changes since the oldest
checkpoint of the selected streams that recents covers (a stream class names its item type in
``recents_item``: deals, persons, organizations, activities, notes, products, files, users,
pipelines, stages and activity types; not leads, currencies, field definitions or line items,
which recents does not list). A stream whose item type is not in the answer makes no request
and keeps its bookmark; the others are read as before.

The checkpoint (``changes_seen_through`` in each covered stream's state) is the API's own clock
at the start of the run that last read the stream to its end or found it unchanged (the ``Date``
header of the run's first answer, less :data:`CLOCK_MARGIN`): every change after it carries a
later time and shows in recents. No change is missed to save a token: the run falls back to
reading every stream, as without recents, when

- a selected covered stream has no checkpoint yet (a first run; that stream is read, and
  recents still answers for the others),
- the oldest checkpoint is older than :data:`RECENTS_WINDOW`,
- recents answers with more than one page, or its answer is not the shape the spec gives,
- the run is a reconciliation (``reconcile: true``), which reads everything anyway.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing as t
from dataclasses import dataclass, field

from tap_pipedrive.timestamps import TimestampError, format_time, parse_time

if t.TYPE_CHECKING:
    from tap_pipedrive.base_stream import PipedriveStream

LOGGER = logging.getLogger("tap-pipedrive.change_feed")
RECENTS_PATH = "/api/v1/recents"
#: How far back the tap asks recents. Pipedrive's spec gives no limit for ``since_timestamp``;
#: a run more than a week after the last one reads every stream instead (at that distance
#: recents would rarely fit on one page anyway).
RECENTS_WINDOW = dt.timedelta(days=7)
#: Taken off the API's clock for the checkpoint: a change being written while the run asked
#: may carry a time a little before the answer's ``Date``. Re-reading a minute costs nothing.
CLOCK_MARGIN = dt.timedelta(seconds=60)
#: One page of recents; more than this many changes and the run polls every stream.
RECENTS_PAGE = 500
CHECKPOINT_KEY = "changes_seen_through"


@dataclass
class ChangeFeed:
    """The run's decision: which covered streams are read, which are skipped.

    ``clock`` gives the API's time at its first answer of the run (``Date``), once there is one.
    """

    clock: t.Callable[[], dt.datetime | None]
    #: Item types recents listed as changed (``None``: recents not used, read everything).
    changed: set[str] | None = None
    #: Why recents was not used, for the log.
    reason: str = ""
    skipped: list[str] = field(default_factory=list)

    def skips(self, stream: PipedriveStream) -> bool:
        """Whether ``stream`` makes no request this run (its item type did not change)."""
        item = stream.recents_item
        if self.changed is None or item is None or checkpoint_of(stream) is None:
            return False
        return item not in self.changed

    def finish(self, stream: PipedriveStream) -> None:
        """``stream`` was read to its end (or skipped): it is current as of this run's start."""
        first_answer = self.clock()
        if first_answer is not None and stream.recents_item is not None:
            stream.stream_state[CHECKPOINT_KEY] = format_time(first_answer - CLOCK_MARGIN)


def checkpoint_of(stream: PipedriveStream) -> dt.datetime | None:
    """The time the stream was last known current, from its state."""
    value = stream.stream_state.get(CHECKPOINT_KEY)
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except TimestampError:
        return None


def plan_change_feed(
    streams: t.Sequence[PipedriveStream],
    *,
    fetch: t.Callable[[dt.datetime, list[str]], dict[str, t.Any]],
    clock: t.Callable[[], dt.datetime | None],
) -> ChangeFeed:
    """Ask recents (``fetch(since, item types)`` -> its body) which of the covered
    ``streams`` (the selected ones) changed since their oldest checkpoint."""
    feed = ChangeFeed(clock=clock)
    covered = [s for s in streams if s.recents_item is not None]
    checkpoints = [c for c in map(checkpoint_of, covered) if c is not None]
    if not covered:
        feed.reason = "no selected stream is covered by /v1/recents"
        return feed
    if not checkpoints:
        feed.reason = "no stream has a checkpoint yet (first run)"
        return feed
    since = min(checkpoints)
    too_old = (
        f"the oldest checkpoint ({format_time(since)}) is older than {RECENTS_WINDOW.days} days"
    )
    now = clock()
    if now is not None and now - since > RECENTS_WINDOW:
        feed.reason = too_old
        return feed
    body = fetch(since, sorted({str(s.recents_item) for s in covered}))
    now = clock()
    if now is not None and now - since > RECENTS_WINDOW:
        feed.reason = too_old
        return feed
    data = body.get("data")
    extra = body.get("additional_data") or {}
    pagination = (extra.get("pagination") or {}) if isinstance(extra, dict) else {}
    if data is None:
        data = []
    if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
        feed.reason = "/v1/recents answered with a body that is not a list of items"
        return feed
    if pagination.get("more_items_in_collection") or len(data) >= RECENTS_PAGE:
        feed.reason = f"/v1/recents has more than one page of changes since {format_time(since)}"
        return feed
    feed.changed = {str(i.get("item")) for i in data}
    feed.skipped = [s.name for s in covered if feed.skips(s)]
    return feed
