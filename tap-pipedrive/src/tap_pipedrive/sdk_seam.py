"""The tap's seam to the Singer SDK's private and final members: every one of them, here only.

The rest of the tap uses the SDK's public hooks (``requests_session``, ``authenticator``,
``request_decorator``, ``validate_response``, ``get_records``, ``post_process``,
``get_new_paginator``, ``Tap.state_writer`` ...). What those cannot do is done here, each with
the reason it is needed. ``tests/test_tap_sdk_seam.py`` pins the SDK behaviour each item relies
on, so an SDK upgrade that changes it fails there, loudly, before it silently changes a run
(``make sdk-canary`` runs those tests against the newest SDK release).

Streams and the tap inherit the overrides through :class:`SeamStream` and :class:`SeamTap`,
which only forward to methods with public names on the tap's own classes. :data:`SDK_MEMBERS`
names every private or final SDK member touched here, and why; ``tests/test_sdk_seams.py``
fails when any other module of the tap overrides or reaches one.
"""

from __future__ import annotations

import typing as t

import requests
from singer_sdk import Stream, Tap
from singer_sdk.helpers._state import StateWriter
from singer_sdk.streams import RESTStream
from typing_extensions import override

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

#: Every private or final Singer SDK member the tap overrides, reads or calls (only here), and why.
SDK_MEMBERS: t.Final[dict[str, str]] = {
    "Stream._write_record_message": (
        "overridden -> write_record(record): the orjson fast path (records are already typed as "
        "the schema says; the SDK's per-record conformance and message objects cost a third of "
        "a sync's CPU) and the incremental streams' bookmark-second bookkeeping"
    ),
    "Stream._generate_schema_messages": (
        "overridden -> restore_schema_annotations(schema): the SDK's schema model drops the "
        "x-pipedrive-* and x-replace-children-of keywords of SCHEMA messages"
    ),
    "Stream._increment_stream_state": (
        "overridden -> advance_bookmark(record, context): the per-record bookmark update of a "
        "sorted stream with text timestamps, without the SDK's general path (several dict "
        "copies and a typed comparison per record, about 8% of a sync's CPU)"
    ),
    "Stream._write_state_message": (
        "overridden -> before_state_message(): a parent of child-row streams sends its pending "
        "batch of children before its bookmark passes them (also when a run stops early); the "
        "tap-wide StateWriter runs too late for that, inside the SDK's is_flushed check"
    ),
    "Stream._sync_children": (
        "overridden -> syncs_child(child, context): a parent with per-record and child-row "
        "children syncs each child only with the contexts meant for it (a batch of parents, or "
        "one record's id); the SDK syncs every child with every context. Also called by "
        "sync_children() for the last batch, which no record generates"
    ),
    "Stream._write_schema_message": (
        "called by write_schema(): deal_changes writes its SCHEMA when deal_stage_changes "
        "hands it a changelog, outside its own sync"
    ),
    "Stream._write_activate_version_message": (
        "called by write_activate_version(): ACTIVATE_VERSION after a stream's last record (the "
        "SDK sends it only before the records)"
    ),
    "Stream._stream_version": "read by stream_version(): the table version of this sync",
    "Stream._tap": "read by tap_of(): the tap a stream belongs to (no public name)",
    "Tap._streams": (
        "read by streams_built(): the streams if discovery has already built them (the public "
        "Tap.streams builds them, which must not happen while they are being built)"
    ),
    "Tap._validate_config": (
        "overridden -> prepare_config(config): number settings given as numeric strings (Meltano "
        "passes env-var settings as strings) are coerced after the SDK merged files and "
        "environment and before it validates; no public hook sits between the two"
    ),
    "Tap._config": "passed to prepare_config(): the merged config, before validation",
    "Tap._state_writer": (
        "set by install_state_writer(): Tap.state_writer is read-only, backed by this"
    ),
    "Tap.sync_all": (
        "final, wrapped -> around_sync(sync): what must happen around the whole run (state on a "
        "clean stop, the metrics push on success and failure, gc freezing)"
    ),
    "RESTStream._request": (
        "called by send_with_retries(): single requests outside a list read (/v1/recents, the "
        "webhook feed's deal reads) go through the SDK's request call like request_records"
    ),
    "singer_sdk.helpers._state.StateWriter": (
        "subclassed by SettlingStateWriter: the incremental streams' boundary digests and the "
        "batched records go out before every STATE message, whoever writes it"
    ),
}

#: Bytes per read of a response body. requests reads 10 KB at a time, 170 reads for a page of
#: 500 deals, which costs about twice the CPU of reading it in one go.
BODY_CHUNK_BYTES = 1 << 20


def read_body(response: requests.Response) -> None:
    """Read a response sent with ``stream=True`` to the end, in large chunks.

    Afterwards the response is like one sent without streaming: ``content`` holds the body and
    the connection is back in the pool. Read errors are requests' own (``ChunkedEncodingError``
    for a truncated body, ``ConnectionError`` for a timeout).

    Seam (requests, not the SDK): requests keeps the body in ``Response._content``; its
    ``content`` property would read it again in 10 KB chunks through the same iter_content.
    """
    response._content = b"".join(response.iter_content(BODY_CHUNK_BYTES))


def send_with_retries(
    stream: RESTStream[t.Any], request: requests.PreparedRequest, context: Context | None
) -> requests.Response:
    """Send one request exactly as ``request_records`` does: the stream's
    ``request_decorator`` (retries, breaker) around the SDK's request call (authenticator,
    ``requests_session``, ``validate_response``).

    For the single requests outside a stream's list reading (``/v1/recents``, the webhook
    feed's deal reads); ``RESTStream._request`` has no public name.
    """
    return stream.request_decorator(stream._request)(request, context)


def stream_version(stream: Stream) -> int | None:
    """The table version of this sync (ACTIVATE_VERSION), ``Stream._stream_version``."""
    version = stream._stream_version
    return None if version is None else int(version)


def write_activate_version(stream: Stream, version: int) -> None:
    """ACTIVATE_VERSION after a stream's last record: the SDK sends it before the records,
    and only through ``Stream._write_activate_version_message``."""
    stream._write_activate_version_message(version)


def sync_children(stream: Stream, context: Context) -> None:
    """Sync the child streams for one more context (a last batch of parents, which no record
    generates); ``Stream._sync_children`` has no public name."""
    stream._sync_children(context)


def write_schema(stream: Stream) -> None:
    """Write the stream's SCHEMA messages outside its own sync
    (``Stream._write_schema_message``)."""
    stream._write_schema_message()


def tap_of(stream: Stream) -> Tap:
    """The tap a stream belongs to (``Stream._tap``)."""
    return stream._tap


def streams_built(tap: Tap) -> dict[str, Stream]:
    """The tap's streams if they have been built, else none (``Tap._streams``): unlike
    ``Tap.streams`` this never starts discovery, so it is safe while streams are being made."""
    return dict(tap._streams or {})


def records_pending(stream: Stream) -> None:
    """Tell the SDK a record went out, or the state changed, after the last STATE (so the
    SDK's next one is written)."""
    stream.state_manager.is_flushed = False


class SeamStream(RESTStream[t.Any]):
    """The private ``Stream`` methods the tap's streams override, forwarded to public names."""

    @override
    def _write_record_message(self, record: dict[str, t.Any]) -> None:
        self.write_record(record)

    def write_record(self, record: dict[str, t.Any]) -> None:
        """Write one RECORD message (default: the SDK's own way)."""
        super()._write_record_message(record)

    @override
    def _generate_schema_messages(self) -> t.Generator[t.Any, None, None]:
        for message in super()._generate_schema_messages():
            self.restore_schema_annotations(message.schema)
            yield message

    def restore_schema_annotations(self, schema: dict[str, t.Any]) -> None:
        """Put back what the SDK's schema model dropped from a SCHEMA message's schema."""

    @override
    def _increment_stream_state(
        self, latest_record: dict[str, t.Any], *, context: Context | None = None
    ) -> None:
        if not self.advance_bookmark(latest_record, context):
            super()._increment_stream_state(latest_record, context=context)

    def advance_bookmark(self, record: dict[str, t.Any], context: Context | None) -> bool:
        """Advance the bookmark for a written record; False leaves it to the SDK."""
        return False

    @override
    def _write_state_message(self) -> None:
        self.before_state_message()
        super()._write_state_message()

    def before_state_message(self) -> None:
        """Called each time the SDK may write this stream's STATE (before its is_flushed check)."""

    @override
    def _sync_children(self, child_context: Context | None) -> None:
        # The SDK's own loop (null context, selection, aborted children) over the children this
        # context is meant for: the list it reads is narrowed for the call.
        children = self.child_streams
        self.child_streams = [c for c in children if self.syncs_child(c, child_context)]
        try:
            super()._sync_children(child_context)
        finally:
            self.child_streams = children

    def syncs_child(self, child: Stream, context: Context | None) -> bool:
        """Whether a child context generated by this stream is meant for ``child`` (default:
        every child gets every context, as in the SDK)."""
        return True


class SettlingStateWriter(StateWriter):
    """Runs ``before_state`` (boundary digests, pending records) before each STATE message."""

    def __init__(self, message_writer: t.Any, before_state: t.Callable[[], None]) -> None:
        super().__init__(message_writer)
        self._before_state = before_state

    @override
    def write_state(self, state: t.Any) -> None:
        self._before_state()
        super().write_state(state)


class SeamTap(Tap):
    """The private and final ``Tap`` members the tap overrides, forwarded to public names."""

    def install_state_writer(self, before_state: t.Callable[[], None]) -> None:
        """Write every STATE message through :class:`SettlingStateWriter` (the SDK's
        ``Tap.state_writer`` is read-only, backed by ``Tap._state_writer``)."""
        self._state_writer = SettlingStateWriter(self.message_writer, before_state)

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        self.prepare_config(self._config)
        return super()._validate_config(raise_errors=raise_errors)

    def prepare_config(self, config: dict[str, t.Any]) -> None:
        """Adjust the merged config in place before the SDK validates it."""

    # The SDK marks sync_all final; the override only wraps the SDK's own.
    @override  # type: ignore[misc]
    def sync_all(self) -> None:
        self.around_sync(super().sync_all)

    def around_sync(self, sync: t.Callable[[], None]) -> None:
        """Run ``sync`` (the SDK's ``sync_all``) with whatever the whole run needs around it."""
        sync()
