"""deal_stage_changes against the simulator over real HTTP, then through the target into Postgres.

Every check compares with the simulator's own stage timelines (``stage_history(deal_id)``) and
its request statistics.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from collections import defaultdict
from typing import Any

import psycopg
import pytest
from psycopg import sql
from tap_pipedrive.backfill import MAX_BACKFILL_RETRIES, DealHead, parse_time
from tap_pipedrive.resilience import BudgetExhaustedError
from tap_pipedrive.streams.stage_changes import DealStageChangesStream
from tap_pipedrive.tap import TapPipedrive
from target_pipeboard_postgres.target import TargetPipeboardPostgres

CHANGELOG = "GET /v1/deals/{id}/changelog"
FLOW = "GET /v1/deals/{id}/flow"


class StageTap(TapPipedrive):
    """The tap with the stage-change stream registered (as the tap's stream list will)."""

    def discover_streams(self):  # type: ignore[override]
        streams = list(super().discover_streams())
        if not any(s.name == "deal_stage_changes" for s in streams):
            streams.append(DealStageChangesStream(self))
        return streams


class Run:
    """One tap run: its Singer messages, parsed."""

    def __init__(self, lines: list[str], error: BaseException | None) -> None:
        self.lines = lines
        self.messages = [json.loads(line) for line in lines]
        self.error = error

    def records(self, stream: str = "deal_stage_changes") -> list[dict[str, Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    @property
    def state(self) -> dict[str, Any]:
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return states[-1] if states else {}


def run_tap(sim, streams: tuple[str, ...], state: dict | None = None, **config: Any) -> Run:
    # First incremental runs read every deal's history unless a test says otherwise.
    cfg = {
        "api_url": sim.base_url,
        "api_token": sim.api_token,
        "stage_history_initial_days": None,
        **config,
    }
    catalog = StageTap(config=cfg).catalog_dict
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in streams
    out = io.StringIO()
    error = None
    with contextlib.redirect_stdout(out):
        try:
            StageTap(config=cfg, catalog=catalog, state=state or {}).sync_all()
        except BudgetExhaustedError as exc:
            error = exc
    return Run(out.getvalue().splitlines(), error)


def timeline(records: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Records per deal in the simulator's stage_history() shape (creation first)."""
    per_deal: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        per_deal[r["deal_id"]][r["id"]] = r  # later runs re-emit the same ids
    return {
        deal: [
            {
                "stage_id": r["to_stage_id"],
                "pipeline_id": r["pipeline_id"],
                "entered_at": r["changed_at"],
                "user_id": r["user_id"],
            }
            for r in sorted(
                rows.values(), key=lambda r: (r["changed_at"], r["from_stage_id"] is not None)
            )
        ]
        for deal, rows in per_deal.items()
    }


def live_deal_ids(sim) -> list[int]:
    return sorted(d["id"] for d in sim.truth("deals") + sim.truth("archived_deals"))


def per_deal_requests(sim, endpoint: str = CHANGELOG) -> int:
    return sim.stats()["endpoints"].get(endpoint, {}).get("requests", 0)


def stage_of(sim, pipeline_id: int, *, other_than: int) -> int:
    return next(
        s["id"]
        for s in sim.truth("stages")
        if s["pipeline_id"] == pipeline_id and s["id"] != other_than
    )


@pytest.fixture
def sim(pipedrive_simulator_factory):
    return pipedrive_simulator_factory(seed=7, deals=40)


def test_full_then_incremental_runs_match_truth_with_minimal_calls(sim):
    first = run_tap(sim, ("deal_stage_changes",))
    deals = live_deal_ids(sim)
    got = timeline(first.records())
    assert sorted(got) == sorted(deals)
    for deal in deals:
        assert got[deal] == sim.stage_history(deal), deal
    assert per_deal_requests(sim) == len(deals)  # one page per deal, no repeats

    # Nothing moved: one deals-list request, zero per-deal calls.
    sim.reset_stats()
    quiet = run_tap(sim, ("deal_stage_changes",), first.state)
    assert quiet.records() == []
    assert per_deal_requests(sim) == 0
    assert sim.stats()["endpoints"]["GET /api/v2/deals"]["requests"] == 1
    assert sim.stats()["endpoints"]["GET /api/v2/deals/archived"]["requests"] == 1

    # Moves forward, backward, to another pipeline; won, lost, a non-stage edit, a deletion.
    pipelines = sorted({s["pipeline_id"] for s in sim.truth("stages")})
    open_deals = [d for d in sim.truth("deals") if d["status"] == "open"]
    sim.advance(3600)
    a, b, c, d, e, f = (x["id"] for x in open_deals[:6])
    deal_by_id = {x["id"]: x for x in open_deals}
    sim.move_deal(
        a, stage_of(sim, deal_by_id[a]["pipeline_id"], other_than=deal_by_id[a]["stage_id"])
    )
    sim.advance(600)
    sim.move_deal(a, deal_by_id[a]["stage_id"])  # and back again
    other = next(p for p in pipelines if p != deal_by_id[b]["pipeline_id"])
    sim.move_deal(b, stage_of(sim, other, other_than=-1))
    sim.update("deals", c, status="won")
    sim.update("deals", d, status="lost")
    sim.update("deals", e, title="Renamed, same stage")
    sim.move_deal(
        f, stage_of(sim, deal_by_id[f]["pipeline_id"], other_than=deal_by_id[f]["stage_id"])
    )
    sim.delete("deals", f)
    new_deal = sim.create("deals", title="Fresh", stage_id=deal_by_id[e]["stage_id"])
    sim.advance(60)

    sim.reset_stats()
    second = run_tap(sim, ("deal_stage_changes",), quiet.state)
    moved = {a, b, f, new_deal["id"]}  # a new deal enters its first stage
    assert {r["deal_id"] for r in second.records()} == moved
    assert per_deal_requests(sim) == len(moved)  # won/lost/edited deals cost nothing
    merged = timeline(first.records() + second.records())
    for deal in [*live_deal_ids(sim)]:
        assert merged[deal] == sim.stage_history(deal), deal


def test_first_incremental_run_reads_recent_stage_activity_only(sim):
    deals = sim.truth("deals") + sim.truth("archived_deals")
    newest = max(parse_time(d["update_time"]) for d in sim.truth("deals"))
    since = newest - dt.timedelta(days=90)
    recent = {
        d["id"]
        for d in deals
        if max(parse_time(d["add_time"]), parse_time(d["stage_change_time"] or d["add_time"]))
        > since
    }
    assert 0 < len(recent) < len(deals)
    run = run_tap(sim, ("deal_stage_changes",), stage_history_initial_days=90)
    assert {r["deal_id"] for r in run.records()} == recent
    assert per_deal_requests(sim) == len(recent)


def test_flow_source_gives_the_same_records(sim):
    changelog = run_tap(sim, ("deal_stage_changes",))
    sim.reset_stats()
    flow = run_tap(sim, ("deal_stage_changes",), stage_history_source="flow")
    key = lambda r: r["id"]  # noqa: E731
    strip = lambda rows: [{**r, "source": None, "source_event_id": None} for r in rows]  # noqa: E731
    assert strip(sorted(flow.records(), key=key)) == strip(sorted(changelog.records(), key=key))
    assert per_deal_requests(sim, FLOW) == len(live_deal_ids(sim))
    assert per_deal_requests(sim, CHANGELOG) == 0


def test_null_data_holds_the_deal_back_until_the_next_run(sim):
    moved = next(d for d in sim.truth("deals") if d["stage_change_time"])
    others = [d["id"] for d in sim.truth("deals") if d["id"] < moved["id"]]
    # The real API's 200 with null data, served to the first per-deal call of a moved deal.
    sim.set_fault("null_body", path=f"/v1/deals/{moved['id']}/changelog", times=1)
    sim.set_fault("null_body", path=f"/api/v1/deals/{moved['id']}/changelog", times=1)
    first = run_tap(sim, ("deal_stage_changes",))
    assert moved["id"] not in {r["deal_id"] for r in first.records()}
    held = first.state["bookmarks"]["deal_stage_changes"]["stage_changes"]["held_back"]
    assert [h["id"] for h in held] == [moved["id"]]
    assert others  # deals before it were not held back
    sim.clear_faults()
    second = run_tap(sim, ("deal_stage_changes",), first.state)
    assert timeline(second.records())[moved["id"]] == sim.stage_history(moved["id"])
    assert second.state["bookmarks"]["deal_stage_changes"]["stage_changes"]["held_back"] == []


def test_backfill_interrupted_by_budget_completes_without_repeated_calls(sim):
    deals = live_deal_ids(sim)
    state: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    runs = 0
    while True:
        runs += 1
        assert runs <= 12, "backfill does not progress"
        # Room for the run's fixed costs and about eight deals (20 tokens each).
        sim.set_budget_remaining(120 + 8 * 20)
        run = run_tap(sim, ("deal_stage_changes",), state, stage_history_mode="backfill")
        assert run.error is None  # a planned stop is clean
        records += run.records()
        state = run.state
        progress = state["bookmarks"]["deal_stage_changes"]["backfill"]
        assert progress["runs"] == runs
        if progress["completed_at"]:
            break
        assert progress["done"] < len(deals)
    assert runs >= 4
    assert progress["done"] == len(deals)
    assert progress["total"] == len(deals)
    assert per_deal_requests(sim) == len(deals)  # every deal read exactly once over all runs
    got = timeline(records)
    for deal in deals:
        assert got[deal] == sim.stage_history(deal), deal


def backfill_of(run: Run) -> dict[str, Any]:
    return run.state["bookmarks"]["deal_stage_changes"]["backfill"]


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def an_open_deal_moved(sim, index: int = 0) -> int:
    deal = [d for d in sim.truth("deals") if d["status"] == "open"][index]
    sim.move_deal(deal["id"], stage_of(sim, deal["pipeline_id"], other_than=deal["stage_id"]))
    return int(deal["id"])


# Everything the stream itself asks for; the rest of a run's requests is the tap's discovery.
STREAM_ENDPOINTS = {
    "GET /api/v2/deals",
    "GET /api/v2/deals/archived",
    "GET /api/v2/stages",
    CHANGELOG,
    FLOW,
}


def test_a_complete_backfill_stays_done_and_new_deals_are_the_incremental_modes(sim, caplog):
    deals = live_deal_ids(sim)
    # The regular sync (its own state) has run before; then the backfill job, to its end.
    sync = run_tap(sim, ("deal_stage_changes",), stage_history_initial_days=30)
    backfill = run_tap(sim, ("deal_stage_changes",), stage_history_mode="backfill")
    progress = backfill_of(backfill)
    assert progress["completed_at"]
    assert (progress["done"], progress["total"], progress["runs"]) == (len(deals), len(deals), 1)
    listed = sim.truth("deals") + sim.truth("archived_deals")
    assert parse_time(progress["as_of"]) == max(parse_time(d["update_time"]) for d in listed)

    sim.advance(3600)
    fresh = sim.create("deals", title="Created after the backfill", stage_id=1)
    mover = an_open_deal_moved(sim)
    sim.advance(60)

    # Night after night the job runs again: it reads and requests nothing, and says why.
    state = backfill.state
    for _ in range(2):
        sim.reset_stats()
        caplog.clear()
        with caplog.at_level("INFO"):
            again = run_tap(sim, ("deal_stage_changes",), state, stage_history_mode="backfill")
        assert again.error is None
        assert again.records() == []
        endpoints = set(sim.stats()["endpoints"])
        assert not endpoints & STREAM_ENDPOINTS, endpoints
        assert all(e.endswith("Fields") for e in endpoints), endpoints
        assert backfill_of(again) == progress
        (line,) = messages(caplog, "stage history backfill: complete since")
        assert f"after {progress['as_of']}" in line
        assert "stage_history_mode: incremental" in line
        assert "meltano state clear" in line
        state = again.state

    # What changed after it is the regular sync's, in incremental mode.
    sim.reset_stats()
    later = run_tap(sim, ("deal_stage_changes",), sync.state, stage_history_initial_days=30)
    assert {r["deal_id"] for r in later.records()} == {fresh["id"], mover}
    assert per_deal_requests(sim) == 2
    merged = timeline(backfill.records() + later.records())
    for deal in live_deal_ids(sim):
        assert merged[deal] == sim.stage_history(deal), deal


def test_incremental_after_a_backfill_in_the_same_state_reads_all_activity_since(sim):
    backfill = run_tap(sim, ("deal_stage_changes",), stage_history_mode="backfill")
    as_of = parse_time(backfill_of(backfill)["as_of"])
    sim.advance(10 * 86400)
    between = sim.create("deals", title="Created after the backfill", stage_id=1)
    sim.advance(50 * 86400)  # longer than the first incremental run looks back (30 days)
    mover = an_open_deal_moved(sim)
    sim.advance(60)
    sim.reset_stats()
    later = run_tap(sim, ("deal_stage_changes",), backfill.state, stage_history_initial_days=30)
    read = {r["deal_id"] for r in later.records()}
    assert {between["id"], mover} <= read
    # Apart from them, only deals whose last stage activity is the backfill's newest update.
    at_the_edge = {
        d["id"]
        for d in sim.truth("deals") + sim.truth("archived_deals")
        if DealHead.from_record(d).stage_activity >= as_of
    }
    assert read <= at_the_edge | {between["id"], mover}
    assert per_deal_requests(sim) == len(read)
    merged = timeline(backfill.records() + later.records())
    for deal in live_deal_ids(sim):
        assert merged[deal] == sim.stage_history(deal), deal


def test_backfill_reads_a_held_back_deal_in_a_later_run_before_it_completes(sim):
    deals = live_deal_ids(sim)
    moved = next(d["id"] for d in sim.truth("deals") if d["stage_change_time"])
    sim.set_fault("null_body", path=f"/api/v1/deals/{moved}/changelog", times=1)
    first = run_tap(sim, ("deal_stage_changes",), stage_history_mode="backfill")
    assert first.error is None
    assert moved not in {r["deal_id"] for r in first.records()}
    progress = backfill_of(first)
    assert [h["id"] for h in progress["held_back"]] == [moved]
    assert progress["listed_at"]
    assert progress["completed_at"] is None  # not done while a deal waits
    assert (progress["done"], progress["total"]) == (len(deals) - 1, len(deals))

    sim.reset_stats()
    second = run_tap(sim, ("deal_stage_changes",), first.state, stage_history_mode="backfill")
    assert {r["deal_id"] for r in second.records()} == {moved}
    assert timeline(second.records())[moved] == sim.stage_history(moved)
    endpoints = sim.stats()["endpoints"]
    assert endpoints[CHANGELOG]["requests"] == 1  # only the retry: the list is not read again
    assert "GET /api/v2/deals" not in endpoints
    progress = backfill_of(second)
    assert progress["completed_at"]
    assert (progress["done"], progress["held_back"], progress["total"]) == (
        len(deals),
        [],
        len(deals),
    )


def test_backfill_gives_up_a_deal_that_never_agrees_and_completes(sim, caplog):
    deals = live_deal_ids(sim)
    broken = next(d["id"] for d in sim.truth("deals") if d["stage_change_time"])
    sim.set_fault("null_body", path=f"/api/v1/deals/{broken}/changelog")  # every time
    state: dict[str, Any] = {}
    for run_number in range(1, MAX_BACKFILL_RETRIES + 2):
        caplog.clear()
        with caplog.at_level("INFO"):
            run = run_tap(sim, ("deal_stage_changes",), state, stage_history_mode="backfill")
        assert broken not in {r["deal_id"] for r in run.records()}
        state = run.state
        progress = backfill_of(run)
        done = run_number == MAX_BACKFILL_RETRIES + 1
        assert bool(progress["completed_at"]) == done, run_number
    assert progress["given_up"] == [broken]
    assert (progress["done"], progress["held_back"]) == (len(deals) - 1, [])
    assert messages(caplog, f"deal {broken}: the changelog still disagrees")
    assert messages(caplog, f"1 given up after {MAX_BACKFILL_RETRIES} retries (deal ids {broken})")
    assert per_deal_requests(sim) == len(deals) + MAX_BACKFILL_RETRIES


def test_deals_merged_while_the_backfill_runs_are_skipped_and_counted(sim):
    deals = live_deal_ids(sim)
    # Six in a row: more 410s than the circuit breaker's five consecutive failures.
    merged, survivor = deals[-8:-2], deals[-1]
    tap = StageTap(
        config={
            "api_url": sim.base_url,
            "api_token": sim.api_token,
            "stage_history_mode": "backfill",
        }
    )
    stream = tap.streams["deal_stage_changes"]
    with contextlib.redirect_stdout(io.StringIO()):
        rows = iter(stream.get_records(None))
        records = [next(rows)]  # the deal lists are read; the first deal's history is out
        for deal_id in merged:
            sim.merge_deal(deal_id, survivor)
        records += list(rows)
    assert {r["deal_id"] for r in records} == set(deals) - set(merged)
    assert per_deal_requests(sim) == len(deals)  # each merged deal asked once: 410
    progress = stream.stream_state["backfill"]
    assert progress["completed_at"]
    assert (progress["gone"], progress["done"]) == (len(merged), len(deals) - len(merged))


def test_a_held_back_deal_merged_before_its_retry_is_counted_gone(sim, caplog):
    deals = live_deal_ids(sim)
    moved = next(d["id"] for d in sim.truth("deals") if d["stage_change_time"])
    sim.set_fault("null_body", path=f"/api/v1/deals/{moved}/changelog", times=1)
    first = run_tap(sim, ("deal_stage_changes",), stage_history_mode="backfill")
    assert [h["id"] for h in backfill_of(first)["held_back"]] == [moved]
    sim.merge_deal(moved, next(d for d in deals if d != moved))
    with caplog.at_level("INFO"):
        second = run_tap(sim, ("deal_stage_changes",), first.state, stage_history_mode="backfill")
    assert second.error is None
    assert second.records() == []
    progress = backfill_of(second)
    assert progress["completed_at"]
    assert (progress["gone"], progress["done"], progress["held_back"]) == (1, len(deals) - 1, [])
    assert messages(caplog, "1 removed or merged (404/410) skipped")


def test_backfill_stops_at_max_budget_share_and_resumes_without_repeats(
    pipedrive_simulator_factory, caplog
):
    # A one-seat Essential account: 30,000 tokens a day; 1% a run is 300 tokens, a dozen deals.
    sim = pipedrive_simulator_factory(seed=7, deals=40, plan="essential", seats=1)
    deals = live_deal_ids(sim)
    state: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    tokens = 0
    for runs in range(1, 11):
        caplog.clear()
        with caplog.at_level("INFO"):
            run = run_tap(
                sim,
                ("deal_stage_changes",),
                state,
                stage_history_mode="backfill",
                max_budget_share=0.01,
            )
        assert run.error is None  # a planned stop: exit 0, no BudgetExhaustedError (75)
        records += run.records()
        state = run.state
        progress = backfill_of(run)
        assert progress["runs"] == runs
        assert progress["tokens"] - tokens <= 300  # never past the cap
        tokens = progress["tokens"]
        if progress["completed_at"]:
            break
        (stop,) = messages(caplog, "stage history backfill: stopping cleanly")
        assert (
            "max_budget_share=0.01 of the daily budget (30000 tokens) lets this run spend 300"
            in stop
        )
        assert f"continues where this one stopped (after deal {progress['after_id']})" in stop
        # Every record out is covered by the state saved last: nothing is read twice.
        assert max(r["deal_id"] for r in run.records()) == progress["after_id"]
        assert messages(caplog, f"deals ({100 * progress['done'] / len(deals):.1f}%)")
    assert runs >= 3
    assert (progress["done"], progress["total"]) == (len(deals), len(deals))
    assert per_deal_requests(sim) == len(deals)  # every deal read exactly once over all runs
    got = timeline(records)
    for deal in deals:
        assert got[deal] == sim.stage_history(deal), deal


def test_backfill_resumes_after_exhausted_budget(sim):
    deals = live_deal_ids(sim)
    sim.set_fault("budget_exhausted", path="/api/v1/deals/", times=1)
    first = run_tap(sim, ("deal_stage_changes",), stage_history_mode="backfill")
    assert isinstance(first.error, BudgetExhaustedError)  # exit code 75, state saved
    assert first.records() == []
    progress = first.state["bookmarks"]["deal_stage_changes"]["backfill"]
    assert (progress["done"], progress["total"]) == (0, len(deals))
    sim.clear_faults()
    gone = deals[len(deals) // 2]
    sim.delete("deals", gone)
    sim.advance(31 * 86400)  # deleted deals vanish from the API after 30 days
    second = run_tap(sim, ("deal_stage_changes",), first.state, stage_history_mode="backfill")
    progress = second.state["bookmarks"]["deal_stage_changes"]["backfill"]
    assert progress["completed_at"]
    assert progress["runs"] == 2
    assert progress["done"] == len(live_deal_ids(sim)) < len(deals)
    got = timeline(second.records())
    assert gone not in got
    for deal in live_deal_ids(sim):
        assert got[deal] == sim.stage_history(deal), deal


def test_backfill_with_a_rejected_saved_position_lists_again(sim):
    state = {
        "bookmarks": {
            "deal_stage_changes": {
                "backfill": {"after_id": 10, "page_cursors": {"/api/v2/deals": "not-a-cursor"}}
            }
        }
    }
    run = run_tap(sim, ("deal_stage_changes",), state, stage_history_mode="backfill")
    assert run.error is None
    read = {r["deal_id"] for r in run.records()}
    assert read == {d for d in live_deal_ids(sim) if d > 10}
    assert per_deal_requests(sim) == len(read)


def test_reconciliation_run_skips_stage_changes(sim):
    run = run_tap(sim, ("deal_stage_changes",), reconcile=True)
    assert run.records() == []
    assert per_deal_requests(sim) == 0
    assert not any(m["type"] == "ACTIVATE_VERSION" for m in run.messages)


def test_removed_deal_is_gone_not_an_error(sim):
    tap = StageTap(config={"api_url": sim.base_url, "api_token": sim.api_token})
    stream = tap.streams["deal_stage_changes"]
    missing = DealHead.from_record(
        {"id": 10_000, "add_time": "2026-01-01T00:00:00Z", "stage_change_time": None}
    )
    assert stream._deal_records(missing) == ("gone", [])
    existing = DealHead.from_record(sim.truth("deals")[0])
    outcome, records = stream._deal_records(existing)
    assert outcome == "done"
    assert records


# --- through the target ----------------------------------------------------------------------


def load(sim, postgres_url: str, schema: str, state: dict | None = None) -> Run:
    run = run_tap(sim, ("deals", "stages", "pipelines", "deal_stage_changes"), state)
    config = {"database_url": postgres_url, "default_target_schema": schema}
    with contextlib.redirect_stdout(io.StringIO()):
        TargetPipeboardPostgres(config=config).listen(io.StringIO("\n".join(run.lines) + "\n"))
    return run


def check_target(sim, conn: psycopg.Connection, schema: str) -> None:
    columns = dict(
        conn.execute(
            sql.SQL("SELECT stage_id, column_name FROM {}").format(
                sql.Identifier(schema, "_pipeboard_stage_columns")
            )
        ).fetchall()
    )
    assert set(columns) == {s["id"] for s in sim.truth("stages")}
    names = sorted(columns.values())
    deals = conn.execute(
        sql.SQL("SELECT id, {} FROM {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in names), sql.Identifier(schema, "deals")
        )
    ).fetchall()
    stays = defaultdict(list)
    for deal_id, stage_id, pipeline_id, entered_at in conn.execute(
        sql.SQL(
            "SELECT deal_id, stage_id, pipeline_id, entered_at FROM {}"
            " ORDER BY deal_id, stay_number"
        ).format(sql.Identifier(schema, "deal_stage_history"))
    ):
        stays[deal_id].append((stage_id, pipeline_id, entered_at.strftime("%Y-%m-%dT%H:%M:%SZ")))
    checked = 0
    for row in deals:
        deal_id, values = row[0], dict(zip(names, row[1:], strict=True))
        truth = sim.stage_history(deal_id)
        assert stays[deal_id] == [(h["stage_id"], h["pipeline_id"], h["entered_at"]) for h in truth]
        first_entry: dict[str, str] = {}
        for h in truth:
            first_entry.setdefault(columns[h["stage_id"]], h["entered_at"])
        got = {k: v.strftime("%Y-%m-%dT%H:%M:%SZ") for k, v in values.items() if v is not None}
        assert got == first_entry, deal_id
        checked += 1
    assert checked == len(live_deal_ids(sim))


def test_target_columns_and_history_equal_truth_across_runs(sim, postgres_url, pg_schema):
    first = load(sim, postgres_url, pg_schema)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        check_target(sim, conn, pg_schema)
        before = dict(
            conn.execute(
                sql.SQL("SELECT stage_id, column_name FROM {}").format(
                    sql.Identifier(pg_schema, "_pipeboard_stage_columns")
                )
            ).fetchall()
        )

        # Between runs: a stage renamed, a new stage that deals move into, more moves.
        stages = sim.truth("stages")
        renamed = stages[0]
        sim.advance(3600)
        sim.rename_stage(renamed["id"], "Totally New Name")
        new_stage = sim.add_stage(renamed["pipeline_id"], "Security Review")
        movers = [d for d in sim.truth("deals") if d["status"] == "open"][:3]
        for deal in movers:
            sim.move_deal(deal["id"], new_stage)
        sim.advance(120)
        sim.move_deal(movers[0]["id"], movers[0]["stage_id"])
        others = [d for d in sim.truth("deals") if d["status"] == "open"][3:6]
        other_pipeline = next(
            s["id"] for s in sim.truth("stages") if s["pipeline_id"] != others[0]["pipeline_id"]
        )
        sim.move_deal(others[0]["id"], other_pipeline)  # to another pipeline
        sim.update("deals", others[1]["id"], status="won")
        sim.move_deal(others[2]["id"], new_stage)
        sim.delete("deals", others[2]["id"])  # moved, then deleted
        sim.advance(60)

        load(sim, postgres_url, pg_schema, first.state)
        check_target(sim, conn, pg_schema)
        after = dict(
            conn.execute(
                sql.SQL("SELECT stage_id, column_name FROM {}").format(
                    sql.Identifier(pg_schema, "_pipeboard_stage_columns")
                )
            ).fetchall()
        )
        assert after[renamed["id"]] == before[renamed["id"]]  # the renamed stage kept its column
        assert after[new_stage] == "moved_to_stage_security_review"
        funnel = conn.execute(
            sql.SQL("SELECT deals_entered FROM {} WHERE stage_id = %s").format(
                sql.Identifier(pg_schema, "deal_stage_funnel")
            ),
            (new_stage,),
        ).fetchone()
        assert funnel == (3,)  # the deal moved there and then deleted is left out


def test_a_checkpoint_writes_the_state_every_time(sim):
    """``write_checkpoint`` writes a STATE through the tap's state writer at every call, also
    when the state manager was flushed since the last one, and leaves it flushed."""
    tap = TapPipedrive(
        config={"api_url": sim.base_url, "api_token": sim.api_token}, parse_env_config=False
    )
    stream = tap.streams["deal_stage_changes"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        stream.stream_state["probe"] = 1
        stream.write_checkpoint()
        stream.stream_state["probe"] = 2
        stream.write_checkpoint()
        tap.message_writer.write_records()
    states = [json.loads(line) for line in out.getvalue().splitlines()]
    probes = [s["value"]["bookmarks"]["deal_stage_changes"]["probe"] for s in states]
    assert probes == [1, 2]
    assert stream.state_manager.is_flushed
