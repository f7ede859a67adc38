"""Products and currencies."""

from __future__ import annotations

from tap_pipedrive.client import IncrementalStream, PipedriveStream
from tap_pipedrive.streams.bases import ChildRowsParent


class ProductsStream(ChildRowsParent, IncrementalStream):
    name = "products"
    path = "/api/v2/products"
    recents_item = "product"
    fields_entity = "product"
    carried_keys = ("id",)  # for the per-product streams, also when products are not selected


class CurrenciesStream(PipedriveStream):
    name = "currencies"
    refreshed_on_interval = True
    path = "/api/v1/currencies"
    paginated = False
    deleted_flags = ()
