"""SIGKILL the target mid-load with history mode on, rerun it, and prove history has no gap and
no duplicate.

The input: 300 ids inserted, then 500 updates of random ids, each record with a distinct
`updated_at` (its replication key, one second per record) and content; a STATE every 40 records,
batches of 50. The target's stdin stays open, so it cannot reach the end of its input; the test
waits until the batch holding a seeded record has committed (its STATE is out), waits a further
seeded moment and kills it with SIGKILL while later batches are read or committed. Then:

* the history holds exactly the versions of the first N records for some N: nothing from the
  batch in flight, since versions commit with their batch;
* a rerun from the last emitted STATE (re-sending an overlap before it, as a tap resuming from
  an inclusive bookmark does) completes, and the history then holds exactly one version per
  record of the input, chained per id (each ends where the next begins, only the last is
  current, valid from its `updated_at`): no version lost, none duplicated.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import pytest
from rel_support import (
    bookmark_state,
    kill_target_mid_load,
    line,
    record_msg,
    run_target,
    write_config,
)

STREAM = "history_kill"
IDS = 300
UPDATES = 500
STATE_EVERY = 40
BATCH_ROWS = 50
OVERLAP = 37
SEED = 20261207
KILL_POINTS = 6
START = datetime(2024, 1, 1, tzinfo=UTC)


@cache
def records() -> list[dict[str, Any]]:
    """Every record in input order; ``seq`` is its 1-based position."""
    rng = random.Random(SEED)
    ids = list(range(1, IDS + 1)) + [rng.randint(1, IDS) for _ in range(UPDATES)]
    return [
        {
            "id": i,
            "seq": seq,
            "label": f"version {seq} of {i}",
            "updated_at": (START + timedelta(seconds=seq)).isoformat(),
        }
        for seq, i in enumerate(ids, start=1)
    ]


def singer_lines(after: int = 0) -> list[bytes]:
    schema = {
        "type": "SCHEMA",
        "stream": STREAM,
        "key_properties": ["id"],
        "bookmark_properties": ["updated_at"],
        "schema": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "seq": {"type": "integer"},
                "label": {"type": "string"},
                "updated_at": {"type": "string", "format": "date-time"},
            },
        },
    }
    lines = [line(schema)]
    for rec in records()[after:]:
        lines.append(record_msg(STREAM, rec))
        if rec["seq"] % STATE_EVERY == 0:
            lines.append(bookmark_state(STREAM, rec["seq"]))
    return lines


def state_position(state: dict[str, Any]) -> int:
    return int(state["bookmarks"][STREAM]["position"])


def history(url: str, schema: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (schema, f"{STREAM}_history"),
        ).fetchone()
        if exists is None:
            return []
        return conn.execute(
            f'SELECT id, seq, _valid_from, _valid_to, _is_current FROM "{schema}".'
            f'"{STREAM}_history" ORDER BY id, _valid_from'
        ).fetchall()


def expected_history(position: int) -> list[tuple[Any, ...]]:
    """The versions of the first ``position`` records, chained per id."""
    by_id: dict[int, list[dict[str, Any]]] = {}
    for rec in records()[:position]:
        by_id.setdefault(rec["id"], []).append(rec)
    out = []
    for i in sorted(by_id):
        versions = by_id[i]
        for n, rec in enumerate(versions):
            valid_from = START + timedelta(seconds=rec["seq"])
            nxt = versions[n + 1] if n + 1 < len(versions) else None
            valid_to = START + timedelta(seconds=nxt["seq"]) if nxt else None
            out.append((i, rec["seq"], valid_from, valid_to, nxt is None))
    return out


def kill_mid_load(
    config: dict[str, Any], directory: Path, rng: random.Random
) -> tuple[bool, list[int]]:
    """Start a load, SIGKILL the target at a seeded point; (alive at the kill, state positions)."""
    waited_for = rng.randint(1, len(records()) - 4 * BATCH_ROWS)
    extra_wait = rng.uniform(0.0, 0.012)
    cfg = write_config(directory, "target-config.json", config)
    alive, result = kill_target_mid_load(
        cfg, singer_lines(), lambda state: state_position(state) >= waited_for, extra_wait
    )
    return alive, [state_position(s) for s in result.states]


@pytest.mark.parametrize("point", range(KILL_POINTS))
def test_history_killed_mid_batch_then_rerun_has_no_gap_and_no_duplicate(
    point: int,
    target_config: Callable[..., dict[str, Any]],
    postgres_url: str,
    pg_schema: str,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED * 100 + point)
    config = target_config(batch_size_rows=BATCH_ROWS, history_streams=[STREAM])
    alive, positions = kill_mid_load(config, tmp_path, rng)
    assert alive, "the target exited before the kill (its stdin was still open)"
    assert positions == sorted(positions)

    # Versions commit with their batch: history is the input's after a whole number of batches.
    landed = history(postgres_url, pg_schema)
    committed = max((row[1] for row in landed), default=0)
    assert 0 < committed < len(records())
    # Exactly the versions of the first `committed` records: none missing before the newest
    # (a half-applied batch would leave a hole), none after it.
    assert landed == expected_history(committed)
    state = positions[-1] if positions else 0
    assert state <= committed

    # Rerun from the emitted state, re-sending an overlap, to completion.
    resume = b"".join(singer_lines(after=max(0, state - OVERLAP)))
    rerun = run_target(config, resume, tmp_path)
    assert rerun.returncode == 0, rerun.err_text[-3000:]
    assert state_position(rerun.states[-1]) == len(records())
    final = history(postgres_url, pg_schema)
    assert len(final) == len(records())  # one version per record: none lost, none repeated
    assert final == expected_history(len(records()))
