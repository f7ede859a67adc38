"""Incremental streams: read in ascending ``update_time`` from the bookmark, without loss or
duplicates at the bookmark's second (see :class:`IncrementalStream`)."""

from __future__ import annotations

import datetime as dt
import typing as t
import zlib
from functools import cached_property

import orjson
from typing_extensions import override

from tap_pipedrive.base_stream import PipedriveStream
from tap_pipedrive.timestamps import parse_update_time

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_pipedrive.tap import TapPipedrive
    from tap_pipedrive.webhooks.zones import ZoneMemory


class IncrementalStream(PipedriveStream):
    """Read in ascending ``update_time`` from the bookmark (``updated_since``, inclusive).

    The bookmark advances with every record, so an interrupted run resumes where it stopped.
    Because ``updated_since`` is inclusive and only to the second, the state also remembers a
    digest of each record already emitted at the bookmark's exact second; on the next run those
    are skipped unless they changed, so nothing is duplicated and nothing is lost. A record
    joins that set only once it is written, and the set is used only while it belongs to the
    bookmark's second. Digests are computed only when a STATE message is about to be written
    (see :meth:`settle_boundary`), not per record.
    """

    replication_key = "update_time"
    is_sorted = True
    STATE_MSG_FREQUENCY = 500
    #: The list of archived records, read as a second partition (``{"is_archived": True}``)
    #: with its own bookmark; the records carry ``is_archived`` themselves.
    archived_path: t.ClassVar[str | None] = None
    #: Setting that turns reading the archived list off (it is read when the setting is unset).
    archived_setting: t.ClassVar[str | None] = None
    #: Whether the archived list takes ``updated_since``. If not, a first read (or a
    #: reconciliation) reads it in full, in ``update_time`` order; a read from a bookmark asks
    #: for the newest first and stops at the first page reaching back past the bookmark (an
    #: idle run: one request, however long the list), and emits the rows oldest first.
    archived_updated_since: t.ClassVar[bool] = True

    def __init__(self, tap: TapPipedrive) -> None:
        super().__init__(tap)
        self._floor: str | None = None
        self._skip_at: str | None = None
        self._skip: dict[str, int] = {}
        self._group_at: str | None = None
        self._group_rows: dict[str, dict[str, t.Any]] = {}
        self._group_digests: dict[str, int] = {}
        self._state_ref: dict[str, t.Any] | None = None

    @property
    @override
    def partitions(self) -> list[dict[str, t.Any]] | None:
        if self.archived_path is None:
            return super().partitions
        # The active partition is kept when archived records are not read, so the state
        # keeps its shape either way.
        parts: list[dict[str, t.Any]] = [{"is_archived": False}]
        if self.archived_setting is None or self.config.get(self.archived_setting, True):
            parts.append({"is_archived": True})
        return parts

    @override
    def endpoint_for(self, context: Context | None) -> str:
        if self.archived_path is not None and context and context.get("is_archived"):
            return self.archived_path
        return super().endpoint_for(context)

    def api_filters_since(self, context: Context | None) -> bool:
        """Whether the list read for ``context`` takes ``updated_since``."""
        return self.archived_updated_since or not (context and context.get("is_archived"))

    def updated_since(self, context: Context | None) -> str | None:
        if self.reconciling:
            return None
        start = self.get_starting_timestamp(context)
        if start is None:
            return None
        return start.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _newest_first(self, context: Context | None) -> bool:
        """Whether ``context``'s list is read newest first down to the bookmark (a list that
        takes no ``updated_since``, read from a bookmark)."""
        return self._floor is not None and not self.api_filters_since(context)

    @override
    def request_records(self, context: Context | None) -> t.Iterable[t.Any]:
        if not self._newest_first(context):
            yield from super().request_records(context)
            return
        floor = parse_update_time(self._floor)
        newer: list[t.Any] = []
        for row in super().request_records(context):
            stamp = parse_update_time(self.row_value(row, "update_time"))
            if floor is not None and stamp is not None and stamp < floor:
                break  # older than the bookmark, as every row after it: no further page
            newer.append(row)
        # Oldest first, as a read in update_time order gives them (the bookmark advances).
        yield from reversed(newer)

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        if self.api_version == "v2":
            params["sort_by"] = "update_time"
            params["sort_direction"] = "asc"
        elif self._newest_first(context):
            params["sort"] = "update_time DESC"
        else:
            params["sort"] = "update_time ASC"
        since = self.updated_since(context)
        if since and self.api_filters_since(context):
            params["updated_since"] = since
        return params

    def _digest(self, row: dict[str, t.Any]) -> int:
        """Digest of a record as emitted (selected properties only).

        Nulls and key order do not count: a record built from a typed row (every column, in
        schema order) and the same record from a plain JSON page have one digest.
        """
        keep = self._selected_properties
        selected = {k: v for k, v in row.items() if k in keep and v is not None}
        return zlib.crc32(orjson.dumps(selected, option=orjson.OPT_SORT_KEYS))

    @override
    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        first = self.partitions[0] if self.partitions else None
        if self.config.get("webhook_database_url") and context == first:
            from tap_pipedrive.webhooks.feed import consume  # the change feed, before the poll

            consume(self)
        state = self.get_context_state(context)
        boundary = state.get("boundary") or {}
        # The remembered records count only if they are at the bookmark's own second.
        if self.reconciling or boundary.get("update_time") != state.get("replication_key_value"):
            boundary = {}
        self._floor = None if self.api_filters_since(context) else self.updated_since(context)
        self._skip_at = boundary.get("update_time")
        self._skip = dict(boundary.get("ids") or {})
        self._group_at, self._group_rows, self._group_digests = None, {}, {}
        self._state_ref = state
        self._progress.start_window(dt.datetime.now(dt.UTC))
        try:
            yield from super().get_records(context)
        finally:
            self._progress.end_window()
        self.settle_boundary()
        if self._zone_memory is not None:
            self._zone_memory.flush()

    @cached_property
    def _zone_memory(self) -> ZoneMemory | None:
        """Webhooks mode: the time zones the written records teach (see webhooks.zones)."""
        if not self.config.get("webhook_database_url"):
            return None
        from tap_pipedrive.webhooks.feed import zone_memory

        return zone_memory(self)

    @override
    def progress_span(self, rows: list[t.Any]) -> tuple[dt.datetime, dt.datetime] | None:
        if not rows:
            return None
        key = self.replication_key or "update_time"
        first = parse_update_time(self.row_value(rows[0], key))
        last = parse_update_time(self.row_value(rows[-1], key))
        return (first, last) if first is not None and last is not None else None

    @override
    def post_process(
        self, row: dict[str, t.Any], context: Context | None = None
    ) -> dict[str, t.Any] | None:
        processed = super().post_process(row, context)
        if processed is None:
            return None
        stamp = processed.get("update_time")
        # Where the API cannot filter, do what updated_since would: keep records updated at or
        # after the bookmark's second (v1 leads carry milliseconds, so compare to the second).
        if self._floor is not None and stamp and stamp[:19] < self._floor[:19]:
            return None
        if self._skip_at is None:
            return processed
        if stamp == self._skip_at:
            ident = str(processed.get(self.primary_keys[0]))
            digest = self._skip.get(ident)
            if digest is not None and digest == self._digest(processed):
                # Emitted by an earlier run and unchanged: not again, but it stays in the set.
                self._join_boundary(stamp)
                self._group_digests[ident] = digest
                return None
        return processed

    @cached_property
    def _plain_bookmark(self) -> bool:
        """Whether the bookmark is the stream's own sorted ``replication_key_value``: the case
        :meth:`advance_bookmark` handles without the SDK's general path."""
        return (
            self.replication_method == "INCREMENTAL"
            and self.replication_key is not None
            and self.is_sorted
            and self.state_partitioning_keys is None
        )

    @override
    def advance_bookmark(self, record: dict[str, t.Any], context: Context | None) -> bool:
        # The SDK's increment for a sorted stream, per record, for the common case of text
        # timestamps in order; anything else (out of order, other types) takes its path.
        state = self._state_ref
        if state is not None and self._plain_bookmark:
            key = self.replication_key
            value = record.get(key)
            old = state.get("replication_key_value")
            if type(value) is str and (old is None or (type(old) is str and value >= old)):
                state["replication_key"] = key
                state["replication_key_value"] = value
                return True
        return False

    def _join_boundary(self, stamp: str) -> None:
        if stamp != self._group_at:
            self._group_at, self._group_rows, self._group_digests = stamp, {}, {}
            if self._state_ref is not None:
                self._state_ref["boundary"] = {"update_time": stamp, "ids": self._group_digests}

    @override
    def write_record(self, record: dict[str, t.Any]) -> None:
        super().write_record(record)
        if self._zone_memory is not None:
            self._zone_memory.learn(record)
        stamp = record.get("update_time")
        if stamp is None or self.reconciling:
            return
        self._join_boundary(stamp)
        ident = str(record.get(self.primary_keys[0]))
        self._group_digests.pop(ident, None)  # written again: digest it as written now
        self._group_rows[ident] = record

    def settle_boundary(self) -> None:
        """Fill in the digests of the records written at the current boundary second."""
        digests = self._group_digests
        for ident, row in self._group_rows.items():
            if ident not in digests:
                digests[ident] = self._digest(row)
