"""Followers of persons, organizations and products, and product variations: one request per
record, read only for the records changed since the bookmark (the parents are incremental), so
their cost per run follows the changes. Opt-in (see ``OPT_IN_STREAM_TYPES``)."""

from __future__ import annotations

import typing as t

from tap_pipedrive.streams.bases import PerParentStream
from tap_pipedrive.streams.catalog import ProductsStream
from tap_pipedrive.streams.contacts import OrganizationsStream, PersonsStream


class PersonFollowersStream(PerParentStream):
    name = "person_followers"
    path = "/api/v2/persons/{id}/followers"
    parent_stream_type = PersonsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("person_id", "user_id")
    parent_column = "person_id"


class OrganizationFollowersStream(PerParentStream):
    name = "organization_followers"
    path = "/api/v2/organizations/{id}/followers"
    parent_stream_type = OrganizationsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("organization_id", "user_id")
    parent_column = "organization_id"


class ProductFollowersStream(PerParentStream):
    name = "product_followers"
    path = "/api/v2/products/{id}/followers"
    parent_stream_type = ProductsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("product_id", "user_id")
    parent_column = "product_id"


class ProductVariationsStream(PerParentStream):
    name = "product_variations"
    path = "/api/v2/products/{id}/variations"
    parent_stream_type = ProductsStream
