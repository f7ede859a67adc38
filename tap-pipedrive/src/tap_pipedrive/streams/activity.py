"""Activities and their types, notes and files."""

from __future__ import annotations

from tap_pipedrive.client import IncrementalStream, PipedriveStream
from tap_pipedrive.streams.bases import ChildRowsParent


class ActivitiesStream(ChildRowsParent, IncrementalStream):
    name = "activities"
    path = "/api/v2/activities"
    recents_item = "activity"
    fields_entity = "activity"
    carried_keys = ("id", "participants", "attendees")  # for activity_participants / _attendees


class ActivityTypesStream(PipedriveStream):
    name = "activity_types"
    path = "/api/v1/activityTypes"
    recents_item = "activityType"
    paginated = False
    deleted_flags = ()


class NotesStream(IncrementalStream):
    name = "notes"
    path = "/api/v1/notes"
    recents_item = "note"
    deleted_flags = (("active_flag", False),)


class FilesStream(PipedriveStream):
    """Files (API v1 has no ``updated_since`` for files, so they are read in full)."""

    name = "files"
    path = "/api/v1/files"
    recents_item = "file"
    max_page_size = 100  # the endpoint's documented maximum
    deleted_flags = (("active_flag", False),)
