"""Installments of the deals read in this run, 100 deals per request (like line items)."""

from __future__ import annotations

import typing as t

from typing_extensions import override

from tap_pipedrive.client import PipedriveStream
from tap_pipedrive.streams.sales import DealsStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class DealInstallmentsStream(PipedriveStream):
    name = "deal_installments"
    path = "/api/v2/deals/installments"
    parent_stream_type = DealsStream
    state_partitioning_keys: t.ClassVar[list[str]] = []
    deleted_flags = ()
    extra_params: t.ClassVar[dict[str, str]] = {"sort_by": "id", "sort_direction": "asc"}

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        params["deal_ids"] = ",".join(str(i) for i in (context or {}).get("deal_ids", ()))
        return params

    @property
    @override
    def emit_activate_version_messages(self) -> bool:
        return self.reconciling
