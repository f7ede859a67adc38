"""Per-record lists: followers of deals, persons, organizations and products, product
variations, deal participants and discounts, organization relationships. One request per
record, read only for the records changed since the bookmark (the parents are incremental), so
their cost per run follows the changes. Opt-in (see ``OPT_IN_STREAM_TYPES``).

Every one is a child set (``replaces_children``), keyed by the parent's id and the position:
each changed parent's rows replace its earlier ones, so a removed follower, variation or
participant disappears at the next run."""

from __future__ import annotations

from tap_pipedrive.streams.bases import PerParentStream
from tap_pipedrive.streams.catalog import ProductsStream
from tap_pipedrive.streams.contacts import OrganizationsStream, PersonsStream
from tap_pipedrive.streams.sales import DealsStream

#: Every one is a child set: a removed follower, participant or variation disappears at the
#: parent's next read.
PER_RECORD_STREAMS = PerParentStream.child_sets(
    # stream, parent stream, column of the parent's id, path[, other attributes]
    ("person_followers", PersonsStream, "person_id", "/api/v2/persons/{id}/followers"),
    (
        "organization_followers",
        OrganizationsStream,
        "organization_id",
        "/api/v2/organizations/{id}/followers",
    ),
    ("product_followers", ProductsStream, "product_id", "/api/v2/products/{id}/followers"),
    ("product_variations", ProductsStream, "product_id", "/api/v2/products/{id}/variations"),
    ("deal_followers", DealsStream, "deal_id", "/api/v2/deals/{id}/followers"),
    # A deal's participants (``person_id`` is the person object, its ``value`` the id).
    ("deal_participants", DealsStream, "deal_id", "/api/v1/deals/{id}/participants"),
    (
        "deal_discounts",
        DealsStream,
        "deal_id",
        "/api/v2/deals/{id}/discounts",
        {"paginated": False},
    ),
    # An organization's relationships, as seen from it (``calculated_type``: the other
    # organization is its parent, its daughter, or related): each relationship is listed under
    # both organizations.
    (
        "organization_relationships",
        OrganizationsStream,
        "organization_id",
        "/api/v1/organizationRelationships",
        {"parent_param": "org_id", "paginated": False},
    ),
)
