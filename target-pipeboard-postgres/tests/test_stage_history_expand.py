"""Stage-history expansion against real Postgres, on hand-made input tables."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from target_pipeboard_postgres import stage_history as sh

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def conn(postgres_url: str, pg_schema: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_url) as connection:
        _create_inputs(connection, pg_schema)
        connection.commit()
        yield connection


def _create_inputs(conn: psycopg.Connection, schema: str) -> None:
    s = sql.Identifier(schema)
    conn.execute(
        sql.SQL(
            "CREATE TABLE {}.deals (id bigint PRIMARY KEY, title text, stage_id bigint,"
            " pipeline_id bigint, add_time timestamptz)"
        ).format(s)
    )
    conn.execute(
        sql.SQL(
            "CREATE TABLE {}.stages (id bigint PRIMARY KEY, name text, pipeline_id bigint,"
            " order_nr integer, is_deleted boolean)"
        ).format(s)
    )
    conn.execute(sql.SQL("CREATE TABLE {}.pipelines (id bigint PRIMARY KEY, name text)").format(s))
    conn.execute(
        sql.SQL(
            "CREATE TABLE {}.deal_stage_changes (id text PRIMARY KEY, deal_id bigint,"
            " pipeline_id bigint, from_stage_id bigint, to_stage_id bigint,"
            " changed_at timestamptz, user_id bigint)"
        ).format(s)
    )


def insert(conn: psycopg.Connection, schema: str, table: str, rows: list[tuple]) -> None:
    if not rows:
        return
    marks = sql.SQL(", ").join(sql.Placeholder() * len(rows[0]))
    statement = sql.SQL("INSERT INTO {} VALUES ({})").format(sql.Identifier(schema, table), marks)
    with conn.cursor() as cur:
        cur.executemany(statement, rows)
    conn.commit()


def seed_dictionaries(conn: psycopg.Connection, schema: str) -> None:
    insert(conn, schema, "pipelines", [(1, "Sales"), (2, "Partners")])
    insert(
        conn,
        schema,
        "stages",
        [
            (11, "Lead In", 1, 1, False),
            (12, "Qualified", 1, 2, False),
            (13, "Proposal Made", 1, 3, False),
            (21, "Qualified", 2, 1, False),
            (22, "Contract sent", 2, 2, False),
        ],
    )


def change(deal: int, n: int, frm: int | None, to: int, hours: float, pipeline: int = 1):
    return (f"{deal}:{n}", deal, pipeline, frm, to, at(hours), 7)


def query(conn: psycopg.Connection, statement: sql.Composable, *args) -> list[tuple]:
    cur = conn.execute(statement, args or None)
    rows = cur.fetchall() if cur.description else []
    conn.commit()
    return rows


def history(conn: psycopg.Connection, schema: str) -> list[tuple]:
    return query(
        conn,
        sql.SQL(
            "SELECT deal_id, stay_number, pipeline_id, stage_id, entered_at, left_at,"
            " seconds_in_stage, is_current FROM {} ORDER BY deal_id, stay_number"
        ).format(sql.Identifier(schema, "deal_stage_history")),
    )


def deal_columns(
    conn: psycopg.Connection, schema: str, deal_id: int, table: str = "deals"
) -> dict[str, datetime | None]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            sql.SQL("SELECT * FROM {} WHERE id = %s").format(sql.Identifier(schema, table)),
            (deal_id,),
        )
        row = cur.fetchone()
    conn.commit()
    assert row is not None
    return {k: v for k, v in row.items() if k.startswith("moved_to_stage_")}


def test_history_rows_and_first_entry_columns_with_reentry(conn, pg_schema):
    seed_dictionaries(conn, pg_schema)
    insert(conn, pg_schema, "deals", [(1, "A", 13, 1, at(0)), (2, "B", 22, 2, at(1))])
    insert(
        conn,
        pg_schema,
        "deal_stage_changes",
        [
            change(1, 0, None, 11, 0),
            change(1, 1, 11, 12, 5),
            change(1, 2, 12, 11, 8),  # backwards
            change(1, 3, 11, 12, 20),  # re-enters Qualified
            change(1, 4, 12, 13, 30),
            change(2, 0, None, 12, 1),
            change(2, 1, 12, 21, 3, pipeline=2),  # to another pipeline
            change(2, 2, 21, 22, 4, pipeline=2),
        ],
    )

    result = sh.expand(conn, pg_schema)

    assert result.ran
    assert result.full
    assert result.deals == 2
    assert history(conn, pg_schema) == [
        (1, 1, 1, 11, at(0), at(5), 5 * 3600, False),
        (1, 2, 1, 12, at(5), at(8), 3 * 3600, False),
        (1, 3, 1, 11, at(8), at(20), 12 * 3600, False),
        (1, 4, 1, 12, at(20), at(30), 10 * 3600, False),
        (1, 5, 1, 13, at(30), None, None, True),
        (2, 1, 1, 12, at(1), at(3), 2 * 3600, False),
        (2, 2, 2, 21, at(3), at(4), 3600, False),
        (2, 3, 2, 22, at(4), None, None, True),
    ]
    # "Qualified" exists in both pipelines, so both get the pipeline suffix.
    assert deal_columns(conn, pg_schema, 1) == {
        "moved_to_stage_lead_in": at(0),
        "moved_to_stage_qualified_sales": at(5),
        "moved_to_stage_proposal_made": at(30),
        "moved_to_stage_qualified_partners": None,
        "moved_to_stage_contract_sent": None,
    }
    assert deal_columns(conn, pg_schema, 2) == {
        "moved_to_stage_lead_in": None,
        "moved_to_stage_qualified_sales": at(1),
        "moved_to_stage_proposal_made": None,
        "moved_to_stage_qualified_partners": at(3),
        "moved_to_stage_contract_sent": at(4),
    }


def test_repeated_entry_into_same_stage_is_one_stay(conn, pg_schema):
    seed_dictionaries(conn, pg_schema)
    insert(conn, pg_schema, "deals", [(1, "A", 12, 1, at(0))])
    insert(
        conn,
        pg_schema,
        "deal_stage_changes",
        [change(1, 0, None, 11, 0), change(1, 1, None, 11, 0), change(1, 2, 11, 12, 2)],
    )
    sh.expand(conn, pg_schema)
    assert [(r[1], r[3]) for r in history(conn, pg_schema)] == [(1, 11), (2, 12)]


def test_rename_keeps_column_and_late_stage_gets_filled_column(conn, pg_schema):
    seed_dictionaries(conn, pg_schema)
    insert(conn, pg_schema, "deals", [(1, "A", 14, 1, at(0))])
    # Stage 14 is not in the stages table yet: its changes arrive first.
    insert(
        conn,
        pg_schema,
        "deal_stage_changes",
        [change(1, 0, None, 11, 0), change(1, 1, 11, 14, 2)],
    )
    first = sh.expand(conn, pg_schema)
    assert "moved_to_stage_negotiation" not in deal_columns(conn, pg_schema, 1)
    assert first.columns_added

    query(
        conn,
        sql.SQL("UPDATE {} SET name = 'Lead In (renamed)' WHERE id = 11").format(
            sql.Identifier(pg_schema, "stages")
        ),
    )
    insert(conn, pg_schema, "stages", [(14, "Negotiation", 1, 4, False)])
    second = sh.expand(conn, pg_schema, deal_ids=[])

    assert second.columns_added == ["moved_to_stage_negotiation"]
    assert second.full  # the new column is filled for deals loaded in earlier runs
    columns = deal_columns(conn, pg_schema, 1)
    assert columns["moved_to_stage_lead_in"] == at(0)  # renamed stage, same column
    assert "moved_to_stage_lead_in_renamed" not in columns
    assert columns["moved_to_stage_negotiation"] == at(2)
    mapping = query(
        conn,
        sql.SQL("SELECT stage_id, column_name FROM {} ORDER BY stage_id").format(
            sql.Identifier(pg_schema, "_pipeboard_stage_columns")
        ),
    )
    assert (11, "moved_to_stage_lead_in") in mapping
    assert (14, "moved_to_stage_negotiation") in mapping


def test_replaced_deals_table_gets_columns_back(conn, pg_schema):
    seed_dictionaries(conn, pg_schema)
    insert(conn, pg_schema, "deals", [(1, "A", 12, 1, at(0))])
    insert(conn, pg_schema, "deal_stage_changes", [change(1, 0, None, 11, 0)])
    sh.expand(conn, pg_schema)
    deals = sql.Identifier(pg_schema, "deals")
    query(conn, sql.SQL("DROP TABLE {}").format(deals))
    query(
        conn,
        sql.SQL(
            "CREATE TABLE {} (id bigint PRIMARY KEY, title text, stage_id bigint,"
            " pipeline_id bigint, add_time timestamptz)"
        ).format(deals),
    )
    insert(conn, pg_schema, "deals", [(1, "A", 12, 1, at(0))])
    result = sh.expand(conn, pg_schema, deal_ids=[])
    assert result.full
    assert deal_columns(conn, pg_schema, 1)["moved_to_stage_lead_in"] == at(0)


def test_pending_queue_recomputes_only_queued_deals(conn, pg_schema):
    seed_dictionaries(conn, pg_schema)
    insert(conn, pg_schema, "deals", [(1, "A", 11, 1, at(0)), (2, "B", 11, 1, at(0))])
    insert(
        conn,
        pg_schema,
        "deal_stage_changes",
        [change(1, 0, None, 11, 0), change(2, 0, None, 11, 0)],
    )
    settings = sh.StageHistorySettings()
    sh.expand(conn, pg_schema, settings)

    # A batch of stage changes for deal 1 is loaded through a staging table; deal 2 changes
    # behind the loader's back (not queued), so it must stay as it was.
    staging = sql.Identifier(pg_schema, "staging_batch")
    query(conn, sql.SQL("CREATE TABLE {} (id text, deal_id bigint)").format(staging))
    insert(conn, pg_schema, "staging_batch", [("1:1", 1)])
    with conn.transaction():
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s)").format(
                sql.Identifier(pg_schema, "deal_stage_changes")
            ),
            change(1, 1, 11, 13, 6),
        )
        assert sh.mark_pending(conn, pg_schema, settings, "deal_stage_changes", staging)
    assert not sh.mark_pending(conn, pg_schema, settings, "persons", staging)
    insert(conn, pg_schema, "deal_stage_changes", [change(2, 1, 11, 12, 6)])

    result = sh.expand(conn, pg_schema, settings)

    assert not result.full
    assert result.deals == 1
    assert deal_columns(conn, pg_schema, 1)["moved_to_stage_proposal_made"] == at(6)
    assert deal_columns(conn, pg_schema, 2)["moved_to_stage_qualified_sales"] is None
    pending = query(
        conn,
        sql.SQL("SELECT * FROM {}").format(sql.Identifier(pg_schema, "_pipeboard_stage_pending")),
    )
    assert pending == []
    # Untouched deals stay cheap: nothing queued, nothing recomputed.
    assert sh.expand(conn, pg_schema, settings).deals == 0
    assert sh.expand(conn, pg_schema, settings, deal_ids=[2]).deals == 1
    assert deal_columns(conn, pg_schema, 2)["moved_to_stage_qualified_sales"] == at(6)


def test_off_without_error_when_streams_absent(postgres_url, pg_schema):
    with psycopg.connect(postgres_url) as conn:
        result = sh.expand(conn, pg_schema)
        assert not result.ran
        assert "does not exist" in result.reason
        assert sh.expand(conn, pg_schema, sh.StageHistorySettings(enabled=False)).reason == (
            "disabled by setting"
        )
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (pg_schema,),
        ).fetchall()
        assert tables == []


def test_missing_column_is_a_clear_error_only_when_enabled(conn, pg_schema):
    query(
        conn,
        sql.SQL("ALTER TABLE {} DROP COLUMN to_stage_id").format(
            sql.Identifier(pg_schema, "deal_stage_changes")
        ),
    )
    assert not sh.expand(conn, pg_schema).ran
    with pytest.raises(sh.StageHistoryConfigError, match=r"deal_stage_changes.*to_stage_id"):
        sh.expand(conn, pg_schema, sh.StageHistorySettings(enabled=True))


def test_other_stream_names(postgres_url, pg_schema):
    with psycopg.connect(postgres_url) as conn:
        s = sql.Identifier(pg_schema)
        conn.execute(sql.SQL("CREATE TABLE {}.crm_deals (id bigint PRIMARY KEY)").format(s))
        conn.execute(sql.SQL("CREATE TABLE {}.crm_stages (id bigint, name text)").format(s))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.crm_moves (deal_id text, to_stage_id text, changed_at text)"
            ).format(s)
        )
        conn.commit()
        insert(conn, pg_schema, "crm_deals", [(5,)])
        insert(conn, pg_schema, "crm_stages", [(1, "Új ügyfél"), (2, "Квалификация")])
        insert(
            conn,
            pg_schema,
            "crm_moves",
            [("5", "1", "2026-03-02T09:00:00Z"), ("5", "2", "2026-03-02T10:00:00+00:00")],
        )
        settings = sh.StageHistorySettings.from_config(
            {
                "deals_stream": "crm-deals",
                "stages_stream": "crm-stages",
                "changes_stream": "crm-moves",
            }
        )
        result = sh.expand(
            conn, pg_schema, settings, table_name=lambda stream: stream.replace("-", "_")
        )
        assert result.ran
        assert result.history_rows == 2
        assert deal_columns(conn, pg_schema, 5, "crm_deals") == {
            "moved_to_stage_uj_ugyfel": at(0),
            "moved_to_stage_stage_2": at(1),
        }


def test_views_durations_and_funnel(conn, pg_schema):
    seed_dictionaries(conn, pg_schema)
    insert(
        conn,
        pg_schema,
        "deals",
        [(d, "x", 11, 1, at(0)) for d in (1, 2, 3, 4)],
    )
    insert(
        conn,
        pg_schema,
        "deal_stage_changes",
        [
            # deal 1: 11 -> 12 -> 13 ; deal 2: 11 -> 13 (skips 12) ; deal 3: 11 -> 12 ; deal 4: 11
            change(1, 0, None, 11, 0),
            change(1, 1, 11, 12, 2),
            change(1, 2, 12, 13, 6),
            change(2, 0, None, 11, 0),
            change(2, 1, 11, 13, 4),
            change(3, 0, None, 11, 0),
            change(3, 1, 11, 12, 6),
            change(4, 0, None, 11, 0),
        ],
    )
    sh.expand(conn, pg_schema)
    funnel = query(
        conn,
        sql.SQL(
            "SELECT stage_id, stage_name, deals_entered, deals_reached, conversion_to_next,"
            " conversion_from_first FROM {} WHERE pipeline_id = 1 ORDER BY stage_order"
        ).format(sql.Identifier(pg_schema, "deal_stage_funnel")),
    )
    assert [
        tuple(map(lambda v: float(v) if v is not None and not isinstance(v, str) else v, r))
        for r in funnel
    ] == [
        (11, "Lead In", 4, 4, 0.75, 1.0),
        (12, "Qualified", 2, 3, 0.6667, 0.75),
        (13, "Proposal Made", 2, 2, None, 0.5),
    ]
    # Deals closed or deleted since (the deals stream queues them): a lost deal is no longer
    # "in" its stage, a deleted deal leaves both views (its history rows stay).
    deals = sql.Identifier(pg_schema, "deals")
    query(conn, sql.SQL("ALTER TABLE {} ADD COLUMN status text DEFAULT 'open'").format(deals))
    query(conn, sql.SQL("UPDATE {} SET status = 'lost' WHERE id = 4").format(deals))
    query(conn, sql.SQL("UPDATE {} SET status = 'deleted' WHERE id = 2").format(deals))
    sh.expand(conn, pg_schema, deal_ids=[2, 4])
    now = query(
        conn,
        sql.SQL("SELECT deals_in_stage_now FROM {} WHERE stage_id = 11").format(
            sql.Identifier(pg_schema, "deal_stage_durations")
        ),
    )
    assert now == [(0,)]
    reached = query(
        conn,
        sql.SQL("SELECT deals_reached FROM {} WHERE stage_id = 13").format(
            sql.Identifier(pg_schema, "deal_stage_funnel")
        ),
    )
    assert reached == [(1,)]
    assert len(history(conn, pg_schema)) == 8
    # The views read only the expansion's own tables: the loader may widen or replace its own.
    query(conn, sql.SQL("ALTER TABLE {} ALTER COLUMN id TYPE numeric").format(deals))
    query(conn, sql.SQL("UPDATE {} SET status = 'open' WHERE id IN (2, 4)").format(deals))
    sh.expand(conn, pg_schema, deal_ids=[2, 4])
    durations = query(
        conn,
        sql.SQL(
            "SELECT stage_id, pipeline_name, stays, completed_stays, deals_in_stage_now,"
            " avg_seconds::float, median_seconds FROM {} ORDER BY stage_id"
        ).format(sql.Identifier(pg_schema, "deal_stage_durations")),
    )
    assert durations == [
        (11, "Sales", 4, 3, 1, 4 * 3600.0, 4 * 3600.0),
        (12, "Sales", 2, 1, 1, 4 * 3600.0, 4 * 3600.0),
        (13, "Sales", 2, 0, 2, None, None),
    ]


def test_views_are_recreated_only_for_another_version(conn, pg_schema):
    seed_dictionaries(conn, pg_schema)
    insert(conn, pg_schema, "deals", [(1, "A", 11, 1, at(0))])
    insert(conn, pg_schema, "deal_stage_changes", [change(1, 0, None, 11, 0)])
    sh.expand(conn, pg_schema)
    view = f"{pg_schema}.deal_stage_funnel"

    def rule_version():
        return query(
            conn, sql.SQL("SELECT xmin::text FROM pg_rewrite WHERE ev_class = %s::regclass"), view
        )

    def comment():
        return query(conn, sql.SQL("SELECT obj_description(%s::regclass, 'pg_class')"), view)

    before = rule_version()
    sh.expand(conn, pg_schema, deal_ids=[1])
    assert rule_version() == before  # current views are left alone (no lock on BI queries)
    query(
        conn,
        sql.SQL("COMMENT ON VIEW {} IS 'older'").format(
            sql.Identifier(pg_schema, "deal_stage_funnel")
        ),
    )
    sh.expand(conn, pg_schema, deal_ids=[1])
    assert rule_version() != before
    assert comment() == [("pipeboard stage history views v2",)]
