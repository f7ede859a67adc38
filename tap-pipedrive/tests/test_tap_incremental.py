"""Incremental runs: exactly the changed records, an exact inclusive boundary, resumable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

INCREMENTAL = ("deals", "persons", "organizations", "activities", "products", "leads", "notes")


def _changed_since(sim, stream, since):
    if stream in {"deals", "leads"}:  # both streams carry their archived records too
        rows = sim.truth(stream) + sim.truth(f"archived_{stream}")
    else:
        rows = sim.truth(stream)
    return sorted(r["id"] for r in rows if _rfc3339(r["update_time"]) >= since)


def _rfc3339(stamp):
    # v1 notes: "YYYY-MM-DD HH:MM:SS"; v1 leads: milliseconds; compared to the second.
    return f"{stamp[:10]}T{stamp[11:19]}Z"


def test_next_run_emits_exactly_the_changed_records(pipedrive_simulator, run, config_for):
    sim = pipedrive_simulator
    config = config_for(sim)
    first = run(config)
    assert first.error is None

    sim.advance(3600)
    since = sim.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    new_deal = sim.create("deals", title="Fresh deal")
    new_person = sim.create("persons", name="Fresh person")
    sim.update("deals", 5, title="Renamed deal")
    sim.delete("deals", 6)
    sim.archive_deal(7)
    sim.update("persons", 3, name="Renamed person")
    sim.delete("persons", 4)
    sim.create("notes")
    # /leads/archived takes no updated_since: the tap must skip the older archived leads itself.
    archived_lead = sim.truth("leads")[0]["id"]
    sim.update("leads", archived_lead, is_archived=True)
    sim.update("leads", sim.truth("leads")[1]["id"], title="Renamed lead")
    sim.update("activities", 10, subject="Moved call")
    sim.random_changes(40, seed=2)

    second = run(config, state=first.state)
    assert second.error is None
    for stream in INCREMENTAL:
        assert sorted(second.ids(stream)) == _changed_since(sim, stream, since), stream

    deals = {r["id"]: r for r in second.records("deals")}
    assert deals[5]["title"] == "Renamed deal"
    assert deals[6]["_sdc_deleted_at"] is not None
    assert deals[7]["is_archived"] is True
    assert deals[new_deal["id"]]["title"] == "Fresh deal"
    leads = {r["id"]: r for r in second.records("leads")}
    assert leads[archived_lead]["is_archived"] is True
    assert len(leads) == 2
    assert {r["id"]: r["name"] for r in second.records("persons")}[new_person["id"]] == (
        "Fresh person"
    )
    assert 4 not in second.ids("persons")  # a deleted person is no longer listed by v2

    # Nothing changed since: polling every stream (use_recents off; the change feed has its
    # own tests), the third run reads one page per incremental endpoint and emits no
    # incremental records.
    sim.reset_stats()
    third = run({**config, "use_recents": False}, state=second.state)
    for stream in INCREMENTAL:
        assert third.ids(stream) == [], stream
    stats = sim.stats()["endpoints"]
    for endpoint in (
        "/api/v2/deals",
        "/api/v2/deals/archived",
        "/api/v2/persons",
        "/api/v2/organizations",
        "/api/v2/activities",
        "/api/v2/products",
        "/v1/leads",
        "/v1/leads/archived",
        "/v1/notes",
    ):
        assert stats[f"GET {endpoint}"]["requests"] == 1, endpoint


def test_same_second_boundary_loses_and_duplicates_nothing(pipedrive_simulator, run, config_for):
    sim = pipedrive_simulator
    config = config_for(sim, include_archived_deals=False)
    first = run(config)
    assert first.error is None

    sim.advance(60)
    sim.update("deals", 11, title="A")
    second = run(config, state=first.state)
    assert second.ids("deals") == [11]

    # Same simulated second as the bookmark: B is new at that second, A changed again.
    sim.update("deals", 12, title="B")
    third = run(config, state=second.state)
    assert third.ids("deals") == [12]
    sim.update("deals", 11, title="A again")
    fourth = run(config, state=third.state)
    assert [(r["id"], r["title"]) for r in fourth.records("deals")] == [(11, "A again")]
    fifth = run(config, state=fourth.state)
    assert fifth.ids("deals") == []


def test_killed_run_resumes_without_gaps(pipedrive_simulator, config_for, run, tmp_path: Path):
    sim = pipedrive_simulator
    config = config_for(sim, page_size=50, include_archived_deals=False)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    tap = Path(sys.executable).with_name("tap-pipedrive")
    proc = subprocess.Popen(
        [str(tap), "--config", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    seen: list[dict] = []
    state = None
    activities_seen = 0
    for line in proc.stdout:
        msg = json.loads(line)
        seen.append(msg)
        if msg["type"] == "RECORD" and msg["stream"] == "activities":
            activities_seen += 1
        if msg["type"] == "STATE":
            state = msg["value"]
            if activities_seen >= 300:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert activities_seen < len(sim.truth("activities")), "killed mid-stream"
    assert state is not None

    resumed = run(config, state=state)
    assert resumed.error is None
    before = {
        m["record"]["id"] for m in seen if m["type"] == "RECORD" and m["stream"] == "activities"
    }
    after = resumed.ids("activities")
    assert before | set(after) == {r["id"] for r in sim.truth("activities")}
    # The resumed run starts at the bookmark, not from the beginning.
    assert len(after) < len(sim.truth("activities")) - 250


def test_archived_leads_are_read_newest_first_down_to_the_bookmark(
    pipedrive_simulator_factory, run, config_for
):
    # /leads/archived takes no updated_since: a run from a bookmark asks for the newest first
    # and stops at the first page reaching back past the bookmark, so an idle run costs one
    # request however many pages the list has; the rows are still emitted oldest first.
    sim = pipedrive_simulator_factory(deals=100)
    config = config_for(sim, page_size=5, use_recents=False)
    leads = [lead["id"] for lead in sim.truth("leads")]
    assert len(leads) >= 14
    for ident in leads[:12]:
        sim.update("leads", ident, is_archived=True)
        sim.advance(1)
    first = run(config)
    assert first.error is None
    assert {r["id"] for r in first.records("leads") if r["is_archived"]} >= set(leads[:12])
    assert sim.stats()["endpoints"]["GET /v1/leads/archived"]["requests"] >= 3

    sim.advance(600)
    sim.reset_stats()
    idle = run(config, state=first.state)
    assert idle.error is None
    assert idle.records("leads") == []
    assert sim.stats()["endpoints"]["GET /v1/leads/archived"]["requests"] == 1

    sim.advance(60)
    sim.update("leads", leads[12], is_archived=True)
    sim.advance(5)
    sim.update("leads", leads[3], title="Renamed archived lead")
    sim.advance(5)
    sim.update("leads", leads[13], is_archived=True)
    sim.reset_stats()
    second = run(config, state=idle.state)
    assert second.error is None
    records = second.records("leads")
    assert [r["id"] for r in records] == [leads[12], leads[3], leads[13]]
    assert {r["id"]: r["title"] for r in records}[leads[3]] == "Renamed archived lead"
    assert all(r["is_archived"] for r in records)
    assert sim.stats()["endpoints"]["GET /v1/leads/archived"]["requests"] == 1

    # The bookmark moved past them: the next run emits nothing, again in one request.
    sim.advance(60)
    sim.reset_stats()
    third = run(config, state=second.state)
    assert third.records("leads") == []
    assert sim.stats()["endpoints"]["GET /v1/leads/archived"]["requests"] == 1
