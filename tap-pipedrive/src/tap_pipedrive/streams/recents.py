"""``GET /v1/recents``: the change feed's one request (not a stream of the catalog).

See :mod:`tap_pipedrive.change_feed` for what the answer decides.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from singer_sdk import typing as th
from typing_extensions import override

from tap_pipedrive import change_feed
from tap_pipedrive.api import OPENAPI
from tap_pipedrive.change_feed import RECENTS_PATH
from tap_pipedrive.client import PipedriveStream
from tap_pipedrive.pagination import response_body
from tap_pipedrive.sdk_seam import send_with_retries

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_pipedrive.tap import TapPipedrive

STREAM_NAME = "recents"
SCHEMA = th.PropertiesList(
    th.Property("item", th.StringType),
    th.Property("id", th.IntegerType),
    th.Property("data", th.ObjectType()),
).to_dict()
# Not a list the catalog offers: the base stream finds this schema where it finds the others'.
OPENAPI.streams.setdefault(STREAM_NAME, {"version": "v1", "schema": SCHEMA})


class RecentsRequest(PipedriveStream):
    """One page of ``/v1/recents`` since a time, for some item types."""

    name = STREAM_NAME
    path = RECENTS_PATH
    paginated = False
    deleted_flags = ()
    primary_keys: t.ClassVar[tuple[str, ...]] = ()

    def __init__(self, tap: TapPipedrive, since: dt.datetime, items: t.Sequence[str]) -> None:
        super().__init__(tap)
        self.since = since
        self.items = list(items)

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        return {
            # The spec's format: YYYY-MM-DD HH:MM:SS, UTC.
            "since_timestamp": self.since.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "items": ",".join(self.items),
            "start": 0,
            "limit": change_feed.RECENTS_PAGE,
        }

    @override
    def validate_body(self, body: dict[str, t.Any]) -> None:
        # No changes may come as "data": null (the real API's habit); the caller reads it.
        return

    def fetch(self) -> dict[str, t.Any]:
        """The answer's body (retried, paced and counted like every request)."""
        prepared = self.build_prepared_request(
            method="GET",
            url=self.get_url(None),
            params=self.get_url_params(None, None),
            headers=self.http_headers,
        )
        return response_body(send_with_retries(self, prepared, None))
