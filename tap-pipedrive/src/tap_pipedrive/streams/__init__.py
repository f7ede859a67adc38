"""The tap's streams. Adding a stream is one class and one entry in ``STREAM_TYPES``."""

from __future__ import annotations

from tap_pipedrive.client import PipedriveStream
from tap_pipedrive.streams.activity import (
    ActivitiesStream,
    ActivityTypesStream,
    FilesStream,
    NotesStream,
)
from tap_pipedrive.streams.catalog import CurrenciesStream, ProductsStream
from tap_pipedrive.streams.changelogs import (
    DealChangesStream,
    OrganizationChangesStream,
    PersonChangesStream,
)
from tap_pipedrive.streams.contacts import OrganizationsStream, PersonsStream
from tap_pipedrive.streams.fields import (
    ActivityFieldsStream,
    DealFieldsStream,
    FieldsStream,
    OrganizationFieldsStream,
    PersonFieldsStream,
    ProductFieldsStream,
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
]

# Streams a run reads only when the catalog selects them: the stage history costs one request
# per changed deal, so it is a deliberate choice (the stage-history job selects it).
OPT_IN_STREAM_TYPES: frozenset[type[PipedriveStream]] = frozenset(
    {DealStageChangesStream, DealChangesStream, PersonChangesStream, OrganizationChangesStream}
)

__all__ = [
    "FIELD_STREAM_TYPES",
    "OPT_IN_STREAM_TYPES",
    "STREAM_TYPES",
    "FieldsStream",
    "PipedriveStream",
]
