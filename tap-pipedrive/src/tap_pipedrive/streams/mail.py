"""Mail threads of every folder, and their messages. The mailbox is the token user's own: an
API token (or OAuth grant) of another user reads that user's mailbox."""

from __future__ import annotations

import typing as t

from typing_extensions import override

from tap_pipedrive.streams.bases import PartitionedStream, PerParentStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

#: ``mail_messages`` state: the newest thread ``update_time`` of the last complete read, and
#: the threads of that second whose messages were read (a thread changed later in the same
#: second is read again).
THREADS_READ_THROUGH = "threads_read_through"
THREADS_AT_MARK = "threads_at_mark"


class MailThreadsStream(PartitionedStream):
    """A thread is listed in each folder it is in; the rows are upserted by id.

    Threads are read in full (the API has no update-time filter), but only threads updated
    since the last complete read have their messages read (one request per thread)."""

    name = "mail_threads"
    refreshed_on_interval = True
    path = "/api/v1/mailbox/mailThreads"
    deleted_flags = (("deleted_flag", 1),)
    partition_key = "folder"
    partition_values = ("inbox", "drafts", "sent", "archive")
    carried_keys = ("id", "update_time")  # for mail_messages

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._threads_seen: set[t.Any] = set()
        self._newest: str | None = None
        self._at_newest: set[t.Any] = set()

    def _messages(self) -> PerParentStream | None:
        for child in self.child_streams:
            if isinstance(child, MailMessagesStream) and (
                child.selected or child.has_selected_descendents
            ):
                return child
        return None

    @override
    def generate_child_contexts(
        self, record: dict[str, t.Any], context: Context | None
    ) -> t.Iterable[Context | None]:
        messages = self._messages()
        ident, stamp = record.get("id"), record.get("update_time")
        if messages is None or ident is None or ident in self._threads_seen:
            return
        self._threads_seen.add(ident)
        if isinstance(stamp, str):
            if self._newest is None or stamp > self._newest:
                self._newest, self._at_newest = stamp, set()
            if stamp == self._newest:
                self._at_newest.add(ident)
        state = messages.stream_state
        since = state.get(THREADS_READ_THROUGH)
        seen = state.get(THREADS_AT_MARK, ())
        if (
            isinstance(since, str)
            and isinstance(stamp, str)
            and (stamp < since or (stamp == since and ident in seen))
        ):
            return
        yield {"id": ident}

    @override
    def finish_full_read(self) -> None:
        messages = self._messages()
        if messages is not None and self._newest is not None:
            state = messages.stream_state
            since = state.get(THREADS_READ_THROUGH)
            if not isinstance(since, str) or self._newest > since:
                state[THREADS_READ_THROUGH] = self._newest
                state[THREADS_AT_MARK] = sorted(self._at_newest)
            elif self._newest == since:
                state[THREADS_AT_MARK] = sorted({*state.get(THREADS_AT_MARK, ()), *self._at_newest})
        super().finish_full_read()


class MailMessagesStream(PerParentStream):
    """The messages of each thread updated since the last read, with their ``from``, ``to``,
    ``cc`` and ``bcc`` parties as JSON arrays (one object per party: address, name, linked
    person)."""

    name = "mail_messages"
    path = "/api/v1/mailbox/mailThreads/{id}/mailMessages"
    parent_stream_type = MailThreadsStream
    paginated = False
    deleted_flags = (("deleted_flag", 1),)
