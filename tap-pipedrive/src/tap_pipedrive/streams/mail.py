"""Mail threads of every folder, and their messages. The mailbox is the token user's own: an
API token (or OAuth grant) of another user reads that user's mailbox."""

from __future__ import annotations

import typing as t

from typing_extensions import override

from tap_pipedrive.streams.bases import PartitionedStream, PerParentStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

#: ``mail_messages`` state, per folder: the newest thread ``update_time`` of the folder's last
#: complete read, and the threads of that second whose messages were read (a thread changed
#: later in the same second is read again). A state of one mark for every folder (a text and
#: a list, before folders were re-read one at a time) counts for each folder.
THREADS_READ_THROUGH = "threads_read_through"
THREADS_AT_MARK = "threads_at_mark"


class MailThreadsStream(PartitionedStream):
    """A thread is listed in each folder it is in; the rows are upserted by id.

    Threads are read in full (the API has no update-time filter), but only threads updated
    since their folder's last complete read have their messages read (one request per thread).
    On an interval, one folder is re-read per run (each costs a request of its own)."""

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
        # Per folder read this run: the newest thread update time, and the threads at it.
        self._newest: dict[str, str] = {}
        self._at_newest: dict[str, set[t.Any]] = {}

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
        folder = str((context or {}).get(self.partition_key))
        if messages is None or ident is None:
            return
        if isinstance(stamp, str):
            newest = self._newest.get(folder)
            if newest is None or stamp > newest:
                self._newest[folder], self._at_newest[folder] = stamp, set()
            if stamp == self._newest[folder]:
                self._at_newest[folder].add(ident)
        if ident in self._threads_seen:
            return  # its messages were read in another folder this run
        since, seen = self._mark(messages, folder)
        if (
            isinstance(since, str)
            and isinstance(stamp, str)
            and (stamp < since or (stamp == since and ident in seen))
        ):
            return
        self._threads_seen.add(ident)
        yield {"id": ident}

    def _mark(self, messages: PerParentStream, folder: str) -> tuple[str | None, set[t.Any]]:
        """The folder's mark in ``mail_messages``' state: (update time, threads at it)."""
        state = messages.stream_state
        since, seen = state.get(THREADS_READ_THROUGH), state.get(THREADS_AT_MARK)
        if isinstance(since, dict):
            since = since.get(folder)
            seen = seen.get(folder) if isinstance(seen, dict) else None
        return (since if isinstance(since, str) else None), set(seen or ())

    @override
    def partition_read(self, context: Context | None) -> None:
        """A folder read to its end: its mark moves to its newest thread."""
        messages = self._messages()
        folder = str((context or {}).get(self.partition_key))
        newest = self._newest.get(folder)
        if messages is None or newest is None:
            return
        since, seen = self._mark(messages, folder)
        state = messages.stream_state
        marks, at_marks = state.get(THREADS_READ_THROUGH), state.get(THREADS_AT_MARK)
        if not isinstance(marks, dict):  # one mark for every folder: each folder's own now
            legacy_seen = sorted(at_marks or ()) if isinstance(at_marks, list) else []
            marks = {f: marks for f in self.refresh_parts()} if isinstance(marks, str) else {}
            at_marks = {f: legacy_seen for f in marks}
        else:
            marks, at_marks = dict(marks), dict(at_marks or {})
        if since is None or newest > since:
            marks[folder], at_marks[folder] = newest, sorted(self._at_newest[folder])
        elif newest == since:
            at_marks[folder] = sorted(seen | self._at_newest[folder])
        state[THREADS_READ_THROUGH], state[THREADS_AT_MARK] = marks, at_marks


class MailMessagesStream(PerParentStream):
    """The messages of each thread updated since the last read, with their ``from``, ``to``,
    ``cc`` and ``bcc`` parties as JSON arrays (one object per party: address, name, linked
    person)."""

    name = "mail_messages"
    path = "/api/v1/mailbox/mailThreads/{id}/mailMessages"
    parent_stream_type = MailThreadsStream
    paginated = False
    deleted_flags = (("deleted_flag", 1),)
