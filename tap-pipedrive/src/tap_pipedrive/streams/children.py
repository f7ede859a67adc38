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
from tap_pipedrive.streams.projects import ProjectsStream
from tap_pipedrive.streams.sales import LeadsStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_pipedrive.tap import TapPipedrive


#: The child tables: an organization's ``address`` is one object (one row, position 0).
CHILD_ROWS_STREAMS = ChildRowsStream.table(
    # stream, parent stream, the parents' array, column of the parent's id[, of a scalar item]
    ("person_emails", PersonsStream, "emails", "person_id"),
    ("person_phones", PersonsStream, "phones", "person_id"),
    ("organization_addresses", OrganizationsStream, "address", "organization_id"),
    ("activity_participants", ActivitiesStream, "participants", "activity_id"),
    ("activity_attendees", ActivitiesStream, "attendees", "activity_id"),
    ("lead_label_assignments", LeadsStream, "label_ids", "lead_id", "label_id"),
    ("project_deals", ProjectsStream, "deal_ids", "project_id", "deal_id"),
)


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
