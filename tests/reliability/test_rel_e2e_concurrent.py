"""Two syncs of the same account started at once, into the same schema.

What happens (docs/reliability.md, "Two syncs at once"): both taps share the account's burst
window and token count through Redis, the targets take turns on table DDL (a per-schema
advisory lock) and upsert by primary key in one transaction per batch, so the rows converge
whatever the interleaving. The test starts both pipelines at
the same moment, on a first run (both create the tables) and again on an incremental run after
changes, and checks that both finish and the tables hold exactly the simulator's records.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rel_figures import Figures
from rel_pipeline import Pipeline, PipelineRun, assert_matches_truth, snapshot_ids


@pytest.fixture
def sim(pipedrive_simulator_factory: Callable[..., Any]) -> Any:
    return pipedrive_simulator_factory(seed=99, deals=120)


def run_together(pipelines: list[Pipeline]) -> list[PipelineRun]:
    results: list[PipelineRun | BaseException] = [RuntimeError("not run")] * len(pipelines)
    start = threading.Barrier(len(pipelines))

    def go(i: int) -> None:
        start.wait()
        try:
            results[i] = pipelines[i].run()
        except BaseException as exc:  # surfaced below, in the test's thread
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(pipelines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=200)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return [r for r in results if isinstance(r, PipelineRun)]


def tap_config(sim: Any, redis_url: str) -> dict[str, Any]:
    return {
        "api_url": sim.base_url,
        "api_token": sim.api_token,
        "start_date": "2000-01-01T00:00:00Z",
        "page_size": 40,
        "redis_url": redis_url,
    }


def test_two_incremental_syncs_of_one_account_at_once_converge(
    sim: Any,
    target_config: Callable[..., dict[str, Any]],
    postgres_url: str,
    pg_schema: str,
    redis_url: str,
    tmp_path: Path,
    figures: Figures,
) -> None:
    """The scheduled case: the tables exist, two runs overlap (a slow run and the next one)."""
    tap, target = tap_config(sim, redis_url), target_config(batch_size_rows=50)
    first = Pipeline(dict(tap), dict(target), tmp_path / "first")
    assert first.run().ok
    pipelines = [
        Pipeline(dict(tap), dict(target), tmp_path / name, state=first.state) for name in "ab"
    ]
    before = snapshot_ids(sim.truth)
    for round_seed in (5,):
        sim.advance(3600)
        sim.random_changes(40, seed=round_seed)
        for run in run_together(pipelines):
            assert run.ok, run.describe()
        assert_matches_truth(sim.truth, postgres_url, pg_schema, figures, vanished_since=before)
    figures.fault("concurrent_syncs", 2)


def test_two_first_syncs_of_one_account_at_once_converge(
    sim: Any,
    target_config: Callable[..., dict[str, Any]],
    postgres_url: str,
    pg_schema: str,
    redis_url: str,
    tmp_path: Path,
    figures: Figures,
) -> None:
    """Both runs start on an empty schema and create the same tables at the same moment."""
    tap, target = tap_config(sim, redis_url), target_config(batch_size_rows=50)
    pipelines = [Pipeline(dict(tap), dict(target), tmp_path / name) for name in "ab"]
    for run in run_together(pipelines):
        assert run.ok, run.describe()
    assert_matches_truth(sim.truth, postgres_url, pg_schema, figures)
    figures.fault("concurrent_syncs", 2)
