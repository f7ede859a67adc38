"""Versions before Pipeboard was installed, rebuilt from the changelogs: the tap over real HTTP
against the simulator, the target into Postgres, compared with the simulator's records as they
were at several past times."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import sys
import typing as t
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from tap_pipedrive.tap import TapPipedrive
from target_pipeboard_postgres import changelog_history
from target_pipeboard_postgres.target import TargetPipeboardPostgres

# Importlib import mode does not put test directories on sys.path (the e2e tests share this).
sys.path.insert(0, str(Path(__file__).parent))
from history_truth import ENTITIES, as_of, differences, flatteners, truth_rows

CHANGE_STREAMS = ("deal_changes", "person_changes", "organization_changes")


def run_tap(sim, streams, state=None, **config: t.Any) -> tuple[list[str], dict[str, t.Any]]:
    cfg = {"api_url": sim.base_url, "api_token": sim.api_token, **config}
    catalog = TapPipedrive(config=cfg, parse_env_config=False).catalog_dict
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in streams
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        TapPipedrive(
            config=cfg, catalog=catalog, state=state or {}, parse_env_config=False
        ).sync_all()
    lines = out.getvalue().splitlines()
    states = [json.loads(line)["value"] for line in lines if '"type":"STATE"' in line]
    return lines, states[-1] if states else {}


def load(lines: list[str], postgres_url: str, schema: str) -> None:
    config = {"database_url": postgres_url, "default_target_schema": schema}
    with contextlib.redirect_stdout(io.StringIO()):
        TargetPipeboardPostgres(config=config).listen(io.StringIO("\n".join(lines) + "\n"))


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def sim(pipedrive_simulator_factory):
    return pipedrive_simulator_factory(seed=5, deals=60, persons=40, organizations=30)


def loaded_ids(conn, schema, table) -> set[int]:
    return {
        r[0]
        for r in conn.execute(sql.SQL("SELECT id FROM {}").format(sql.Identifier(schema, table)))
    }


def test_as_of_queries_equal_the_truth_at_past_times(sim, postgres_url, pg_schema):
    # Edits through the API before the first sync, so mutations' changes are in the logs too.
    sim.advance(3600)
    deal = next(d for d in sim.truth("deals") if d["status"] == "open")
    sim.update("deals", deal["id"], value=777.0, expected_close_date="2027-01-15")
    sim.advance(3600)
    sim.update("deals", deal["id"], status="won")
    owner = sim.record_at("persons", 2, stamp(sim.now))["owner_id"]
    sim.update("persons", 2, owner_id=next(u["id"] for u in sim.truth("users") if u["id"] != owner))
    sim.update("organizations", 3, employee_count=9)
    sim.advance(60)
    # The regular sync's entity streams, then the history backfill of every changelog.
    lines, _ = run_tap(sim, ("deals", "persons", "organizations", "stages", "pipelines"))
    load(lines, postgres_url, pg_schema)
    lines, _ = run_tap(sim, ("deal_stage_changes", *CHANGE_STREAMS), stage_history_mode="backfill")
    load(lines, postgres_url, pg_schema)

    now = sim.now
    times = [now - dt.timedelta(days=d) for d in (700, 365, 180, 90, 30, 7, 1)]
    times += [now - dt.timedelta(seconds=3601), now]
    flat = flatteners(sim)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for entity in ENTITIES:
            table = f"{entity}{changelog_history.HISTORY_SUFFIX}"
            ids = loaded_ids(conn, pg_schema, entity)
            compared = 0
            for moment in times:
                at = stamp(moment)
                got = as_of(conn, pg_schema, table, at)
                truth = truth_rows(sim, entity, at, flat[entity])
                assert differences(got, truth, ids) == [], (entity, at)
                compared += len(got)
            assert compared > len(ids)  # several versions of most records were compared
        # Versions do not overlap and the first starts at creation.
        for entity in ENTITIES:
            table = sql.Identifier(pg_schema, f"{entity}{changelog_history.HISTORY_SUFFIX}")
            bad = conn.execute(
                sql.SQL(
                    "SELECT count(*) FROM {h} a JOIN {h} b ON a.id = b.id"
                    " AND a._valid_from < b._valid_from"
                    " AND (a._valid_to IS NULL OR a._valid_to > b._valid_from)"
                ).format(h=table)
            ).fetchone()
            assert bad == (0,)
            first = conn.execute(
                sql.SQL(
                    "SELECT count(*) FROM (SELECT id, min(_valid_from) AS f, min(add_time) AS a"
                    " FROM {h} GROUP BY id) x WHERE f <> a"
                ).format(h=table)
            ).fetchone()
            assert first == (0,)
        check_views(sim, conn, pg_schema, deal, times)


def check_views(sim, conn, schema, deal, times) -> None:
    # deal_pipeline_daily: at each day's end, the open deals and their value per stage.
    for moment in times[1:-2]:
        day = moment.date()
        ids = loaded_ids(conn, schema, "deals")
        last_second = stamp(dt.datetime.combine(day, dt.time(23, 59, 59), dt.UTC))
        expected: dict[tuple[int, int], list[float]] = {}
        for record in sim.truth_at("deals", last_second):
            if record["id"] not in ids or record["status"] != "open" or record["is_deleted"]:
                continue
            key = (record["pipeline_id"], record["stage_id"])
            expected.setdefault(key, []).append(float(record["value"]))
        rows = conn.execute(
            sql.SQL(
                "SELECT pipeline_id, stage_id, open_deals, open_value FROM {} WHERE day = %s"
            ).format(sql.Identifier(schema, "deal_pipeline_daily")),
            (day,),
        ).fetchall()
        got = {(p, s): (n, float(v)) for p, s, n, v in rows}
        assert got == {k: (len(v), sum(v)) for k, v in expected.items()}, day
    # The change views: the API edits of the deal, typed as the deals table.
    values = conn.execute(
        sql.SQL(
            "SELECT old_value, new_value FROM {} WHERE deal_id = %s ORDER BY changed_at"
        ).format(sql.Identifier(schema, "deal_value_changes")),
        (deal["id"],),
    ).fetchall()
    assert values[-1] == (pytest.approx(deal["value"]), 777)
    dates = conn.execute(
        sql.SQL(
            "SELECT new_value FROM {} WHERE deal_id = %s ORDER BY changed_at DESC LIMIT 1"
        ).format(sql.Identifier(schema, "deal_expected_close_date_changes")),
        (deal["id"],),
    ).fetchone()
    assert dates == (dt.date(2027, 1, 15),)
    owners = conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, "deal_owner_changes"))
    ).fetchone()
    assert owners is not None
    assert owners[0] > 0


def test_rebuilt_versions_fill_the_history_modes_table_before_its_first_capture(
    pipedrive_simulator_factory, postgres_url, pg_schema
):
    sim = pipedrive_simulator_factory(seed=9, deals=25, persons=3, organizations=3)
    lines, _ = run_tap(
        sim,
        ("deals", "stages", "pipelines", "deal_stage_changes", "deal_changes"),
        stage_history_mode="backfill",
    )
    load(lines, postgres_url, pg_schema)
    deals = sql.Identifier(pg_schema, "deals")
    mode = sql.Identifier(pg_schema, "deals_history")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        # The history mode's table as a sync keeps it: each deal's row captured at update_time.
        conn.execute(
            sql.SQL(
                "CREATE TABLE {m} (LIKE {d}, _valid_from timestamptz NOT NULL,"
                " _valid_to timestamptz, _is_current boolean NOT NULL,"
                " PRIMARY KEY (id, _valid_from))"
            ).format(m=mode, d=deals)
        )
        conn.execute(
            sql.SQL("INSERT INTO {m} SELECT d.*, d.update_time, NULL, true FROM {d} d").format(
                m=mode, d=deals
            )
        )
        # As the history mode captures records: the columns the target derives after the upsert
        # (moved_to_stage_*) are not in them.
        derived = [
            r[0]
            for r in conn.execute(
                sql.SQL("SELECT column_name FROM {} WHERE deals_table = 'deals'").format(
                    sql.Identifier(pg_schema, "_pipeboard_stage_columns")
                )
            )
        ]
        assert derived
        conn.execute(
            sql.SQL("UPDATE {m} SET {cols}").format(
                m=mode,
                cols=sql.SQL(", ").join(
                    sql.SQL("{} = NULL").format(sql.Identifier(c)) for c in derived
                ),
            )
        )
        captured = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(mode)).fetchone()
        for _ in range(2):  # a second rebuild replaces its rows, never adds to them
            assert changelog_history.rebuild(conn, pg_schema, force=True) == [
                "deals_changelog_history"
            ]
            total = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(mode)).fetchone()
            rebuilt = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(
                    sql.Identifier(pg_schema, "deals_changelog_history")
                )
            ).fetchone()
            # Every rebuilt version but the newest of each deal went in (the newest one is the
            # captured row, which starts at the deal's last change).
            assert captured is not None
            assert total is not None
            assert rebuilt is not None
            assert total[0] == rebuilt[0]
        # The captured rows are untouched, and as-of queries on the table equal the truth.
        current = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE _is_current").format(mode)
        ).fetchone()
        assert current == captured
        ids = loaded_ids(conn, pg_schema, "deals")
        flat = flatteners(sim)
        for days in (500, 200, 60, 10, 0):
            at = stamp(sim.now - dt.timedelta(days=days))
            got = as_of(conn, pg_schema, "deals_history", at)
            truth = truth_rows(sim, "deals", at, flat["deals"])
            assert differences(got, truth, ids) == [], at
        # Where captured and rebuilt versions overlap (the captured version's start), they agree.
        agree = conn.execute(
            sql.SQL(
                "SELECT count(*) FROM {m} c JOIN {h} r ON r.id = c.id"
                " AND r._valid_from <= c._valid_from"
                " AND (r._valid_to IS NULL OR r._valid_to > c._valid_from)"
                " WHERE c._is_current AND (to_jsonb(r) - '_valid_from' - '_valid_to'"
                " - '_is_current') <> (to_jsonb(c) - '_valid_from' - '_valid_to' - '_is_current')"
            ).format(m=mode, h=sql.Identifier(pg_schema, "deals_changelog_history"))
        ).fetchone()
        assert agree == (0,)


def history_rows(conn, schema, table) -> dict[tuple[int, str], tuple[int, dict[str, t.Any]]]:
    """Every row of a history table by (id, _valid_from): its writing transaction (xmin) and
    its content."""
    rows = conn.execute(
        sql.SQL("SELECT id, _valid_from::text, xmin::text::bigint, to_jsonb(h) FROM {} h").format(
            sql.Identifier(schema, table)
        )
    ).fetchall()
    return {(i, f): (x, doc) for i, f, x, doc in rows}


def test_a_rebuild_rewrites_only_the_records_whose_rows_arrived(
    pipedrive_simulator_factory, postgres_url, pg_schema
):
    sim = pipedrive_simulator_factory(seed=11, deals=30, persons=12, organizations=6)
    streams = ("deals", "persons", "organizations", "stages", "pipelines")
    lines, state = run_tap(sim, streams)
    load(lines, postgres_url, pg_schema)
    lines, _ = run_tap(sim, ("deal_stage_changes", *CHANGE_STREAMS), stage_history_mode="backfill")
    load(lines, postgres_url, pg_schema)  # the first rebuild: whole tables
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        before = {e: history_rows(conn, pg_schema, f"{e}_changelog_history") for e in ENTITIES}
        pending = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(pg_schema, changelog_history.PENDING_TABLE)
            )
        ).fetchone()
        assert pending == (0,)  # the queue is drained by the rebuild
        # Derived columns are NULL in every version (captured versions never hold them).
        stage_columns = conn.execute(
            sql.SQL("SELECT column_name FROM {} WHERE deals_table = 'deals'").format(
                sql.Identifier(pg_schema, "_pipeboard_stage_columns")
            )
        ).fetchall()
        assert stage_columns
        filled = sql.SQL(" OR ").join(
            sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for (c,) in stage_columns
        )
        in_deals = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                sql.Identifier(pg_schema, "deals"), filled
            )
        ).fetchone()
        assert in_deals is not None
        assert in_deals[0] > 0  # the deals table has them
        derived = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                sql.Identifier(pg_schema, "deals_changelog_history"), filled
            )
        ).fetchone()
        assert derived == (0,)
    assert all(before.values())

    # One deal and one person edited; the next sync loads them and their changes.
    deal = next(d for d in sim.truth("deals") if d["status"] == "open")
    sim.advance(3600)
    sim.update("deals", deal["id"], value=4321.0)
    sim.update("persons", 3, name="Renamed Person")
    sim.advance(60)
    # deal_changes alone reads every updated deal's changelog (with the stage stream it
    # follows stage moves only); the first incremental read starts at the newest update.
    lines, state = run_tap(sim, (*streams, *CHANGE_STREAMS), state, stage_history_initial_days=0)
    load(lines, postgres_url, pg_schema)

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        after = {e: history_rows(conn, pg_schema, f"{e}_changelog_history") for e in ENTITIES}
        rewritten = {
            e: {
                key[0]
                for key, (xmin, _) in after[e].items()
                if before[e].get(key, (None,))[0] != xmin
            }
            for e in ENTITIES
        }
        # The edited records' versions were rewritten (a new one for the edit) ...
        assert deal["id"] in rewritten["deals"]
        assert 3 in rewritten["persons"]
        newest = max(k for k in after["deals"] if k[0] == deal["id"])
        assert after["deals"][newest][1]["value"] == 4321
        assert len([k for k in after["deals"] if k[0] == deal["id"]]) == 1 + len(
            [k for k in before["deals"] if k[0] == deal["id"]]
        )
        # ... and only the records the run loaded: every other row is the very row written
        # by the first rebuild (same transaction id, same content).
        loaded = {e: loaded_ids(conn, pg_schema, e) for e in ENTITIES}
        assert rewritten["organizations"] <= loaded["organizations"]
        for entity in ENTITIES:
            kept = {k: v for k, v in before[entity].items() if k[0] not in rewritten[entity]}
            assert kept == {k: after[entity][k] for k in kept}, entity
        assert len(rewritten["deals"]) < len(loaded["deals"]) / 2
        assert len(rewritten["persons"]) < len(loaded["persons"]) / 2
        # The incremental result equals a whole rebuild's.
        incremental = {e: {k: v[1] for k, v in after[e].items()} for e in ENTITIES}
        changelog_history.rebuild(conn, pg_schema, force=True)
        whole = {
            e: {k: v[1] for k, v in history_rows(conn, pg_schema, f"{e}_changelog_history").items()}
            for e in ENTITIES
        }
        assert incremental == whole
