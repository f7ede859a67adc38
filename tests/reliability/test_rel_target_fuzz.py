"""Property-based round trip: random Singer schemas and records through the target into Postgres.

Hypothesis draws a stream's properties (names, JSON-schema types, nullability) and a handful
of records for it (including repeated keys: the last version must win), the target loads
them, and every stored value is compared with what was sent. The target runs in-process here
(the same ``listen`` its console script calls) because a process start per example would
cost more than the example itself; the subprocess path is covered by every other test.
Examples are derandomized, so CI runs the same ones every time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import io
import itertools
import json
from collections.abc import Callable
from typing import Any

import hypothesis.strategies as st
import psycopg
from hypothesis import HealthCheck, given, settings
from psycopg import sql
from psycopg.rows import dict_row
from rel_figures import Figures
from rel_support import bookmark_state, record_msg, schema_msg

EXAMPLES = 100
_stream_numbers = itertools.count()

# Names: what a tap might send that a table can hold verbatim (odd names have their own tests).
names = st.from_regex(r"[a-z][a-z0-9_]{0,24}", fullmatch=True).filter(
    lambda n: not n.startswith("_sdc") and n != "id"
)
text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
aware_datetimes = st.datetimes(
    min_value=dt.datetime(1900, 1, 1),
    max_value=dt.datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [
            dt.UTC,
            dt.timezone(dt.timedelta(hours=5, minutes=30)),
            dt.timezone(dt.timedelta(hours=-8)),
        ]
    ),
)

# kind -> (JSON schema, value strategy)
KINDS: dict[str, tuple[dict[str, Any], st.SearchStrategy[Any]]] = {
    "integer": ({"type": "integer"}, st.integers(-(2**63), 2**63 - 1)),
    "big-integer": ({"type": "integer"}, st.integers(-(10**30), 10**30)),
    "number": ({"type": "number"}, st.floats(allow_nan=False, allow_infinity=False, width=64)),
    "string": ({"type": "string"}, text),
    "boolean": ({"type": "boolean"}, st.booleans()),
    "date-time": (
        {"type": "string", "format": "date-time"},
        aware_datetimes.map(lambda d: d.isoformat()),
    ),
    "date": (
        {"type": "string", "format": "date"},
        st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)).map(lambda d: d.isoformat()),
    ),
    "object": (
        {"type": "object"},
        st.dictionaries(text, json_values, max_size=4),
    ),
    "array": ({"type": "array", "items": {"type": "string"}}, st.lists(text, max_size=4)),
}


@st.composite
def streams(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str], list[dict[str, Any]]]:
    """(JSON-schema properties, property -> kind, records)."""
    prop_names = draw(st.lists(names, min_size=1, max_size=8, unique=True))
    kinds = {n: draw(st.sampled_from(sorted(KINDS))) for n in prop_names}
    nullable = {n: draw(st.booleans()) for n in prop_names}
    properties: dict[str, Any] = {"id": {"type": "integer"}}
    for n in prop_names:
        schema = dict(KINDS[kinds[n]][0])
        if nullable[n]:
            schema["type"] = [schema["type"], "null"]
        properties[n] = schema
    records = []
    for _ in range(draw(st.integers(1, 6))):
        record: dict[str, Any] = {"id": draw(st.integers(1, 4))}  # repeats: last one wins
        for n in prop_names:
            value = KINDS[kinds[n]][1]
            if nullable[n]:
                value = st.none() | value
            # Every record carries every property: what an absent one means is not fuzzed.
            record[n] = draw(value)
        records.append(record)
    return properties, kinds, records


def _same(kind: str, sent: Any, stored: Any) -> bool:
    if sent is None:
        return stored is None
    if kind in ("integer", "big-integer"):
        return int(stored) == sent and decimal.Decimal(stored) == sent
    if kind == "number":
        return float(stored) == sent
    if kind == "date-time":
        if isinstance(stored, str):
            stored = dt.datetime.fromisoformat(stored)
        return bool(stored == dt.datetime.fromisoformat(sent))
    if kind == "date":
        return str(stored) == sent
    if kind in ("object", "array"):
        if isinstance(stored, str):
            stored = json.loads(stored)
        return bool(stored == sent)
    return bool(stored == sent)


def load_in_process(config: dict[str, Any], data: bytes) -> list[dict[str, Any]]:
    """Run the target's listen() on ``data``; the states it emitted."""
    from target_pipeboard_postgres.target import TargetPipeboardPostgres

    target = TargetPipeboardPostgres(config=config, validate_config=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        target.listen(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    return [json.loads(raw) for raw in out.getvalue().splitlines() if raw.strip()]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=streams())
def test_random_schemas_and_records_round_trip(
    case: tuple[dict[str, Any], dict[str, str], list[dict[str, Any]]],
    target_config: Callable[..., dict[str, Any]],
    postgres_url: str,
    pg_schema: str,
    figures: Figures,
) -> None:
    properties, kinds, records = case
    stream = f"fuzz_{next(_stream_numbers)}"
    data = schema_msg(stream, properties)
    for record in records:
        data += record_msg(stream, record)
    data += bookmark_state(stream, len(records))
    figures.add("fuzz_examples")
    beyond_bigint = [
        (n, r[n])
        for r in records
        for n, kind in kinds.items()
        if kind == "big-integer" and r[n] is not None and not -(2**63) <= r[n] < 2**63
    ]
    try:
        states = load_in_process(target_config(batch_size_rows=3), data)
    except Exception as exc:
        # An unbounded JSON-schema integer past bigint: a clear refusal is acceptable too.
        message = str(exc)
        assert beyond_bigint, f"the target failed on valid input: {message}"
        assert stream in message, message
        assert "out of range" in message, message
        return

    assert states
    assert states[-1] == {"bookmarks": {stream: {"position": len(records)}}}
    expected: dict[int, dict[str, Any]] = {}
    for record in records:
        expected[record["id"]] = record  # upsert: the last version of a key replaces it whole
    with psycopg.connect(postgres_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            sql.SQL("select * from {}.{} order by id").format(
                sql.Identifier(pg_schema), sql.Identifier(stream)
            )
        ).fetchall()
    assert [r["id"] for r in rows] == sorted(expected)
    for row in rows:
        sent = expected[row["id"]]
        for name, kind in kinds.items():
            assert name in row, f"property {name!r} has no column; columns: {sorted(row)}"
            assert _same(kind, sent.get(name), row[name]), (
                f"{name} ({kind}): sent {sent.get(name)!r}, stored {row[name]!r}"
            )
