"""Field definitions of each entity; they also drive the custom-field columns of the catalog."""

from __future__ import annotations

import typing as t

from typing_extensions import override

from tap_pipedrive.change_feed import DEFAULT_REFRESH_MINUTES
from tap_pipedrive.client import PipedriveStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class FieldsStream(PipedriveStream):
    """Definitions are read once per run (or taken from the cache) and replayed on sync."""

    primary_keys = ("field_code",)
    deleted_flags = ()
    cacheable = True
    #: The entity whose fields these are (``deal``, ``person`` ...).
    entity: t.ClassVar[str]

    _definitions: list[dict[str, t.Any]] | None = None

    def definitions(self) -> list[dict[str, t.Any]]:
        if self._definitions is None:
            cached = self.api.cache.get(self.name)
            if cached is None:
                cached = list(self.request_records(None))
                minutes = self.config.get("refresh_interval_minutes", DEFAULT_REFRESH_MINUTES)
                self.api.cache.put(self.name, cached, at_least_seconds=int(minutes) * 60)
            self._definitions = cached
        return self._definitions

    @override
    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        yield from (dict(row) for row in self.definitions())
        self.finish_full_read()


class DealFieldsStream(FieldsStream):
    name = "deal_fields"
    path = "/api/v2/dealFields"
    entity = "deal"


class PersonFieldsStream(FieldsStream):
    name = "person_fields"
    path = "/api/v2/personFields"
    entity = "person"


class OrganizationFieldsStream(FieldsStream):
    name = "organization_fields"
    path = "/api/v2/organizationFields"
    entity = "organization"


class ProductFieldsStream(FieldsStream):
    name = "product_fields"
    path = "/api/v2/productFields"
    entity = "product"


class ActivityFieldsStream(FieldsStream):
    name = "activity_fields"
    path = "/api/v2/activityFields"
    entity = "activity"
