"""Projects (live and archived, with their custom fields as columns), boards, phases,
templates, tasks and field definitions. The API filters none of these by update time, so they
are read in full. (The deals of each project are a child table, see
:mod:`tap_pipedrive.streams.children`.)"""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveStream
from tap_pipedrive.streams.bases import ChildRowsParent, PartitionedStream
from tap_pipedrive.streams.fields import FieldsStream


class ProjectFieldsStream(FieldsStream):
    name = "project_fields"
    path = "/api/v2/projectFields"
    entity = "project"


class ProjectsStream(ChildRowsParent, PartitionedStream):
    """Projects, archived ones from ``/projects/archived`` (they carry ``archive_time``)."""

    name = "projects"
    refreshed_on_interval = True
    path = "/api/v2/projects"
    fields_entity = "project"
    deleted_flags = ()
    carried_keys = ("id", "deal_ids")
    partition_key = "is_archived"
    partition_values = (False, True)
    partition_paths: t.ClassVar[dict[t.Any, str] | None] = {
        False: "/api/v2/projects",
        True: "/api/v2/projects/archived",
    }


#: Boards and phases come in one response; none of these lists marks deleted records.
PROJECT_LIST_STREAMS = PipedriveStream.plain_lists(
    # stream, path, paginated
    ("project_boards", "/api/v2/boards", False),
    ("project_phases", "/api/v2/phases", False),
    ("project_templates", "/api/v2/projectTemplates", True),
    ("tasks", "/api/v2/tasks", True),
    deleted_flags=(),
    refreshed_on_interval=True,
)
