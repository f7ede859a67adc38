"""Deals (open, won, lost, deleted and archived), their product line items, and leads."""

from __future__ import annotations

import typing as t
from functools import cached_property

from typing_extensions import override

from tap_pipedrive.client import IncrementalStream, PipedriveStream
from tap_pipedrive.sdk_seam import sync_children
from tap_pipedrive.streams.bases import ChildRowsParent, PerParentStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_pipedrive.tap import TapPipedrive

DEAL_IDS_PER_REQUEST = 100  # the most /deals/products accepts in deal_ids


class DealsStream(ChildRowsParent, IncrementalStream):
    """Every deal, deleted ones flagged with ``_sdc_deleted_at``, archived ones with
    ``is_archived`` (read from ``/deals/archived`` as a second partition with its own bookmark).

    Records carry ``add_time`` and ``stage_change_time`` for stage-history consumers.
    """

    name = "deals"
    path = "/api/v2/deals"
    recents_item = "deal"
    archived_path = "/api/v2/deals/archived"
    archived_setting = "include_archived_deals"
    fields_entity = "deal"
    deleted_flags = (("is_deleted", True), ("status", "deleted"))
    extra_params: t.ClassVar[dict[str, str]] = {"status": "open,won,lost,deleted"}
    carried_keys = ("id", "products_count")  # decides whether a deal's line items are requested

    def __init__(self, tap: TapPipedrive) -> None:
        super().__init__(tap)
        self._pending_deal_ids: list[int] = []

    @cached_property
    def _line_items_wanted(self) -> bool:
        # The streams read by batches of deal ids (line items, installments).
        return any(
            not isinstance(c, PerParentStream) and (c.selected or c.has_selected_descendents)
            for c in self.child_streams
        )

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        if self._line_items_wanted:
            params["include_fields"] = "products_count"  # ask for line items only where any
        return params

    @override
    def generate_child_contexts(
        self, record: dict[str, t.Any], context: Context | None
    ) -> t.Iterable[Context | None]:
        yield from super().generate_child_contexts(record, context)  # the per-deal streams
        if not self._line_items_wanted or record.get("products_count") == 0:
            return
        self._pending_deal_ids.append(int(record["id"]))
        if len(self._pending_deal_ids) >= DEAL_IDS_PER_REQUEST:
            batch, self._pending_deal_ids = self._pending_deal_ids, []
            yield {"deal_ids": batch}

    @override
    def finish_full_read(self) -> None:
        # Batches of line items span both partitions; the last one sends the remainder.
        if self._pending_deal_ids:
            batch, self._pending_deal_ids = self._pending_deal_ids, []
            sync_children(self, {"deal_ids": batch})
        super().finish_full_read()
        for child in self.child_streams:
            if (
                isinstance(child, PipedriveStream)
                and not isinstance(child, PerParentStream)
                and child.selected
            ):
                child.finish_full_read()


class DealBatchStream(PipedriveStream):
    """Rows of the deals read in this run, 100 deals per request (``deal_ids``)."""

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
        # Each batch of deals is a separate child sync; only a reconciliation run may retire
        # rows, and then every batch carries the same table version.
        return self.reconciling


class DealProductsStream(DealBatchStream):
    """Product line items of the deals read in this run, 100 deals per request."""

    name = "deal_products"
    path = "/api/v2/deals/products"


class LeadsStream(ChildRowsParent, IncrementalStream):
    """Leads, archived ones flagged with ``is_archived`` (API v1: v2 has no lead list).

    Leads carry the deal custom fields (as top-level v1 keys), so they get the same columns.
    ``/leads/archived`` takes no ``updated_since``: that partition is read in full.
    """

    name = "leads"
    path = "/api/v1/leads"
    archived_path = "/api/v1/leads/archived"
    archived_updated_since = False
    fields_entity = "deal"
    deleted_flags = ()
    carried_keys = ("id", "label_ids")  # for lead_label_assignments
