"""Ground truth for tests: every current record exactly as a full read of its list returns it."""

from __future__ import annotations

from typing import Any

from pipedrive_simulator.account import Account, field_entity
from pipedrive_simulator.render import file_v1, lead_v1, note_v1, user_v1, v2_record

V2_LISTS = (
    "persons",
    "organizations",
    "activities",
    "products",
    "pipelines",
    "stages",
    "deal_products",
)
FIELD_STREAMS = (
    "deal_fields",
    "person_fields",
    "organization_fields",
    "product_fields",
    "activity_fields",
)
ENTITIES = (
    "deals",
    "archived_deals",
    *V2_LISTS,
    "leads",
    "archived_leads",
    "notes",
    "users",
    "files",
    "activity_types",
    "currencies",
    *FIELD_STREAMS,
)


def truth(account: Account, entity: str, base_url: str = "") -> list[dict[str, Any]]:
    if entity not in ENTITIES:
        raise ValueError(f"unknown entity {entity!r}; one of: {', '.join(ENTITIES)}")
    with account.lock:
        if entity in FIELD_STREAMS:
            return [d.v2() for d in account.field_defs(field_entity(entity))]
        stream = {"archived_deals": "deals", "archived_leads": "leads"}.get(entity, entity)
        store = account.stores[stream]
        records = list(store.iter_records(store.ids()))
        if entity == "deals":
            return [
                v2_record(account, "deals", r)
                for r in records
                if not r["is_archived"] and account.deal_visible(r)
            ]
        if entity == "archived_deals":
            return [
                v2_record(account, "deals", r)
                for r in records
                if r["is_archived"] and account.deal_visible(r)
            ]
        if entity == "deal_products":
            # Line items of purged deals are unreachable, as the deals are.
            deals = account.stores["deals"]
            return [
                v2_record(account, stream, r)
                for r in records
                if (deal := deals.get(r["deal_id"])) is not None and account.deal_visible(deal)
            ]
        if entity in {"pipelines", "stages"}:
            return [v2_record(account, stream, r) for r in records]
        if entity in V2_LISTS:
            return [v2_record(account, stream, r) for r in records if not r.get("is_deleted")]
        if entity == "notes":
            return [note_v1(account, r) for r in records if r["active_flag"]]
        if entity in {"leads", "archived_leads"}:
            archived = entity == "archived_leads"
            return [
                lead_v1(account, r)
                for r in records
                if r["is_archived"] == archived and not r.get("_deleted")
            ]
        if entity == "files":
            return [file_v1(account, r, base_url) for r in records if r["active_flag"]]
        if entity == "users":
            return [user_v1(r) for r in records]
        return [dict(r) for r in records]
