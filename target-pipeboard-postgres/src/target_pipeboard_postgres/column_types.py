"""JSON schema -> Postgres type mapping, and the widening rules for schema evolution.

Types are canonical strings (``bigint``, ``numeric``, ``timestamptz``, ``jsonb`` ...); a type
Postgres reports for an existing column is normalised to the same vocabulary first. Arrays map to
``jsonb``: their items are often heterogeneous or nested, and a ``jsonb`` column widens no further,
whereas a typed Postgres array would need its own widening rules and loses JSON nulls inside
objects. Use ``x-sql-datatype`` for a typed array where that is clearly better.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

SMALLINT = "smallint"
INTEGER = "integer"
BIGINT = "bigint"
NUMERIC = "numeric"
DOUBLE = "double precision"
BOOLEAN = "boolean"
TEXT = "text"
DATE = "date"
TIME = "time"
TIMESTAMP = "timestamp"
TIMESTAMPTZ = "timestamptz"
JSONB = "jsonb"

_INT_RANK = {SMALLINT: 1, INTEGER: 2, BIGINT: 3}
_INT_BOUNDS = ((SMALLINT, 2**15), (INTEGER, 2**31), (BIGINT, 2**63))
_TEMPORAL_RANK = {DATE: 1, TIMESTAMP: 2, TIMESTAMPTZ: 3}

_ALIASES = {
    "int2": SMALLINT,
    "int4": INTEGER,
    "int": INTEGER,
    "int8": BIGINT,
    "float8": DOUBLE,
    "float": DOUBLE,
    "bool": BOOLEAN,
    "decimal": NUMERIC,
    "timestamp with time zone": TIMESTAMPTZ,
    "timestamp without time zone": TIMESTAMP,
    "time without time zone": TIME,
    "character varying": TEXT,
    "varchar": TEXT,
    "json": "json",
}
# x-sql-datatype: a type name only, never a column definition. The grammar: a name (one of
# the multi-word SQL names, or a plain identifier), an optional `(n)` or `(n,m)`, an optional
# `with`/`without time zone` (time types only), optional `[]`. Nothing else reaches DDL.
_DECLARED_TYPE = re.compile(
    r"(?P<base>double precision|character varying|char varying|bit varying"
    r"|national character varying|national char varying|national character|national char"
    r"|[a-z_][a-z0-9_]*)"
    r"(?:\s*\(\s*(?P<p>\d+)\s*(?:,\s*(?P<s>\d+)\s*)?\))?"
    r"(?:\s+(?P<tz>with|without) time zone)?"
    r"(?P<array>(?:\s*\[\s*\d*\s*\])*)"
)
# Spellings of one type -> the name Postgres's format_type reports, so a declared type compares
# equal to the column it created on the next run (and is never "widened" to itself).
_FORMAT_TYPE_NAMES = {
    "int2": SMALLINT,
    "smallint": SMALLINT,
    "int": INTEGER,
    "int4": INTEGER,
    "integer": INTEGER,
    "int8": BIGINT,
    "bigint": BIGINT,
    "float4": "real",
    "real": "real",
    "float8": DOUBLE,
    "double precision": DOUBLE,
    "bool": BOOLEAN,
    "boolean": BOOLEAN,
    "decimal": NUMERIC,
    "numeric": NUMERIC,
    "varchar": "character varying",
    "char varying": "character varying",
    "character varying": "character varying",
    "national character varying": "character varying",
    "national char varying": "character varying",
    "char": "character",
    "character": "character",
    "national character": "character",
    "national char": "character",
    "bpchar": "character",
    "varbit": "bit varying",
    "bit varying": "bit varying",
    "timestamptz": "timestamp with time zone",
    "timetz": "time with time zone",
}
_TIME_TYPES = {"timestamp", "time", "timestamptz", "timetz"}
_LENGTH_ONE = {"character", "bit"}  # a bare name means (1)
# Column shorthands, not types: they create a sequence and a default.
_SERIALS = {"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"}


class UnsafeSQLTypeError(ValueError):
    """An ``x-sql-datatype`` that is not a plain type name."""


def normalize(pg_type: str) -> str:
    """The canonical form of a type name as Postgres formats it (``format_type``)."""
    name = " ".join(pg_type.strip().lower().split())
    name = _ALIASES.get(name, name)
    if name.startswith(("character varying(", "varchar(", "character(", "char(")):
        return name  # bounded strings keep their bound until widened
    if name.startswith("timestamp(") and "with time zone" in name:
        return TIMESTAMPTZ
    return name


def _declared_name(match: re.Match[str]) -> str:
    """The format_type spelling of a parsed type (array brackets not included)."""
    base, precision, scale, zone = match.group("base", "p", "s", "tz")
    name = _FORMAT_TYPE_NAMES.get(base, base)
    if base == "float" and scale is None:  # SQL's float(p): binary digits of precision
        return "real" if precision is not None and int(precision) <= 24 else DOUBLE
    if base in _TIME_TYPES:
        with_zone = base.endswith("tz") or zone == "with"
        if base.endswith("tz") and zone == "without":
            msg = f"{base} cannot be `without time zone`"
            raise UnsafeSQLTypeError(msg)
        root = "timestamp" if base.startswith("timestamp") else "time"
        size = f"({precision})" if precision is not None and scale is None else ""
        if scale is not None:
            msg = f"{root} takes one precision, not two"
            raise UnsafeSQLTypeError(msg)
        return f"{root}{size} {'with' if with_zone else 'without'} time zone"
    if zone is not None:
        msg = f"only time and timestamp take `{zone} time zone`"
        raise UnsafeSQLTypeError(msg)
    if precision is None:
        return f"{name}(1)" if name in _LENGTH_ONE else name
    return f"{name}({precision}{'' if scale is None else ',' + scale})"


def sql_datatype(declared: str) -> str:
    """An ``x-sql-datatype`` value checked to be a type name, in canonical form.

    Raises:
        UnsafeSQLTypeError: anything but a type name (a column constraint, a default, a
            second statement, an identity or serial column ...).
    """
    text = " ".join(declared.strip().lower().split())
    match = _DECLARED_TYPE.fullmatch(text)
    if match is None:
        msg = (
            f"x-sql-datatype {declared!r} is not a Postgres type name (allowed: a type name, "
            "optionally with (n) or (n,m), with/without time zone, and [])"
        )
        raise UnsafeSQLTypeError(msg)
    if match.group("base") in _SERIALS:
        msg = (
            f"x-sql-datatype {declared!r} is a column shorthand that adds a sequence and a "
            "default, not a type; declare integer or bigint"
        )
        raise UnsafeSQLTypeError(msg)
    try:
        name = _declared_name(match)
    except UnsafeSQLTypeError as exc:
        msg = f"x-sql-datatype {declared!r}: {exc}"
        raise UnsafeSQLTypeError(msg) from None
    if match.group("array"):
        # format_type reports any array as element[] (dimensions are not enforced)
        return f"{name}[]"
    return normalize(name)


def json_types(schema: Mapping[str, Any]) -> set[str]:
    """The JSON types a property schema admits (``anyOf``/``oneOf`` flattened)."""
    found: set[str] = set()
    declared = schema.get("type")
    if isinstance(declared, str):
        found.add(declared)
    elif isinstance(declared, list):
        found.update(t for t in declared if isinstance(t, str))
    for key in ("anyOf", "oneOf"):
        for member in schema.get(key) or ():
            if isinstance(member, Mapping):
                found |= json_types(member)
    if not found and ("properties" in schema):
        found.add("object")
    return found


def _integer_type(schema: Mapping[str, Any]) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(low, int | float) and isinstance(high, int | float):
        for name, bound in _INT_BOUNDS:
            if -bound <= low and high < bound:
                return name
        return NUMERIC
    return BIGINT


def _string_type(schema: Mapping[str, Any]) -> str:
    fmt = schema.get("format")
    if fmt == "date-time":
        return TIMESTAMPTZ
    if fmt == "date":
        return DATE
    if fmt == "time":
        return TIME
    if fmt == "x-singer.decimal":
        return NUMERIC
    return TEXT


def _members(schema: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for key in ("anyOf", "oneOf"):
        for member in schema.get(key) or ():
            if isinstance(member, Mapping):
                yield member


def sql_type(schema: Mapping[str, Any]) -> str:
    """The Postgres type for a property schema; unions resolve to the widest member."""
    declared = schema.get("x-sql-datatype")
    if isinstance(declared, str):
        return sql_datatype(declared)
    members = list(_members(schema))
    # A null member only makes the column nullable (every column is).
    candidates: list[str] = [sql_type(m) for m in members if json_types(m) != {"null"}]
    kinds = schema.get("type")
    kind_list = [kinds] if isinstance(kinds, str) else list(kinds or [])
    for kind in kind_list:
        if kind == "integer":
            candidates.append(_integer_type(schema))
        elif kind == "number":
            candidates.append(NUMERIC)
        elif kind == "boolean":
            candidates.append(BOOLEAN)
        elif kind == "string":
            candidates.append(_string_type(schema))
        elif kind in {"object", "array"}:
            candidates.append(JSONB)
    if not candidates:
        if members or "null" in kind_list:
            return TEXT  # only ever null: the most widenable scalar type
        return JSONB  # no type at all: anything may come
    result = candidates[0]
    for other in candidates[1:]:
        result = widen(result, other)
    return result


def _family(type_name: str) -> str:
    if type_name in _INT_RANK:
        return "int"
    if type_name == NUMERIC or type_name.startswith("numeric("):
        return "numeric"
    if type_name == DOUBLE or type_name == "real":
        return "float"
    if type_name in _TEMPORAL_RANK:
        return "temporal"
    if type_name == TEXT or type_name.startswith(("character", "varchar", "char(")):
        return "text"
    if type_name in {JSONB, "json"}:
        return "json"
    return type_name


def widen(current: str, incoming: str) -> str:
    """The narrowest type holding every value of both types, without altering any value."""
    if current == incoming:
        return current
    a, b = _family(current), _family(incoming)
    if "json" in (a, b):
        return JSONB
    if a == b == "int":
        return max(current, incoming, key=_INT_RANK.__getitem__)
    if {a, b} <= {"int", "numeric", "float"}:
        if {a, b} == {"int", "float"} and BIGINT not in (current, incoming):
            return DOUBLE if "real" not in (current, incoming) else NUMERIC
        return NUMERIC
    if a == b == "temporal":
        return max(current, incoming, key=_TEMPORAL_RANK.__getitem__)
    return TEXT


def is_textual(type_name: str) -> bool:
    """Whether a column of this type stores strings as they are."""
    return _family(type_name) == "text"


def is_json(type_name: str) -> bool:
    """Whether a column of this type stores JSON documents."""
    return _family(type_name) == "json"
