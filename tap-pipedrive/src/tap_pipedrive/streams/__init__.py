"""The tap's streams. Adding a stream is one class (or one row of a table of streams of one
kind) and one entry in ``STREAM_TYPES``."""

from __future__ import annotations

from tap_pipedrive.client import PipedriveStream
from tap_pipedrive.streams.activity import (
    ActivitiesStream,
    ActivityTypesStream,
    FilesStream,
    NotesStream,
)
from tap_pipedrive.streams.admin import (
    ADMIN_PER_PARENT_STREAMS,
    PermissionSetsStream,
    RolesStream,
)
from tap_pipedrive.streams.catalog import CurrenciesStream, ProductsStream
from tap_pipedrive.streams.changelogs import (
    DealChangesStream,
    OrganizationChangesStream,
    PersonChangesStream,
)
from tap_pipedrive.streams.children import CHILD_ROWS_STREAMS, FieldOptionsStream
from tap_pipedrive.streams.contacts import OrganizationsStream, PersonsStream
from tap_pipedrive.streams.fields import (
    ActivityFieldsStream,
    DealFieldsStream,
    FieldsStream,
    OrganizationFieldsStream,
    PersonFieldsStream,
    ProductFieldsStream,
)
from tap_pipedrive.streams.followers import PER_RECORD_STREAMS
from tap_pipedrive.streams.goals import GoalResultsStream, GoalsStream
from tap_pipedrive.streams.installments import DealInstallmentsStream
from tap_pipedrive.streams.leads_setup import (
    CallLogsStream,
    FiltersStream,
    LeadFieldsStream,
    LeadLabelsStream,
    LeadSourcesStream,
    NoteFieldsStream,
)
from tap_pipedrive.streams.mail import MailMessagesStream, MailThreadsStream
from tap_pipedrive.streams.projects import (
    PROJECT_LIST_STREAMS,
    ProjectFieldsStream,
    ProjectsStream,
)
from tap_pipedrive.streams.sales import DealProductsStream, DealsStream, LeadsStream
from tap_pipedrive.streams.setup import PipelinesStream, StagesStream, UsersStream
from tap_pipedrive.streams.stage_changes import DealStageChangesStream

FIELD_STREAM_TYPES: tuple[type[FieldsStream], ...] = (
    DealFieldsStream,
    PersonFieldsStream,
    OrganizationFieldsStream,
    ProductFieldsStream,
    ActivityFieldsStream,
    ProjectFieldsStream,
)

STREAM_TYPES: list[type[PipedriveStream]] = [
    *FIELD_STREAM_TYPES,
    UsersStream,
    PipelinesStream,
    StagesStream,
    CurrenciesStream,
    ActivityTypesStream,
    DealsStream,
    DealProductsStream,
    PersonsStream,
    OrganizationsStream,
    ActivitiesStream,
    ProductsStream,
    LeadsStream,
    NotesStream,
    FilesStream,
    DealStageChangesStream,
    DealChangesStream,  # after the stage stream, which may read its changelogs for it
    PersonChangesStream,
    OrganizationChangesStream,
    # Less central objects (see the coverage table in the README).
    CallLogsStream,
    LeadLabelsStream,
    LeadSourcesStream,
    LeadFieldsStream,
    NoteFieldsStream,
    FiltersStream,
    GoalsStream,
    GoalResultsStream,
    ProjectsStream,
    *PROJECT_LIST_STREAMS.values(),
    DealInstallmentsStream,
    RolesStream,
    ADMIN_PER_PARENT_STREAMS["role_assignments"],
    ADMIN_PER_PARENT_STREAMS["role_settings"],
    PermissionSetsStream,
    ADMIN_PER_PARENT_STREAMS["permission_set_assignments"],
    MailThreadsStream,
    ADMIN_PER_PARENT_STREAMS["user_permissions"],
    # Child tables of arrays the parents carry (no requests of their own).
    *CHILD_ROWS_STREAMS.values(),
    FieldOptionsStream,
    # One request per record changed since the bookmark (opt-in).
    *PER_RECORD_STREAMS.values(),
    MailMessagesStream,  # per thread updated since the last read
]

# Streams a run reads only when the catalog selects them: each costs one request per record of
# its parent on every run (the stage history and the changelogs per changed record: the
# history jobs select them; results per goal, members and settings per role or permission set,
# permissions per user).
OPT_IN_STREAM_TYPES: frozenset[type[PipedriveStream]] = frozenset(
    {
        DealStageChangesStream,
        DealChangesStream,
        PersonChangesStream,
        OrganizationChangesStream,
        GoalResultsStream,
        *ADMIN_PER_PARENT_STREAMS.values(),
        *PER_RECORD_STREAMS.values(),
        MailMessagesStream,
    }
)

__all__ = [
    "FIELD_STREAM_TYPES",
    "OPT_IN_STREAM_TYPES",
    "STREAM_TYPES",
    "FieldsStream",
    "PipedriveStream",
]
