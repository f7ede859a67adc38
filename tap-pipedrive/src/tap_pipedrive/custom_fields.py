"""Custom fields: readable column names and JSON-schema types.

Pipedrive keys custom fields by a 40-character hash. The tap turns each into a snake_case column
named after the field (collisions and Postgres's 63-byte identifier limit handled), keeps a
hash -> column mapping that later runs reuse (so a renamed field keeps its column), types the
column from the field type, emits option labels for enum/set fields and splits composite values
(monetary, daterange, time, timerange, address) into one column per part. Every property carries
its Pipedrive key as ``x-pipedrive-key``. The per-record work (values into columns) is compiled
by :mod:`tap_pipedrive.record_code`.
"""

from __future__ import annotations

import re
import typing as t
import unicodedata
from dataclasses import dataclass, field

PG_IDENTIFIER_BYTES = 63
PIPEDRIVE_KEY = "x-pipedrive-key"
PIPEDRIVE_PART = "x-pipedrive-subfield"
PIPEDRIVE_TYPE = "x-pipedrive-field-type"

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

_STR = {"type": ["string", "null"]}
_DATE = {"type": ["string", "null"], "format": "date"}
_INT = {"type": ["integer", "null"]}
_NUM = {"type": ["number", "null"]}

# Composite types: (key inside the v2 value object, column suffix, schema) per part; the first
# part is the field's own column.
COMPOSITE_PARTS: dict[str, tuple[tuple[str, str, dict[str, t.Any]], ...]] = {
    "monetary": (("value", "", _NUM), ("currency", "_currency", _STR)),
    "daterange": (("start", "", _DATE), ("end", "_until", _DATE)),
    "time": (
        ("value", "", _STR),
        ("timezone_id", "_timezone_id", _INT),
        ("timezone_name", "_timezone_name", _STR),
    ),
    "timerange": (
        ("start", "", _STR),
        ("end", "_until", _STR),
        ("timezone_id", "_timezone_id", _INT),
        ("timezone_name", "_timezone_name", _STR),
    ),
    "address": (("value", "", _STR), *((p, f"_{p}", _STR) for p in ADDRESS_PARTS)),
}

SCALAR_TYPES: dict[str, dict[str, t.Any]] = {
    "int": _INT,
    "double": _NUM,
    "boolean": {"type": ["boolean", "null"]},
    "varchar": _STR,
    "varchar_auto": _STR,
    "varchar_options": _STR,
    "text": _STR,
    "phone": _STR,
    "date": _DATE,
    "enum": _STR,
    "set": {"type": ["array", "null"], "items": {"type": "string"}},
    "user": _INT,
    "org": _INT,
    "people": _INT,
    "deal": _INT,
    "stage": _INT,
    "activity": _INT,
    "project": _INT,
    "lead": _STR,
    "status": _STR,
    "visible_to": _STR,
}

# Where each composite type's value parts may be named differently (v1 style `until`).
PART_ALIASES = {"start": ("start", "value"), "end": ("end", "until")}

_NON_WORD = re.compile(r"[^0-9a-z]+")


def snake_case(name: str) -> str:
    """``"Annual budget (EUR)"`` -> ``"annual_budget_eur"``; accents folded, never empty."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = _NON_WORD.sub("_", folded.lower()).strip("_")
    if not text:
        text = "field"
    if text[0].isdigit():
        text = f"f_{text}"
    return text


@dataclass(frozen=True, slots=True)
class CustomField:
    """One custom field and the column(s) it becomes."""

    key: str
    name: str
    field_type: str
    column: str
    options: dict[t.Any, str] = field(default_factory=dict)

    @property
    def parts(self) -> tuple[tuple[str, str, dict[str, t.Any]], ...]:
        """(value key, column, schema) for every column of this field."""
        composite = COMPOSITE_PARTS.get(self.field_type)
        if composite is None:
            schema = SCALAR_TYPES.get(self.field_type, {})
            return (("", self.column, schema),)
        return tuple((sub, f"{self.column}{suffix}", s) for sub, suffix, s in composite)

    def schema_properties(self) -> dict[str, dict[str, t.Any]]:
        props: dict[str, dict[str, t.Any]] = {}
        for sub, column, schema in self.parts:
            prop = {**schema, PIPEDRIVE_KEY: self.key, PIPEDRIVE_TYPE: self.field_type}
            if sub:
                prop[PIPEDRIVE_PART] = sub
            props[column] = prop
        return props


def _suffix_room(field_type: str) -> int:
    composite = COMPOSITE_PARTS.get(field_type, ())
    return max((len(suffix) for _, suffix, _ in composite), default=0)


def _fit(base: str, key: str, room: int) -> str:
    """Keep ``base`` plus its longest part suffix within Postgres's identifier limit."""
    limit = PG_IDENTIFIER_BYTES - room
    if len(base) <= limit:
        return base
    tag = f"_{key[:8]}"
    return base[: limit - len(tag)].rstrip("_") + tag


_HASH_KEY = re.compile(r"^[0-9a-f]{40}$")


def normalise_definition(defn: dict[str, t.Any]) -> dict[str, t.Any]:
    """A field definition in the v2 shape, whether it came from API v2 or v1.

    v1 names the code ``key`` and the label ``name`` and has no ``is_custom_field``; there a
    custom field is one whose key is a 40-character hash.
    """
    if "field_code" in defn:
        return {**defn, "is_custom_field": bool(defn.get("is_custom_field"))}
    key = str(defn.get("key") or "")
    return {
        "field_code": key,
        "field_name": defn.get("name"),
        "field_type": defn.get("field_type"),
        "options": defn.get("options"),
        "is_custom_field": bool(defn.get("is_custom_field", _HASH_KEY.match(key))),
    }


def plan_custom_fields(
    definitions: t.Iterable[dict[str, t.Any]],
    *,
    reserved: t.Iterable[str],
    known: t.Mapping[str, str] | None = None,
    raw_keys: bool = False,
) -> list[CustomField]:
    """Decide the column of every custom field.

    Args:
        definitions: v2 field definitions (``field_code``, ``field_name``, ``field_type``,
            ``options``, ``is_custom_field``).
        reserved: column names already taken (the entity's standard properties).
        known: hash -> column chosen by an earlier run; kept so renames do not move columns.
        raw_keys: use the 40-character hash itself as the column name.
    """
    known = dict(known or {})
    taken: set[str] = set(reserved)
    custom = [d for d in map(normalise_definition, definitions) if d["is_custom_field"]]
    planned: dict[str, CustomField] = {}

    def columns_of(column: str, field_type: str) -> list[str]:
        composite = COMPOSITE_PARTS.get(field_type)
        if composite is None:
            return [column]
        return [f"{column}{suffix}" for _, suffix, _ in composite]

    def claim(defn: dict[str, t.Any], column: str) -> None:
        key = str(defn["field_code"])
        ftype = str(defn.get("field_type") or "varchar")
        options = {opt["id"]: str(opt["label"]) for opt in defn.get("options") or () if "id" in opt}
        planned[key] = CustomField(key, str(defn.get("field_name") or key), ftype, column, options)
        taken.update(columns_of(column, ftype))

    # First the fields an earlier run already named, so they keep their columns.
    pending = []
    for defn in custom:
        key = str(defn["field_code"])
        ftype = str(defn.get("field_type") or "varchar")
        previous = known.get(key)
        if previous and not taken.intersection(columns_of(previous, ftype)):
            claim(defn, previous)
        else:
            pending.append(defn)
    for defn in pending:
        key = str(defn["field_code"])
        ftype = str(defn.get("field_type") or "varchar")
        room = _suffix_room(ftype)
        if raw_keys:
            column = key
        else:
            column = _fit(snake_case(str(defn.get("field_name") or key)), key, room)
            if taken.intersection(columns_of(column, ftype)):
                column = _fit(f"{column}_{key[:8]}", key, room)
        if taken.intersection(columns_of(column, ftype)):
            column = _fit(f"{column}_{key}", key, room)
        claim(defn, column)
    return [planned[str(d["field_code"])] for d in custom]


ANNOTATIONS = (PIPEDRIVE_KEY, PIPEDRIVE_PART, PIPEDRIVE_TYPE)


def restore_annotations(schema: dict[str, t.Any], source: dict[str, t.Any]) -> dict[str, t.Any]:
    """Copy the ``x-pipedrive-*`` keywords of ``source``'s properties into ``schema``'s.

    The SDK's schema model keeps only standard keywords, so catalogs and SCHEMA messages lose
    the annotations on the way out; this puts them back.
    """
    target = schema.get("properties") or {}
    for name, prop in (source.get("properties") or {}).items():
        if name in target:
            for keyword in ANNOTATIONS:
                if keyword in prop:
                    target[name][keyword] = prop[keyword]
    return schema


def part_suffix(field_type: str | None, subfield: str | None) -> str:
    """The column suffix of one part of a composite field (``""`` for the main column)."""
    for sub, suffix, _ in COMPOSITE_PARTS.get(field_type or "", ()):
        if sub == subfield:
            return suffix
    return ""


def keep_known_columns(entry: dict[str, t.Any], known: t.Mapping[str, str]) -> dict[str, t.Any]:
    """Rename a catalog entry's custom-field properties to the columns earlier runs used.

    A catalog discovered after a field was renamed in Pipedrive names the column after the new
    name; the state remembers hash -> column, so the run keeps writing the old column. Works on
    the raw catalog dict (the SDK's schema model drops the ``x-pipedrive-*`` keywords), and
    renames the selection metadata along with the property.
    """
    props: dict[str, t.Any] = entry.get("schema", {}).get("properties") or {}
    renames: dict[str, str] = {}
    for name, prop in props.items():
        key = prop.get(PIPEDRIVE_KEY)
        if not isinstance(key, str) or key not in known:
            continue
        wanted = known[key] + part_suffix(prop.get(PIPEDRIVE_TYPE), prop.get(PIPEDRIVE_PART))
        if wanted != name:
            renames[name] = wanted
    taken = set(props) - set(renames)
    renames = {old: new for old, new in renames.items() if new not in taken}
    if not renames:
        return entry
    entry["schema"]["properties"] = {renames.get(k, k): v for k, v in props.items()}
    for meta in entry.get("metadata") or ():
        crumb = meta.get("breadcrumb") or []
        if len(crumb) == 2 and crumb[0] == "properties" and crumb[1] in renames:
            meta["breadcrumb"] = ["properties", renames[crumb[1]]]
    return entry


def annotate_keys(properties: dict[str, dict[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    """Give standard properties an ``x-pipedrive-key`` equal to their API name."""
    for name, prop in properties.items():
        if not name.startswith("_sdc_"):
            prop.setdefault(PIPEDRIVE_KEY, name)
    return properties
