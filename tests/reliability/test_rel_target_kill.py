"""SIGKILL the target at random points of a large load, rerun it, and prove nothing was lost.

One Singer input (1,600 records: inserts, then updates of earlier ids, a STATE message every
40 records, batches of 100) is written to the target's stdin, which stays open, so the target
cannot reach the end of its input. Each kill point is seeded: the test waits until the target
has committed the batch holding a random record (the target emits the STATE after it; by then
its imports are long done and it is loading), waits a further random part of a batch's time
and kills it with SIGKILL while it is reading, converting or committing the batches after.
Each point asserts that the kill really landed mid-load: the target was still running, and
the records committed before the kill are more than none and fewer than the input's. Then:

* the table holds exactly the input's data after a whole number of batches (the batch in
  flight left nothing behind);
* the last STATE it emitted is never ahead of the committed rows (every record up to the
  state's position is in the table, at that version or a later one);
* a rerun from that state (re-sending an overlap before it, as a tap resuming from an
  inclusive bookmark does) completes, and the table then holds exactly one row per id, each
  at its final version: no row lost, none duplicated.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rel_figures import Figures
from rel_load_input import (
    SEED,
    assert_complete,
    assert_state_not_ahead,
    assert_whole_batches,
    records,
    resume_input,
    singer_lines,
    state_position,
)
from rel_support import kill_target_mid_load, run_target, write_config

BATCH_ROWS = 100
KILL_POINTS = 21
# The latest record whose batch the test waits for: at least four batches of work remain,
# far more than the longest extra wait (a batch loads in about 10 ms on a 2-core machine).
LAST_WAITED_RECORD = len(records()) - 4 * BATCH_ROWS
EXTRA_WAIT = 0.012  # seconds, at most


@dataclass
class KillPoint:
    waited_for: int  # the record whose batch was committed before the wait
    extra_wait: float  # seconds between seeing that and the kill
    committed: int  # records committed when the kill landed
    state: int  # the last state position the target emitted


def kill_mid_load(
    config: dict[str, Any], directory: Path, rng: random.Random, url: str, schema: str
) -> KillPoint:
    """Start a load, SIGKILL the target at a seeded point of it; where the kill landed."""
    waited_for = rng.randint(1, LAST_WAITED_RECORD)
    extra_wait = rng.uniform(0.0, EXTRA_WAIT)
    cfg = write_config(directory, "target-config.json", config)
    # Everything, but stdin stays open: the load cannot end before the kill.
    alive, result = kill_target_mid_load(
        cfg, singer_lines(), lambda state: state_position(state) >= waited_for, extra_wait
    )
    assert alive, "the target exited before the kill (its stdin was still open)"
    positions = [state_position(s) for s in result.states]
    assert positions == sorted(positions), f"state went backwards: {positions}"
    context = f"kill after record {waited_for}'s batch + {extra_wait * 1000:.1f} ms"
    committed = assert_whole_batches(url, schema, BATCH_ROWS, context)
    return KillPoint(waited_for, extra_wait, committed, positions[-1] if positions else 0)


@pytest.mark.parametrize("point", range(KILL_POINTS))
def test_target_killed_at_random_point_then_rerun_loses_and_duplicates_nothing(
    point: int,
    target_config: Callable[..., dict[str, Any]],
    postgres_url: str,
    pg_schema: str,
    tmp_path: Path,
    figures: Figures,
) -> None:
    rng = random.Random(SEED * 100 + point)
    config = target_config(batch_size_rows=BATCH_ROWS)
    kill = kill_mid_load(config, tmp_path, rng, postgres_url, pg_schema)

    # The kill landed mid-load: some batches were committed, not all of them.
    assert 0 < kill.committed < len(records()), kill
    # State never ahead of committed data.
    assert kill.state <= kill.committed, kill
    assert_state_not_ahead(postgres_url, pg_schema, kill.state, f"{kill}")

    # Rerun from the emitted state, re-sending an overlap, to completion.
    rerun = run_target(config, resume_input(kill.state), tmp_path)
    assert rerun.returncode == 0, rerun.err_text[-3000:]
    assert state_position(rerun.states[-1]) == len(records())
    assert_complete(postgres_url, pg_schema, figures)
    figures.add("kill_points_survived")
    figures.observe("kill_committed_records", kill.committed)
