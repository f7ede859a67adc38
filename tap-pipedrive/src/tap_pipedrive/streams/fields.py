"""Field definitions of each entity; they also drive the custom-field columns of the catalog.

Nothing reports a change of the definitions (no recents item type, no webhook). With the Redis
cache they are kept with the time the API answered them; a run's discovery takes them from the
cache whatever their age, and a list older than ``refresh_interval_minutes`` is re-read during
the run, sharing the one re-read per run with the lists on an interval (see
``change_feed.plan_refresh``), so the six lists never come due on one run. What the re-read
brings (a new custom field) becomes a column at the next run's discovery. The cache keeps them
for twice the interval, so none is older than that even when runs are rare (with
``refresh_interval_minutes`` 0, for ``cache_ttl_seconds``). Without the cache they are read at
every run's start.
"""

from __future__ import annotations

import datetime as dt
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
    #: Definitions taken from the cache this run: when the API answered them (``None`` when
    #: unknown); ``None`` too once read from the API by this run.
    cached_read_at: dt.datetime | None = None
    from_cache: bool = False

    @property
    def interval(self) -> dt.timedelta:
        minutes = self.config.get("refresh_interval_minutes", DEFAULT_REFRESH_MINUTES)
        return dt.timedelta(minutes=int(minutes))

    def definitions(self) -> list[dict[str, t.Any]]:
        if self._definitions is None:
            cached = self.api.cache.get_dated(self.name)
            if cached is None:
                self.refresh()
            else:
                self._definitions, self.cached_read_at = cached
                self.from_cache = True
        assert self._definitions is not None
        return self._definitions

    def refresh(self) -> None:
        """Read the definitions from the API and cache them with the API's time."""
        records = list(self.request_records(None))
        read_at = self.api.session.last_answer_at or dt.datetime.now(dt.UTC)
        seconds = int(self.interval.total_seconds())
        self.api.cache.put_dated(self.name, records, read_at, at_least_seconds=2 * seconds)
        self._definitions, self.cached_read_at, self.from_cache = records, None, False

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
