"""People and organizations."""

from __future__ import annotations

from tap_pipedrive.client import IncrementalStream
from tap_pipedrive.streams.bases import ChildRowsParent


class PersonsStream(ChildRowsParent, IncrementalStream):
    name = "persons"
    path = "/api/v2/persons"
    recents_item = "person"
    fields_entity = "person"
    carried_keys = ("id", "emails", "phones")  # for person_emails and person_phones


class OrganizationsStream(ChildRowsParent, IncrementalStream):
    name = "organizations"
    path = "/api/v2/organizations"
    recents_item = "organization"
    fields_entity = "organization"
    carried_keys = ("id", "address")  # for organization_addresses
