"""How a record is built from an API row: one code generator, compiled once per stream.

Every record goes through one function generated here for its stream: custom-field values into
their columns (option labels, composite values split into parts), the delete marker, and for API
v1 the timestamps made RFC 3339. The per-record work runs tens of thousands of times a second,
so it is compiled into straight-line code instead of looping over the fields for each record.

Two row shapes, one generator (:class:`RecordCode`):

- :class:`PlainRecordBuilder`: a row parsed into a dict (v1 pages, dictionaries, pages that do
  not fit the typed structs); the record is built in place, keeping the keys the API sent.
- :class:`tap_pipedrive.typed_pages.TypedPages`: a msgspec struct of a v2 list page; the record
  is built from a template of the selected columns.

Keys and column names enter the generated source only as string literals
(:func:`source_literal`), option maps only by index into ``O``, delete markers only as
constants.
"""

from __future__ import annotations

import typing as t

from tap_pipedrive.custom_fields import COMPOSITE_PARTS, PART_ALIASES, CustomField

#: Markers of a deleted record may only be such constants (they enter compiled source).
_MARKER_TYPES = (bool, int, str, type(None))
#: The keys whose value is a deleted record's delete time, the first one set.
DELETED_STAMP_KEYS = ("update_time", "modified")


def source_literal(text: str) -> str:
    """``text`` as a Python string literal (``repr`` of a ``str`` is always one)."""
    if type(text) is not str:
        msg = f"Expected a field key or column name as text, got {type(text).__name__}"
        raise TypeError(msg)
    return repr(text)


class RecordCode:
    """Python source of a record builder, and its compilation.

    Args:
        row_value: the expression of a row's value for an API key, or ``None`` if the row
            cannot hold that key.
        custom_value: the expression of a custom field's value.
        wanted: when given, only these columns are set (the selected ones).
    """

    def __init__(
        self,
        *,
        row_value: t.Callable[[str], str | None],
        custom_value: t.Callable[[CustomField], str],
        wanted: t.Container[str] | None = None,
    ) -> None:
        self._row_value = row_value
        self._custom_value = custom_value
        self._wanted = wanted
        self._options: list[dict[t.Any, str]] = []
        self._constants: list[t.Any] = []

    def _keep(self, column: str) -> bool:
        return self._wanted is None or column in self._wanted

    def constant(self, value: t.Any) -> str:
        """An expression for ``value``, passed to the compiled code by index into ``K``."""
        self._constants.append(value)
        return f"K[{len(self._constants) - 1}]"

    def custom_columns(
        self, fields: t.Iterable[CustomField], record: str, indent: str = "    "
    ) -> list[str]:
        """Statements (at ``indent``) that set the custom-field columns in the dict ``record``."""
        out: list[str] = []
        for f in fields:
            if not any(self._keep(column) for _, column, _ in f.parts):
                continue
            value = self._custom_value(f)
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
                parts = [(PART_ALIASES.get(sub, (sub,)), column) for sub, column, _ in f.parts]
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

    def deleted_marker(
        self,
        flags: t.Sequence[tuple[str, t.Any]],
        column: str | None,
        record: str,
        indent: str = "    ",
    ) -> list[str]:
        """The delete rule: ``column`` is the row's update time when any (key, marker) of
        ``flags`` matches, else ``None`` (so a record restored in Pipedrive is un-deleted)."""
        if column is None or not self._keep(column):
            return []
        tests = []
        for key, marker in flags:
            if type(marker) not in _MARKER_TYPES:
                msg = f"Delete marker of {key!r} must be a constant, got {type(marker).__name__}"
                raise TypeError(msg)
            value = self._row_value(key)
            if value is not None:
                tests.append(f"{value} == {marker!r}")
        if not tests:
            return []
        stamps = [v for v in map(self._row_value, DELETED_STAMP_KEYS) if v is not None]
        stamp = " or ".join(stamps) or "None"
        target = f"{record}[{source_literal(column)}]"
        return [f"{indent}{target} = ({stamp}) if ({' or '.join(tests)}) else None"]

    def compile(self, lines: t.Sequence[str], name: str, **names: t.Any) -> t.Callable[..., t.Any]:
        """Compile ``lines`` (a function definition) and return the function ``name``."""
        namespace: dict[str, t.Any] = {
            "O": tuple(self._options),
            "K": tuple(self._constants),
            "L": label_of,
            "S": labels_of,
            **names,
        }
        code = compile("\n".join(lines) + "\n", f"<{name}>", "exec")
        exec(code, namespace)  # noqa: S102
        return t.cast("t.Callable[..., t.Any]", namespace[name])


def labels_of(chosen: t.Any, options: dict[t.Any, str]) -> list[t.Any]:
    """A set field's chosen ids (a list, or v1's comma-separated text) as labels."""
    if isinstance(chosen, str):
        chosen = [c for c in chosen.split(",") if c]
    return [label_of(c, options) for c in chosen]


def label_of(value: t.Any, options: dict[t.Any, str]) -> t.Any:
    """An option id (or ``{id, label}``) as its label; unknown ids are kept as text."""
    if value is None:
        return None
    if isinstance(value, dict):
        label = value.get("label")
        return label if label is not None else label_of(value.get("id"), options)
    label = options.get(value)
    if label is None and isinstance(value, str) and value.isdigit():
        label = options.get(int(value))
    return label if label is not None else str(value)


def _pop_parts(row: dict[str, t.Any], parts: tuple[tuple[str, str], ...]) -> t.Any:
    """A v1 composite value, split over sibling top-level keys, as a v2-shaped object."""
    value = {sub: row.pop(name, None) for sub, name in parts}
    return value if any(v is not None for v in value.values()) else None


class PlainRecordBuilder:
    """Builds a record in place from a row parsed into a dict.

    API v2 rows hold custom-field values in a ``custom_fields`` object; API v1 rows (leads)
    hold them as top-level hash keys, composite values split over sibling keys
    (``<key>_currency``, ``<key>_until``, ...), enum ids as strings and sets as
    comma-separated ids: ``v1=True``, which also makes ``time_keys`` RFC 3339.

    Args:
        custom_fields: the custom fields whose columns the record gets.
        v1: the row is an API v1 row.
        deleted_flags: (key, value) pairs that mark a record as deleted.
        deleted_column: the column set to the record's update time when it is deleted.
        time_keys: v1 only: keys whose ``YYYY-MM-DD HH:MM:SS`` values become RFC 3339.
    """

    __slots__ = ("_build",)

    def __init__(
        self,
        custom_fields: t.Iterable[CustomField],
        *,
        v1: bool = False,
        deleted_flags: t.Sequence[tuple[str, t.Any]] = (),
        deleted_column: str | None = None,
        time_keys: t.Sequence[str] = (),
    ) -> None:
        fields = list(custom_fields)
        code: RecordCode

        def custom_value(f: CustomField) -> str:
            composite = COMPOSITE_PARTS.get(f.field_type)
            if not v1:
                return f"c.get({source_literal(f.key)})"
            if composite is None:
                return f"row.pop({source_literal(f.key)}, None)"
            parts = tuple((sub, f"{f.key}{suffix}") for sub, suffix, _ in composite)
            return f"P(row, {code.constant(parts)})"

        code = RecordCode(
            row_value=lambda key: f"row.get({source_literal(key)})", custom_value=custom_value
        )
        lines = ["def build(row):"]
        if v1:
            for key in time_keys:
                lines.append(f"    v = row.get({source_literal(key)})")
                lines.append("    if v and len(v) == 19 and v[10] == ' ':")
                lines.append(f"        row[{source_literal(key)}] = v[:10] + 'T' + v[11:] + 'Z'")
        custom = code.custom_columns(fields, "row")
        if custom and not v1:
            lines.append("    c = row.pop('custom_fields', None) or E")
        lines.extend(custom)
        lines.extend(code.deleted_marker(deleted_flags, deleted_column, "row"))
        lines.append("    return row")
        self._build: t.Callable[[dict[str, t.Any]], dict[str, t.Any]] = code.compile(
            lines, "build", E={}, P=_pop_parts
        )

    def __call__(self, row: dict[str, t.Any]) -> dict[str, t.Any]:
        return self._build(row)
