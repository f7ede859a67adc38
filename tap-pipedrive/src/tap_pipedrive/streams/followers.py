"""Per-record lists: followers of deals, persons, organizations and products, product
variations, deal participants and discounts, organization relationships. One request per
record, read only for the records changed since the bookmark (the parents are incremental), so
their cost per run follows the changes. Opt-in (see ``OPT_IN_STREAM_TYPES``).

Every one is a child set (``replaces_children``), keyed by the parent's id and the position:
each changed parent's rows replace its earlier ones, so a removed follower, variation or
participant disappears at the next run."""

from __future__ import annotations

import typing as t

from tap_pipedrive.streams.bases import PerParentStream
from tap_pipedrive.streams.catalog import ProductsStream
from tap_pipedrive.streams.contacts import OrganizationsStream, PersonsStream
from tap_pipedrive.streams.sales import DealsStream


class PersonFollowersStream(PerParentStream):
    name = "person_followers"
    path = "/api/v2/persons/{id}/followers"
    parent_stream_type = PersonsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("person_id", "position")
    parent_column = "person_id"
    replaces_children = True


class OrganizationFollowersStream(PerParentStream):
    name = "organization_followers"
    path = "/api/v2/organizations/{id}/followers"
    parent_stream_type = OrganizationsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("organization_id", "position")
    parent_column = "organization_id"
    replaces_children = True


class ProductFollowersStream(PerParentStream):
    name = "product_followers"
    path = "/api/v2/products/{id}/followers"
    parent_stream_type = ProductsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("product_id", "position")
    parent_column = "product_id"
    replaces_children = True


class ProductVariationsStream(PerParentStream):
    name = "product_variations"
    path = "/api/v2/products/{id}/variations"
    parent_stream_type = ProductsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("product_id", "position")
    parent_column = "product_id"
    replaces_children = True


class DealFollowersStream(PerParentStream):
    name = "deal_followers"
    path = "/api/v2/deals/{id}/followers"
    parent_stream_type = DealsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("deal_id", "position")
    parent_column = "deal_id"
    replaces_children = True


class DealParticipantsStream(PerParentStream):
    """A deal's participants (``person_id`` is the person object, its ``value`` the id)."""

    name = "deal_participants"
    path = "/api/v1/deals/{id}/participants"
    parent_stream_type = DealsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("deal_id", "position")
    parent_column = "deal_id"
    replaces_children = True


class DealDiscountsStream(PerParentStream):
    name = "deal_discounts"
    path = "/api/v2/deals/{id}/discounts"
    parent_stream_type = DealsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("deal_id", "position")
    parent_column = "deal_id"
    paginated = False
    replaces_children = True


class OrganizationRelationshipsStream(PerParentStream):
    """An organization's relationships, as seen from it (``calculated_type``: the other
    organization is its parent, its daughter, or related): each relationship is listed under
    both organizations."""

    name = "organization_relationships"
    path = "/api/v1/organizationRelationships"
    parent_stream_type = OrganizationsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("organization_id", "position")
    parent_column = "organization_id"
    parent_param = "org_id"
    paginated = False
    replaces_children = True
