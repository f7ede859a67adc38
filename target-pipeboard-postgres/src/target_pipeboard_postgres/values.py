"""Per-value conversions applied on the hot path, chosen once per schema and column type."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from target_pipeboard_postgres import column_types

Converter = Callable[[Any], Any]


def to_json_text(value: Any) -> Any:
    """JSON text for a ``jsonb`` column (a string value becomes a JSON string)."""
    if value is None:
        return None
    return orjson.dumps(value).decode()


def to_text(value: Any) -> Any:
    """Strings as they are; other values as their JSON text (``true``, ``5``, ``{...}``)."""
    if value is None or type(value) is str:
        return value
    return orjson.dumps(value).decode()


def to_scalar(value: Any) -> Any:
    """Scalars as they are; objects and arrays as JSON text."""
    if type(value) is dict or type(value) is list:
        return orjson.dumps(value).decode()
    return value


def converter_for(column_type: str, schema: Mapping[str, Any]) -> Converter | None:
    """The conversion for values of a property landing in a column, or None if none is needed."""
    if column_types.is_json(column_type):
        return to_json_text
    admitted = column_types.json_types(schema)
    if column_types.is_textual(column_type):
        return None if admitted and admitted <= {"string", "null"} else to_text
    if admitted & {"object", "array"} or not admitted:
        return to_scalar
    return None


def strip_nul(value: Any) -> tuple[Any, int]:
    """``value`` with NUL characters removed from every string in it, and how many were."""
    if type(value) is str:
        count = value.count("\x00")
        return (value.replace("\x00", ""), count) if count else (value, 0)
    if type(value) is dict:
        total = 0
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            new_key, n_key = strip_nul(key)
            new_item, n_item = strip_nul(item)
            cleaned[new_key] = new_item
            total += n_key + n_item
        return cleaned, total
    if type(value) is list:
        total = 0
        items = []
        for item in value:
            new_item, n = strip_nul(item)
            items.append(new_item)
            total += n
        return items, total
    return value, 0


def row_builder(
    properties: Sequence[str], converters: Mapping[int, Converter]
) -> Callable[[Mapping[str, Any]], list[Any]]:
    """A function turning a record into its row: the values in column order, converted.

    Generated once per schema so that the per-record work is one call with no loop; the code
    holds only indexes, the names and converters are looked up in its namespace.
    """
    items = []
    for index in range(len(properties)):
        value = f"get(P[{index}])"
        items.append(f"C[{index}]({value})" if index in converters else value)
    source = "def build(record):\n    get = record.get\n    return [" + ", ".join(items) + "]\n"
    namespace: dict[str, Any] = {"P": tuple(properties), "C": dict(converters)}
    exec(compile(source, "<row builder>", "exec"), namespace)  # noqa: S102 - indexes only
    return namespace["build"]  # type: ignore[no-any-return]
