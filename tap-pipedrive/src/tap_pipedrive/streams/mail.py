"""Mail threads of every folder. The mailbox is the token user's own: an API token (or OAuth
grant) of another user reads that user's mailbox."""

from __future__ import annotations

from tap_pipedrive.streams.bases import PartitionedStream


class MailThreadsStream(PartitionedStream):
    """A thread is listed in each folder it is in; the rows are upserted by id."""

    name = "mail_threads"
    refreshed_on_interval = True
    path = "/api/v1/mailbox/mailThreads"
    deleted_flags = (("deleted_flag", 1),)
    partition_key = "folder"
    partition_values = ("inbox", "drafts", "sent", "archive")
