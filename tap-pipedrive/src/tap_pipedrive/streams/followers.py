"""Followers of persons, organizations and products, and product variations: one request per
record, read only for the records changed since the bookmark (the parents are incremental), so
their cost per run follows the changes. Opt-in (see ``OPT_IN_STREAM_TYPES``)."""

from __future__ import annotations

from tap_pipedrive.streams.bases import PerParentStream
from tap_pipedrive.streams.catalog import ProductsStream
from tap_pipedrive.streams.contacts import OrganizationsStream, PersonsStream

FOLLOWER_STREAMS = PerParentStream.table(
    # stream, parent stream, primary keys
    ("person_followers", PersonsStream, ("person_id", "user_id")),
    ("organization_followers", OrganizationsStream, ("organization_id", "user_id")),
    ("product_followers", ProductsStream, ("product_id", "user_id")),
    ("product_variations", ProductsStream, ("id",)),
)
