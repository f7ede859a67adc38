"""Changelog entries as change records: one per field change, typed as the entity table.

``GET /v1/{deals|persons|organizations}/{id}/changelog`` lists a record's field changes with
the values as strings (``old_value``/``new_value``, see the v1 spec). A change record names the
entity table's column the field fills and carries both values typed and labelled as that column
holds them: numbers as numbers, booleans as booleans, times as RFC 3339, option ids of enum and
set custom fields as their labels, ``label_ids`` as a list of ids. A composite custom field
(monetary, daterange, time, timerange, address) is one record per column it fills (``value`` and
``value_currency``). A key the entity table has no column for keeps ``column_name`` NULL and its
values as the API sent them.

``log_position`` is the change's place in the record's changelog (oldest 1): it orders the
changes of one second (a deal lost and deleted at once). Record ids are stable,
``<entity id>:<epoch>:<field key>[:<part>]:<digest of the two values>``, so reading a changelog
again (another run, the backfill, a retry) never duplicates a change.
"""

from __future__ import annotations

import hashlib
import json
import typing as t
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tap_pipedrive.custom_fields import COMPOSITE_PARTS, CustomField
from tap_pipedrive.record_code import label_of, labels_of
from tap_pipedrive.timestamps import TimestampError, parse_time
from tap_pipedrive.timestamps import format_time as rfc3339

# Keys the changelog may use where the v2 record (and so the table) names the field otherwise.
KEY_ALIASES: dict[str, dict[str, str]] = {
    "deals": {"user_id": "owner_id"},
    "persons": {"email": "emails", "phone": "phones"},
    "organizations": {},
}
_PART_SOURCES = {"start": ("start", "value"), "end": ("end", "until")}


class ChangelogError(ValueError):
    """A changelog entry that cannot be read."""


def _json_or_text(text: str) -> t.Any:
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def typed(text: str | None, schema: Mapping[str, t.Any]) -> t.Any:
    """A changelog string as a value of a column with this JSON schema (NULL stays NULL)."""
    if text is None:
        return None
    kinds = schema.get("type") or []
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    try:
        if "integer" in kinds:
            return int(float(text)) if text != "" else None
        if "number" in kinds:
            number = float(text) if text != "" else None
            return int(number) if number is not None and number.is_integer() else number
        if "boolean" in kinds:
            return text.strip().lower() in {"true", "1", "yes"}
    except ValueError:
        return text
    if "string" in kinds:
        fmt = schema.get("format")
        if text == "":
            return None if fmt else text
        if fmt == "date-time":
            try:
                return rfc3339(parse_time(text))
            except TimestampError:
                return text
        if fmt == "date":
            return text[:10]
        return text
    if "array" in kinds:
        if text.startswith("["):
            return _json_or_text(text)
        items = schema.get("items") or {}
        return [typed(part, items or {"type": ["integer"]}) for part in text.split(",") if part]
    return _json_or_text(text)


@dataclass(frozen=True)
class Column:
    """Where one field's values go: a column, and how to read a value for it."""

    name: str
    schema: Mapping[str, t.Any]
    field: CustomField | None = None
    part: str = ""  # the key inside a composite value

    def value(self, text: str | None) -> t.Any:
        field = self.field
        if field is None:
            return typed(text, self.schema)
        if text is None:
            return None
        if field.field_type == "enum":
            return label_of(text, field.options)
        if field.field_type == "set":
            chosen = _json_or_text(text)
            return labels_of(chosen if isinstance(chosen, list) else text, field.options)
        if field.field_type in COMPOSITE_PARTS:
            whole = _json_or_text(text)
            if isinstance(whole, dict):
                for source in _PART_SOURCES.get(self.part, (self.part,)):
                    if whole.get(source) is not None:
                        found = whole[source]
                        return typed(str(found), self.schema) if found is not None else None
                return None
            return typed(text, self.schema) if self.part in {"value", "start"} else None
        return typed(text, self.schema)


class ChangeTyper:
    """Maps an entity's changelog field keys to its table's columns."""

    def __init__(
        self,
        stream: str,
        properties: Mapping[str, Mapping[str, t.Any]],
        custom_fields: Iterable[CustomField],
    ) -> None:
        self.stream = stream
        self.aliases = KEY_ALIASES.get(stream, {})
        self.columns: dict[str, list[Column]] = {
            key: [Column(key, schema)] for key, schema in properties.items()
        }
        for field in custom_fields:
            self.columns[field.key] = [
                Column(column, schema, field, sub) for sub, column, schema in field.parts
            ]

    def columns_of(self, field_key: str) -> list[Column]:
        return self.columns.get(self.aliases.get(field_key, field_key), [])


def change_records(
    typer: ChangeTyper, id_key: str, entity_id: int, items: Iterable[Mapping[str, t.Any]]
) -> list[dict[str, t.Any]]:
    """The change records of one entity's changelog entries (any order in, oldest first out)."""
    records: list[dict[str, t.Any]] = []
    entries = list(items)
    for index, item in enumerate(entries):
        key = str(item.get("field_key") or "")
        if not key:
            continue
        when = item.get("time")
        if not when:
            msg = f"{typer.stream} {entity_id}: changelog entry of {key!r} has no time"
            raise ChangelogError(msg)
        try:
            changed_at = parse_time(str(when))
        except TimestampError as exc:
            msg = f"{typer.stream} {entity_id}: changelog entry of {key!r}: {exc}"
            raise ChangelogError(msg) from None
        old, new = item.get("old_value"), item.get("new_value")
        old_text = None if old is None else str(old)
        new_text = None if new is None else str(new)
        digest = hashlib.sha1(
            json.dumps([old_text, new_text]).encode(), usedforsecurity=False
        ).hexdigest()[:10]
        base_id = f"{entity_id}:{int(changed_at.timestamp())}:{key}"
        columns: list[Column | None] = list(typer.columns_of(key)) or [None]
        for column in columns:
            part = f":{column.name}" if column is not None and len(columns) > 1 else ""
            records.append(
                {
                    "id": f"{base_id}{part}:{digest}",
                    id_key: entity_id,
                    "field_key": key,
                    "column_name": None if column is None else column.name,
                    "old_value": old_text if column is None else column.value(old_text),
                    "new_value": new_text if column is None else column.value(new_text),
                    "changed_at": rfc3339(changed_at),
                    "user_id": _int(item.get("actor_user_id")),
                    "change_source": item.get("change_source"),
                    "is_bulk_update": item.get("is_bulk_update_flag"),
                    # Oldest first from 1; orders changes of one second (the log only grows).
                    "log_position": len(entries) - index,
                }
            )
    # Newest first in, oldest first out.
    records.sort(key=lambda r: (str(r["changed_at"]), int(r["log_position"])))
    return records


def _int(value: t.Any) -> int | None:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


# A value of any column: JSON of any type or null, kept as jsonb by a SQL target. (Nested this
# way because the SDK's standard tests take a top-level ``type`` listing every kind as a claim
# that each value is at once a number, a boolean and an object, and a schema without ``type``
# or ``anyOf`` as a claim that no value is null.)
ANY = {
    "anyOf": [
        {"type": "null"},
        {"oneOf": [{"type": ["string", "number", "integer", "boolean", "array", "object"]}]},
    ],
    "x-sql-datatype": "jsonb",
}


def schema(id_key: str) -> dict[str, t.Any]:
    """The JSON schema of a change stream (values untyped: they take every column's type)."""
    text = {"type": ["string", "null"]}
    return {
        "type": "object",
        "properties": {
            "id": {"type": ["string"], "description": "Stable change id."},
            id_key: {"type": ["integer"]},
            "field_key": {"type": ["string"], "description": "Pipedrive's key of the field."},
            "column_name": {
                **text,
                "description": "The column of the entity table the field fills (custom fields "
                "by their readable name); NULL for a key the table has no column for.",
            },
            "old_value": {**ANY, "description": "Value before the change, typed as the column."},
            "new_value": {**ANY, "description": "Value after the change, typed as the column."},
            "changed_at": {"type": ["string"], "format": "date-time"},
            "user_id": {"type": ["integer", "null"]},
            "change_source": text,
            "is_bulk_update": {"type": ["boolean", "null"]},
            "log_position": {
                "type": ["integer", "null"],
                "description": "Place in the record's changelog, oldest first from 1: orders "
                "the changes of one second.",
            },
        },
        "required": ["id", id_key, "field_key", "changed_at"],
    }
