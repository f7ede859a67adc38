"""Products and currencies."""

from __future__ import annotations

from tap_pipedrive.client import IncrementalStream, PipedriveStream


class ProductsStream(IncrementalStream):
    name = "products"
    path = "/api/v2/products"
    recents_item = "product"
    fields_entity = "product"


class CurrenciesStream(PipedriveStream):
    name = "currencies"
    path = "/api/v1/currencies"
    paginated = False
    deleted_flags = ()
