"""Child tables from arrays the parent records already carry (no request of their own).

Each row is keyed by the parent's key and the item's position, and every parent read sends
its complete set (``x-replace-children-of``), so the target retires children that were removed.
"""

from __future__ import annotations

import typing as t

from typing_extensions import override

from tap_pipedrive.streams.activity import ActivitiesStream
from tap_pipedrive.streams.bases import ChildRowsStream
from tap_pipedrive.streams.contacts import OrganizationsStream, PersonsStream
from tap_pipedrive.streams.sales import LeadsStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_pipedrive.tap import TapPipedrive


class PersonEmailsStream(ChildRowsStream):
    name = "person_emails"
    parent_stream_type = PersonsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("person_id", "position")
    array = "emails"
    parent_column = "person_id"


class PersonPhonesStream(ChildRowsStream):
    name = "person_phones"
    parent_stream_type = PersonsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("person_id", "position")
    array = "phones"
    parent_column = "person_id"


class OrganizationAddressesStream(ChildRowsStream):
    """An organization's address (one row, position 0), where it has one."""

    name = "organization_addresses"
    parent_stream_type = OrganizationsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("organization_id", "position")
    array = "address"
    parent_column = "organization_id"


class ActivityParticipantsStream(ChildRowsStream):
    name = "activity_participants"
    parent_stream_type = ActivitiesStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("activity_id", "position")
    array = "participants"
    parent_column = "activity_id"


class ActivityAttendeesStream(ChildRowsStream):
    name = "activity_attendees"
    parent_stream_type = ActivitiesStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("activity_id", "position")
    array = "attendees"
    parent_column = "activity_id"


class LeadLabelAssignmentsStream(ChildRowsStream):
    name = "lead_label_assignments"
    parent_stream_type = LeadsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("lead_id", "position")
    array = "label_ids"
    parent_column = "lead_id"
    value_column = "label_id"


class FieldOptionsStream(ChildRowsStream):
    """One row per option of every entity's fields, from the definitions the run reads anyway
    (for the custom-field columns): no request of its own."""

    name = "field_options"
    primary_keys: t.ClassVar[tuple[str, ...]] = ("entity", "field_code", "position")
    array = "options"
    parent_column = "field_code"

    def __init__(self, tap: TapPipedrive) -> None:
        super().__init__(tap)
        self._tap_ref = tap

    @override
    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        from tap_pipedrive.streams import FIELD_STREAM_TYPES

        for cls in FIELD_STREAM_TYPES:
            for field in self._tap_ref.field_stream(cls.entity).definitions():
                if field.get("options") is None:
                    continue  # a field of a type without options never had any
                keys = {"entity": cls.entity, "field_code": field.get("field_code")}
                yield from self.rows_of(field, keys)
