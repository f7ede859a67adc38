"""Projects (live and archived, with their custom fields as columns), their deals, boards,
phases, templates, tasks and field definitions. The API filters none of these by update
time, so they are read in full."""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveStream
from tap_pipedrive.streams.bases import ChildRowsParent, ChildRowsStream, PartitionedStream
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


class ProjectDealsStream(ChildRowsStream):
    """The deals of each project read (one row per link)."""

    name = "project_deals"
    parent_stream_type = ProjectsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("project_id", "position")
    array = "deal_ids"
    parent_column = "project_id"
    value_column = "deal_id"


class ProjectBoardsStream(PipedriveStream):
    name = "project_boards"
    refreshed_on_interval = True
    path = "/api/v2/boards"
    paginated = False
    deleted_flags = ()


class ProjectPhasesStream(PipedriveStream):
    name = "project_phases"
    refreshed_on_interval = True
    path = "/api/v2/phases"
    paginated = False
    deleted_flags = ()


class ProjectTemplatesStream(PipedriveStream):
    name = "project_templates"
    refreshed_on_interval = True
    path = "/api/v2/projectTemplates"
    deleted_flags = ()


class TasksStream(PipedriveStream):
    name = "tasks"
    refreshed_on_interval = True
    path = "/api/v2/tasks"
    deleted_flags = ()
