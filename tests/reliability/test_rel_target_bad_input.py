"""Bad input to the target: a clear error or a correct load, never injection, never half a batch.

Every case starts with the same committed prefix (two full batches of 5 rows and their STATE
messages) so each one also proves that what was committed before the bad input stays
committed, that its state was emitted, and that the batch the bad input landed in is applied
all or nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from rel_figures import Figures
from rel_support import (
    PluginRun,
    bookmark_state,
    fetch_rows,
    record_msg,
    run_target,
    schema_msg,
    tables,
    user_columns,
)

STREAM = "items"
PROPS = {
    "id": {"type": "integer"},
    "name": {"type": ["string", "null"]},
    "amount": {"type": ["number", "null"]},
}
BATCH = 5
COMMITTED = list(range(1, 11))  # two full batches, each followed by a STATE
PENDING = [11, 12]  # in the open batch when the bad input arrives
METADATA_TABLE = "_pipeboard_columns"  # the target's property -> column map, kept per schema
QUALITY_TABLE = "_pipeboard_quality"  # the target's data-quality figures, one row per stream/run


def committed_prefix() -> bytes:
    out = schema_msg(STREAM, PROPS)
    for i in COMMITTED:
        out += record_msg(STREAM, {"id": i, "name": f"row {i}", "amount": i * 1.5})
        if i % BATCH == 0:
            out += bookmark_state(STREAM, i)
    for i in PENDING:
        out += record_msg(STREAM, {"id": i, "name": f"row {i}", "amount": i * 1.5})
    return out


def present_ids(url: str, schema: str) -> set[int]:
    if STREAM not in tables(url, schema):
        return set()
    return {row["id"] for row in fetch_rows(url, schema, STREAM)}


def assert_committed_prefix_intact(run: PluginRun, url: str, schema: str) -> None:
    """Committed rows stay, their state was emitted and is not ahead, the open batch is atomic."""
    ids = present_ids(url, schema)
    assert set(COMMITTED) <= ids, f"committed rows lost: {sorted(set(COMMITTED) - ids)}"
    pending = set(PENDING) & ids
    assert pending in (set(), set(PENDING)), f"half a batch applied: {sorted(pending)}"
    positions = [s["bookmarks"][STREAM]["position"] for s in run.states if "bookmarks" in s]
    assert positions, f"no state emitted for the committed batches; stdout={run.stdout!r}"
    assert max(positions) >= BATCH
    for p in positions:
        assert set(range(1, p + 1)) <= ids, f"state {p} is ahead of the committed rows"


@dataclass(frozen=True)
class BadCase:
    id: str
    payload: bytes
    # The words a clear error must contain (any one of each group), when the target refuses.
    error_mentions: tuple[tuple[str, ...], ...]
    # None: only a refusal is correct. Otherwise a check of the loaded rows.
    correct_load: Callable[[dict[int, dict[str, Any]]], None] | None = None


def _loaded(expected: dict[int, dict[str, Any]]) -> Callable[[dict[int, dict[str, Any]]], None]:
    def check(rows: dict[int, dict[str, Any]]) -> None:
        for key, want in expected.items():
            assert key in rows, f"row {key} missing"
            got = {k: rows[key].get(k) for k in want}
            assert got == want

    return check


def _line_no(extra_lines_before: int = 0) -> str:
    return str(committed_prefix().count(b"\n") + 1 + extra_lines_before)


BAD_CASES = [
    BadCase(
        "truncated-json",
        b'{"type": "RECORD", "stream": "items", "record": {"id": 13, "na\n',
        (("json", "parse", "malformed", "decode", "invalid"), (_line_no(),)),
    ),
    BadCase(
        "not-json",
        b"this is not a singer message\n",
        (("json", "parse", "malformed", "decode", "invalid"), (_line_no(),)),
    ),
    BadCase(
        "json-array-line",
        b"[1, 2, 3]\n",
        (("message", "json", "invalid", "object", "type"),),
    ),
    BadCase(
        "record-before-schema",
        record_msg("never_declared", {"id": 1}),
        (("never_declared",),),
    ),
    BadCase(
        "record-missing-key",
        record_msg(STREAM, {"name": "no id"}),
        ((STREAM,), ("id", "key", "primary")),
    ),
    BadCase(
        "null-key",
        record_msg(STREAM, {"id": None, "name": "null id"}),
        ((STREAM,), ("id", "key", "primary", "null")),
    ),
    BadCase(
        "string-in-integer-key",
        record_msg(STREAM, {"id": "thirteen", "name": "x"}),
        ((STREAM,), ("id", "integer", "type", "thirteen")),
    ),
    BadCase(
        "string-in-number",
        record_msg(STREAM, {"id": 13, "name": "x", "amount": "12.5 EUR"}),
        ((STREAM,), ("amount", "number", "numeric", "type")),
        # Widening the column to text and keeping the value verbatim is also a correct load.
        lambda rows: (
            None if str(rows[13]["amount"]) == "12.5 EUR" else pytest.fail("value altered")
        ),
    ),
    BadCase(
        "object-in-string",
        record_msg(STREAM, {"id": 13, "name": {"nested": True}}),
        ((STREAM,), ("name", "string", "type")),
        lambda rows: (
            None
            if rows[13]["name"] in ({"nested": True}, '{"nested": true}', '{"nested":true}')
            else pytest.fail(f"value altered: {rows[13]['name']!r}")
        ),
    ),
    BadCase(
        "integer-overflow",
        record_msg(STREAM, {"id": 13, "name": "x", "amount": 10**40}),
        ((STREAM,), ("amount", "range", "overflow", "numeric")),
        _loaded({13: {"amount": 10**40}}),
    ),
    BadCase(
        "invalid-utf8",
        b'{"type": "RECORD", "stream": "items", "record": '
        b'{"id": 13, "name": "bad \xff\xfe bytes"}}\n',
        (("utf", "decode", "encoding", "byte"), (_line_no(),)),
        lambda rows: (
            None
            if rows[13]["name"].startswith("bad ") and rows[13]["name"].endswith(" bytes")
            else pytest.fail(f"value altered: {rows[13]['name']!r}")
        ),
    ),
    BadCase(
        "lone-surrogate",
        b'{"type": "RECORD", "stream": "items", "record": {"id": 13, "name": "x\\ud800y"}}\n',
        (("utf", "surrogate", "decode", "encoding", "json", "invalid"),),
        lambda rows: (
            None
            if rows[13]["name"].startswith("x") and rows[13]["name"].endswith("y")
            else pytest.fail(f"value altered: {rows[13]['name']!r}")
        ),
    ),
    BadCase(
        "nul-in-string",
        record_msg(STREAM, {"id": 13, "name": "before\u0000after"}),
        ((STREAM,), ("nul", "null character", "0x00", "\\u0000")),
        _loaded({13: {"name": "beforeafter"}}),
    ),
    BadCase(
        "unknown-message-type",
        b'{"type": "BOGUS", "stream": "items"}\n' + record_msg(STREAM, {"id": 13, "name": "y"}),
        (("bogus", "unknown", "type"),),
        _loaded({13: {"name": "y"}}),
    ),
    BadCase(
        "blank-lines",
        b"\n   \n" + record_msg(STREAM, {"id": 13, "name": "after blanks"}),
        (),
        _loaded({13: {"name": "after blanks"}}),
    ),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c.id for c in BAD_CASES])
def test_bad_input_gives_clear_error_or_correct_load(
    case: BadCase,
    target_config: Callable[..., dict[str, Any]],
    postgres_url: str,
    pg_schema: str,
    tmp_path: Path,
    figures: Figures,
) -> None:
    figures.add("bad_inputs_tried")
    run = run_target(
        target_config(batch_size_rows=BATCH), committed_prefix() + case.payload, tmp_path
    )
    assert_committed_prefix_intact(run, postgres_url, pg_schema)
    if run.returncode == 0:
        assert case.correct_load is not None, (
            f"the target accepted input it cannot load correctly; stderr tail: "
            f"{run.err_text[-2000:]}"
        )
        rows = {r["id"]: r for r in fetch_rows(postgres_url, pg_schema, STREAM)}
        case.correct_load(rows)
        assert set(PENDING) <= set(rows)
        return
    message = run.err_text.lower()
    for group in case.error_mentions:
        assert any(w.lower() in message for w in group), (
            f"the error does not say {group!r}; stderr tail: {run.err_text[-2000:]}"
        )


# --- enormous values --------------------------------------------------------------------------


def test_one_megabyte_string_loads_intact(
    target_config: Callable[..., dict[str, Any]],
    postgres_url: str,
    pg_schema: str,
    tmp_path: Path,
    figures: Figures,
) -> None:
    figures.add("bad_inputs_tried")
    big = "€ab" * (1024 * 1024 // 3 + 1)  # over 1 MB in UTF-8, multi-byte characters included
    payload = record_msg(STREAM, {"id": 13, "name": big}) + bookmark_state(STREAM, 13)
    run = run_target(target_config(batch_size_rows=BATCH), committed_prefix() + payload, tmp_path)
    assert run.returncode == 0, run.err_text[-2000:]
    rows = {r["id"]: r for r in fetch_rows(postgres_url, pg_schema, STREAM)}
    assert rows[13]["name"] == big
    assert run.states[-1]["bookmarks"][STREAM]["position"] == 13


def test_ten_thousand_properties_clear_error_or_every_value_kept(
    target_config: Callable[..., dict[str, Any]],
    postgres_url: str,
    pg_schema: str,
    tmp_path: Path,
    figures: Figures,
) -> None:
    """Postgres allows 1,600 columns; 10,000 properties must be kept some other way or refused."""
    figures.add("bad_inputs_tried")
    wide = {f"p{i:05d}": {"type": ["string", "null"]} for i in range(10_000)}
    props = {"id": {"type": "integer"}, **wide}
    record = {"id": 1, **{k: f"v{k}z" for k in wide}}
    good = schema_msg("narrow", {"id": {"type": "integer"}}) + record_msg("narrow", {"id": 1})
    good += bookmark_state("narrow", 1)
    payload = good + schema_msg("wide", props) + record_msg("wide", record)
    run = run_target(target_config(batch_size_rows=BATCH), payload, tmp_path, timeout=300)
    if run.returncode == 0:
        with psycopg.connect(postgres_url) as conn:
            text = conn.execute(
                sql.SQL("select row_to_json(w)::text from {}.wide w").format(
                    sql.Identifier(pg_schema)
                )
            ).fetchone()
        assert text is not None
        missing = [v for v in record.values() if isinstance(v, str) and v not in text[0]]
        assert not missing, f"{len(missing)} values not stored, e.g. {missing[:3]}"
        return
    err = run.err_text.lower()
    assert "wide" in err, f"the error does not name the stream; stderr: {run.err_text[-2000:]}"
    assert any(w in err for w in ("column", "1600", "too many")), run.err_text[-2000:]
    # The other stream, committed before, is intact.
    assert [r["id"] for r in fetch_rows(postgres_url, pg_schema, "narrow")] == [1]


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": "bottom"}
    for i in range(depth):
        value = {f"k{i}": value, "n": i}
    return value


@pytest.mark.parametrize("depth", [100, 5000])
def test_deeply_nested_object(
    depth: int,
    target_config: Callable[..., dict[str, Any]],
    postgres_url: str,
    pg_schema: str,
    tmp_path: Path,
    figures: Figures,
) -> None:
    figures.add("bad_inputs_tried")
    props = {"id": {"type": "integer"}, "doc": {"type": ["object", "null"]}}
    doc = _nested(depth)
    # json.dumps recurses; build the deep text iteratively.
    doc_text = '{"leaf": "bottom"}'
    for i in range(depth):
        doc_text = f'{{"k{i}": {doc_text}, "n": {i}}}'
    payload = (
        schema_msg("docs", props)
        + record_msg("docs", {"id": 1, "doc": None})
        + bookmark_state("docs", 1)
        + b'{"type": "RECORD", "stream": "docs", "record": {"id": 2, "doc": '
        + doc_text.encode()
        + b"}}\n"
    )
    run = run_target(target_config(batch_size_rows=1), payload, tmp_path)
    if depth <= 100:
        assert run.returncode == 0, run.err_text[-2000:]
    if run.returncode == 0:
        with psycopg.connect(postgres_url) as conn:
            got = conn.execute(
                sql.SQL("select doc::text from {}.docs where id = 2").format(
                    sql.Identifier(pg_schema)
                )
            ).fetchone()
        assert got is not None
        assert json.loads(got[0]) == doc if depth <= 100 else got[0].count("bottom") == 1
        return
    err = run.err_text.lower()
    assert any(w in err for w in ("docs", "depth", "nest", "recursion")), run.err_text[-2000:]
    assert [r["id"] for r in fetch_rows(postgres_url, pg_schema, "docs")] == [1]


# --- names that look like SQL -----------------------------------------------------------------

NASTY_PROPERTIES = [
    'x"; DROP TABLE canary; --',
    "it's",
    'a"b',
    "select",
    "from",
    "user",
    "order",
    "Mixed Case With Spaces",
    "naïve_名前",
    "dollar$sign",
    "semi;colon",
    "back\\slash",
    "p" * 200,
    "p" * 199 + "q",  # shares the first 63 bytes with the one above
    "é" * 100,  # 200 bytes: the 63-byte limit is in bytes, not characters
]


@pytest.mark.parametrize(
    "stream",
    [
        'canary"; DROP TABLE canary; --',
        "select",
        "user",
        "Robert'); DROP TABLE canary;--",
        "s" * 200,
    ],
    ids=["quote-drop", "reserved-select", "reserved-user", "bobby-tables", "200-chars"],
)
def test_sql_looking_names_load_correctly_without_injection(
    stream: str,
    target_config: Callable[..., dict[str, Any]],
    postgres_url: str,
    pg_schema: str,
    tmp_path: Path,
    figures: Figures,
) -> None:
    figures.add("bad_inputs_tried", 1 + len(NASTY_PROPERTIES))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "create table {}.canary (v text); insert into {}.canary values ('alive')"
            ).format(sql.Identifier(pg_schema), sql.Identifier(pg_schema))
        )
    props: dict[str, Any] = {"id": {"type": "integer"}}
    record: dict[str, Any] = {"id": 7}
    for i, name in enumerate(NASTY_PROPERTIES):
        props[name] = {"type": ["string", "null"]}
        record[name] = f"value-{i}'); DROP TABLE canary; --"
    payload = schema_msg(stream, props) + record_msg(stream, record) + bookmark_state(stream, 7)
    run = run_target(target_config(), payload, tmp_path)
    assert run.returncode == 0, run.err_text[-3000:]
    assert run.states[-1] == {"bookmarks": {stream: {"position": 7}}}

    own = ("canary", METADATA_TABLE, QUALITY_TABLE)
    new_tables = [t for t in tables(postgres_url, pg_schema) if t not in own]
    assert len(new_tables) == 1, new_tables
    assert fetch_rows(postgres_url, pg_schema, "canary") == [{"v": "alive"}]
    rows = fetch_rows(postgres_url, pg_schema, new_tables[0])
    assert len(rows) == 1
    stored = user_columns(rows[0])
    # Every property got its own column (no collision after shortening), every value verbatim.
    assert sorted(str(v) for v in stored.values()) == sorted(str(v) for v in record.values())
    # And nothing outside the test's schema changed.
    with psycopg.connect(postgres_url) as conn:
        leaked = conn.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_name ilike %s and table_schema <> %s",
            ("%canary%", pg_schema),
        ).fetchall()
    assert leaked == []


def test_two_streams_conforming_to_one_table_are_not_merged(
    target_config: Callable[..., dict[str, Any]],
    postgres_url: str,
    pg_schema: str,
    tmp_path: Path,
    figures: Figures,
) -> None:
    figures.add("bad_inputs_tried")
    payload = (
        schema_msg("orders;", {"id": {"type": "integer"}, "a": {"type": ["string", "null"]}})
        + record_msg("orders;", {"id": 1, "a": "first stream"})
        + schema_msg("orders", {"id": {"type": "integer"}, "b": {"type": ["string", "null"]}})
        + record_msg("orders", {"id": 1, "b": "second stream"})
    )
    run = run_target(target_config(), payload, tmp_path)
    if run.returncode != 0:
        assert "orders" in run.err_text, run.err_text[-2000:]
        return
    loaded = [
        t for t in tables(postgres_url, pg_schema) if t not in (METADATA_TABLE, QUALITY_TABLE)
    ]
    assert len(loaded) == 2, f"two streams share the table(s) {loaded}"
