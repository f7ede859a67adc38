"""Field definitions (system and custom) and the v1 / v2 shapes of custom-field values.

Internally a record keeps its custom-field values in the v2 form (``custom_fields`` object keyed
by the 40-character hash). The v1 form (top-level keys with ``_currency`` / ``_until`` /
``_timezone_id`` / address-part siblings) is derived from it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

ADDRESS_PARTS = (
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
)

# v1 sibling keys each custom field type adds next to its own key.
V1_SUFFIXES: dict[str, tuple[str, ...]] = {
    "monetary": ("currency",),
    "daterange": ("until",),
    "time": ("timezone_id", "timezone_name"),
    "timerange": ("until", "timezone_id", "timezone_name"),
    "address": ADDRESS_PARTS,
}

OPTION_TYPES = frozenset({"enum", "set"})

# The v1 field schema allows fewer field_type values than v2; system fields of the other v2 types
# are reported as the nearest v1 type.
V1_FIELD_TYPES = {
    "int": "double",
    "deal": "double",
    "stage": "enum",
    "status": "enum",
    "boolean": "enum",
    "price_list": "varchar",
    "lead": "varchar",  # lead ids are UUIDs
}

# The mix of custom field types a realistic account has on deals (about 40 fields).
DEAL_CUSTOM_MIX: tuple[tuple[str, str], ...] = (
    ("varchar", "Lead source detail"),
    ("varchar", "Contract number"),
    ("varchar", "Competitor"),
    ("varchar", "Referral partner"),
    ("varchar", "Campaign code"),
    ("varchar", "Purchase order"),
    ("text", "Decision criteria"),
    ("text", "Next steps"),
    ("text", "Risk notes"),
    ("phone", "Billing phone"),
    ("phone", "Champion phone"),
    ("double", "Seats"),
    ("double", "Discount percent"),
    ("double", "Score"),
    ("double", "Contract years"),
    ("monetary", "Setup fee"),
    ("monetary", "Annual budget"),
    ("monetary", "Expansion potential"),
    ("monetary", "Services value"),
    ("enum", "Deal type"),
    ("enum", "Region"),
    ("enum", "Priority"),
    ("enum", "Payment terms"),
    ("enum", "Segment"),
    ("set", "Products of interest"),
    ("set", "Integrations"),
    ("set", "Stakeholders involved"),
    ("user", "Solutions engineer"),
    ("user", "Account manager"),
    ("org", "Reseller"),
    ("people", "Champion"),
    ("people", "Economic buyer"),
    ("date", "Contract start"),
    ("date", "Renewal date"),
    ("date", "Demo date"),
    ("daterange", "Trial period"),
    ("daterange", "Rollout window"),
    ("time", "Preferred call time"),
    ("timerange", "Support hours"),
    ("address", "Delivery address"),
    ("address", "Billing address"),
    ("varchar_auto", "Industry vertical"),
)
PERSON_CUSTOM_MIX: tuple[tuple[str, str], ...] = (
    ("varchar", "Department"),
    ("enum", "Seniority"),
    ("set", "Interests"),
    ("date", "First contact"),
    ("phone", "Assistant phone"),
    ("double", "NPS"),
    ("address", "Home office"),
    ("monetary", "Signing authority"),
)
ORG_CUSTOM_MIX: tuple[tuple[str, str], ...] = (
    ("varchar", "VAT number"),
    ("enum", "Tier"),
    ("set", "Markets"),
    ("double", "Employees (reported)"),
    ("monetary", "Annual revenue (reported)"),
    ("date", "Customer since"),
    ("user", "Key account owner"),
    ("text", "Account plan"),
)
PRODUCT_CUSTOM_MIX: tuple[tuple[str, str], ...] = (
    ("varchar", "SKU family"),
    ("enum", "Product line"),
    ("double", "Weight kg"),
    ("date", "Launch date"),
)
CUSTOM_MIX: dict[str, tuple[tuple[str, str], ...]] = {
    "deal": DEAL_CUSTOM_MIX,
    "person": PERSON_CUSTOM_MIX,
    "organization": ORG_CUSTOM_MIX,
    "product": PRODUCT_CUSTOM_MIX,
    "activity": (),
}

OPTION_LABELS: dict[str, tuple[str, ...]] = {
    "Deal type": ("New business", "Upsell", "Renewal", "Cross-sell"),
    "Region": ("EMEA", "North America", "LATAM", "APAC"),
    "Priority": ("Low", "Medium", "High", "Critical"),
    "Payment terms": ("Net 15", "Net 30", "Net 60", "Prepaid"),
    "Segment": ("SMB", "Mid-market", "Enterprise"),
    "Products of interest": ("Core", "Analytics", "Automation", "Mobile", "API"),
    "Integrations": ("Salesforce", "HubSpot", "Slack", "Google Workspace", "Microsoft 365"),
    "Stakeholders involved": ("IT", "Finance", "Legal", "Procurement", "Operations"),
    "Seniority": ("Junior", "Mid", "Senior", "Executive"),
    "Interests": ("Webinars", "Newsletters", "Events", "Case studies"),
    "Tier": ("Bronze", "Silver", "Gold", "Platinum"),
    "Markets": ("Nordics", "DACH", "Benelux", "UK", "US"),
    "Product line": ("Hardware", "Software", "Services"),
}

# System fields per entity: (key, name, field_type, v2 field_code).
SYSTEM_FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "deal": (
        ("id", "ID", "int"),
        ("title", "Title", "varchar"),
        ("creator_user_id", "Creator", "user"),
        ("owner_id", "Owner", "user"),
        ("value", "Value", "monetary"),
        ("currency", "Currency", "varchar"),
        ("person_id", "Contact person", "people"),
        ("org_id", "Organization", "org"),
        ("pipeline_id", "Pipeline", "int"),
        ("stage_id", "Stage", "stage"),
        ("status", "Status", "status"),
        ("probability", "Probability", "double"),
        ("lost_reason", "Lost reason", "varchar"),
        ("visible_to", "Visible to", "visible_to"),
        ("add_time", "Deal created", "date"),
        ("update_time", "Update time", "date"),
        ("stage_change_time", "Last stage change", "date"),
        ("close_time", "Deal closed on", "date"),
        ("won_time", "Won time", "date"),
        ("lost_time", "Lost time", "date"),
        ("expected_close_date", "Expected close date", "date"),
        ("label_ids", "Label", "set"),
    ),
    "person": (
        ("id", "ID", "int"),
        ("name", "Name", "varchar"),
        ("first_name", "First name", "varchar"),
        ("last_name", "Last name", "varchar"),
        ("owner_id", "Owner", "user"),
        ("org_id", "Organization", "org"),
        ("emails", "Email", "varchar"),
        ("phones", "Phone", "phone"),
        ("add_time", "Person created", "date"),
        ("update_time", "Update time", "date"),
        ("visible_to", "Visible to", "visible_to"),
        ("label_ids", "Labels", "set"),
        ("job_title", "Job title", "varchar"),
    ),
    "organization": (
        ("id", "ID", "int"),
        ("name", "Name", "varchar"),
        ("owner_id", "Owner", "user"),
        ("address", "Address", "address"),
        ("add_time", "Organization created", "date"),
        ("update_time", "Update time", "date"),
        ("visible_to", "Visible to", "visible_to"),
        ("label_ids", "Labels", "set"),
        ("website", "Website", "varchar"),
        ("industry", "Industry", "enum"),
        ("employee_count", "Number of employees", "int"),
    ),
    "product": (
        ("id", "ID", "int"),
        ("name", "Name", "varchar"),
        ("code", "Product code", "varchar"),
        ("unit", "Unit", "varchar"),
        ("tax", "Tax", "double"),
        ("prices", "Unit prices", "price_list"),
        ("owner_id", "Owner", "user"),
        ("category", "Category", "enum"),
        ("add_time", "Product created", "date"),
        ("update_time", "Update time", "date"),
    ),
    "activity": (
        ("id", "ID", "int"),
        ("subject", "Subject", "varchar"),
        ("type", "Type", "enum"),
        ("owner_id", "Assigned to user", "user"),
        ("deal_id", "Deal", "deal"),
        ("person_id", "Contact person", "people"),
        ("org_id", "Organization", "org"),
        ("due_date", "Due date", "date"),
        ("due_time", "Due time", "time"),
        ("duration", "Duration", "time"),
        ("done", "Done", "boolean"),
        ("add_time", "Add time", "date"),
        ("update_time", "Update time", "date"),
        ("note", "Note", "text"),
    ),
    # Leads carry the deal custom fields; these are their own (system) fields.
    "lead": (
        ("title", "Title", "varchar"),
        ("owner_id", "Owner", "user"),
        ("person_id", "Contact person", "people"),
        ("organization_id", "Organization", "org"),
        ("value", "Value", "monetary"),
        ("expected_close_date", "Expected close date", "date"),
        ("visible_to", "Visible to", "visible_to"),
        ("add_time", "Lead created", "date"),
        ("update_time", "Update time", "date"),
    ),
    "note": (
        ("content", "Content", "text"),
        ("user_id", "User", "user"),
        ("deal_id", "Deal", "deal"),
        ("lead_id", "Lead", "lead"),
        ("person_id", "Person", "people"),
        ("org_id", "Organization", "org"),
        ("add_time", "Add time", "date"),
        ("update_time", "Update time", "date"),
        ("pinned_to_deal_flag", "Note is pinned to deal", "enum"),
        ("pinned_to_person_flag", "Note is pinned to person", "enum"),
        ("pinned_to_organization_flag", "Note is pinned to organization", "enum"),
        ("pinned_to_lead_flag", "Note is pinned to lead", "enum"),
    ),
}

# GET /v1/noteFields documents a shorter definition than the other v1 field lists.
NOTE_FIELD_KEYS = (
    "id",
    "key",
    "name",
    "field_type",
    "active_flag",
    "edit_flag",
    "bulk_edit_allowed",
    "mandatory_flag",
    "options",
)


def field_key(seed: int, entity: str, serial: int) -> str:
    """A 40-character hash key, deterministic for the seed (as Pipedrive's look random)."""
    return hashlib.sha1(f"{seed}:{entity}:{serial}".encode(), usedforsecurity=False).hexdigest()


@dataclass
class FieldDef:
    id: int
    key: str
    name: str
    field_type: str
    is_custom: bool
    order_nr: int
    add_time: str
    update_time: str
    options: list[dict[str, Any]] | None = None
    entity: str = "deal"
    extra: dict[str, Any] = field(default_factory=dict)
    # Options removed from the field (v1 lists them as ``options_deleted``).
    deleted_options: list[dict[str, Any]] = field(default_factory=list)

    def option(self, option_id: Any) -> dict[str, Any]:
        for option in self.options or ():
            if option["id"] == option_id:
                return option
        raise ValueError(f"field {self.key} has no option {option_id!r}")

    def option_label(self, option_id: Any) -> str | None:
        for option in self.options or ():
            if option["id"] == option_id:
                return str(option["label"])
        return None

    def subfields(self) -> list[dict[str, str]] | None:
        suffixes = V1_SUFFIXES.get(self.field_type) if self.is_custom else None
        if not suffixes:
            return None
        return [
            {
                "field_code": f"{self.key}_{suffix}",
                "field_name": f"{self.name} ({suffix.replace('_', ' ')})",
                "field_type": "int" if suffix == "timezone_id" else "varchar",
            }
            for suffix in suffixes
        ]

    def v2(self) -> dict[str, Any]:
        options = None
        if self.options is not None:
            options = [
                {"id": o["id"], "label": o["label"], "color": o.get("color")} for o in self.options
            ]
        return {
            "field_name": self.name,
            "field_code": self.key,
            "field_type": self.field_type,
            "options": options,
            "subfields": self.subfields(),
            "is_custom_field": self.is_custom,
            "is_optional_response_field": False,
            "ui_visibility": {"add_visible_flag": True, "details_visible_flag": True},
        }

    def v1(self) -> dict[str, Any]:
        options = None
        if self.options is not None:
            options = [{"id": o["id"], "label": o["label"]} for o in self.options]
        deleted: dict[str, Any] = {}
        if self.deleted_options:  # present only when an option was deleted, as documented
            deleted["options_deleted"] = [
                {"id": o["id"], "label": o["label"]} for o in self.deleted_options
            ]
        return {
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "order_nr": self.order_nr,
            "field_type": V1_FIELD_TYPES.get(self.field_type, self.field_type),
            # The v1 field schema declares these as date-time (RFC 3339).
            "add_time": self.add_time,
            "update_time": self.update_time,
            "last_updated_by_user_id": None,
            "created_by_user_id": None,
            "active_flag": True,
            "edit_flag": self.is_custom,
            "index_visible_flag": True,
            "details_visible_flag": True,
            "add_visible_flag": True,
            "important_flag": False,
            "bulk_edit_allowed": True,
            "searchable_flag": self.field_type in {"varchar", "text", "varchar_auto", "phone"},
            "filtering_allowed": True,
            "sortable_flag": True,
            "mandatory_flag": False,
            "options": options,
            **deleted,
        }


def v2_value(fdef: FieldDef, value: Any, with_labels: bool) -> Any:
    """The v2 value of a custom field; option ids become ``{id, label}`` when asked."""
    if value is None or not with_labels or fdef.field_type not in OPTION_TYPES:
        return value
    if fdef.field_type == "enum":
        return {"id": value, "label": fdef.option_label(value)}
    return [{"id": v, "label": fdef.option_label(v)} for v in value]


def v1_values(fdef: FieldDef, value: Any) -> dict[str, Any]:
    """The v1 top-level keys (the field's own key plus its siblings) for one custom field."""
    key, ftype = fdef.key, fdef.field_type
    if ftype == "monetary":
        return {
            key: None if value is None else value["value"],
            f"{key}_currency": None if value is None else value["currency"],
        }
    if ftype == "daterange":
        return {
            key: None if value is None else value["start"],
            f"{key}_until": None if value is None else value["end"],
        }
    if ftype == "time":
        return {
            key: None if value is None else value["value"],
            f"{key}_timezone_id": None if value is None else value["timezone_id"],
            f"{key}_timezone_name": None if value is None else value["timezone_name"],
        }
    if ftype == "timerange":
        return {
            key: None if value is None else value["start"],
            f"{key}_until": None if value is None else value["end"],
            f"{key}_timezone_id": None if value is None else value["timezone_id"],
            f"{key}_timezone_name": None if value is None else value["timezone_name"],
        }
    if ftype == "address":
        out: dict[str, Any] = {key: None if value is None else value["value"]}
        for part in ADDRESS_PARTS:
            out[f"{key}_{part}"] = None if value is None else value.get(part)
        return out
    if ftype == "enum":
        return {key: None if value is None else str(value)}
    if ftype == "set":
        return {key: None if value is None else ",".join(str(v) for v in value)}
    return {key: value}
