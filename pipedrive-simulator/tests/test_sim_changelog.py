"""Changelogs of deals, persons and organizations: a realistic past, every mutation logged, and
records as they were at any time (the ground truth history reconstruction is tested against)."""

import datetime as dt

import pytest
from pipedrive_simulator.changelog import log_text
from pipedrive_simulator.timeutil import to_v1

STREAMS = ("deals", "persons", "organizations")
UNLOGGED = {"id", "add_time", "update_time", "custom_fields"}


def _log(client, stream, ident, limit=3):
    entries, cursor = [], None
    while True:
        params = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = client.ok(f"/v1/{stream}/{ident}/changelog", **params)
        entries.extend(body["data"])
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            entries.reverse()  # the API answers newest first
            return entries


def _flat(record):
    """Field key -> value, custom fields by their keys."""
    out = {k: v for k, v in record.items() if k != "custom_fields"}
    out.update(record.get("custom_fields") or {})
    return out


def _shift(text, seconds):
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00")) + dt.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("stream", STREAMS)
def test_seeded_records_have_a_past_the_log_and_the_record_agree_on(client, stream):
    handle = client.handle
    records = handle.truth(stream)
    edited = [r for r in records if r["update_time"] > r["add_time"]]
    assert len(edited) > len(records) / 2
    with_past = 0
    for rec in edited[:40]:
        log = _log(client, stream, rec["id"])
        fields = _flat(rec)
        with_past += bool(log)
        # The last change is the record's update_time; every change is after its creation.
        assert log, f"{stream} {rec['id']} was edited but has no changelog"
        assert log[-1]["time"] == to_v1(rec["update_time"])
        assert all(e["time"] > to_v1(rec["add_time"]) for e in log)
        # Each field's changes chain, and the newest value is the record's.
        newest = {}
        for entry in log:
            key = entry["field_key"]
            if key in newest:
                assert entry["old_value"] == newest[key], (stream, rec["id"], key)
            newest[key] = entry["new_value"]
        for key, value in newest.items():
            assert value == log_text(fields[key]), (stream, rec["id"], key)
    assert with_past == min(40, len(edited))
    # Months ago: the account's records span its past, not the last days.
    oldest = min(r["add_time"] for r in records)
    assert oldest < _shift(handle.now.strftime("%Y-%m-%dT%H:%M:%SZ"), -180 * 86400)


@pytest.mark.parametrize("stream", STREAMS)
def test_records_at_a_time_replay_the_log(client, stream):
    handle = client.handle
    for rec in [r for r in handle.truth(stream) if r["update_time"] > r["add_time"]][:25]:
        ident = rec["id"]
        assert handle.record_at(stream, ident, _shift(rec["add_time"], -1)) is None
        assert handle.record_at(stream, ident, rec["update_time"]) == rec
        first = handle.record_at(stream, ident, rec["add_time"])
        assert first["update_time"] == first["add_time"] == rec["add_time"]
        # Apply the typed log forwards from the first version: the current record.
        state = _flat(first)
        for event in handle.changelog(stream, ident):
            assert state[event["field_key"]] == event["old_value"], (stream, ident, event)
            state[event["field_key"]] = event["new_value"]
        assert {k: v for k, v in state.items() if k not in UNLOGGED} == {
            k: v for k, v in _flat(rec).items() if k not in UNLOGGED
        }


def test_every_mutation_logs_every_field_it_changes(client):
    handle = client.handle
    person = handle.truth("persons")[0]
    org = handle.truth("organizations")[0]
    deal = next(d for d in handle.truth("deals") if d["status"] == "open")
    before = handle.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    handle.advance(3600)
    key = handle.simulator.account.custom["person"][0].key
    handle.update("persons", person["id"], name="Renamed Person", **{key: "typed"})
    handle.update("organizations", org["id"], employee_count=77)
    handle.update("deals", deal["id"], status="won", value=1234.0)
    handle.advance(60)
    handle.delete("organizations", org["id"])

    log = _log(client, "persons", person["id"])
    assert {e["field_key"]: (e["old_value"], e["new_value"]) for e in log[-2:]} == {
        "name": (person["name"], "Renamed Person"),
        key: (log_text(person["custom_fields"][key]), "typed"),
    }
    assert log[-1]["change_source"] == "api"
    log = _log(client, "organizations", org["id"])
    assert [(e["field_key"], e["new_value"]) for e in log[-2:]] == [
        ("employee_count", "77"),
        ("is_deleted", "true"),
    ]
    log = _log(client, "deals", deal["id"], limit=500)
    won = {e["field_key"]: e["new_value"] for e in log if e["time"] == log[-1]["time"]}
    assert won["status"] == "won"
    assert won["value"] == "1234"
    assert won["won_time"] == won["close_time"]  # side effects are logged too
    assert log[-1]["field_key"] == "value"  # the fields asked for are the newest entries

    # The ground truth over the control API: before and after.
    base = handle.base_url + "/_simulator/truth-at/persons"
    old = client.session.get(base, params={"at": before, "id": person["id"]}, timeout=30).json()
    assert old["name"] == person["name"]
    now = handle.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    new = client.session.get(base, params={"at": now, "id": person["id"]}, timeout=30).json()
    assert new["name"] == "Renamed Person"
    everyone = client.session.get(base, params={"at": before}, timeout=30).json()
    assert person["id"] in {p["id"] for p in everyone}
    bad = client.session.get(base, params={"at": "yesterday"}, timeout=30)
    assert bad.status_code == 400
    assert "at must be an RFC 3339" in bad.text


def test_changelogs_of_persons_and_organizations_cost_what_the_spec_says(client):
    handle = client.handle
    handle.reset_stats()
    client.ok("/v1/persons/1/changelog")
    client.ok("/api/v1/organizations/2/changelog")
    endpoints = handle.stats()["endpoints"]
    assert endpoints["GET /v1/persons/{id}/changelog"]["tokens"] == 20
    assert endpoints["GET /v1/organizations/{id}/changelog"]["tokens"] == 20
    missing = client.get("/v1/persons/99999999/changelog")
    assert missing.status_code == 404
