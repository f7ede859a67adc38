"""The base stream every Pipedrive stream derives from: endpoint, requests and records.

A stream class only names its endpoint and keys; this class turns that into requests through
the SDK's public hooks, with the run's :class:`~tap_pipedrive.api.PipedriveApi` behind them
(``requests_session``: pacing and token counting; ``authenticator``; ``request_decorator``:
retries and the circuit breaker; ``validate_response``: what an answer means), pages through
:mod:`tap_pipedrive.pagination`, and builds each record with :mod:`tap_pipedrive.record_code`
(custom-field columns, delete marker, v1 timestamps). Records are written by
:mod:`tap_pipedrive.output`; the SDK's private members it needs are in
:mod:`tap_pipedrive.sdk_seam`. Incremental reading is :mod:`tap_pipedrive.incremental`.
"""

from __future__ import annotations

import copy
import datetime as dt
import typing as t
from functools import cached_property
from typing import Self

import requests
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from typing_extensions import override

from tap_pipedrive.api import OPENAPI, PipedriveApi
from tap_pipedrive.custom_fields import CustomField, annotate_keys, restore_annotations
from tap_pipedrive.output import OrjsonSingerWriter
from tap_pipedrive.pagination import (
    CursorPaginator,
    MalformedResponseError,
    OffsetPaginator,
    response_body,
)
from tap_pipedrive.progress import Progress
from tap_pipedrive.record_code import PlainRecordBuilder
from tap_pipedrive.resilience import backoff_waits
from tap_pipedrive.sdk_seam import (
    SeamStream,
    records_pending,
    stream_version,
    tap_of,
    write_activate_version,
)
from tap_pipedrive.typed_pages import TypedPages

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context
    from singer_sdk.pagination import BaseAPIPaginator

    from tap_pipedrive.tap import TapPipedrive

DELETED_AT = "_sdc_deleted_at"
FULL_TABLE = "FULL_TABLE"


class PipedriveStream(SeamStream):
    """A Pipedrive list endpoint (v2 keyset cursors or v1 offsets)."""

    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    #: Field-definition entity whose custom fields this stream's records carry.
    fields_entity: t.ClassVar[str | None] = None
    #: (property, value) pairs that mark a record as deleted.
    deleted_flags: t.ClassVar[tuple[tuple[str, t.Any], ...]] = (("is_deleted", True),)
    #: Constant query parameters.
    extra_params: t.ClassVar[dict[str, str]] = {}
    #: Largest page the endpoint allows.
    max_page_size: t.ClassVar[int] = 500
    #: False for v1 endpoints that return everything in one response.
    paginated: t.ClassVar[bool] = True
    #: Small dictionaries kept in the Redis cache (when configured).
    cacheable: t.ClassVar[bool] = False
    #: Keys of an API record the stream reads (e.g. to decide on child requests) but does not
    #: emit: kept in the record until it is written.
    carried_keys: t.ClassVar[tuple[str, ...]] = ()
    #: The ``/v1/recents`` item type whose changes this stream reads (see change_feed); a run
    #: in which recents lists no change of it makes no request for this stream.
    recents_item: str | None = None
    #: Nothing (recents, webhooks) says when it changed: re-read at most every
    #: ``refresh_interval_minutes``, one such stream per run (see change_feed); else no request.
    refreshed_on_interval: t.ClassVar[bool] = False

    # Records are typed by the schema already; conforming only the top level keeps the
    # per-record cost low (nested objects are passed through as the API sent them).
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.ROOT_ONLY

    def __init__(self, tap: TapPipedrive) -> None:
        self.api: PipedriveApi = tap.api
        self.pipedrive_tap = tap
        spec = OPENAPI.streams[self.name]
        self.api_version: str = spec["version"]
        self.custom_fields: list[CustomField] = (
            tap.custom_fields(self.name, self.fields_entity) if self.fields_entity else []
        )
        super().__init__(tap, schema=self._build_schema(spec["schema"]))
        v1 = self.api_version == "v1"
        self._build_plain = PlainRecordBuilder(
            self.custom_fields,
            v1=v1,
            deleted_flags=self.deleted_flags,
            deleted_column=DELETED_AT if self.deleted_flags else None,
            time_keys=[
                k for k, v in self.schema["properties"].items() if v.get("format") == "date-time"
            ],
        )
        self._progress = Progress(float(self.config.get("progress_interval_seconds", 30)))
        self._extracted_at = dt.datetime.now(dt.UTC)
        self._warned_extra = False

    @classmethod
    def kind(cls, name: str, **attributes: t.Any) -> type[Self]:
        """A stream class of this kind, as data: its stream ``name`` and the attributes it sets.

        The class is named after the stream (``person_emails`` -> ``PersonEmailsStream``), so
        logs and tracebacks read as if it were written out.
        """
        class_name = "".join(word.title() for word in name.split("_")) + "Stream"
        namespace = {"name": name, "__module__": cls.__module__, **attributes}
        return t.cast("type[Self]", type(class_name, (cls,), namespace))

    @classmethod
    def plain_lists(cls, *rows: tuple[str, str, bool], **common: t.Any) -> dict[str, type[Self]]:
        """Plain list streams as data, one row each: (stream, path, paginated); ``common``:
        attributes they all set."""
        return {
            name: cls.kind(name, path=path, paginated=paginated, **common)
            for name, path, paginated in rows
        }

    # -- schema --------------------------------------------------------------------------------

    def _build_schema(self, base: dict[str, t.Any]) -> dict[str, t.Any]:
        schema = copy.deepcopy(base)
        props: dict[str, t.Any] = schema["properties"]
        if self.fields_entity:
            props.pop("custom_fields", None)
        annotate_keys(props)
        for field in self.custom_fields:
            props.update(field.schema_properties())
        if self.deleted_flags:
            props[DELETED_AT] = {"type": ["string", "null"], "format": "date-time"}
        for key in self.primary_keys:
            if key in props:
                props[key]["type"] = [tt for tt in props[key]["type"] if tt != "null"]
        return schema

    # -- output --------------------------------------------------------------------------------

    @cached_property
    def _fast_output(self) -> OrjsonSingerWriter | None:
        """The writer's record fast path, when no stream map or flattening needs the SDK's."""
        writer = tap_of(self).message_writer
        maps = self.stream_maps
        if (
            isinstance(writer, OrjsonSingerWriter)
            and len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and not self.config.get("flattening_enabled")
        ):
            return writer
        return None

    @cached_property
    def _selected_properties(self) -> frozenset[str]:
        mask = self.mask
        return frozenset(
            name
            for name in self.effective_schema.get("properties", {})
            if mask.get(("properties", name), True)
        )

    @cached_property
    def _dropped_at_write(self) -> tuple[str, ...]:
        """Keys records may hold that are not emitted: carried keys and partition keys (the SDK
        adds those to every record) that the catalog does not select."""
        keys = [*self.carried_keys, *(k for p in self.partitions or () for k in p)]
        return tuple(k for k in dict.fromkeys(keys) if k not in self._selected_properties)

    @override
    def write_record(self, record: dict[str, t.Any]) -> None:
        for key in self._dropped_at_write:
            record.pop(key, None)
        writer = self._fast_output
        if writer is None:
            super().write_record(record)
            return
        # Records are JSON from the API already typed as the schema says, and post_process
        # left only selected properties, so the SDK's per-value conformance pass is skipped.
        writer.write_record(self.name, record, stream_version(self), self._extracted_at)
        records_pending(self)

    def _keep_selected(self, record: dict[str, t.Any]) -> None:
        """Drop a record's keys that are not selected or not in the schema (logged once)."""
        allowed = self._allowed_keys
        if allowed.issuperset(record):
            return
        extra = record.keys() - allowed
        unknown = extra - self.schema["properties"].keys()
        if unknown:  # data quality: what Pipedrive sent that no column can hold
            self.api.metrics.values_dropped.labels(self.name, "not_in_schema").inc(len(unknown))
        if not self._warned_extra:
            self._warned_extra = True
            self.logger.info(
                "Properties %s of '%s' are not in the catalog schema (or not selected) and "
                "are not emitted.",
                sorted(extra),
                self.name,
            )
        for key in extra:
            del record[key]

    @cached_property
    def _allowed_keys(self) -> frozenset[str]:
        return self._selected_properties | frozenset(self.carried_keys)

    @override
    def restore_schema_annotations(self, schema: dict[str, t.Any]) -> None:
        restore_annotations(schema, self.schema)

    # -- requests ------------------------------------------------------------------------------

    @property
    @override
    def url_base(self) -> str:
        return self.api.base_url

    @property
    @override
    def requests_session(self) -> requests.Session:
        return self.api.session

    @property
    @override
    def authenticator(self) -> t.Any:
        return self.api.auth

    @property
    @override
    def timeout(self) -> int:
        return int(self.config.get("request_timeout", 300))

    def endpoint_for(self, context: Context | None) -> str:
        """The path template of the request (also the token-cost and metrics label)."""
        return str(self.path)

    @override
    def get_url(self, context: Context | None) -> str:
        return f"{self.url_base}{self.endpoint_for(context)}"

    @property
    def page_size(self) -> int:
        return min(int(self.config.get("page_size", 500)), self.max_page_size)

    @override
    def get_new_paginator(self) -> BaseAPIPaginator[t.Any] | None:
        if not self.paginated:
            return None
        return CursorPaginator() if self.api_version == "v2" else OffsetPaginator()

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        params: dict[str, t.Any] = dict(self.extra_params)
        if self.paginated:
            params["limit"] = self.page_size
            if next_page_token is not None:
                params["cursor" if self.api_version == "v2" else "start"] = next_page_token
        return params

    @override
    def request_decorator(self, func: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
        api = self.api

        def guarded(request: requests.PreparedRequest, context: Context | None) -> t.Any:
            return api.guarded(func, request, context, self.endpoint_for(context))

        return super().request_decorator(guarded)

    @override
    def validate_response(self, response: requests.Response) -> None:
        typed = self._typed_pages
        self.api.check_response(
            response,
            validate=self.validate_body,
            decode=None if typed is None else typed.decode,
        )

    @cached_property
    def _typed_pages(self) -> TypedPages | None:
        """Typed decoding of the pages of a v2 list (built at the first request of the sync,
        once the catalog's selection is known); ``None`` for the other endpoints.

        Cached dictionaries keep plain JSON rows (the cache stores what the API sent).
        """
        if self.api_version != "v2" or not self.paginated or self.cacheable:
            return None
        selected = self._selected_properties
        return TypedPages(
            keys=list(OPENAPI.streams[self.name]["schema"]["properties"]),
            custom_fields=self.custom_fields,
            columns=[c for c in self.effective_schema.get("properties", {}) if c in selected],
            deleted_flags=self.deleted_flags,
            deleted_column=DELETED_AT if self.deleted_flags else None,
            carried=self.carried_keys,
        )

    def row_value(self, row: t.Any, key: str) -> t.Any:
        """A value of a row as the API sent it, whether a dict or a typed row."""
        if isinstance(row, dict):
            return row.get(key)
        typed = self._typed_pages
        return None if typed is None else typed.value(row, key)

    def validate_body(self, body: dict[str, t.Any]) -> None:
        """Reject a 200 whose list is ``null`` with no paging data (a glitch, not an empty list).

        An empty list comes with ``additional_data`` (cursor or pagination); the real API
        sometimes answers ``{"data": null}`` alone, and taking that for the end of the list would
        silently drop the remaining pages, so it is retried instead.
        """
        if body.get("data") is None and not body.get("additional_data") and self.paginated:
            msg = f"200 with a null body from GET {self.path}"
            raise MalformedResponseError(msg)
        if body.get("data") is None and not self.paginated:
            msg = f"200 with a null body from GET {self.path}"
            raise MalformedResponseError(msg)

    # -- retries (the SDK's backoff hooks) -----------------------------------------------------

    @override
    def backoff_wait_generator(self) -> t.Generator[float, t.Any, None]:
        return backoff_waits(
            float(self.config.get("retry_initial_wait_seconds", 1.0)),
            float(self.config.get("retry_max_wait_seconds", 60.0)),
        )

    @override
    def backoff_max_tries(self) -> int:
        return int(self.config.get("max_retries", 8)) + 1

    @override
    def backoff_jitter(self, value: float) -> float:
        return value  # jitter is drawn by the wait generator itself

    @override
    def backoff_handler(self, details: t.Any) -> None:
        self.api.metrics.retries.inc()
        exc = details.get("exception")
        self.logger.warning(
            "Retrying GET %s in %.2fs (attempt %d): %s",
            self.path,
            details.get("wait") or 0.0,
            details.get("tries") or 0,
            exc,
        )

    # -- records -------------------------------------------------------------------------------

    @override
    def parse_response(self, response: requests.Response) -> t.Iterable[dict[str, t.Any]]:
        data = response_body(response).get("data")
        if data is None:
            return []
        rows = data if isinstance(data, list) else [data]
        self._extracted_at = dt.datetime.now(dt.UTC)
        self.api.metrics.records_extracted.labels(self.name).inc(len(rows))
        self._log_progress(rows)
        return rows

    def _log_progress(self, rows: list[t.Any]) -> None:
        report = self._progress.advance(len(rows), self.progress_span(rows))
        if report is not None:
            self.logger.info("%s", report.message(self.name), extra=report.fields(self.name))

    def progress_span(self, rows: list[t.Any]) -> tuple[dt.datetime, dt.datetime] | None:
        """For a read in update-time order, the first and last update time of a page."""
        return None

    @override
    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        if self.config.get("webhook_database_url") and not self.refreshed_on_interval:
            from tap_pipedrive.webhooks.feed import poll_due  # webhooks mode: poll every Nth run

            if not poll_due(self):
                return
        feed = self.pipedrive_tap.change_feed
        if feed is not None and feed.skips(self, context):
            # /v1/recents listed no change of this item type, or the stream's refresh is not
            # due: no request, bookmark kept.
            if self.is_last_partition(context):
                self.finish_change_feed()
            return
        self._progress.begin()
        if self.cacheable and self.api.cache.enabled:
            cached = self.api.cache.get(self.name)
            if cached is None:
                cached = list(self.request_records(context))
                self.api.cache.put(self.name, cached)
            yield from (dict(row) for row in cached)
        else:
            yield from self.request_records(context)
        self.partition_read(context)
        if self.is_last_partition(context):
            self.finish_full_read()
        if self.refresh_parts():
            self.finish_change_feed(context)  # each partition is a re-read of its own
        elif self.is_last_partition(context):
            self.finish_change_feed()

    def refresh_parts(self) -> tuple[str, ...]:
        """For a stream on an interval whose partitions each cost a read of their own: the
        partitions, re-read one at a time (see change_feed); empty: the stream is one re-read."""
        return ()

    def partition_read(self, context: Context | None) -> None:
        """The partition ``context`` (or the whole stream) was read to its end."""

    def write_checkpoint(self) -> None:
        """Write the tap's state now, between records (e.g. after a deal's history was read).

        The SDK writes STATE every ``STATE_MSG_FREQUENCY`` records and at the end of each
        partition, through ``Tap.state_writer``; a checkpoint takes that same writer (so the
        settling before each STATE runs too) and leaves the state flushed.
        """
        _ = self.stream_state  # the stream's entry exists before it is written
        self.pipedrive_tap.state_writer.write_state(self.tap_state)
        self.state_manager.is_flushed = True

    def finish_change_feed(self, context: Context | None = None) -> None:
        """The stream (or its partition ``context``, see ``refresh_parts``) is current as of
        this run: its change-feed checkpoint moves."""
        feed = self.pipedrive_tap.change_feed
        if feed is not None and (self.recents_item is not None or self.refreshed_on_interval):
            feed.finish(self, context)
            records_pending(self)

    def is_last_partition(self, context: Context | None) -> bool:
        """True for the last (or only) partition of a top-level stream's sync."""
        if self.parent_stream_type is not None:
            return False
        partitions = self.partitions
        return not partitions or dict(context or {}) == partitions[-1]

    def finish_full_read(self) -> None:
        """End a reconciliation read: ACTIVATE_VERSION after the last record, so a target
        retires rows of older versions only once every current row has arrived."""
        version = stream_version(self)
        if self.reconciling and version is not None:
            write_activate_version(self, version)

    @override
    def post_process(self, row: t.Any, context: Context | None = None) -> dict[str, t.Any] | None:
        if not isinstance(row, dict):
            typed = self._typed_pages
            if typed is None:
                msg = f"GET {self.path} sent a list item that is not an object: {row!r:.80}"
                raise MalformedResponseError(msg)
            # A typed row of a v2 page: its record is built whole (columns, delete marker).
            return typed.build(row)
        # A dict row (v1, dictionaries, a v2 page that did not fit the typed structs): built in
        # place by the code the typed rows' builder comes from (record_code).
        self._build_plain(row)
        self._keep_selected(row)
        return row

    # -- reconciliation ------------------------------------------------------------------------

    # Both are read for every record; the config does not change during a run.
    @cached_property
    def reconciling(self) -> bool:
        return bool(self.config.get("reconcile", False))

    @cached_property
    @override
    def replication_method(self) -> str:
        if self.reconciling:
            return FULL_TABLE
        return super().replication_method

    @property
    @override
    def emit_activate_version_messages(self) -> bool:
        return self.reconciling
