"""SIGKILL the target at random points of a large load, rerun it, and prove nothing was lost.

One Singer input (inserts, then updates of earlier ids, a STATE message every 40 records) is
fed through a pipe; at a seeded random line the target is killed with SIGKILL. Then:

* the last STATE it emitted is never ahead of the committed rows (every record up to the
  state's position is in the table, at that version or a later one);
* a rerun from that state (re-sending an overlap before it, as a tap resuming from an
  inclusive bookmark does) completes, and the table then holds exactly one row per id, each
  at its final version: no row lost, none duplicated.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rel_figures import Figures
from rel_load_input import (
    SEED,
    assert_complete,
    assert_state_not_ahead,
    records,
    resume_input,
    singer_lines,
    state_position,
)
from rel_support import TARGET, StreamedProcess, plugin_command, run_target, write_config

BATCH_ROWS = 100
KILL_POINTS = 21


def kill_mid_load(
    config: dict[str, Any], directory: Path, rng: random.Random
) -> tuple[int, int, bool]:
    """Feed the whole input, SIGKILL at a random line; (kill line, last state position, killed)."""
    lines = singer_lines()
    kill_at = rng.randint(1, int(len(lines) * 0.9))
    cfg = write_config(directory, "target-config.json", config)
    run = StreamedProcess.start([*plugin_command(TARGET), "--config", str(cfg)])
    assert run.proc.stdin is not None
    try:
        for raw in lines[:kill_at]:
            run.proc.stdin.write(raw)
        run.proc.stdin.flush()
        # Let the target get a random distance into what it was given.
        time.sleep(rng.uniform(0.0, 0.35))
    except BrokenPipeError:
        pass
    killed = run.proc.poll() is None
    os.kill(run.proc.pid, signal.SIGKILL)
    result = run.finish()
    positions = [state_position(s) for s in result.states]
    assert positions == sorted(positions), f"state went backwards: {positions}"
    return kill_at, (positions[-1] if positions else 0), killed


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
    kill_at, position, killed = kill_mid_load(config, tmp_path, rng)

    # State never ahead of committed data.
    assert_state_not_ahead(postgres_url, pg_schema, position, f"kill at line {kill_at}")

    # Rerun from the emitted state, re-sending an overlap, to completion.
    rerun = run_target(config, resume_input(position), tmp_path)
    assert rerun.returncode == 0, rerun.err_text[-3000:]
    assert state_position(rerun.states[-1]) == len(records())
    assert_complete(postgres_url, pg_schema, figures)
    assert killed, "the target exited before the kill (its stdin was still open)"
    figures.add("kill_points_survived")
