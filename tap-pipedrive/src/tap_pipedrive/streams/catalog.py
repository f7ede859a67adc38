"""Products and currencies."""

from __future__ import annotations

from tap_pipedrive.client import IncrementalStream, PipedriveStream


class ProductsStream(IncrementalStream):
    name = "products"
    path = "/api/v2/products"
    fields_entity = "product"


class CurrenciesStream(PipedriveStream):
    name = "currencies"
    path = "/api/v1/currencies"
    paginated = False
    deleted_flags = ()
