"""End-to-end faults: the simulator misbehaves over real HTTP while tap → target load Postgres.

Every scenario ends the same way: the run either completes or stops cleanly with its state at
the last good point (every record at or before each bookmark is stored), and a rerun from that
state, with the faults gone, leaves exactly the simulator's records in Postgres.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from pipedrive_simulator.ratelimit import WINDOW_SECONDS
from rel_figures import Figures
from rel_pipeline import Pipeline, PipelineRun, assert_matches_truth, assert_state_not_ahead
from rel_support import StreamedProcess, fetch_rows

SEED = 6006
DEALS = 150
PAGE = 50  # several pages per stream, so faults land mid-stream


def tap_config(sim: Any, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "api_url": sim.base_url,
        "api_token": sim.api_token,
        "start_date": "2000-01-01T00:00:00Z",
        "page_size": PAGE,
        "request_timeout": 1,
        "retry_initial_wait_seconds": 0.05,
        "retry_max_wait_seconds": 0.3,
    }
    config.update(overrides)
    return config


@pytest.fixture
def sim(pipedrive_simulator_factory: Callable[..., Any]) -> Any:
    return pipedrive_simulator_factory(seed=SEED, deals=DEALS)


@pytest.fixture
def pipeline(sim: Any, target_config: Callable[..., dict[str, Any]], tmp_path: Path) -> Pipeline:
    return Pipeline(tap_config(sim), target_config(batch_size_rows=100), tmp_path)


def requests_to(sim: Any, path: str) -> int:
    return sum(
        e["requests"]
        for endpoint, e in sim.stats()["endpoints"].items()
        if endpoint.split(" ", 1)[1].startswith(path)
    )


def assert_clean_stop(run: PipelineRun) -> None:
    """A stop is a message and a non-zero exit, not a crash; the target still finished."""
    assert run.tap.returncode != 0, run.describe()
    assert b"Traceback" not in run.tap.stderr, run.describe()
    assert run.target.returncode == 0, run.describe()


# Each group is served in one run: (kind, path prefix, times, extra).
FAULT_GROUPS: dict[str, list[tuple[str, str, int, dict[str, Any]]]] = {
    "5xx-storms": [
        ("http_500", "/api/v2/deals", 4, {}),
        ("http_502", "/api/v2/persons", 3, {}),
        ("http_503", "/api/v2/activities", 3, {}),
    ],
    "network": [
        ("slow", "/api/v2/deals", 1, {"delay": 1.6}),  # past request_timeout: a timeout
        ("slow", "/api/v2/persons", 3, {"delay": 0.3}),  # slow but in time
        ("reset", "/api/v2/organizations", 3, {}),
    ],
    "broken-bodies": [
        ("truncated_json", "/api/v2/deals", 2, {}),
        ("malformed_json", "/api/v2/products", 2, {}),
        ("null_body", "/api/v2/activities", 1, {}),
    ],
    # Each burst 429 costs the window's wait (2 s): two are enough to prove the wait and resume.
    "429-bursts": [("burst_429", "/api/v2/deals", 1, {}), ("burst_429", "/api/v2/persons", 1, {})],
}


@pytest.mark.parametrize("group", sorted(FAULT_GROUPS))
def test_faults_then_rerun_converge_to_the_simulators_data(
    group: str,
    sim: Any,
    pipeline: Pipeline,
    postgres_url: str,
    pg_schema: str,
    figures: Figures,
) -> None:
    faults = FAULT_GROUPS[group]
    for kind, path, times, extra in faults:
        sim.set_fault(kind, path=path, times=times, **extra)
    first = pipeline.run()
    for kind, path, times, _ in faults:
        assert requests_to(sim, path) >= times, f"{kind} on {path} was not reached"
        figures.fault(kind, times)
    if not first.ok:
        assert_clean_stop(first)
        assert_state_not_ahead(sim.truth, postgres_url, pg_schema, pipeline.state)
        sim.clear_faults()
        rerun = pipeline.run()
        assert rerun.ok, rerun.describe()
    assert_matches_truth(sim.truth, postgres_url, pg_schema, figures)


def test_exhausted_daily_budget_stops_cleanly_then_resumes(
    sim: Any, pipeline: Pipeline, postgres_url: str, pg_schema: str, figures: Figures
) -> None:
    sim.set_plan("essential")
    sim.set_budget_remaining(150)  # the dictionaries and a few pages, not the whole account
    first = pipeline.run()
    figures.fault("budget_exhausted")
    assert_clean_stop(first)
    err = first.tap.err_text.lower()
    assert "budget" in err, first.describe()
    assert "reset" in err, "the message must say when the budget resets\n" + first.describe()
    assert_state_not_ahead(sim.truth, postgres_url, pg_schema, pipeline.state)
    # The next day: the budget is back and the run finishes from where the first stopped.
    sim.set_plan("unlimited")
    rerun = pipeline.run()
    assert rerun.ok, rerun.describe()
    assert_matches_truth(sim.truth, postgres_url, pg_schema, figures)


def test_budget_exhausted_answers_mid_stream(
    sim: Any, pipeline: Pipeline, postgres_url: str, pg_schema: str, figures: Figures
) -> None:
    sim.set_fault("budget_exhausted", path="/api/v2/activities", times=100)
    first = pipeline.run()
    figures.fault("budget_exhausted")
    assert_clean_stop(first)
    assert "budget" in first.tap.err_text.lower(), first.describe()
    assert_state_not_ahead(sim.truth, postgres_url, pg_schema, pipeline.state)
    sim.clear_faults()
    rerun = pipeline.run()
    assert rerun.ok, rerun.describe()
    assert_matches_truth(sim.truth, postgres_url, pg_schema, figures)


def test_403_after_hammering_then_rerun_converges(
    sim: Any, pipeline: Pipeline, postgres_url: str, pg_schema: str, figures: Figures
) -> None:
    """Another client hammers the account with the same token until it is blocked (403 page).

    The tap shares the account's burst window with it: it meets 429s, and the 403 page when
    its request lands after the other client's refusals (timing decides which).
    """
    sim.set_plan("essential")
    stop = threading.Event()
    blocked = 0

    def hammer() -> None:
        nonlocal blocked
        with requests.Session() as http:
            while not stop.is_set():
                answer = http.get(
                    f"{sim.base_url}/api/v2/pipelines",
                    headers={"x-api-token": sim.api_token},
                    timeout=5,
                )
                blocked += answer.status_code == 403

    # The account is blocked before the tap starts, so however fast the tap starts and syncs,
    # its first requests land in windows the other client has already used up.
    worker = threading.Thread(target=hammer, daemon=True)
    worker.start()
    deadline = time.monotonic() + 30
    while not blocked and time.monotonic() < deadline:
        time.sleep(0.05)
    assert blocked, "the hammering never got the account blocked"

    # Small pages: the tap's sync spans many burst windows, each a chance for its requests to
    # land after the other client's, however fast the tap runs.
    pipeline.tap_config["page_size"] = 10
    tap_log = pipeline.directory / f"run{pipeline.runs + 1}" / "tap.stderr"

    def hammer_during(tap: subprocess.Popen[bytes], target: StreamedProcess) -> None:
        # Until the tap has met the limits (a 429, or the 403 page that stops it), and a second
        # more: the tap's limiter paces from the headers, so a request of its meets a refusal
        # only when the other client takes the window's last slots first (timing decides).
        deadline = time.monotonic() + 60
        met: float | None = None
        while tap.poll() is None and time.monotonic() < deadline:
            if met is None and _met_limits(tap_log.read_text(errors="replace")):
                met = time.monotonic()
            if met is not None and time.monotonic() - met > 1:
                break
            time.sleep(0.1)
        stop.set()
        worker.join(timeout=10)

    try:
        first = pipeline.run(during=hammer_during)
    finally:
        stop.set()
    assert _met_limits(first.tap.err_text), (
        "the tap never met the hammered account's limits\n" + first.describe()
    )
    assert blocked > 0, "the hammering never got the account blocked"
    figures.fault("403_after_hammering", blocked)
    if not first.ok:
        assert_clean_stop(first)
        assert_state_not_ahead(sim.truth, postgres_url, pg_schema, pipeline.state)
        # As the tap's error says, the next run waits for the block to lift: the simulator
        # blocks for the rest of the burst window (the tap can stop within it, at its first
        # request, when the machine is quick).
        time.sleep(WINDOW_SECONDS + 0.5)
        rerun = pipeline.run()
        assert rerun.ok, rerun.describe()
    assert_matches_truth(sim.truth, postgres_url, pg_schema, figures)


def _met_limits(tap_log: str) -> bool:
    """Whether the tap's log shows a 429 of the burst window or the 403 page.

    The tap's own wording, not bare status codes: those also turn up in metric values and pids.
    """
    return "429 burst limit on GET" in tap_log or "firewall blocked GET" in tap_log


# (path whose pages are slowed, number of its requests after which the tap is killed)
TAP_KILL_POINTS = [("/api/v2/deals", 2), ("/api/v2/persons", 3), ("/api/v2/activities", 4)]


@pytest.mark.parametrize(
    ("path", "after_requests"),
    TAP_KILL_POINTS,
    ids=[p.rsplit("/", 1)[-1] for p, _ in TAP_KILL_POINTS],
)
def test_tap_killed_mid_stream_then_rerun(
    path: str,
    after_requests: int,
    sim: Any,
    pipeline: Pipeline,
    postgres_url: str,
    pg_schema: str,
    figures: Figures,
) -> None:
    """SIGKILL the tap while it pages a stream; the target commits what it got; rerun resumes."""
    sim.set_fault("slow", path=path, delay=0.3)
    kills = 0

    def kill_mid_stream(tap: subprocess.Popen[bytes], target: StreamedProcess) -> None:
        nonlocal kills
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and tap.poll() is None:
            if requests_to(sim, path) >= after_requests:
                break
            time.sleep(0.05)
        if tap.poll() is None:
            os.kill(tap.pid, signal.SIGKILL)
            kills += 1

    first = pipeline.run(during=kill_mid_stream)
    assert kills == 1, first.describe()
    assert first.tap_killed, first.describe()
    assert first.target.returncode == 0, first.describe()
    assert_state_not_ahead(sim.truth, postgres_url, pg_schema, pipeline.state)
    sim.clear_faults()
    rerun = pipeline.run()
    assert rerun.ok, rerun.describe()
    assert_matches_truth(sim.truth, postgres_url, pg_schema, figures)
    figures.add("tap_kill_points_survived")
    figures.fault("tap_sigkill")


def test_records_changing_while_the_run_pages_are_not_skipped(
    sim: Any, pipeline: Pipeline, postgres_url: str, pg_schema: str, figures: Figures
) -> None:
    """The simulator updates deals between the pages of a run; the cursor must not skip any."""
    sim.set_fault("slow", path="/api/v2/deals", delay=0.25)
    before = {d["id"] for d in sim.truth("deals")}
    ids = sorted(d["id"] for d in sim.truth("deals") if d.get("status") != "deleted")
    changed: list[int] = []

    def mutate_while_paging(tap: subprocess.Popen[bytes], target: StreamedProcess) -> None:
        i = 0
        while tap.poll() is None and i < 30:
            if requests_to(sim, "/api/v2/deals") >= 1:
                sim.advance(60)
                # Spread over the id range: early records move behind the cursor's position.
                deal = ids[(i * 37) % len(ids)]
                sim.update("deals", deal, title=f"changed while paging {i}")
                changed.append(deal)
                i += 1
            time.sleep(0.08)

    first = pipeline.run(during=mutate_while_paging)
    assert first.ok, first.describe()
    assert len(changed) >= 5, f"only {len(changed)} records changed during the run"
    figures.fault("records_changed_mid_run", len(changed))
    stored = {r["id"] for r in fetch_rows(postgres_url, pg_schema, "deals")}
    skipped = sorted(before - stored)
    assert not skipped, f"records the cursor skipped: {skipped[:10]}"
    sim.clear_faults()
    second = pipeline.run()
    assert second.ok, second.describe()
    assert_matches_truth(sim.truth, postgres_url, pg_schema, figures)
