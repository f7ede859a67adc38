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
later time and shows in recents. That overlap lists a change of the last minute before a run
again at the next run; so that it does not poll the stream again, the state also keeps
(``recents_seen``) the changes recents listed inside the overlap that the run loaded (item
type, id and update time; for a change of the very second recents answered in, also a digest
of the record recents gave, since a later change of that second would carry the same time),
and a stream whose every listed change is one of those counts as unchanged. Any other change,
or the same record with another update time (or, in that second, other values), makes it
poll. No change is missed to save a token: the run falls back to
reading every stream, as without recents, when

- a selected covered stream has no checkpoint yet (a first run; that stream is read, and
  recents still answers for the others),
- the oldest checkpoint is older than :data:`RECENTS_WINDOW`,
- recents answers with more than one page, or its answer is not the shape the spec gives,
- the run is a reconciliation (``reconcile: true``), which reads everything anyway.

What recents does not list and no run needs every time (lead labels and sources, lead and note
fields, currencies, goals, projects with their boards, phases, templates and tasks, roles,
permission sets, call logs, mail threads: streams with ``refreshed_on_interval``) is re-read on
an interval instead (:func:`plan_refresh`): a stream read less than ``refresh_interval_minutes``
ago makes no request; of those due, one per run is read, the one read longest ago, so the
re-reads spread over the runs instead of all landing on one; a stream never read yet is read at
once. Its state keeps ``refreshed_at``, the time of the run that last read it to its end. A
stream whose partitions each cost a read of their own (mail threads: four folders; goals,
active and inactive; projects, live and archived) is re-read one partition at a time instead
(``refresh_parts``; ``refreshed_parts`` in its state), so no run pays for all of them. The
field definitions in the Redis cache share the same re-reads (see ``streams.fields``). Leads
are not on an interval: recents does not list them, so both lead lists are read every run.

In webhooks mode the same recents call is the safety net (:func:`explain_with_events`), asked
only on the runs that poll (every ``webhook_poll_every_runs``-th), which also re-read every
list on an interval that is due (the runs between have no API clock to judge by): a stream fed
by the events whose every change recents lists has a stored event at least as new (so the
events delivered it) makes no request either; a change the event log lacks (lost while
Pipedrive banned the receiver) makes its stream poll from its bookmark, which the events do not
move. A fed stream not polled for ``refresh_interval_minutes`` polls anyway when recents lists
a change of it (its deals' line items and installments come with a poll of deals).
"""

from __future__ import annotations

import datetime as dt
import logging
import typing as t
import zlib
from dataclasses import dataclass, field

import orjson

from tap_pipedrive.timestamps import format_time, parse_update_time

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
REFRESH_KEY = "refreshed_at"
#: A stream re-read one partition at a time: each partition's last read (see ``refresh_parts``).
PARTS_KEY = "refreshed_parts"
#: The changes recents listed inside the checkpoint's overlap that the run loaded (item type,
#: id, update time); listed again by the next run's recents, they are not news.
SEEN_KEY = "recents_seen"
#: Webhooks mode: when a stream fed by the events last polled (see explain_with_events).
POLLED_KEY = "polled_at"
#: Events carry whole seconds; recents' update times too.
EVENT_MARGIN = dt.timedelta(seconds=1)
#: Default of ``refresh_interval_minutes``: at a 30-minute schedule the re-reads add about 15
#: tokens to a run on average (see docs/webhooks.md, "Freshness per stream").
DEFAULT_REFRESH_MINUTES = 720


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
    #: Streams on an interval whose re-read is not due (or waits for a later run).
    not_due: set[str] = field(default_factory=set)
    #: The streams on an interval re-read this run because they were due, for the log.
    refreshing: list[str] = field(default_factory=list)
    #: The time this run reads its streams as of (``refreshed_at``).
    started: dt.datetime | None = None
    #: Recents' items (one page), kept for the webhooks mode's check.
    items: list[dict[str, t.Any]] = field(default_factory=list)
    #: Webhooks mode: item types whose every listed change the stored events hold.
    explained: set[str] = field(default_factory=set)
    #: Webhooks mode: a fed stream polled longer ago than this polls when its type changed.
    poll_at_least_every: dt.timedelta | None = None

    def skips(self, stream: PipedriveStream, context: t.Mapping[str, t.Any] | None = None) -> bool:
        """Whether ``stream`` (its partition ``context``, for one re-read a partition at a
        time) makes no request this run (its item type did not change, or it is on an
        interval and not due)."""
        if stream.refreshed_on_interval:
            part = refresh_part(stream, context)
            if part is None and stream.refresh_parts():
                return all(unit in self.not_due for unit in refresh_units(stream))
            return unit_name(stream, part) in self.not_due
        item = stream.recents_item
        if self.changed is None or item is None or checkpoint_of(stream) is None:
            return False
        if item in self.explained and not self._poll_overdue(stream):
            return True
        if item not in self.changed:
            return True
        seen = _seen_of(stream)
        return all(
            _identity(i) in seen or _identity(i, with_data=True) in seen
            for i in self.items
            if str(i.get("item")) == item
        )

    def _poll_overdue(self, stream: PipedriveStream) -> bool:
        polled = checkpoint_of(stream, POLLED_KEY)
        limit = self.poll_at_least_every
        if limit is None or self.started is None:
            return False
        return polled is None or self.started - polled >= limit

    def finish(self, stream: PipedriveStream, context: t.Mapping[str, t.Any] | None = None) -> None:
        """``stream`` (or its partition ``context``) was read to its end (or skipped): it is
        current as of this run's start."""
        if stream.refreshed_on_interval:
            # The run's start, or (no clock at the start) the API's answer to this stream.
            read_at = self.started or self.clock()
            part = refresh_part(stream, context)
            if part is None and stream.refresh_parts():
                return  # each partition moves its own time
            if unit_name(stream, part) in self.not_due or read_at is None:
                return
            if part is None:
                stream.stream_state[REFRESH_KEY] = format_time(read_at)
            else:
                parts = dict(stream.stream_state.get(PARTS_KEY) or {})
                parts[part] = format_time(read_at)
                stream.stream_state[PARTS_KEY] = parts
            return
        first_answer = self.clock()
        if first_answer is not None and stream.recents_item is not None:
            if self.poll_at_least_every is not None and not self.skips(stream):
                stream.stream_state[POLLED_KEY] = format_time(first_answer)
            checkpoint = first_answer - CLOCK_MARGIN
            stream.stream_state[CHECKPOINT_KEY] = format_time(checkpoint)
            stream.stream_state[SEEN_KEY] = self._seen_since(
                stream.recents_item, checkpoint, first_answer
            )

    def _seen_since(
        self, item: str, checkpoint: dt.datetime, first_answer: dt.datetime
    ) -> list[list[str]]:
        """The changes of ``item`` this run's recents listed after ``checkpoint`` (the next
        run's recents lists them again): loaded by this run, read or skipped. A change of the
        second recents answered in may be followed by another of the same second, which
        recents would list with the same update time: those are remembered with a digest of
        the record recents gave, so that only the very same record counts as seen."""
        seen: list[list[str]] = []
        for entry in self.items:
            if str(entry.get("item")) != item:
                continue
            when = _item_time(entry)
            if when is None or when < checkpoint or when >= first_answer + EVENT_MARGIN:
                continue
            same_second = when > first_answer - EVENT_MARGIN
            identity = _identity(entry, with_data=same_second)
            if identity is not None:
                seen.append(list(identity))
        return seen


def refresh_part(stream: PipedriveStream, context: t.Mapping[str, t.Any] | None) -> str | None:
    """The partition of ``context`` when ``stream`` is re-read a partition at a time."""
    parts = stream.refresh_parts()
    if not parts or not context:
        return None
    part = str(next(iter(context.values())))
    return part if part in parts else None


def unit_name(stream: PipedriveStream, part: str | None) -> str:
    """What the plan calls one re-read: the stream, or ``stream:part``."""
    return stream.name if part is None else f"{stream.name}:{part}"


def refresh_units(stream: PipedriveStream) -> dict[str, dt.datetime | None]:
    """Each re-read of an interval ``stream`` and when it was last done (``None``: never)."""
    whole = checkpoint_of(stream, REFRESH_KEY)
    parts = stream.refresh_parts()
    if not parts:
        return {stream.name: whole}
    stored = stream.stream_state.get(PARTS_KEY)
    stored = stored if isinstance(stored, dict) else {}
    units: dict[str, dt.datetime | None] = {}
    for part in parts:
        when = parse_update_time(stored.get(part))
        # A state from before the partitions were re-read one at a time: the stream's time.
        units[unit_name(stream, part)] = when or whole
    return units


def _identity(item: dict[str, t.Any], *, with_data: bool = False) -> tuple[str, ...] | None:
    """(item type, id, update time) of a change recents lists, and with ``with_data`` a digest
    of the record it gives; ``None`` without a time."""
    when = _item_time(item)
    if when is None:
        return None
    identity = (str(item.get("item")), str(item.get("id")), format_time(when))
    if not with_data:
        return identity
    digest = zlib.crc32(orjson.dumps(item.get("data"), option=orjson.OPT_SORT_KEYS))
    return (*identity, f"{digest:08x}")


def _seen_of(stream: PipedriveStream) -> set[tuple[str, ...] | None]:
    value = stream.stream_state.get(SEEN_KEY)
    if not isinstance(value, list):
        return set()
    return {
        tuple(str(part) for part in e) for e in value if isinstance(e, list) and len(e) in (3, 4)
    }


def checkpoint_of(stream: PipedriveStream, key: str = CHECKPOINT_KEY) -> dt.datetime | None:
    """The time the stream was last known current (or, ``REFRESH_KEY``, last re-read)."""
    return parse_update_time(stream.stream_state.get(key))


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
    feed.items = data
    feed.changed = {str(i.get("item")) for i in data}
    feed.skipped = [s.name for s in covered if feed.skips(s)]
    return feed


def plan_refresh(
    feed: ChangeFeed,
    streams: t.Sequence[PipedriveStream],
    *,
    interval: dt.timedelta,
    now: dt.datetime | None,
    per_run: int | None = 1,
    others: t.Mapping[str, dt.datetime | None] | None = None,
) -> None:
    """Decide which of the selected ``streams`` on an interval this run re-reads (see the
    module's docstring): of those due, the ``per_run`` read longest ago (``None``: all);
    ``interval`` zero or less re-reads them all. With no clock to judge by (``now`` is
    ``None``) only the streams never read are read.

    ``others`` (name -> when last read, ``None`` when unknown) are dictionaries read outside
    the streams (the field definitions in the cache) that share the re-reads: one of them that
    is due is in ``feed.refreshing`` when it was read longer ago than every due stream (an
    unknown time counts as the oldest), and the caller reads it."""
    feed.started = now
    if interval <= dt.timedelta(0):
        return
    due: list[tuple[dt.datetime, str]] = []
    for stream in streams:
        if not stream.refreshed_on_interval:
            continue
        for unit, last in refresh_units(stream).items():
            if last is None:
                continue  # never read: read now
            if now is None or now - last < interval:
                feed.not_due.add(unit)
            else:
                due.append((last, unit))
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    if now is not None:
        for name, read_at in (others or {}).items():
            if read_at is None or now - read_at >= interval:
                due.append((read_at or oldest, name))
    due.sort()
    feed.refreshing = [name for _, name in due[:per_run]]
    feed.not_due.update(name for _, name in due[len(feed.refreshing) :])


def explain_with_events(
    feed: ChangeFeed,
    streams: t.Sequence[PipedriveStream],
    *,
    fed_items: t.Collection[str],
    latest: t.Callable[[t.Collection[str], dt.datetime], dict[tuple[str, str], dt.datetime]],
    poll_at_least_every: dt.timedelta,
) -> None:
    """Webhooks mode: the item types of ``fed_items`` (those the event feed turns into records)
    whose every change in recents' answer has a stored event at least as new join
    ``feed.explained``; their streams make no request unless not polled for
    ``poll_at_least_every``. ``latest(item types, since)`` gives each (type, id)'s latest event
    time since ``since``."""
    feed.poll_at_least_every = poll_at_least_every
    if feed.changed is None:
        return
    wanted = sorted(feed.changed & set(fed_items))
    if not wanted:
        return
    listed = [i for i in feed.items if str(i.get("item")) in wanted]
    times = [_item_time(i) for i in listed]
    known = [x for x in times if x is not None]
    stored = latest(wanted, min(known) - EVENT_MARGIN) if known else {}
    lacking: set[str] = set()
    for item, when in zip(listed, times, strict=True):
        kind = str(item.get("item"))
        event = stored.get((kind, str(item.get("id"))))
        if when is None or event is None or event < when - EVENT_MARGIN:
            lacking.add(kind)
    feed.explained = set(wanted) - lacking
    feed.skipped = [s.name for s in streams if s.recents_item is not None and feed.skips(s)]


def _item_time(item: dict[str, t.Any]) -> dt.datetime | None:
    """The time of the change recents lists (its record's update time)."""
    data = item.get("data")
    return parse_update_time(data.get("update_time") if isinstance(data, dict) else None)
