"""One large Singer load (inserts, then updates of earlier ids) and the checks of what landed.

Shared by the target kill test and the database fault tests: the same input, fed in whole or
resumed from a state position, and the invariants every interrupted load must keep.
"""

from __future__ import annotations

import random
from functools import cache
from typing import Any

from rel_figures import Figures
from rel_support import bookmark_state, fetch_rows, record_msg, schema_msg, tables

STREAM = "kill_load"
IDS = 1200
UPDATES = 400
STATE_EVERY = 40
OVERLAP = 37  # records re-sent before the bookmark on resume
SEED = 20261123
PROPS = {
    "id": {"type": "integer"},
    "seq": {"type": "integer"},
    "payload": {"type": ["string", "null"]},
    "amount": {"type": ["number", "null"]},
}


@cache
def records() -> list[dict[str, Any]]:
    """Every record in input order; ``seq`` is its 1-based position."""
    rng = random.Random(SEED)
    out: list[dict[str, Any]] = []
    for i in range(1, IDS + 1):
        out.append({"id": i})
    for _ in range(UPDATES):
        out.append({"id": rng.randint(1, IDS)})
    for seq, rec in enumerate(out, start=1):
        rec["seq"] = seq
        rec["payload"] = f"payload of {rec['id']} at {seq} " + "x" * (seq % 90)
        rec["amount"] = round(seq * 1.25, 2)
    return out


def singer_lines(after: int = 0) -> list[bytes]:
    """The input from record ``after + 1`` on (SCHEMA first, STATE every STATE_EVERY records)."""
    lines = [schema_msg(STREAM, PROPS)]
    for rec in records()[after:]:
        lines.append(record_msg(STREAM, rec))
        if rec["seq"] % STATE_EVERY == 0:
            lines.append(bookmark_state(STREAM, rec["seq"]))
    return lines


def expected_at(position: int) -> dict[int, int]:
    """id -> the latest seq of that id among the first ``position`` records."""
    latest: dict[int, int] = {}
    for rec in records()[:position]:
        latest[rec["id"]] = rec["seq"]
    return latest


def stored(url: str, schema: str) -> list[dict[str, Any]]:
    return fetch_rows(url, schema, STREAM) if STREAM in tables(url, schema) else []


def state_position(state: dict[str, Any]) -> int:
    return int(state["bookmarks"][STREAM]["position"])


def resume_input(position: int) -> bytes:
    """What a tap resuming from ``position`` sends: an overlap before it, then the rest."""
    return b"".join(singer_lines(after=max(0, position - OVERLAP)))


def assert_state_not_ahead(url: str, schema: str, position: int, context: str = "") -> None:
    """Every record up to ``position`` is stored, at that version or a later one."""
    rows = {r["id"]: r for r in stored(url, schema)}
    behind = {
        i: seq for i, seq in expected_at(position).items() if i not in rows or rows[i]["seq"] < seq
    }
    assert not behind, (
        f"{context}: state says position {position} but {len(behind)} rows are missing or "
        f"older, e.g. {list(behind.items())[:5]}"
    )


def committed_position(url: str, schema: str) -> int:
    """How many records of the input are committed: the latest ``seq`` stored (0 if none)."""
    return max((r["seq"] for r in stored(url, schema)), default=0)


def assert_whole_batches(url: str, schema: str, batch_rows: int, context: str = "") -> int:
    """The table holds exactly the first N records' data for N a whole number of batches.

    Batches commit in input order, each in one transaction, so an interrupted load must leave
    the table as the input left it after some batch: no row of a later or half-applied batch.
    Returns N, the records committed.
    """
    position = committed_position(url, schema)
    rows = {r["id"]: r["seq"] for r in stored(url, schema)}
    assert position % batch_rows == 0, f"{context}: {position} records committed, not a batch end"
    assert rows == expected_at(position), f"{context}: rows are not the input after {position}"
    return position


def assert_complete(url: str, schema: str, figures: Figures) -> None:
    """The table holds exactly one row per id, each at its final version, values intact."""
    final = stored(url, schema)
    want = expected_at(len(records()))
    got_ids = [r["id"] for r in final]
    duplicated = len(got_ids) - len(set(got_ids))
    lost = len(set(want) - set(got_ids))
    stale = [r["id"] for r in final if want.get(r["id"]) != r["seq"]]
    figures.add("rows_checked", len(want))
    figures.add("rows_lost", lost)
    figures.add("rows_duplicated", duplicated)
    assert (lost, duplicated, stale[:5]) == (0, 0, [])
    by_seq = {rec["seq"]: rec for rec in records()}
    for row in final:
        source = by_seq[row["seq"]]
        assert (row["payload"], float(row["amount"])) == (source["payload"], source["amount"])
