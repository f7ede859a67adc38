"""People and organizations."""

from __future__ import annotations

from tap_pipedrive.client import IncrementalStream


class PersonsStream(IncrementalStream):
    name = "persons"
    path = "/api/v2/persons"
    recents_item = "person"
    fields_entity = "person"


class OrganizationsStream(IncrementalStream):
    name = "organizations"
    path = "/api/v2/organizations"
    recents_item = "organization"
    fields_entity = "organization"
