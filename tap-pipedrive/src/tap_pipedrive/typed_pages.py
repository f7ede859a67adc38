"""API v2 list pages decoded into typed rows, each row's record built by one compiled function.

Parsed into dicts, a page of 500 deals with 40 custom fields is a thousand dicts (each deal and
its ``custom_fields``), whose values are then copied key by key into the record's columns.
Decoded with msgspec into structs whose fields are the keys the stream knows, the same page is
far fewer objects and decodes in about half the time; a function compiled once per stream (by
:mod:`tap_pipedrive.record_code`, the generator the plain path uses too) then builds each record
from a template of the selected columns (a dict copy, then one store per
column: no resizing, no check for unknown keys, since the struct has none).

A page that does not fit (a key the schema does not know, ``data`` that is not a list of
objects, a body that is not a JSON object or not JSON at all) is not decoded here: the caller
parses it as plain JSON and takes the general path, which logs unknown properties and reports
malformed bodies.
"""

from __future__ import annotations

import typing as t

import msgspec

from tap_pipedrive.record_code import RecordCode, source_literal

if t.TYPE_CHECKING:
    from tap_pipedrive.custom_fields import CustomField

#: The key of a v2 record that holds its custom-field values.
CUSTOM_FIELDS = "custom_fields"


class TypedPages:
    """Typed decoding and record building for one stream's v2 list pages.

    Args:
        keys: the keys of an API record the stream knows (its schema's standard properties,
            ``custom_fields`` included, plus ``carried``).
        custom_fields: the custom fields whose columns the records get.
        columns: the selected properties of the stream, in schema order: every record has
            exactly these keys (``None`` where the API sent nothing), plus ``carried``.
        deleted_flags: (key, value) pairs that mark a record as deleted.
        deleted_column: the column set to the record's update time when it is deleted.
        carried: keys read by the stream (e.g. to decide on child requests) but not emitted;
            they are copied into the record and taken out before it is written.
    """

    def __init__(
        self,
        *,
        keys: t.Sequence[str],
        custom_fields: t.Sequence[CustomField],
        columns: t.Sequence[str],
        deleted_flags: t.Sequence[tuple[str, t.Any]] = (),
        deleted_column: str | None = None,
        carried: t.Sequence[str] = (),
    ) -> None:
        known = list(dict.fromkeys([*keys, *carried]))
        # Struct fields are named a0, a1 ... (JSON keys need not be identifiers).
        self._attr = {key: f"a{i}" for i, key in enumerate(known)}
        custom_attr = {f.key: f"c{i}" for i, f in enumerate(custom_fields)}
        custom_struct: t.Any = msgspec.defstruct(
            "CustomFields",
            [(name, t.Any, None) for name in custom_attr.values()],
            rename={name: key for key, name in custom_attr.items()},
            gc=False,
        )
        fields: list[tuple[str, t.Any, t.Any]] = []
        for key, name in self._attr.items():
            typ: t.Any = t.Any
            if key == CUSTOM_FIELDS and custom_fields:
                typ = custom_struct | None
            fields.append((name, typ, None))
        row: t.Any = msgspec.defstruct(
            "Row",
            fields,
            rename={name: key for key, name in self._attr.items()},
            forbid_unknown_fields=True,
            gc=False,
        )
        page: t.Any = msgspec.defstruct(
            "Page",
            [
                ("data", list[row] | None, None),
                ("additional_data", t.Any, None),
                ("success", t.Any, None),
            ],
        )
        self._decoder: msgspec.json.Decoder[t.Any] = msgspec.json.Decoder(page)
        #: The record of a typed row (one compiled function, called straight for each row).
        self.build: t.Callable[[t.Any], dict[str, t.Any]] = self._compile(
            custom_fields,
            custom_attr,
            custom_struct(),
            columns,
            deleted_flags,
            deleted_column,
            carried,
        )

    def decode(self, content: bytes) -> dict[str, t.Any] | None:
        """The page's envelope with typed rows in ``data``, or ``None`` if it does not fit."""
        try:
            page = self._decoder.decode(content)
        except msgspec.DecodeError:  # ValidationError included: unknown key, wrong shape
            return None
        return {"success": page.success, "data": page.data, "additional_data": page.additional_data}

    def value(self, row: t.Any, key: str) -> t.Any:
        """The value of ``key`` in a typed row (``None`` if the stream does not know it)."""
        name = self._attr.get(key)
        return None if name is None else getattr(row, name, None)

    def _compile(
        self,
        custom_fields: t.Sequence[CustomField],
        custom_attr: dict[str, str],
        no_custom_values: t.Any,
        columns: t.Sequence[str],
        deleted_flags: t.Sequence[tuple[str, t.Any]],
        deleted_column: str | None,
        carried: t.Sequence[str],
    ) -> t.Callable[[t.Any], dict[str, t.Any]]:
        wanted = frozenset(columns)
        attr = self._attr

        def row_value(key: str) -> str | None:
            return f"row.{attr[key]}" if key in attr else None

        code = RecordCode(
            row_value=row_value, custom_value=lambda f: f"c.{custom_attr[f.key]}", wanted=wanted
        )
        lines = ["def build(row):", "    r = T()"]
        for key, name in attr.items():
            if key in wanted and key != deleted_column:
                lines.append(f"    r[{source_literal(key)}] = row.{name}")
        custom_lines = code.custom_columns(custom_fields, "r")
        if custom_lines:
            lines.append(f"    c = row.{attr[CUSTOM_FIELDS]}")
            lines.append("    if c is None:")
            lines.append("        c = E")
            lines.extend(custom_lines)
        lines.extend(code.deleted_marker(deleted_flags, deleted_column, "r"))
        for key in carried:
            lines.append(f"    r[{source_literal(key)}] = row.{attr[key]}")
        lines.append("    return r")
        template = dict.fromkeys(columns)
        build = code.compile(lines, "build", T=template.copy, E=no_custom_values)
        return t.cast("t.Callable[[t.Any], dict[str, t.Any]]", build)
