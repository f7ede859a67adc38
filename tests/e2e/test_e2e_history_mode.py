"""History mode through `meltano run`: `history_streams` set by environment variable, a deal
edited between runs gets one version per observed change in `deals_history` with contiguous,
non-overlapping validity; unchanged deals get nothing on a rerun; a deal deleted in the simulator
has its current version closed. Then the history backfill job: the versions rebuilt from the
changelogs agree with the captured ones where they overlap."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from psycopg import sql

HISTORY_ON = {
    "TARGET_PIPEBOARD_POSTGRES_HISTORY_STREAMS": '["deals","persons","organizations"]',
}
VALIDITY = {"_valid_from", "_valid_to", "_is_current"}
REBUILT = "_pipeboard_rebuilt_versions"


def utc(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(dt.UTC)


def versions(pipeline: Any, table: str = "deals_history") -> dict[int, list[dict[str, Any]]]:
    """Every version by deal id, oldest first, each as a dict of its columns."""
    rows = pipeline.query(
        sql.SQL("select to_jsonb(h) from {} h order by id, _valid_from").format(
            pipeline.table(table)
        )
    )
    found: dict[int, list[dict[str, Any]]] = {}
    for (doc,) in rows:
        found.setdefault(int(doc["id"]), []).append(doc)
    return found


def rebuilt_keys(pipeline: Any) -> set[tuple[int, dt.datetime]]:
    """Keys of the deals_history rows the changelog rebuild wrote (not captured by a sync)."""
    exists = pipeline.query("select to_regclass(%s)", f'"{pipeline.schema}".{REBUILT}')[0][0]
    if exists is None:
        return set()
    rows = pipeline.query(
        sql.SQL("select id, valid_from from {} where table_name = 'deals_history'").format(
            pipeline.table(REBUILT)
        )
    )
    return {(int(i), utc(v)) for i, v in rows}


def captured(pipeline: Any) -> dict[int, list[dict[str, Any]]]:
    """The versions written by syncs (rebuilt ones left out), by deal id, oldest first."""
    rebuilt = rebuilt_keys(pipeline)
    return {
        id_: kept
        for id_, rows in versions(pipeline).items()
        if (kept := [r for r in rows if (id_, utc(r["_valid_from"])) not in rebuilt])
    }


def assert_contiguous(history: dict[int, list[dict[str, Any]]], deleted: set[int]) -> None:
    """Each version ends where the next starts; the last is the one current version (NULL
    `_valid_to`), except for a deleted deal whose last version is closed."""
    for id_, rows in history.items():
        for earlier, later in itertools.pairwise(rows):
            assert earlier["_valid_to"] is not None, (id_, rows)
            assert utc(earlier["_valid_to"]) == utc(later["_valid_from"]), (id_, rows)
            assert earlier["_is_current"] is False, (id_, rows)
        last = rows[-1]
        if last["_valid_to"] is not None:
            assert utc(last["_valid_from"]) < utc(last["_valid_to"]), (id_, last)
        current = [r for r in rows if r["_is_current"]]
        if id_ in deleted:
            assert current == [], (id_, rows)
            assert last["_valid_to"] is not None, (id_, rows)
        else:
            assert current == [last], (id_, rows)
            assert last["_valid_to"] is None, (id_, rows)


def changed(now: list[dict[str, Any]], before: list[dict[str, Any]]) -> list[Any]:
    """What differs between two version lists of a record: (index, column, now, before)."""
    if len(now) != len(before):
        return [("versions", len(now), len(before))]
    return [
        (i, c, a.get(c), b.get(c))
        for i, (a, b) in enumerate(zip(now, before, strict=True))
        for c in sorted(set(a) | set(b))
        if a.get(c) != b.get(c)
    ]


def content(row: dict[str, Any], columns: set[str]) -> dict[str, Any]:
    return {c: row[c] for c in columns}


def test_history_mode_versions_through_meltano_run(
    pipedrive_simulator_factory: Any, pipeline_factory: Any, history_streams: dict[str, str]
) -> None:
    simulator = pipedrive_simulator_factory(deals=30, persons=10, organizations=5)
    pipeline = pipeline_factory(simulator)
    pipeline.extra_env.update({**HISTORY_ON, **history_streams})
    open_deals = [d for d in simulator.truth("deals") if d["status"] == "open"]
    edited, doomed = open_deals[0]["id"], open_deals[1]["id"]

    pipeline.run()
    first = captured(pipeline)
    # Deals deleted before the first run (status "deleted", still listed) open no version.
    gone = {int(i) for i in pipeline.ids("deals", "_sdc_deleted_at is not null")}
    live = {int(i) for i in pipeline.live_ids("deals")}
    assert live
    assert set(first) - gone == live
    assert not any(r["_is_current"] for id_ in gone for r in first.get(id_, []))
    assert all(len(first[id_]) == 1 for id_ in live), "one captured version per deal"
    for entity in ("persons", "organizations"):
        assert pipeline.query(
            sql.SQL("select count(*) from {}").format(pipeline.table(f"{entity}_history"))
        )[0][0] >= len(pipeline.ids(entity))
    assert_contiguous(versions(pipeline), deleted=gone)

    # Three edits, each observed by its own run: one new version each, starting at the edit's
    # update_time, holding the edited values.
    edits: list[dict[str, Any]] = [
        {"value": 1111.0},
        {"title": "Renamed once", "value": 2222.0},
        {"value": 3333.0},
    ]
    for fields in edits:
        simulator.advance(3600)
        simulator.update("deals", edited, **fields)
        simulator.advance(60)
        pipeline.run()
    # Two edits between two runs: only what the run observes (the last) is a version.
    simulator.advance(3600)
    simulator.update("deals", edited, value=4444.0)
    simulator.advance(600)
    simulator.update("deals", edited, value=5555.0)
    simulator.advance(60)
    pipeline.run()

    history = captured(pipeline)
    rows = history[edited]
    assert len(rows) == 1 + len(edits) + 1, rows
    assert [r["value"] for r in rows[1:]] == [1111.0, 2222.0, 3333.0, 5555.0]
    assert rows[2]["title"] == rows[3]["title"] == "Renamed once"
    truth = {d["id"]: d for d in simulator.truth("deals")}
    assert utc(rows[-1]["_valid_from"]) == utc(truth[edited]["update_time"])
    assert all(utc(r["_valid_from"]) == utc(r["update_time"]) for r in rows)
    # Unchanged deals: their single version untouched by the four runs.
    for id_, before in first.items():
        if id_ != edited:
            assert changed(history[id_], before) == [], id_
    assert_contiguous(versions(pipeline), deleted=gone)

    # A rerun with nothing changed, then a full re-read of everything: no new version anywhere.
    snapshot = versions(pipeline)
    pipeline.run()
    assert versions(pipeline) == snapshot
    pipeline.run("--full-refresh")
    assert versions(pipeline) == snapshot

    # A deal deleted in the simulator: its current version is closed at the deletion.
    simulator.advance(3600)
    simulator.delete("deals", doomed)
    deleted_at = utc(next(d for d in simulator.truth("deals") if d["id"] == doomed)["update_time"])
    simulator.advance(60)
    pipeline.run()
    history = versions(pipeline)
    assert_contiguous(history, deleted=gone | {doomed})
    assert utc(history[doomed][-1]["_valid_to"]) == deleted_at
    assert not any(r["_is_current"] for r in history[doomed])
    for id_, rows in snapshot.items():
        if id_ != doomed:
            assert history[id_] == rows, id_

    # The history backfill job: every deal's changelog loaded, versions rebuilt back to each
    # deal's creation, and written into deals_history before the first captured version.
    pipeline.meltano("run", "stage-history-backfill")
    rebuilt = versions(pipeline, "deals_changelog_history")
    history = versions(pipeline)
    kept = captured(pipeline)
    assert_contiguous(history, deleted=gone | {doomed})
    add_time = {d["id"]: utc(d["add_time"]) for d in simulator.truth("deals")}
    assert utc(history[edited][0]["_valid_from"]) == add_time[edited]
    assert len(history[edited]) > len(kept[edited]), "versions before installation rebuilt"

    # Where they overlap they agree: the newest rebuilt version of every live deal holds the
    # captured current version's values, and every captured version of the edited deal equals
    # the rebuilt version in effect at its start, for the columns both tables have. Left out:
    # Singer metadata and validity. The stage-history expansion's moved_to_stage_* columns are
    # compared too: neither a captured nor a rebuilt version holds them (they are the target's
    # derivation on the deals table, not the record's).
    some_rebuilt = next(iter(rebuilt.values()))[0]
    some_captured = next(iter(kept.values()))[0]
    shared = {
        c
        for c in set(some_rebuilt) & set(some_captured)
        if c not in VALIDITY and not c.startswith("_sdc_")
    }
    assert {"id", "title", "value", "stage_id", "status", "update_time"} <= shared
    assert any(c.startswith("moved_to_stage_") for c in shared)
    disagree: list[Any] = []
    compared = 0
    for id_, rows in kept.items():
        if id_ in gone or id_ == doomed or id_ not in rebuilt:
            continue
        newest = rebuilt[id_][-1]
        assert newest["_is_current"], (id_, rebuilt[id_])
        disagree += [
            (id_, *d) for d in changed([content(newest, shared)], [content(rows[-1], shared)])
        ]
        compared += 1
    assert disagree == []
    assert compared >= len(live) - 1
    for version in kept[edited]:
        start = utc(version["_valid_from"])
        (in_effect,) = [
            r
            for r in rebuilt[edited]
            if utc(r["_valid_from"]) <= start
            and (r["_valid_to"] is None or utc(r["_valid_to"]) > start)
        ]
        disagree += [
            (start, *d) for d in changed([content(in_effect, shared)], [content(version, shared)])
        ]
    assert disagree == []
