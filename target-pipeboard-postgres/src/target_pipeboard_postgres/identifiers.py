"""Postgres identifiers: conforming names, the 63-byte limit, stream name parts, snake_case.

Names are conformed like the SDK's SQL targets do (lower case, ``.``/``-``/space to ``_``,
other punctuation dropped, leading digit prefixed with ``_``) so users switching from another
target find the same names. Unlike them, names longer than Postgres's 63 bytes are shortened
deterministically (a prefix plus a hash of the full name), and two properties that conform to
the same name never share a column: the later one gets a hashed suffix.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_IDENTIFIER_BYTES = 63
_HASH_CHARS = 8
_DROP = re.compile(r"[^\w\-.\s]", re.UNICODE)
_SEPARATORS = re.compile(r"[.\-\s]")


def _hash(name: str) -> str:
    return hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:_HASH_CHARS]


def _truncate_bytes(name: str, limit: int) -> str:
    encoded = name.encode()[:limit]
    return encoded.decode(errors="ignore")


def conform(name: str) -> str:
    """The conformed (not yet length-limited) form of a stream or property name."""
    cleaned = _SEPARATORS.sub("_", _DROP.sub("", name).strip().lower())
    if not cleaned:
        return f"_{_hash(name)}"
    if cleaned[0].isdigit():
        cleaned = f"_{cleaned}"
    return cleaned


def with_suffix(base: str, original: str) -> str:
    """``base`` cut so that ``base_<hash of original>`` fits in 63 bytes."""
    room = MAX_IDENTIFIER_BYTES - _HASH_CHARS - 1
    return f"{_truncate_bytes(base, room)}_{_hash(original)}"


def fit(name: str, hash_of: str | None = None) -> str:
    """``name`` within Postgres's 63 bytes: the one fitter of the package.

    A name that fits is kept; a longer one is cut (never inside a character) and given a hash
    of ``hash_of`` (default: the name itself). Names already in use depend on this: it must
    never change (see the pinned names in the tests).
    """
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        return name
    return with_suffix(name, name if hash_of is None else hash_of)


def identifier(name: str) -> str:
    """A conformed identifier that fits Postgres's limit; long names get a hash suffix."""
    return fit(conform(name), hash_of=name)


def snake_case(text: str) -> str:
    """ASCII snake_case of a display name (``Proposal Made`` -> ``proposal_made``; a camel-case
    boundary becomes ``_``); empty when nothing ASCII is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", ascii_text)
    return re.sub(r"[^0-9A-Za-z]+", "_", spaced).strip("_").lower()


def new_column(prop: str, used: set[str]) -> str:
    """A column name for ``prop`` that is not in ``used``: its identifier, else a hashed one."""
    column = identifier(prop)
    counter = 0
    while column in used:
        counter += 1
        column = with_suffix(conform(prop), prop if counter == 1 else f"{prop}#{counter}")
    return column


def split_stream_name(stream: str, default_schema: str | None) -> tuple[str | None, str]:
    """(schema, table) for a stream: ``schema-table`` names map to that schema.

    As in the SDK's SQL targets: a configured default schema wins; otherwise a stream named
    ``<schema>-<table>`` (or ``<db>-<schema>-<table>``) lands in ``<schema>``.
    """
    parts = stream.split("-")
    table = identifier(stream if len(parts) == 1 else parts[-1])
    if default_schema:
        return default_schema, table
    if len(parts) in {2, 3}:
        return identifier(parts[-2]), table
    return None, table


def derived_name(table: str, suffix: str) -> str:
    """A name for a helper object belonging to ``table`` (fits the limit)."""
    name = f"{table}{suffix}"
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        return name
    return with_suffix(_truncate_bytes(table, 40) + suffix, name)
