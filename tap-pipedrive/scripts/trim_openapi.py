"""Trim the vendored Pipedrive OpenAPI specs to what the tap needs, as JSON.

The tap must not parse the 1 MB YAML files at run time (seconds per start), so this script
extracts each stream's record schema and every GET operation's token cost into
``src/tap_pipedrive/openapi/pipedrive.json``. A test regenerates it and fails when it is stale.

The specs' response schemas leave out some properties the real API sends (v2 deals'
``creator_user_id``, ``archive_time`` and ``local_*_date``, v1 leads' ``archive_time``, ...). A
record schema therefore also gets every property that the real responses recorded in
``vendor/pipedrive-recorded`` show for the stream's own endpoint, typed from the recorded
values (or, where they are all null, from a ``_time``/``_date`` name).

Usage: python scripts/trim_openapi.py [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC_DIR = ROOT.parent / "vendor" / "pipedrive-openapi"
RECORDED_DIR = ROOT.parent / "vendor" / "pipedrive-recorded" / "nango-recorded"
OUTPUT = ROOT / "src" / "tap_pipedrive" / "openapi" / "pipedrive.json"

SPECS = {"v2": "pipedrive-api-v2.openapi.yaml", "v1": "pipedrive-api-v1.openapi.yaml"}

# stream name -> (API version, list path); v1 only where v2 has no such entity.
STREAM_ENDPOINTS: dict[str, tuple[str, str]] = {
    "deals": ("v2", "/deals"),
    "persons": ("v2", "/persons"),
    "organizations": ("v2", "/organizations"),
    "activities": ("v2", "/activities"),
    "products": ("v2", "/products"),
    "deal_products": ("v2", "/deals/products"),
    "pipelines": ("v2", "/pipelines"),
    "stages": ("v2", "/stages"),
    "deal_fields": ("v2", "/dealFields"),
    "person_fields": ("v2", "/personFields"),
    "organization_fields": ("v2", "/organizationFields"),
    "product_fields": ("v2", "/productFields"),
    "activity_fields": ("v2", "/activityFields"),
    "leads": ("v1", "/leads"),
    "notes": ("v1", "/notes"),
    "users": ("v1", "/users"),
    "files": ("v1", "/files"),
    "activity_types": ("v1", "/activityTypes"),
    "currencies": ("v1", "/currencies"),
    # Less central objects (streams/coverage modules).
    "call_logs": ("v1", "/callLogs"),
    "lead_labels": ("v1", "/leadLabels"),
    "lead_sources": ("v1", "/leadSources"),
    "lead_fields": ("v1", "/leadFields"),
    "note_fields": ("v1", "/noteFields"),
    "filters": ("v1", "/filters"),
    "goals": ("v1", "/goals/find"),
    "goal_results": ("v1", "/goals/{id}/results"),
    "projects": ("v2", "/projects"),
    "project_fields": ("v2", "/projectFields"),
    "project_boards": ("v2", "/boards"),
    "project_phases": ("v2", "/phases"),
    "project_templates": ("v2", "/projectTemplates"),
    "tasks": ("v2", "/tasks"),
    "deal_installments": ("v2", "/deals/installments"),
    "roles": ("v1", "/roles"),
    "role_assignments": ("v1", "/roles/{id}/assignments"),
    "role_settings": ("v1", "/roles/{id}/settings"),
    "permission_sets": ("v1", "/permissionSets"),
    "permission_set_assignments": ("v1", "/permissionSets/{id}/assignments"),
    "mail_threads": ("v1", "/mailbox/mailThreads"),
    "user_permissions": ("v1", "/users/{id}/permissions"),
    "person_followers": ("v2", "/persons/{id}/followers"),
    "organization_followers": ("v2", "/organizations/{id}/followers"),
    "product_followers": ("v2", "/products/{id}/followers"),
    "product_variations": ("v2", "/products/{id}/variations"),
    "deal_followers": ("v2", "/deals/{id}/followers"),
    "deal_participants": ("v1", "/deals/{id}/participants"),
    "deal_discounts": ("v2", "/deals/{id}/discounts"),
    "organization_relationships": ("v1", "/organizationRelationships"),
    "mail_messages": ("v1", "/mailbox/mailThreads/{id}/mailMessages"),
}

# Lists that sit under a key of ``data`` rather than being ``data`` itself.
RECORDS_UNDER = {"goals": "goals"}
# Properties of per-parent records that name their parent (the API leaves them implicit).
PARENT_PROPERTIES: dict[str, dict[str, Any]] = {
    "goal_results": {
        "goal_id": {"type": ["string"]},
        "period_start": {"type": ["string", "null"], "format": "date"},
        "period_end": {"type": ["string", "null"], "format": "date"},
    },
    "role_settings": {"role_id": {"type": ["integer"]}},
    "user_permissions": {"user_id": {"type": ["integer"]}},
    # Child sets: keyed by the parent and the position (see PerParentStream.replaces_children).
    **{
        name: {
            parent: {"type": ["integer"]},
            "position": {"type": ["integer"]},
            "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"},
        }
        for name, parent in (
            ("person_followers", "person_id"),
            ("organization_followers", "organization_id"),
            ("product_followers", "product_id"),
            ("product_variations", "product_id"),
            ("deal_followers", "deal_id"),
            ("deal_participants", "deal_id"),
            ("deal_discounts", "deal_id"),
            ("organization_relationships", "organization_id"),
        )
    },
}
# Response properties a stream leaves out (the goal itself is the goals stream's record).
DROPPED_PROPERTIES = {"goal_results": ("goal",)}

# Child tables built from arrays of a parent's records: stream -> (parent stream, array,
# parent key property, properties of a scalar item). Keyed by (parent key, position).
CHILD_ROWS: dict[str, tuple[str, str, str, dict[str, Any] | None]] = {
    "person_emails": ("persons", "emails", "person_id", None),
    "person_phones": ("persons", "phones", "person_id", None),
    "organization_addresses": ("organizations", "address", "organization_id", None),
    "activity_participants": ("activities", "participants", "activity_id", None),
    "activity_attendees": ("activities", "attendees", "activity_id", None),
    "lead_label_assignments": (
        "leads",
        "label_ids",
        "lead_id",
        {"label_id": {"type": ["string", "null"]}},
    ),
    "project_deals": (
        "projects",
        "deal_ids",
        "project_id",
        {"deal_id": {"type": ["integer", "null"]}},
    ),
    "field_options": ("deal_fields", "options", "field_code", None),
}

# Timestamps the specs declare as plain strings; v1 ones are normalised to RFC 3339 by the tap.
DATETIME_KEYS = frozenset(
    {
        "created",
        "modified",
        "last_login",
        "marked_as_done_time",
        "last_incoming_mail_time",
        "last_outgoing_mail_time",
    }
)


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            return _resolve(spec, spec["components"]["schemas"][name])
        return {k: _resolve(spec, v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(spec, item) for item in node]
    return node


def _merge_all_of(node: dict[str, Any]) -> dict[str, Any]:
    if "allOf" not in node:
        return node
    merged: dict[str, Any] = {}
    for part in node["allOf"]:
        part = _merge_all_of(part)
        if "properties" in part:
            merged["type"] = "object"
            merged.setdefault("properties", {}).update(part["properties"])
        else:  # a scalar wrapped in allOf (e.g. a $ref to an enum of integers)
            merged.update({k: v for k, v in part.items() if k != "description"})
    return merged


def _json_schema(node: dict[str, Any], key: str = "") -> dict[str, Any]:
    """OpenAPI schema -> JSON schema; every value nullable (the real API sends nulls freely)."""
    node = _merge_all_of(node)
    for combinator in ("oneOf", "anyOf"):
        if combinator in node:
            return {}
    kind = node.get("type")
    out: dict[str, Any]
    if kind == "object" or "properties" in node:
        props = node.get("properties")
        if props:
            out = {
                "type": ["object", "null"],
                "properties": {k: _json_schema(v, k) for k, v in props.items()},
            }
        else:
            out = {"type": ["object", "null"]}
    elif kind == "array":
        items = node.get("items")
        out = {"type": ["array", "null"]}
        if items:
            out["items"] = _json_schema(items)
    elif kind in {"string", "integer", "number", "boolean"}:
        out = {"type": [kind, "null"]}
        fmt = node.get("format")
        if (
            kind == "string"
            and (key.endswith("_time") or key in DATETIME_KEYS)
            and key not in {"due_time", "duration"}
        ):
            out["format"] = "date-time"
        elif fmt in {"date", "date-time"}:
            out["format"] = fmt
    else:
        return {}
    return out


def _list_item_schema(spec: dict[str, Any], path: str, under: str | None = None) -> dict[str, Any]:
    op = spec["paths"][path]["get"]
    content = op["responses"]["200"]["content"]["application/json"]
    body = _merge_all_of(_resolve(spec, content["schema"]))
    data = _merge_all_of(body["properties"]["data"])
    if under is not None:
        data = _merge_all_of(data["properties"][under])
    items = _merge_all_of(data.get("items", data))
    schema = _json_schema(items)
    schema["type"] = "object"
    return schema


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}")


def _recorded_rows(version: str, path: str) -> list[dict[str, Any]]:
    """Records of real responses to ``GET /{version}{path}`` (or one item of it)."""
    item = r"\d+|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"  # an id or a lead's UUID
    own = re.compile(rf"(/api)?/{version}{re.escape(path)}(/({item}))?")
    rows: list[dict[str, Any]] = []
    for file in sorted(RECORDED_DIR.glob("*.json")):
        for recorded_path, exchange in json.loads(file.read_text()).get("GET", {}).items():
            if exchange.get("status") != 200 or not own.fullmatch(recorded_path):
                continue
            data = (exchange.get("response") or {}).get("data")
            rows += [r for r in (data if isinstance(data, list) else [data]) if isinstance(r, dict)]
    return rows


def _observed_schema(key: str, values: list[Any]) -> dict[str, Any] | None:
    """The JSON schema of a property from recorded values; None when they do not tell."""
    value = next((v for v in values if v is not None), None)
    if value is None:
        if key.endswith("_time"):
            return {"type": ["string", "null"], "format": "date-time"}
        if key.endswith("_date"):
            return {"type": ["string", "null"], "format": "date"}
        return None
    if isinstance(value, bool):
        return {"type": ["boolean", "null"]}
    if isinstance(value, int):
        return {"type": ["integer", "null"]}
    if isinstance(value, float):
        return {"type": ["number", "null"]}
    if isinstance(value, str):
        if _DATETIME.fullmatch(value[:19]) and (key.endswith("_time") or len(value) > 10):
            return {"type": ["string", "null"], "format": "date-time"}
        if _DATE.fullmatch(value):
            return {"type": ["string", "null"], "format": "date"}
        return {"type": ["string", "null"]}
    if isinstance(value, list):
        return {"type": ["array", "null"]}
    return {"type": ["object", "null"]}


def _record_schema(spec: dict[str, Any], version: str, path: str, name: str = "") -> dict[str, Any]:
    schema = _list_item_schema(spec, path, RECORDS_UNDER.get(name))
    props: dict[str, Any] = schema["properties"]
    for key in DROPPED_PROPERTIES.get(name, ()):
        props.pop(key, None)
    props.update(PARENT_PROPERTIES.get(name, {}))
    rows = _recorded_rows(version, path)
    for key in sorted({k for row in rows for k in row} - set(props)):
        observed = _observed_schema(key, [row.get(key) for row in rows])
        if observed is not None:
            props[key] = observed
    return schema


def _child_schema(
    parent: dict[str, Any], array: str, parent_key: str, scalar: dict[str, Any] | None
) -> dict[str, Any]:
    """A child row: the parent's key, the item's position, the item's own properties."""
    node = parent["properties"][array]
    item = node.get("items", node)
    props: dict[str, Any] = {
        parent_key: {"type": ["integer"] if parent_key.endswith("_id") else ["string"]},
        "position": {"type": ["integer"]},
    }
    if parent_key == "field_code":
        props["entity"] = {"type": ["string"]}
    if parent_key == "lead_id":
        props[parent_key] = {"type": ["string"]}
    props.update(scalar if scalar is not None else item.get("properties", {}))
    for key, value in props.items():
        if value == {}:  # oneOf in the spec (option ids: integers, or texts for system fields)
            props[key] = {"type": ["integer", "string", "boolean", "null"]}
    props["_sdc_deleted_at"] = {"type": ["string", "null"], "format": "date-time"}
    return {"type": "object", "properties": props}


def build() -> dict[str, Any]:
    specs = {v: yaml.safe_load((SPEC_DIR / f).read_text()) for v, f in SPECS.items()}
    costs: dict[str, int] = {}
    for version, spec in specs.items():
        prefix = f"/api/{version}"
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                if isinstance(op, dict) and "x-token-cost" in op:
                    costs[f"{method.upper()} {prefix}{path}"] = int(op["x-token-cost"])
    streams = {
        name: {
            "version": version,
            "path": f"/api/{version}{path}",
            "token_cost": costs[f"GET /api/{version}{path}"],
            "schema": _record_schema(specs[version], version, path, name),
        }
        for name, (version, path) in STREAM_ENDPOINTS.items()
    }
    for name, (parent, array, parent_key, scalar) in CHILD_ROWS.items():
        streams[name] = {
            "version": streams[parent]["version"],
            "path": streams[parent]["path"],
            "token_cost": 0,
            "schema": _child_schema(streams[parent]["schema"], array, parent_key, scalar),
        }
    return {
        "generated_by": "tap-pipedrive/scripts/trim_openapi.py",
        "sources": SPECS,
        "token_costs": dict(sorted(costs.items())),
        "streams": streams,
    }


def render() -> str:
    return json.dumps(build(), indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run scripts/trim_openapi.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
