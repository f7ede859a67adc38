"""Custom fields: readable column names, JSON-schema types and per-record value flattening.

Pipedrive keys custom fields by a 40-character hash. The tap turns each into a snake_case column
named after the field (collisions and Postgres's 63-byte identifier limit handled), keeps a
hash -> column mapping that later runs reuse (so a renamed field keeps its column), types the
column from the field type, emits option labels for enum/set fields and splits composite values
(monetary, daterange, time, timerange, address) into one column per part. Every property carries
its Pipedrive key as ``x-pipedrive-key``.
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
_PART_ALIASES = {"start": ("start", "value"), "end": ("end", "until")}

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


class CustomFieldFlattener:
    """Moves a record's custom-field values into their columns, in place.

    API v2 records hold the values in a ``custom_fields`` object; API v1 records (leads) hold
    them as top-level hash keys, composite values split over sibling keys (``<key>_currency``,
    ``<key>_until``, ...), enum ids as strings and sets as comma-separated ids: ``v1=True``.

    The per-record work runs for every record of every run (tens of thousands per second), so
    it is compiled once per field list into one straight-line function (see
    :func:`compile_flattener`) instead of looping over the fields for each record.
    """

    __slots__ = ("_flatten", "_v1_keys")

    def __init__(self, fields: t.Iterable[CustomField], *, v1: bool = False) -> None:
        fields = list(fields)
        # v1: (hash key, (part, top-level key) per part of a composite value, else None).
        self._v1_keys: list[tuple[str, tuple[tuple[str, str], ...] | None]] | None = None
        if v1:
            self._v1_keys = []
            for f in fields:
                composite = COMPOSITE_PARTS.get(f.field_type)
                self._v1_keys.append(
                    (
                        f.key,
                        None
                        if composite is None
                        else tuple((sub, f"{f.key}{suffix}") for sub, suffix, _ in composite),
                    )
                )
        self._flatten = compile_flattener(fields)

    def _pop_v1_values(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        """Take a v1 record's custom-field keys out of it, as v2-shaped values."""
        values: dict[str, t.Any] = {}
        for key, parts in self._v1_keys or ():
            if parts is None:
                values[key] = record.pop(key, None)
            else:
                value = {sub: record.pop(name, None) for sub, name in parts}
                values[key] = value if any(v is not None for v in value.values()) else None
        return values

    def __call__(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        if self._v1_keys is None:
            values = record.pop("custom_fields", None) or {}
        else:
            values = self._pop_v1_values(record)
        self._flatten(record, values.get)
        return record


_Flatten = t.Callable[[dict[str, t.Any], t.Callable[[str], t.Any]], None]


def source_literal(text: str) -> str:
    """``text`` as a Python string literal (``repr`` of a ``str`` is always one)."""
    if type(text) is not str:
        msg = f"Expected a field key or column name as text, got {type(text).__name__}"
        raise TypeError(msg)
    return repr(text)


def compile_flattener(fields: t.Sequence[CustomField]) -> _Flatten:
    """One function ``flatten(record, get)`` setting every column of ``fields`` in ``record``.

    ``get`` looks a value up by the field's Pipedrive key. Keys and column names enter the
    source only as string literals, option maps only by index into ``O``.
    """
    source = FlattenerSource(fields, value=lambda f: f"get({source_literal(f.key)})")
    lines = ["def flatten(record, get):", *source.lines("record"), "    return None"]
    return t.cast("_Flatten", source.compile(lines, "flatten"))


class FlattenerSource:
    """Python source that sets the columns of custom fields in a record dict.

    Shared by the two compiled record paths: :func:`compile_flattener` (values looked up by
    key in the API's dict) and :mod:`tap_pipedrive.typed_pages` (values read from a struct's
    attributes). ``value`` gives the expression of a field's value; ``wanted``, when given,
    limits the columns set to those it contains (the selected ones).
    """

    def __init__(
        self,
        fields: t.Iterable[CustomField],
        *,
        value: t.Callable[[CustomField], str],
        wanted: t.Container[str] | None = None,
    ) -> None:
        self._fields = list(fields)
        self._value = value
        self._wanted = wanted
        self._options: list[dict[t.Any, str]] = []

    def _keep(self, column: str) -> bool:
        return self._wanted is None or column in self._wanted

    def lines(self, record: str, indent: str = "    ") -> list[str]:
        """Statements (at ``indent``) that set the columns in the dict named ``record``."""
        out: list[str] = []
        for f in self._fields:
            if not any(self._keep(column) for _, column, _ in f.parts):
                continue
            value = self._value(f)
            if f.field_type in ("enum", "set"):
                index = len(self._options)
                self._options.append(f.options)
                out.append(f"{indent}v = {value}; o = O[{index}]")
                if f.field_type == "enum":
                    # The common case (an int id with a label) without a call; the rest by _label.
                    label = "(type(v) is int and o.get(v)) or L(v, o)"
                else:
                    label = "None if v is None else S(v, o)"
                out.append(f"{indent}{record}[{source_literal(f.column)}] = {label}")
            elif f.field_type in COMPOSITE_PARTS:
                parts = [(_PART_ALIASES.get(sub, (sub,)), column) for sub, column, _ in f.parts]
                split: list[str] = []
                for names, column in parts:
                    if not self._keep(column):
                        continue
                    found = f"v.get({source_literal(names[0])})"
                    if len(names) > 1:
                        split.append(f"{indent}    x = {found}")
                        found = f"x if x is not None else v.get({source_literal(names[1])})"
                    split.append(f"{indent}    {record}[{source_literal(column)}] = {found}")
                # Not an object: the value is the main column's, the other parts are empty.
                whole = [
                    f"{indent}    {record}[{source_literal(column)}] = {'None' if i else 'v'}"
                    for i, (_, column) in enumerate(parts)
                    if self._keep(column)
                ]
                out.append(f"{indent}v = {value}")
                out.append(f"{indent}if type(v) is dict:")
                out.extend(split)
                out.append(f"{indent}else:")
                out.extend(whole or [f"{indent}    pass"])
            else:
                out.append(f"{indent}{record}[{source_literal(f.column)}] = {value}")
        return out

    def compile(self, lines: t.Sequence[str], name: str, **names: t.Any) -> t.Callable[..., t.Any]:
        """Compile ``lines`` (a function definition) and return the function ``name``."""
        namespace: dict[str, t.Any] = {
            "O": tuple(self._options),
            "L": _label,
            "S": _labels,
            **names,
        }
        code = compile("\n".join(lines) + "\n", f"<{name}>", "exec")
        exec(code, namespace)  # noqa: S102
        return t.cast("t.Callable[..., t.Any]", namespace[name])


def _labels(chosen: t.Any, options: dict[t.Any, str]) -> list[t.Any]:
    """A set field's chosen ids (a list, or v1's comma-separated text) as labels."""
    if isinstance(chosen, str):
        chosen = [c for c in chosen.split(",") if c]
    return [_label(c, options) for c in chosen]


def _label(value: t.Any, options: dict[t.Any, str]) -> t.Any:
    """An option id (or ``{id, label}``) as its label; unknown ids are kept as text."""
    if value is None:
        return None
    if isinstance(value, dict):
        label = value.get("label")
        return label if label is not None else _label(value.get("id"), options)
    label = options.get(value)
    if label is None and isinstance(value, str) and value.isdigit():
        label = options.get(int(value))
    return label if label is not None else str(value)


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
