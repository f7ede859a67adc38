"""Records as the API returns them: v2 entities, v1 entities, custom fields in both shapes."""

from __future__ import annotations

from typing import Any

import orjson

from pipedrive_simulator.account import Account
from pipedrive_simulator.fields import FieldDef, v1_values, v2_value
from pipedrive_simulator.store import Record
from pipedrive_simulator.timeutil import to_v1

V2_CUSTOM_ENTITY = {
    "deals": "deal",
    "persons": "person",
    "organizations": "organization",
    "products": "product",
}
INTERNAL_KEYS = ("_serial", "_deleted")


def custom_v2(
    defs: list[FieldDef], values: dict[str, Any], *, keys: set[str] | None, labels: bool
) -> dict[str, Any] | None:
    if not defs:
        return None
    out = {
        f.key: v2_value(f, values.get(f.key), labels) for f in defs if keys is None or f.key in keys
    }
    return out or None


def v2_record(
    account: Account,
    stream: str,
    rec: Record,
    *,
    custom_keys: set[str] | None = None,
    labels: bool = False,
) -> Record:
    out = {k: v for k, v in rec.items() if k not in INTERNAL_KEYS}
    entity = V2_CUSTOM_ENTITY.get(stream)
    if entity is not None:
        out["custom_fields"] = custom_v2(
            account.custom[entity], rec.get("custom_fields") or {}, keys=custom_keys, labels=labels
        )
    return out


def v2_bytes(account: Account, stream: str, rec: Record) -> bytes:
    """The default v2 JSON of a record. Records built from the seed share their custom-field
    value sets, whose JSON is kept, so only the record's own fields are serialised."""
    entity = V2_CUSTOM_ENTITY.get(stream)
    values = rec.get("custom_fields")
    if (
        entity is None
        or not isinstance(values, dict)
        or not account.gen.is_pooled(values)
        or next(reversed(rec)) != "custom_fields"
        or any(key in rec for key in INTERNAL_KEYS)
    ):
        return orjson.dumps(v2_record(account, stream, rec))
    store = account.stores[stream]
    cached = store.fragments.get(id(values))
    if cached is None:
        fragment = orjson.dumps(custom_v2(account.custom[entity], values, keys=None, labels=False))
        cached = (values, fragment)
        store.fragments[id(values)] = cached
    head = orjson.dumps({k: v for k, v in rec.items() if k != "custom_fields"})
    return b"".join((head[:-1], b',"custom_fields":', cached[1], b"}"))


def v1_custom(account: Account, entity: str, values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fdef in account.custom[entity]:
        out.update(v1_values(fdef, values.get(fdef.key)))
    return out


def _name_of(account: Account, stream: str, ident: Any, key: str) -> dict[str, Any] | None:
    if ident is None:
        return None
    rec = account.stores[stream].get(ident)
    return None if rec is None else {key: rec[key]}


def note_v1(account: Account, rec: Record) -> Record:
    out = dict(rec)
    out["add_time"] = to_v1(rec["add_time"])
    out["update_time"] = to_v1(rec["update_time"])
    out["organization"] = _name_of(account, "organizations", rec["org_id"], "name")
    out["person"] = _name_of(account, "persons", rec["person_id"], "name")
    out["deal"] = _name_of(account, "deals", rec["deal_id"], "title")
    out["lead"] = _name_of(account, "leads", rec["lead_id"], "title")
    user = account.stores["users"].get(rec["user_id"])
    out["user"] = (
        None
        if user is None
        else {
            "email": user["email"],
            "name": user["name"],
            "icon_url": user["icon_url"],
            "is_you": user["is_you"],
        }
    )
    return out


def user_v1(rec: Record) -> Record:
    out = dict(rec)
    for key in ("created", "modified", "last_login"):
        out[key] = to_v1(rec[key])
    return out


def lead_v1(account: Account, rec: Record) -> Record:
    """A lead as v1 returns it: the deal custom fields flattened to top-level keys as on v1
    deals, but only those set on the lead ("if a custom field's value hasn't been set for the
    lead, it won't appear in the response")."""
    out = {k: v for k, v in rec.items() if k not in INTERNAL_KEYS and k != "custom_fields"}
    # Leads keep millisecond ISO timestamps in v1.
    for key in ("add_time", "update_time", "archive_time"):
        if out.get(key):
            out[key] = rec[key][:19] + ".000Z"
    values = rec.get("custom_fields") or {}
    for fdef in account.custom["deal"]:
        value = values.get(fdef.key)
        if value is not None:
            out.update(v1_values(fdef, value))
    return out


def file_v1(account: Account, rec: Record, base_url: str) -> Record:
    out = dict(rec)
    out["add_time"] = to_v1(rec["add_time"])
    out["update_time"] = to_v1(rec["update_time"])
    deal = account.stores["deals"].get(rec["deal_id"]) if rec["deal_id"] else None
    out["deal_name"] = deal["title"] if deal else ""
    out["person_name"] = ""
    out["lead_name"] = ""
    out["project_name"] = ""
    out["org_name"] = ""
    out["product_name"] = ""
    out["url"] = f"{base_url}/v1/files/{rec['id']}/download"
    return out


def simple_v1(rec: Record) -> Record:
    out = dict(rec)
    for key in ("add_time", "update_time"):
        if key in out:
            out[key] = to_v1(out[key])
    return out


def _v1_times(out: Record) -> None:
    for key, value in list(out.items()):
        if key.endswith("_time") and isinstance(value, str) and len(value) == 20:
            out[key] = to_v1(value)


def _address_v1(prefix: str, address: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {prefix: None if address is None else address["value"]}
    for part in (
        "subpremise",
        "street_number",
        "route",
        "sublocality",
        "locality",
        "admin_area_level_1",
        "admin_area_level_2",
        "country",
        "postal_code",
        "formatted_address",
    ):
        out[f"{prefix}_{part}"] = None if address is None else address.get(part)
    return out


def _owner_object(account: Account, user_id: int) -> dict[str, Any] | None:
    user = account.stores["users"].get(user_id)
    if user is None:
        return None
    return {
        "id": user["id"],
        "name": user["name"],
        "email": user["email"],
        "has_pic": 0,
        "pic_hash": None,
        "active_flag": user["active_flag"],
        "value": user["id"],
    }


def legacy_v1(account: Account, stream: str, rec: Record) -> Record:
    """A v2 entity in the legacy v1 shape (as /v1/recents carries it): v1 times, custom fields
    flattened to top-level keys, v1 names (``user_id``, ``active_flag``, string addresses)."""
    out = {k: v for k, v in rec.items() if k not in INTERNAL_KEYS and k != "custom_fields"}
    _v1_times(out)
    if stream == "deals":
        out["user_id"] = out.pop("owner_id")
        out["active"] = rec["status"] == "open" and not rec["is_deleted"]
        out["deleted"] = out.pop("is_deleted")
        out["visible_to"] = str(rec["visible_to"])
        labels = out.pop("label_ids")
        out["label"] = ",".join(str(i) for i in labels) if labels else None
    elif stream == "persons":
        out["active_flag"] = not out.pop("is_deleted")
        out["email"] = out.pop("emails")
        out["phone"] = out.pop("phones")
        out["label"] = rec["label_ids"][0] if rec["label_ids"] else None
        out["visible_to"] = str(rec["visible_to"])
        out.pop("postal_address")
        out.update(_address_v1("postal_address", rec.get("postal_address")))
    elif stream == "organizations":
        out["active_flag"] = not out.pop("is_deleted")
        out["owner_id"] = _owner_object(account, rec["owner_id"])
        out["label"] = rec["label_ids"][0] if rec["label_ids"] else None
        out["visible_to"] = str(rec["visible_to"])
        out.pop("address")
        out.update(_address_v1("address", rec.get("address")))
    elif stream == "products":
        out["active_flag"] = not out.pop("is_deleted")
        out["selectable"] = out.pop("is_linkable")
    elif stream == "activities":
        out["active_flag"] = not out.pop("is_deleted")
        out["user_id"] = out.pop("owner_id")
        out["busy_flag"] = out.pop("busy")
        out.pop("location")
        out["location"] = None
        out["participants"] = [
            {"person_id": p["person_id"], "primary_flag": p["primary"]} for p in rec["participants"]
        ]
    entity = V2_CUSTOM_ENTITY.get(stream)
    if entity is not None:
        out.update(v1_custom(account, entity, rec.get("custom_fields") or {}))
    return out


def pipeline_v1(rec: Record) -> Record:
    out = simple_v1(rec)
    out["active"] = not out.pop("is_deleted")
    out["deal_probability"] = out.pop("is_deal_probability_enabled")
    out["url_title"] = rec["name"].lower().replace(" ", "-")
    return out


def stage_v1(rec: Record) -> Record:
    out = simple_v1(rec)
    out["active_flag"] = not out.pop("is_deleted")
    out["rotten_flag"] = out.pop("is_deal_rot_enabled")
    out["rotten_days"] = out.pop("days_to_rotten")
    return out
