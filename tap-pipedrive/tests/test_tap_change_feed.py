"""Cheap polling through /v1/recents, against the simulator over real HTTP.

An incremental run asks /v1/recents which item types changed since the streams' checkpoints;
streams whose item type did not change make no request and keep their bookmarks; recents with
more than one page, or a checkpoint older than the window, fall back to polling every stream.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import time
import typing as t

import pytest
import requests
from pipedrive_simulator.coverage_data import MAIL_FOLDERS
from tap_pipedrive import change_feed
from tap_pipedrive.change_feed import (
    CHECKPOINT_KEY,
    DEFAULT_REFRESH_MINUTES,
    PARTS_KEY,
    RECENTS_WINDOW,
    REFRESH_KEY,
    SEEN_KEY,
    ChangeFeed,
    explain_with_events,
    plan_change_feed,
    plan_refresh,
)
from tap_pipedrive.webhooks import events as event_log
from tap_pipedrive.webhooks.credentials import Credentials
from tap_pipedrive.webhooks.registration import WebhookApi, register
from webhook_support import PASSWORD, USER, Receiver

# The list endpoints of the streams /v1/recents covers (the sync job's selection).
COVERED = {
    "GET /api/v2/deals": "deals",
    "GET /api/v2/deals/archived": "deals",
    "GET /api/v2/persons": "persons",
    "GET /api/v2/organizations": "organizations",
    "GET /api/v2/activities": "activities",
    "GET /api/v2/products": "products",
    "GET /v1/notes": "notes",
    "GET /v1/files": "files",
    "GET /v1/users": "users",
    "GET /api/v2/pipelines": "pipelines",
    "GET /api/v2/stages": "stages",
    "GET /v1/activityTypes": "activity_types",
    "GET /v1/filters": "filters",
}
# The lists re-read on an interval (refresh_interval_minutes), one per run.
ON_INTERVAL = {
    "GET /v1/leadLabels": "lead_labels",
    "GET /v1/leadSources": "lead_sources",
    "GET /v1/leadFields": "lead_fields",
    "GET /v1/noteFields": "note_fields",
    "GET /v1/callLogs": "call_logs",
    "GET /v1/currencies": "currencies",
    "GET /v1/goals/find": "goals",
    "GET /api/v2/projects": "projects",
    "GET /api/v2/projects/archived": "projects",
    "GET /api/v2/boards": "project_boards",
    "GET /api/v2/phases": "project_phases",
    "GET /api/v2/projectTemplates": "project_templates",
    "GET /api/v2/tasks": "tasks",
    "GET /v1/roles": "roles",
    "GET /v1/permissionSets": "permission_sets",
    "GET /v1/mailbox/mailThreads": "mail_threads",
}
RECENTS = "GET /v1/recents"
# Lists on an interval whose partitions are re-read one per run (each a request of its own).
PARTS = {"mail_threads": MAIL_FOLDERS, "goals": ("true", "false"), "projects": ("False", "True")}


def _requests(sim: t.Any) -> dict[str, int]:
    return {k: v["requests"] for k, v in sim.stats()["endpoints"].items()}


def _bookmarks(state: dict[str, t.Any]) -> dict[str, t.Any]:
    """Every stream's bookmark values, without the change-feed checkpoints."""
    out = {}
    for name, entry in state["bookmarks"].items():
        parts = entry.get("partitions") or [entry]
        out[name] = [p.get("replication_key_value") for p in parts]
    return out


def _change_then_run(
    sim: t.Any, run: t.Any, config: t.Any, state: t.Any, stream: str, ident: t.Any, **values: t.Any
) -> tuple[t.Any, dict[str, int], list[dict[str, t.Any]]]:
    """Update one record with ``values`` (none: no update) and run at once (the simulator's
    clock stands still during a run): the run, the requests it sent, and the record's rows it
    emitted."""
    if values:
        sim.update(stream, ident, **values)
    sim.reset_stats()
    result = run(config, state=state)
    assert result.error is None
    return result, _requests(sim), [r for r in result.records(stream) if r["id"] == ident]


@pytest.fixture
def synced(pipedrive_simulator: t.Any, run: t.Any, config_for: t.Any) -> t.Any:
    """(config, state) after a first full run."""
    config = config_for(pipedrive_simulator)
    first = run(config)
    assert first.error is None
    assert first.types("RECORD")
    return config, first.state


def test_the_simulator_dates_its_answers_by_its_own_clock(pipedrive_simulator: t.Any) -> None:
    # The tap takes the API's "now" from the Date header; the real API's Date and its record
    # times share one clock, so the simulator's must too.
    response = requests.get(
        f"{pipedrive_simulator.base_url}/api/v1/users",
        headers={"x-api-token": pipedrive_simulator.api_token},
        timeout=10,
    )
    sent = email.utils.parsedate_to_datetime(response.headers["date"])
    assert sent == pipedrive_simulator.now


def test_a_first_run_reads_everything_and_checkpoints_the_covered_streams(
    pipedrive_simulator: t.Any, synced: t.Any
) -> None:
    _, state = synced
    now = pipedrive_simulator.now
    for name in set(COVERED.values()):
        checkpoint = state["bookmarks"][name][CHECKPOINT_KEY]
        assert dt.datetime.fromisoformat(checkpoint.replace("Z", "+00:00")) <= now
    # Not covered by recents: no checkpoint, always read.
    for name in ("leads", "currencies", "deal_fields"):
        assert CHECKPOINT_KEY not in state["bookmarks"].get(name, {})
    # Re-read on an interval: the time of this read (of each partition's read, for those read
    # a partition at a time).
    for name in set(ON_INTERVAL.values()):
        entry = state["bookmarks"][name]
        times = [entry[REFRESH_KEY]] if name not in PARTS else entry[PARTS_KEY].values()
        for refreshed in times:
            assert dt.datetime.fromisoformat(refreshed.replace("Z", "+00:00")) <= now
    for name, parts in PARTS.items():
        assert sorted(state["bookmarks"][name][PARTS_KEY]) == sorted(parts)


def test_an_idle_run_asks_recents_and_reads_no_covered_stream(
    pipedrive_simulator: t.Any, run: t.Any, synced: t.Any
) -> None:
    config, state = synced
    pipedrive_simulator.advance(1800)
    pipedrive_simulator.reset_stats()
    idle = run(config, state=state)
    assert idle.error is None
    sent = _requests(pipedrive_simulator)
    assert sent[RECENTS] == 1
    assert not set(sent) & set(COVERED), f"covered streams were requested: {sent}"
    assert not {m["stream"] for m in idle.types("RECORD")} & set(COVERED.values())
    # Bookmarks kept, checkpoints moved to this run's start.
    assert _bookmarks(idle.state) == _bookmarks(state)
    assert (
        idle.state["bookmarks"]["persons"][CHECKPOINT_KEY]
        > (state["bookmarks"]["persons"][CHECKPOINT_KEY])
    )


def test_a_change_to_one_entity_type_is_picked_up_and_only_its_stream_is_read(
    pipedrive_simulator: t.Any, run: t.Any, synced: t.Any
) -> None:
    config, state = synced
    sim = pipedrive_simulator
    sim.advance(600)
    organization = sim.truth("organizations")[0]
    sim.update("organizations", organization["id"], name="Renamed by the change feed test")
    # More than the checkpoint's margin later (a change in the last minute before a run is
    # listed again by the next one's recents).
    sim.advance(120)
    after, sent, renamed = _change_then_run(
        sim, run, config, state, "organizations", organization["id"]
    )
    assert sent[RECENTS] == 1
    assert sent["GET /api/v2/organizations"] == 1
    assert not set(sent) & (set(COVERED) - {"GET /api/v2/organizations"}), sent
    assert renamed
    assert renamed[-1]["name"] == "Renamed by the change feed test"
    # The unchanged streams kept their bookmarks; organizations' moved.
    before, now = _bookmarks(state), _bookmarks(after.state)
    assert now["persons"] == before["persons"]
    assert now["deals"] == before["deals"]
    assert now["organizations"] != before["organizations"]

    # And the next idle run reads nothing covered again.
    _, sent, _ = _change_then_run(
        sim, run, config, after.state, "organizations", organization["id"]
    )
    assert not set(sent) & set(COVERED)


def test_a_change_just_before_a_run_is_loaded_and_not_polled_again_by_the_next(
    pipedrive_simulator: t.Any, run: t.Any, synced: t.Any
) -> None:
    config, state = synced
    sim = pipedrive_simulator
    sim.advance(270)
    person = sim.truth("persons")[0]
    # 30 s before the run, inside the checkpoint's overlap: the next run's recents lists this
    # change again.
    sim.update("persons", person["id"], name="Renamed just before the run")
    sim.advance(30)
    loaded, sent, renamed = _change_then_run(sim, run, config, state, "persons", person["id"])
    assert sent["GET /api/v2/persons"] == 1
    assert renamed[-1]["name"] == "Renamed just before the run"

    sim.advance(300)
    sim.reset_stats()
    idle = run(config, state=loaded.state)
    assert idle.error is None
    # Recents and the leads (the field definitions, without Redis, are read at every start).
    sent = {e for e in _requests(sim) if not e.endswith("Fields")}
    assert sent == {RECENTS, "GET /v1/leads", "GET /v1/leads/archived"}, sent
    assert not idle.records("persons")
    assert _bookmarks(idle.state)["persons"] == _bookmarks(loaded.state)["persons"]

    # The same person changed again inside the overlap: another update time, polled again.
    sim.update("persons", person["id"], name="Renamed once more")
    sim.advance(30)
    _, sent, renamed = _change_then_run(sim, run, config, idle.state, "persons", person["id"])
    assert sent["GET /api/v2/persons"] == 1
    assert renamed[-1]["name"] == "Renamed once more"


def test_a_stream_is_unchanged_only_when_recents_lists_nothing_but_remembered_changes() -> None:
    now = dt.datetime(2026, 6, 1, 12, 5, tzinfo=dt.UTC)
    earlier = {"item": "person", "id": 7, "data": {"update_time": "2026-06-01 11:59:30"}}
    body = {"success": True, "data": [earlier]}

    def plan(seen: list[list[str]]) -> ChangeFeed:
        stream = _Stream("persons", "person", "2026-06-01T11:59:00Z")
        stream.stream_state[SEEN_KEY] = seen
        return plan_change_feed([stream], fetch=lambda *_: body, clock=lambda: now)  # type: ignore[list-item]

    assert plan([["person", "7", "2026-06-01T11:59:30Z"]]).skipped == ["persons"]
    assert plan([["person", "7", "2026-06-01T11:59:29Z"]]).skipped == []
    assert plan([["person", "8", "2026-06-01T11:59:30Z"]]).skipped == []
    assert plan([]).skipped == []
    # What the run remembers: the listed changes after its new checkpoint (a minute before
    # its clock), those of the second recents answered in with a digest (below).
    stream = _Stream("persons", "person", "2026-06-01T12:00:00Z")
    feed = plan_change_feed(
        [stream],  # type: ignore[list-item]
        fetch=lambda *_: {
            "data": [
                {"item": "person", "id": 7, "data": {"update_time": "2026-06-01 12:04:30"}},
                {"item": "person", "id": 8, "data": {"update_time": "2026-06-01 12:03:59"}},
                {"item": "person", "id": 9, "data": {"update_time": "2026-06-01 12:05:00"}},
                {"item": "deal", "id": 7, "data": {"update_time": "2026-06-01 12:04:30"}},
            ]
        },
        clock=lambda: now,
    )
    feed.finish(stream)  # type: ignore[arg-type]
    # The change of the second recents answered in is remembered with a digest of the record
    # recents gave: another change of that second would carry the same time.
    remembered = stream.stream_state[SEEN_KEY]
    assert remembered[0] == ["person", "7", "2026-06-01T12:04:30Z"]
    assert remembered[1][:3] == ["person", "9", "2026-06-01T12:05:00Z"]
    assert len(remembered) == 2
    same_second = {"item": "person", "id": 9, "data": {"update_time": "2026-06-01 12:05:00"}}
    later = dt.datetime(2026, 6, 1, 12, 10, tzinfo=dt.UTC)

    def next_run(listed: dict[str, t.Any]) -> list[str]:
        again = _Stream("persons", "person", "2026-06-01T12:04:00Z")
        again.stream_state[SEEN_KEY] = remembered
        body = {"data": [listed]}
        return plan_change_feed([again], fetch=lambda *_: body, clock=lambda: later).skipped  # type: ignore[list-item]

    assert next_run(same_second) == ["persons"]  # the very record the run loaded
    changed = {**same_second, "data": {**same_second["data"], "name": "Changed again"}}
    assert next_run(changed) == []  # changed again within that second: read


def test_a_changed_saved_filter_is_listed_by_recents_and_only_filters_are_read(
    pipedrive_simulator: t.Any, run: t.Any, synced: t.Any
) -> None:
    config, state = synced
    sim = pipedrive_simulator
    sim.advance(600)
    coverage = sim.simulator.coverage
    first = coverage.rows("filters")[0]
    coverage.put("filters", {"id": first["id"], "name": "Renamed filter"})
    sim.advance(120)
    sim.reset_stats()
    after = run(config, state=state)
    assert after.error is None
    sent = _requests(sim)
    assert sent[RECENTS] == 1
    assert sent["GET /v1/filters"] == 1
    assert not set(sent) & (set(COVERED) - {"GET /v1/filters"}), sent
    names = {r["id"]: r["name"] for r in after.records("filters")}
    assert names[first["id"]] == "Renamed filter"
    assert len(names) == len(coverage.rows("filters"))  # the list is read whole
    # The next idle run skips the filters again.
    sim.reset_stats()
    again = run(config, state=after.state)
    assert again.error is None
    assert "GET /v1/filters" not in _requests(sim)


def test_recents_with_more_than_one_page_falls_back_to_polling_every_stream(
    pipedrive_simulator: t.Any, run: t.Any, synced: t.Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, state = synced
    sim = pipedrive_simulator
    sim.advance(600)
    # Pages of two items: three changes make recents answer with more than one page.
    monkeypatch.setattr(change_feed, "RECENTS_PAGE", 2)
    sim.update("persons", sim.truth("persons")[0]["id"], name="Changed 1")
    sim.update("persons", sim.truth("persons")[1]["id"], name="Changed 2")
    sim.update("products", sim.truth("products")[0]["id"], name="Changed 3")
    sim.reset_stats()
    after = run(config, state=state)
    assert after.error is None
    sent = _requests(sim)
    assert sent[RECENTS] == 1
    assert set(COVERED) <= set(sent), f"not every covered stream was polled: {sent}"
    names = {r["name"] for r in after.records("persons")} | {
        r["name"] for r in after.records("products")
    }
    assert {"Changed 1", "Changed 2", "Changed 3"} <= names


def test_a_checkpoint_older_than_the_window_falls_back_without_asking_recents(
    pipedrive_simulator: t.Any, run: t.Any, synced: t.Any
) -> None:
    config, state = synced
    sim = pipedrive_simulator
    sim.advance(int(RECENTS_WINDOW.total_seconds()) + 3600)
    deal = sim.truth("deals")[0]
    sim.update("deals", deal["id"], title="Changed after a long pause")
    sim.advance(120)
    sim.reset_stats()
    after = run(config, state=state)
    assert after.error is None
    sent = _requests(sim)
    assert RECENTS not in sent
    assert set(COVERED) <= set(sent)
    assert "Changed after a long pause" in {r["title"] for r in after.records("deals")}
    # Checkpoints are current again: the next run uses recents.
    sim.reset_stats()
    again = run(config, state=after.state)
    assert again.error is None
    assert _requests(sim)[RECENTS] == 1
    assert not set(_requests(sim)) & set(COVERED)


def test_a_reconcile_run_does_not_ask_recents(
    pipedrive_simulator: t.Any, run: t.Any, synced: t.Any
) -> None:
    config, state = synced
    pipedrive_simulator.reset_stats()
    result = run({**config, "reconcile": True}, state=state)
    assert result.error is None
    sent = _requests(pipedrive_simulator)
    assert RECENTS not in sent
    assert set(COVERED) <= set(sent)


def test_an_idle_run_with_the_redis_cache_costs_at_most_100_tokens(
    pipedrive_simulator: t.Any, run: t.Any, config_for: t.Any, redis_url: str
) -> None:
    config = config_for(pipedrive_simulator, redis_url=redis_url)
    first = run(config)
    assert first.error is None
    pipedrive_simulator.advance(1800)
    pipedrive_simulator.reset_stats()
    idle = run(config, state=first.state)
    assert idle.error is None
    stats = pipedrive_simulator.stats()
    assert stats["total"]["tokens"] <= 100, stats
    # What is left: recents, and the leads, which recents does not list; the field
    # definitions come from the cache, the lists on an interval are not due.
    assert set(stats["endpoints"]) == {RECENTS, "GET /v1/leads", "GET /v1/leads/archived"}


def test_without_redis_an_idle_run_reads_only_the_field_definitions_more(
    pipedrive_simulator: t.Any, run: t.Any, synced: t.Any
) -> None:
    # Field definitions decide the catalog's columns at every start; without the Redis cache
    # they are read every run (documented: the 100-token goal needs Redis or the webhooks).
    config, state = synced
    pipedrive_simulator.advance(1800)
    pipedrive_simulator.reset_stats()
    idle = run(config, state=state)
    assert idle.error is None
    sent = set(_requests(pipedrive_simulator))
    fields = {e for e in sent if e.endswith("Fields")}
    assert sent - fields == {RECENTS, "GET /v1/leads", "GET /v1/leads/archived"}
    assert fields == {
        f"GET /api/v2/{e}Fields"
        for e in ("deal", "person", "organization", "product", "activity", "project")
    }


def test_lists_on_an_interval_are_re_read_one_per_run_once_due(
    pipedrive_simulator: t.Any, run: t.Any, synced: t.Any
) -> None:
    config, state = synced
    sim = pipedrive_simulator
    label = sim.simulator.coverage.rows("lead_labels")[0]
    sim.simulator.coverage.put("lead_labels", {**label, "name": "Renamed while not due"})
    # Not due yet: nothing on an interval is read.
    sim.advance(DEFAULT_REFRESH_MINUTES * 60 - 3600)
    sim.reset_stats()
    before = run(config, state=state)
    assert before.error is None
    assert not set(_requests(sim)) & set(ON_INTERVAL)
    assert not before.records("lead_labels")
    # Due: one list per run, the one read longest ago, until every one was read again.
    sim.advance(7200)
    current = before.state
    order: list[str] = []
    streams = set(ON_INTERVAL.values())
    # Mail folders, goals (active, inactive) and projects (live, archived) are re-read one
    # partition per run.
    reads = sorted([*streams, *(n for n, parts in PARTS.items() for _ in parts[1:])])
    for _ in range(len(reads) + 1):
        sim.reset_stats()
        after = run(config, state=current)
        assert after.error is None
        read = {ON_INTERVAL[e] for e in _requests(sim) if e in ON_INTERVAL}
        assert len(read) <= 1, read
        order.extend(read)
        if "lead_labels" in read:
            names = {r["name"] for r in after.records("lead_labels") if r["id"] == label["id"]}
            assert names == {"Renamed while not due"}
        current = after.state
        sim.advance(1800)
    assert sorted(order) == reads, order
    # Read again, each is not due for another interval.
    sim.reset_stats()
    assert run(config, state=current).error is None
    assert not set(_requests(sim)) & set(ON_INTERVAL)


# The field definitions (discovery's), cached with the time the API answered them.
FIELD_LISTS = {
    f"GET /api/v2/{entity}Fields": f"{entity}_fields"
    for entity in ("deal", "person", "organization", "product", "activity", "project")
}


def test_cached_field_definitions_share_the_one_re_read_per_run_with_the_lists(
    pipedrive_simulator: t.Any, run: t.Any, config_for: t.Any, redis_url: str
) -> None:
    sim = pipedrive_simulator
    config = config_for(sim, redis_url=redis_url)
    first = run(config)
    assert first.error is None
    # Within the interval: every field definition from the cache, no list re-read.
    sim.advance(DEFAULT_REFRESH_MINUTES * 60 - 3600)
    sim.reset_stats()
    before = run(config, state=first.state)
    assert before.error is None
    assert not set(_requests(sim)) & (set(ON_INTERVAL) | set(FIELD_LISTS))
    # A custom field added while the definitions are cached.
    sim.add_field("deals", "Added while cached", "varchar")
    # All come due together (read by the first run): one list or field definition per run,
    # the one read longest ago, until every one was read again.
    sim.advance(7200)
    current = before.state
    order: list[str] = []
    wanted = set(ON_INTERVAL.values()) | set(FIELD_LISTS.values())
    columns_by_run: list[bool] = []
    reads = sorted([*wanted, *(n for n, parts in PARTS.items() for _ in parts[1:])])
    for _ in range(len(reads) + 1):
        sim.reset_stats()
        after = run(config, state=current)
        assert after.error is None
        sent = _requests(sim)
        read = {
            ON_INTERVAL.get(e) or FIELD_LISTS[e]
            for e in sent
            if e in {**ON_INTERVAL, **FIELD_LISTS}
        }
        assert len(read) <= 1, read
        # Recents and the leads (80) and the one re-read (at most 20): within 100 tokens.
        assert sim.stats()["total"]["tokens"] <= 100, sent
        order.extend(read)
        schema = next(m for m in after.types("SCHEMA") if m["stream"] == "deals")
        columns_by_run.append("added_while_cached" in schema["schema"]["properties"])
        current = after.state
        sim.advance(600)  # every run inside the interval after the first re-read
    assert sorted(order) == reads, order
    # The new column arrives at the run after deal_fields was read again (the catalog comes
    # from the definitions discovery took from the cache).
    read_deal_fields = order.index("deal_fields")
    assert columns_by_run == [False] * (read_deal_fields + 1) + [True] * (
        len(columns_by_run) - read_deal_fields - 1
    )
    # Read again, none is due for another interval.
    sim.reset_stats()
    assert run(config, state=current).error is None
    assert not set(_requests(sim)) & (set(ON_INTERVAL) | set(FIELD_LISTS))


def test_a_due_field_definition_goes_before_lists_read_more_recently() -> None:
    now = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
    streams = [
        _Stream("currencies", None, None, refreshed="2026-05-31T18:00:00Z"),  # due
        _Stream("roles", None, None, refreshed="2026-06-01T11:00:00Z"),  # not due
    ]
    others = {
        "deal_fields": dt.datetime(2026, 5, 31, 17, tzinfo=dt.UTC),  # due, oldest
        "person_fields": dt.datetime(2026, 6, 1, 10, tzinfo=dt.UTC),  # not due
    }
    feed = ChangeFeed(clock=lambda: now)
    plan_refresh(feed, streams, interval=dt.timedelta(hours=12), now=now, others=others)  # type: ignore[arg-type]
    assert feed.refreshing == ["deal_fields"]
    assert "currencies" in feed.not_due
    # A cached entry of unknown age counts as the oldest.
    unknown = ChangeFeed(clock=lambda: now)
    plan_refresh(
        unknown,
        streams,
        interval=dt.timedelta(hours=12),
        now=now,
        others={**others, "product_fields": None},
    )  # type: ignore[arg-type]
    assert unknown.refreshing == ["product_fields"]
    # Webhooks mode between safety nets (no API clock): none.
    between = ChangeFeed(clock=lambda: None)
    plan_refresh(
        between, streams, interval=dt.timedelta(hours=12), now=None, per_run=None, others=others
    )  # type: ignore[arg-type]
    assert between.refreshing == []
    # At a safety net, every one that is due.
    net = ChangeFeed(clock=lambda: now)
    plan_refresh(
        net, streams, interval=dt.timedelta(hours=12), now=now, per_run=None, others=others
    )  # type: ignore[arg-type]
    assert net.refreshing == ["deal_fields", "currencies"]


class _Stream:
    def __init__(
        self, name: str, item: str | None, checkpoint: str | None, refreshed: str | None = None
    ) -> None:
        self.name = name
        self.recents_item = item
        self.refreshed_on_interval = refreshed is not None
        self.stream_state: dict[str, t.Any] = {}
        if checkpoint:
            self.stream_state[CHECKPOINT_KEY] = checkpoint
        if refreshed:
            self.stream_state[REFRESH_KEY] = refreshed

    def refresh_parts(self) -> tuple[str, ...]:
        return ()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"data": {"item": "deal"}}, "not a list of items"),
        ({"data": [1, 2]}, "not a list of items"),
        (
            {"data": [], "additional_data": {"pagination": {"more_items_in_collection": True}}},
            "more than one page",
        ),
    ],
)
def test_answers_that_cannot_be_trusted_fall_back(body: dict[str, t.Any], reason: str) -> None:
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    streams = [_Stream("deals", "deal", "2026-05-31T00:00:00Z")]
    feed = plan_change_feed(streams, fetch=lambda since, items: body, clock=lambda: now)  # type: ignore[arg-type]
    assert feed.changed is None
    assert reason in feed.reason
    assert not feed.skips(streams[0])  # type: ignore[arg-type]


def test_null_data_means_nothing_changed_and_items_are_the_covered_types() -> None:
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    asked: list[tuple[dt.datetime, list[str]]] = []
    streams = [
        _Stream("deals", "deal", "2026-05-31T10:00:00Z"),
        _Stream("persons", "person", "2026-05-31T09:00:00Z"),
        _Stream("leads", None, None),
        _Stream("files", "file", None),
    ]

    def fetch(since: dt.datetime, items: list[str]) -> dict[str, t.Any]:
        asked.append((since, items))
        return {"success": True, "data": None}

    feed = plan_change_feed(streams, fetch=fetch, clock=lambda: now)  # type: ignore[arg-type]
    assert asked == [(dt.datetime(2026, 5, 31, 9, tzinfo=dt.UTC), ["deal", "file", "person"])]
    assert feed.changed == set()
    assert [s.name for s in streams if feed.skips(s)] == ["deals", "persons"]  # type: ignore[arg-type]


def test_a_refresh_reads_never_read_lists_at_once_and_one_due_list_per_run() -> None:
    now = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
    streams = [
        _Stream("roles", None, None, refreshed="2026-06-01T11:00:00Z"),  # not due
        _Stream("goals", None, None, refreshed="2026-05-31T20:00:00Z"),  # due
        _Stream("currencies", None, None, refreshed="2026-05-31T18:00:00Z"),  # due, older
        _Stream("tasks", None, None, refreshed=""),  # never read
        _Stream("deals", "deal", "2026-06-01T11:00:00Z"),
    ]
    feed = ChangeFeed(clock=lambda: now)
    plan_refresh(feed, streams, interval=dt.timedelta(hours=12), now=now)  # type: ignore[arg-type]
    assert feed.refreshing == ["currencies"]
    assert feed.not_due == {"roles", "goals"}
    assert [s.name for s in streams if feed.skips(s)] == ["roles", "goals"]  # type: ignore[arg-type]
    # Read to the end: its refresh time is this run's; a skipped one keeps its own.
    for stream in streams[:4]:
        feed.finish(stream)  # type: ignore[arg-type]
    assert streams[2].stream_state[REFRESH_KEY] == "2026-06-01T12:00:00Z"
    assert streams[3].stream_state[REFRESH_KEY] == "2026-06-01T12:00:00Z"
    assert streams[1].stream_state[REFRESH_KEY] == "2026-05-31T20:00:00Z"
    # Interval 0: everything every run.
    every = ChangeFeed(clock=lambda: now)
    plan_refresh(every, streams, interval=dt.timedelta(0), now=now)  # type: ignore[arg-type]
    assert not every.not_due
    # Webhooks mode's safety net: every due list at once; between (no clock): only new lists.
    streams[2].stream_state[REFRESH_KEY] = "2026-05-31T18:00:00Z"  # currencies due again
    webhooks = ChangeFeed(clock=lambda: now)
    plan_refresh(webhooks, streams, interval=dt.timedelta(hours=12), now=now, per_run=None)  # type: ignore[arg-type]
    assert webhooks.refreshing == ["currencies", "goals"]
    between = ChangeFeed(clock=lambda: None)
    plan_refresh(between, streams, interval=dt.timedelta(hours=12), now=None, per_run=None)  # type: ignore[arg-type]
    assert between.not_due == {"roles", "goals", "currencies", "tasks"}


def test_the_webhooks_safety_net_polls_only_what_the_stored_events_lack(
    pipedrive_simulator: t.Any,
    run: t.Any,
    config_for: t.Any,
    catalog_with: t.Any,
    postgres_url: str,
    pg_schema: str,
    redis_url: str,
) -> None:
    sim = pipedrive_simulator
    receiver = Receiver(postgres_url, pg_schema).start()
    try:
        register(WebhookApi(sim.base_url, sim.api_token), receiver.url, Credentials(USER, PASSWORD))
        config = config_for(
            sim,
            webhook_database_url=postgres_url,
            webhook_schema=pg_schema,
            webhook_poll_every_runs=2,
            redis_url=redis_url,  # the field definitions from the cache
        )
        catalog = catalog_with(config, ["organizations", "persons"])

        def settle() -> None:
            assert sim.drain_webhooks() == 0
            time.sleep(event_log.SETTLE_SECONDS + 0.2)

        def step(state: dict[str, t.Any]) -> tuple[t.Any, dict[str, int]]:
            sim.advance(300)
            sim.reset_stats()
            result = run(config, state=state, catalog=catalog)
            assert result.error is None
            return result, _requests(sim)

        first = run(config, catalog=catalog)  # run 1 polls (and reads everything)
        assert first.error is None
        org = sim.truth("organizations")[0]
        sim.update("organizations", org["id"], name="Delivered by an event")
        settle()
        second, sent = step(first.state)  # run 2: the events only
        assert sent == {}
        assert {r["name"] for r in second.records("organizations")} == {"Delivered by an event"}
        # Run 3 polls: recents lists the change, the stored event holds it: no list read.
        third, sent = step(second.state)
        assert sent == {RECENTS: 1}
        assert (
            third.state["bookmarks"]["organizations"][CHECKPOINT_KEY]
            > (second.state["bookmarks"]["organizations"][CHECKPOINT_KEY])
        )

        # An organization change delivered, then a person change lost (Pipedrive stalls).
        sim.update("organizations", sim.truth("organizations")[1]["id"], name="Delivered too")
        settle()
        sim.webhook_switches(stall=True)
        person = sim.truth("persons")[0]
        sim.update("persons", person["id"], name="Lost on the way")
        fourth, sent = step(third.state)  # run 4: events only
        assert sent == {}
        assert person["id"] not in {r["id"] for r in fourth.records("persons")}
        # Run 5 polls: persons lacks an event and is read; organizations is not.
        fifth, sent = step(fourth.state)
        assert sent[RECENTS] == 1
        assert sent["GET /api/v2/persons"] == 1
        assert "GET /api/v2/organizations" not in sent
        names = {r["id"]: r["name"] for r in fifth.records("persons")}
        assert names[person["id"]] == "Lost on the way"
    finally:
        receiver.stop()


def test_a_change_is_explained_only_by_an_event_at_least_as_new() -> None:
    now = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
    streams = [
        _Stream("deals", "deal", "2026-06-01T11:00:00Z"),
        _Stream("persons", "person", "2026-06-01T11:00:00Z"),
        _Stream("users", "user", "2026-06-01T11:00:00Z"),
    ]
    for stream in streams:
        stream.stream_state["polled_at"] = "2026-06-01T11:00:00Z"
    body = {
        "data": [
            {"item": "deal", "id": 1, "data": {"update_time": "2026-06-01 11:10:00"}},
            {"item": "deal", "id": 2, "data": {"update_time": "2026-06-01 11:20:00"}},
            {"item": "person", "id": 7, "data": {"update_time": "2026-06-01 11:30:00"}},
            {"item": "user", "id": 3, "data": {"modified": "2026-06-01 11:40:00"}},
        ]
    }
    asked: list[tuple[list[str], dt.datetime]] = []

    def latest(kinds: t.Any, since: dt.datetime) -> dict[tuple[str, str], dt.datetime]:
        asked.append((sorted(kinds), since))
        return {
            ("deal", "1"): dt.datetime(2026, 6, 1, 11, 10, tzinfo=dt.UTC),
            ("deal", "2"): dt.datetime(2026, 6, 1, 11, 20, 1, tzinfo=dt.UTC),
            # The person's event is of an earlier change: the later one was lost.
            ("person", "7"): dt.datetime(2026, 6, 1, 11, 5, tzinfo=dt.UTC),
        }

    feed = plan_change_feed(streams, fetch=lambda since, items: body, clock=lambda: now)  # type: ignore[arg-type]
    plan_refresh(feed, streams, interval=dt.timedelta(hours=12), now=now)  # type: ignore[arg-type]
    explain_with_events(
        feed,
        streams,  # type: ignore[arg-type]
        fed_items={"deal", "person"},
        latest=latest,
        poll_at_least_every=dt.timedelta(hours=12),
    )
    assert asked == [(["deal", "person"], dt.datetime(2026, 6, 1, 11, 9, 59, tzinfo=dt.UTC))]
    assert feed.explained == {"deal"}
    # Users are not fed by events: read as recents lists a change.
    assert [s.name for s in streams if feed.skips(s)] == ["deals"]  # type: ignore[arg-type]
    # Not polled for longer than the interval: read even though the events hold its changes.
    streams[0].stream_state["polled_at"] = "2026-05-31T23:00:00Z"
    assert not feed.skips(streams[0])  # type: ignore[arg-type]


def test_a_change_in_the_second_of_the_run_is_not_polled_again_unless_changed_again(
    pipedrive_simulator: t.Any, run: t.Any, synced: t.Any
) -> None:
    # The simulator's clock stands still during a run: a change made just before a run is of
    # the second the run's recents answers in.
    config, state = synced
    sim = pipedrive_simulator
    sim.advance(600)
    ident = sim.truth("persons")[0]["id"]
    first, _, renamed = _change_then_run(
        sim, run, config, state, "persons", ident, name="Renamed in the run's second"
    )
    assert [r["name"] for r in renamed] == ["Renamed in the run's second"]
    # Listed again by the next run's recents, the very same record: no poll.
    sim.advance(300)
    idle, sent, _ = _change_then_run(sim, run, config, first.state, "persons", ident)
    assert "GET /api/v2/persons" not in sent
    # Changed again in the second of a run after that run read it: the same update time, other
    # values: the next run polls and loads it.
    sim.advance(300)
    before, _, _ = _change_then_run(sim, run, config, idle.state, "persons", ident, name="Once")
    sim.update("persons", ident, name="Twice in one second")
    sim.advance(300)
    _, sent, renamed = _change_then_run(sim, run, config, before.state, "persons", ident)
    assert sent["GET /api/v2/persons"] == 1
    assert [r["name"] for r in renamed] == ["Twice in one second"]
