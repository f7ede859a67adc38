"""Lead labels and sources, lead and note field definitions, saved filters and call logs:
small lists without an update-time filter, read in full."""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveStream


class LeadLabelsStream(PipedriveStream):
    name = "lead_labels"
    refreshed_on_interval = True
    path = "/api/v1/leadLabels"
    paginated = False
    deleted_flags = ()


class LeadSourcesStream(PipedriveStream):
    name = "lead_sources"
    refreshed_on_interval = True
    path = "/api/v1/leadSources"
    primary_keys: t.ClassVar[tuple[str, ...]] = ("name",)
    paginated = False
    deleted_flags = ()


class LeadFieldsStream(PipedriveStream):
    name = "lead_fields"
    refreshed_on_interval = True
    path = "/api/v1/leadFields"
    primary_keys: t.ClassVar[tuple[str, ...]] = ("key",)
    deleted_flags = ()


class NoteFieldsStream(PipedriveStream):
    name = "note_fields"
    refreshed_on_interval = True
    path = "/api/v1/noteFields"
    primary_keys: t.ClassVar[tuple[str, ...]] = ("key",)
    paginated = False
    deleted_flags = ()


class FiltersStream(PipedriveStream):
    """Saved filters: /v1/recents lists changed ones (item ``filter``), so an idle run skips
    the list."""

    name = "filters"
    recents_item = "filter"
    path = "/api/v1/filters"
    recents_item = "filter"
    paginated = False
    deleted_flags = (("active_flag", False),)


class CallLogsStream(PipedriveStream):
    """Call logs (the API lists them newest first, with no update-time filter)."""

    name = "call_logs"
    refreshed_on_interval = True
    path = "/api/v1/callLogs"
    deleted_flags = ()
