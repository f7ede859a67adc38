"""Versions before Pipeboard was installed: deals, persons and organizations rebuilt from their
changelogs back to their creation, in SQL.

Inputs, per entity, two loaded tables: the entity's (``deals``, ``persons``,
``organizations``: ``id``, ``add_time``, ``update_time`` and its other columns) and its change
stream's (``deal_changes``, ``person_changes``, ``organization_changes``: the entity id
``deal_id``/``person_id``/``organization_id``, ``column_name``, ``old_value``, ``new_value``
(``jsonb``, typed as the entity column) and ``changed_at``), as tap-pipedrive writes them.

Output, per entity, ``<table>_changelog_history``: one row per version of each record, the
entity table's columns plus ``_valid_from``, ``_valid_to`` (NULL for the newest version) and
``_is_current`` (the columns of the target's history mode). A record's versions start at its
``add_time`` and change at each time its changelog logs a change: the value of a column in a
version is the new value of its latest change at or before ``_valid_from``, else the old value
of its first change after it, else (never changed) the value in the entity table now.
``update_time`` of a past version is the version's ``_valid_from`` (the time of the change).
The newest version is the entity row as loaded: a change the loaded changelog does not have yet
(an edit after the changelog was read) shows in it from the last loaded change on.

Which records: those with a loaded changelog, and those never edited (``update_time`` =
``add_time``, one version). A record edited but whose changelog is not loaded yet (no change
row) is left out until it is: its past is not known.

When the history mode's ``<table>_history`` exists, the rebuilt versions older than a record's
first captured version are written into it too (the rebuilt rows' keys are kept in
``_pipeboard_rebuilt_versions``, so a later rebuild replaces them and never touches captured
versions); the last rebuilt version there ends where the first captured one starts.

Views (deals): ``deal_pipeline_daily`` (per day, pipeline and stage: open deals and their value
at the end of the day), ``deal_owner_changes``, ``deal_value_changes``,
``deal_expected_close_date_changes``.

Columns the target derives on the entity table after the upsert (the stage-history expansion's
``moved_to_stage_*``, listed in ``_pipeboard_stage_columns``) are not the record's: the history
mode captures records, so its versions hold NULL there, and the rebuilt versions hold NULL
there too (the as-of answer is ``deal_stage_history``: first ``entered_at`` per stage).

The loader calls :func:`rebuild` after each run, once every batch is committed. Inside each
batch's transaction :class:`PendingRecords` queues the ids of the records the batch touched (the
entity's rows and the entity ids of its change rows) in ``_pipeboard_changelog_pending``; the
rebuild then rewrites the versions of those records only, and leaves every other record's rows
as they are. The whole table is rebuilt when there is no queue (another loader, the first
rebuild), when the entity's columns changed, on ``force``, and when the tables changed with no
record queued (a fingerprint of row counts and newest times is kept in
``_pipeboard_changelog_history``: rows written by another loader, rows retired by
ACTIVATE_VERSION).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from target_pipeboard_postgres import identifiers

if TYPE_CHECKING:
    from target_pipeboard_postgres.connector import TableLayout
    from target_pipeboard_postgres.post_load import LoadedBatch

LOGGER = logging.getLogger(__name__)

HISTORY_SUFFIX = "_changelog_history"
MODE_SUFFIX = "_history"  # the target's history mode
STATE_TABLE = "_pipeboard_changelog_history"
REBUILT_TABLE = "_pipeboard_rebuilt_versions"
PENDING_TABLE = "_pipeboard_changelog_pending"
SCRATCH = "_pipeboard_changes_scratch"
TOUCHED = "_pipeboard_changelog_touched"
# The stage-history expansion's stage -> column mapping: the columns it derives on deals.
DERIVED_COLUMNS_TABLE = "_pipeboard_stage_columns"
VALIDITY = ("_valid_from", "_valid_to", "_is_current")
# Never taken from the changelog: the record's identity, creation and change stamp.
FIXED = ("id", "add_time", "update_time")
_LOCK_NAMESPACE = 0x4348_4C47  # "CHLG": advisory lock class for the rebuild


@dataclass(frozen=True)
class Entity:
    """One entity: its stream, its change stream and the id column of the changes."""

    stream: str
    changes_stream: str
    id_column: str


ENTITIES = (
    Entity("deals", "deal_changes", "deal_id"),
    Entity("persons", "person_changes", "person_id"),
    Entity("organizations", "organization_changes", "organization_id"),
)
CHANGE_VIEWS = {
    "deal_owner_changes": "owner_id",
    "deal_value_changes": "value",
    "deal_expected_close_date_changes": "expected_close_date",
}
PIPELINE_DAILY_VIEW = "deal_pipeline_daily"


def _columns(conn: psycopg.Connection[Any], schema: str, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped"
        " AND c.relkind IN ('r', 'p') ORDER BY a.attnum",
        (schema, table),
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def default_table_name(stream: str) -> str:
    """The table a stream loads into (the loader's naming, schema prefix left out)."""
    return identifiers.split_stream_name(stream, None)[1]


class PendingRecords:
    """The post-load step queueing each batch's records for the next rebuild (see
    :mod:`.post_load`): the ids of an entity batch's rows and the entity ids of a change
    batch's rows, in the batch's transaction (a crash cannot lose an entry)."""

    def __init__(self, table_name: Callable[[str], str] = default_table_name) -> None:
        self.table_name = table_name

    def after_load(self, conn: psycopg.Connection[Any], batch: LoadedBatch) -> None:
        """Queue the records of the batch, if its stream feeds a rebuild."""
        name = self.table_name(batch.stream)
        for entity in ENTITIES:
            if name == self.table_name(entity.stream):
                key = "id"
                if not _columns(conn, batch.schema, self.table_name(entity.changes_stream)):
                    # No changes loaded yet: nothing to rebuild, and the first rebuild once
                    # they arrive is a whole one (a plain load pays one catalog lookup).
                    return
            elif name == self.table_name(entity.changes_stream):
                key = entity.id_column
            else:
                continue
            if key in batch.columns:
                mark_pending(conn, batch.schema, self.table_name(entity.stream), batch.source, key)
            return

    def after_retire(
        self, conn: psycopg.Connection[Any], layout: TableLayout, table: str, version: int
    ) -> None:
        """Rows retired by ACTIVATE_VERSION: the next rebuild of the entity is a whole one."""
        _ = version
        if any(table == self.table_name(entity.stream) for entity in ENTITIES) and _columns(
            conn, layout.schema, STATE_TABLE
        ):
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE table_name = %s").format(
                    sql.Identifier(layout.schema, STATE_TABLE)
                ),
                (f"{table}{HISTORY_SUFFIX}",),
            )


def mark_pending(
    conn: psycopg.Connection[Any],
    schema: str,
    table: str,
    source: sql.Composable,
    key: str,
) -> None:
    """Queue the ids in ``source.key`` for the next rebuild of ``table``'s history."""
    pending = sql.Identifier(schema, PENDING_TABLE)
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (table_name text NOT NULL, id bigint NOT NULL,"
            " PRIMARY KEY (table_name, id))"
        ).format(pending)
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {p} (table_name, id) SELECT DISTINCT %s, {k}::bigint FROM {s}"
            " WHERE {k} IS NOT NULL ON CONFLICT DO NOTHING"
        ).format(p=pending, k=sql.Identifier(key), s=source),
        (table,),
    )


def rebuild(
    conn: psycopg.Connection[Any],
    schema: str,
    *,
    table_name: Callable[[str], str] = lambda stream: stream,
    force: bool = False,
) -> list[str]:
    """Rebuild the changelog history of every entity whose tables are there; the tables
    written. One transaction per entity (committed here); an entity that fails is logged and
    left as it was (its queued records stay queued), the others still run."""
    written = []
    for entity in ENTITIES:
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_NAMESPACE, schema)
                )
                table = _rebuild_entity(conn, schema, entity, table_name, force=force)
        except psycopg.Error:
            LOGGER.warning(
                "changelog history of %s not rebuilt (the loaded data is untouched)",
                entity.stream,
                exc_info=True,
            )
            continue
        if table:
            written.append(table)
    return written


def _fingerprint(conn: psycopg.Connection[Any], schema: str, entity: str, changes: str) -> str:
    row = conn.execute(
        sql.SQL(
            "SELECT (SELECT count(*) || ':' || coalesce(max(update_time)::text, '') FROM {e})"
            " || '/' || (SELECT count(*) || ':' || coalesce(max(changed_at)::text, '') FROM {c})"
        ).format(e=sql.Identifier(schema, entity), c=sql.Identifier(schema, changes))
    ).fetchone()
    return str(row[0]) if row else ""


def _take_pending(conn: psycopg.Connection[Any], schema: str, table: str) -> int | None:
    """Move the records queued for ``table`` into the temporary touched set (dropped at
    commit; a failed rebuild rolls the queue back); how many, None when nothing queues."""
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(TOUCHED)))
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} (id bigint PRIMARY KEY) ON COMMIT DROP").format(
            sql.Identifier(TOUCHED)
        )
    )
    if not _columns(conn, schema, PENDING_TABLE):
        return None
    taken = conn.execute(
        sql.SQL(
            "WITH taken AS (DELETE FROM {p} WHERE table_name = %s RETURNING id)"
            " INSERT INTO {t} SELECT DISTINCT id FROM taken"
        ).format(p=sql.Identifier(schema, PENDING_TABLE), t=sql.Identifier(TOUCHED)),
        (table,),
    )
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(TOUCHED)))
    return taken.rowcount


def _derived_columns(conn: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    """Columns the target derives on ``table`` after the upsert (not the record's)."""
    if not _columns(conn, schema, DERIVED_COLUMNS_TABLE):
        return []
    rows = conn.execute(
        sql.SQL("SELECT column_name FROM {} WHERE deals_table = %s ORDER BY 1").format(
            sql.Identifier(schema, DERIVED_COLUMNS_TABLE)
        ),
        (table,),
    ).fetchall()
    return [str(name) for (name,) in rows]


def _history_columns(columns: dict[str, str]) -> dict[str, str]:
    wanted = {**columns, "_valid_from": "timestamp with time zone"}
    return wanted | {"_valid_to": "timestamp with time zone", "_is_current": "boolean"}


def _rebuild_entity(
    conn: psycopg.Connection[Any],
    schema: str,
    entity: Entity,
    table_name: Callable[[str], str],
    *,
    force: bool,
) -> str | None:
    table, changes = table_name(entity.stream), table_name(entity.changes_stream)
    columns = _columns(conn, schema, table)
    change_columns = _columns(conn, schema, changes)
    needed = {entity.id_column, "column_name", "old_value", "new_value", "changed_at"}
    if not columns or not change_columns:
        if columns:
            # Nothing to rebuild yet: the first rebuild once the changes arrive is a whole one.
            _take_pending(conn, schema, table)
        return None
    if not {"id", "add_time", "update_time"} <= set(columns) or not needed <= set(change_columns):
        LOGGER.warning(
            "changelog history of %s skipped: %s needs id, add_time, update_time and %s needs %s",
            entity.stream,
            table,
            changes,
            sorted(needed),
        )
        return None
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (table_name text PRIMARY KEY, fingerprint text,"
            " rebuilt_at timestamptz)"
        ).format(sql.Identifier(schema, STATE_TABLE))
    )
    history = f"{table}{HISTORY_SUFFIX}"
    fingerprint = _fingerprint(conn, schema, table, changes)
    seen = conn.execute(
        sql.SQL("SELECT fingerprint FROM {} WHERE table_name = %s").format(
            sql.Identifier(schema, STATE_TABLE)
        ),
        (history,),
    ).fetchone()
    same_layout = _columns(conn, schema, history) == _history_columns(columns)
    queued = _take_pending(conn, schema, table)
    if not force and same_layout and seen and seen[0] == fingerprint and not queued:
        return None
    # Only the queued records, when the table is there as it should be and nothing changed
    # behind the queue's back (a change of the tables with nothing queued rebuilds it all).
    touched = not force and same_layout and seen is not None and bool(queued)
    if touched:
        conn.execute(
            sql.SQL("DELETE FROM {h} h USING {t} t WHERE h.id = t.id").format(
                h=sql.Identifier(schema, history), t=sql.Identifier(TOUCHED)
            )
        )
    else:
        _prepare_history_table(conn, schema, table, history, columns)
    _scratch_changes(conn, schema, entity, changes, columns, touched=touched)
    derived = _derived_columns(conn, schema, table)
    _insert_versions(conn, schema, table, history, columns, derived, touched=touched)
    mode_table = f"{table}{MODE_SUFFIX}"
    if _columns(conn, schema, mode_table):
        _fill_history_mode(conn, schema, history, mode_table, touched=touched)
    if entity.stream == "deals":
        ensure_deal_views(conn, schema, history, changes, columns)
    conn.execute(
        sql.SQL(
            "INSERT INTO {} VALUES (%s, %s, now()) ON CONFLICT (table_name) DO UPDATE"
            " SET fingerprint = excluded.fingerprint, rebuilt_at = excluded.rebuilt_at"
        ).format(sql.Identifier(schema, STATE_TABLE)),
        (history, fingerprint),
    )
    if touched:
        LOGGER.info("changelog history: %s rewritten for %s records", history, queued)
    else:
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, history))
        )
        found = count.fetchone()
        LOGGER.info("changelog history: %s holds %s versions", history, found[0] if found else 0)
    return history


def _prepare_history_table(
    conn: psycopg.Connection[Any], schema: str, table: str, history: str, columns: dict[str, str]
) -> None:
    """Empty the history table, or create it anew when the entity's columns changed."""
    if _columns(conn, schema, history) == _history_columns(columns):
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(schema, history)))
        return
    # Views on it are recreated right after (ensure_deal_views).
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(schema, history)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE {h} (LIKE {t}, _valid_from timestamptz NOT NULL,"
            " _valid_to timestamptz, _is_current boolean NOT NULL, PRIMARY KEY (id, _valid_from))"
        ).format(h=sql.Identifier(schema, history), t=sql.Identifier(schema, table))
    )
    conn.execute(
        sql.SQL("CREATE INDEX ON {} (_valid_from, _valid_to)").format(
            sql.Identifier(schema, history)
        )
    )


def _scratch_changes(
    conn: psycopg.Connection[Any],
    schema: str,
    entity: Entity,
    changes: str,
    columns: dict[str, str],
    *,
    touched: bool,
) -> None:
    """The changes of the entity's columns (of the touched records only, when ``touched``),
    indexed for the per-version lookups."""
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCRATCH)))
    settable = [c for c in columns if c not in FIXED]
    position = (
        sql.SQL("c.log_position")
        if "log_position" in _columns(conn, schema, changes)
        else sql.SQL("0")
    )
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE {s} ON COMMIT DROP AS"
            " SELECT c.{rid}::bigint AS rid, c.column_name AS col, c.changed_at,"
            " {position}::bigint AS pos,"
            " c.old_value::jsonb AS old_value, c.new_value::jsonb AS new_value"
            " FROM {c} c WHERE c.column_name = ANY(%s) AND c.changed_at IS NOT NULL{only}"
        ).format(
            s=sql.Identifier(SCRATCH),
            position=position,
            rid=sql.Identifier(entity.id_column),
            c=sql.Identifier(schema, changes),
            only=_only_touched(sql.SQL("c.{}").format(sql.Identifier(entity.id_column)), touched),
        ),
        (settable,),
    )
    conn.execute(
        sql.SQL("CREATE INDEX ON {} (rid, col, changed_at)").format(sql.Identifier(SCRATCH))
    )
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(SCRATCH)))


def _only_touched(ident: sql.Composable, touched: bool) -> sql.Composable:
    """`` AND <ident> IN (the touched records)`` when ``touched``, else nothing."""
    if not touched:
        return sql.SQL("")
    return sql.SQL(" AND {}::bigint IN (SELECT id FROM {})").format(ident, sql.Identifier(TOUCHED))


def _insert_versions(
    conn: psycopg.Connection[Any],
    schema: str,
    table: str,
    history: str,
    columns: dict[str, str],
    derived: list[str],
    *,
    touched: bool,
) -> None:
    names = list(columns)
    query = sql.SQL(
        """
        WITH ents AS (
            SELECT e.* FROM {t} e
            WHERE e.id IS NOT NULL AND e.add_time IS NOT NULL{only}
              AND (EXISTS (SELECT 1 FROM {s} x WHERE x.rid = e.id)
                   OR e.update_time IS NOT DISTINCT FROM e.add_time)
        ), bounds AS (
            SELECT e.id AS rid, e.add_time AS valid_from FROM ents e
            UNION
            SELECT x.rid, x.changed_at FROM {s} x JOIN ents e ON e.id = x.rid
            WHERE x.changed_at > e.add_time
        ), versions AS (
            SELECT rid, valid_from,
                   lead(valid_from) OVER (PARTITION BY rid ORDER BY valid_from) AS valid_to
            FROM bounds
        ), keys AS (
            SELECT DISTINCT rid, col FROM {s}
        ), vals AS (
            SELECT v.rid, v.valid_from, k.col,
                   COALESCE(
                       (SELECT jsonb_build_array(x.new_value) FROM {s} x
                        WHERE x.rid = v.rid AND x.col = k.col AND x.changed_at <= v.valid_from
                        ORDER BY x.changed_at DESC, x.pos DESC LIMIT 1),
                       (SELECT jsonb_build_array(x.old_value) FROM {s} x
                        WHERE x.rid = v.rid AND x.col = k.col AND x.changed_at > v.valid_from
                        ORDER BY x.changed_at, x.pos LIMIT 1)
                   ) -> 0 AS val
            FROM versions v JOIN keys k ON k.rid = v.rid
            WHERE v.valid_to IS NOT NULL
        ), changed AS (
            SELECT rid, valid_from, jsonb_object_agg(col, val) AS doc
            FROM vals GROUP BY rid, valid_from
        ), docs AS (
            SELECT v.rid, v.valid_from, v.valid_to,
                   CASE WHEN v.valid_to IS NULL THEN to_jsonb(e) - {derived}
                        ELSE (to_jsonb(e) - {derived}) || COALESCE(c.doc, '{{}}')
                             || jsonb_build_object('update_time', v.valid_from)
                   END AS doc
            FROM versions v JOIN ents e ON e.id = v.rid
            LEFT JOIN changed c ON c.rid = v.rid AND c.valid_from = v.valid_from
        )
        INSERT INTO {h} ({cols}, _valid_from, _valid_to, _is_current)
        SELECT {fields}, d.valid_from, d.valid_to, d.valid_to IS NULL
        FROM docs d, LATERAL jsonb_populate_record(NULL::{t}, d.doc) AS r
        """
    ).format(
        t=sql.Identifier(schema, table),
        s=sql.Identifier(SCRATCH),
        h=sql.Identifier(schema, history),
        cols=sql.SQL(", ").join(sql.Identifier(n) for n in names),
        fields=sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(n)) for n in names),
        only=_only_touched(sql.SQL("e.id"), touched),
        derived=sql.SQL("{}::text[]").format(sql.Literal(derived)),
    )
    conn.execute(query)


def _fill_history_mode(
    conn: psycopg.Connection[Any], schema: str, history: str, mode_table: str, *, touched: bool
) -> None:
    """Write the rebuilt versions older than each record's first captured one into the
    history mode's table; replaces what an earlier rebuild wrote there (for the touched
    records only, when ``touched``)."""
    rebuilt = sql.Identifier(schema, REBUILT_TABLE)
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (table_name text, id bigint, valid_from timestamptz,"
            " PRIMARY KEY (table_name, id, valid_from))"
        ).format(rebuilt)
    )
    mode = sql.Identifier(schema, mode_table)
    conn.execute(
        sql.SQL(
            "DELETE FROM {m} h USING {r} r WHERE r.table_name = %s AND h.id = r.id"
            " AND h._valid_from = r.valid_from{only}"
        ).format(m=mode, r=rebuilt, only=_only_touched(sql.SQL("r.id"), touched)),
        (mode_table,),
    )
    conn.execute(
        sql.SQL("DELETE FROM {r} r WHERE table_name = %s{only}").format(
            r=rebuilt, only=_only_touched(sql.SQL("r.id"), touched)
        ),
        (mode_table,),
    )
    shared = [
        c
        for c in _columns(conn, schema, mode_table)
        if c in _columns(conn, schema, history) and c not in VALIDITY
    ]
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in shared)
    picked = sql.SQL(", ").join(sql.SQL("v.{}").format(sql.Identifier(c)) for c in shared)
    conn.execute(
        sql.SQL(
            """
            WITH first AS (
                SELECT id, min(_valid_from) AS captured FROM {m} WHERE true{only} GROUP BY id
            ),
            older AS (
                SELECT v.*, f.captured FROM {h} v JOIN first f ON f.id = v.id
                WHERE v._valid_from < f.captured
            ), written AS (
                INSERT INTO {m} ({cols}, _valid_from, _valid_to, _is_current)
                SELECT {picked}, v._valid_from,
                       CASE WHEN v._valid_to IS NULL OR v._valid_to > v.captured
                            THEN v.captured ELSE v._valid_to END,
                       false
                FROM older v
                ON CONFLICT DO NOTHING
                RETURNING id, _valid_from
            )
            INSERT INTO {r} SELECT %s, id, _valid_from FROM written
            """
        ).format(
            m=mode,
            h=sql.Identifier(schema, history),
            r=rebuilt,
            cols=cols,
            picked=picked,
            only=_only_touched(sql.SQL("id"), touched),
        ),
        (mode_table,),
    )


# -- views -------------------------------------------------------------------------------------


def ensure_deal_views(
    conn: psycopg.Connection[Any],
    schema: str,
    history: str,
    changes: str,
    columns: dict[str, str],
) -> None:
    """The deal views (re)defined over the rebuilt history and the change table."""
    needed = {"pipeline_id", "stage_id", "status", "value"}
    if needed <= set(columns):
        deleted = (
            sql.SQL(" AND h.is_deleted IS NOT TRUE") if "is_deleted" in columns else sql.SQL("")
        )
        conn.execute(
            sql.SQL(
                """
                CREATE OR REPLACE VIEW {v} AS
                WITH days AS (
                    SELECT d::date AS day, (d::date + 1)::timestamp AT TIME ZONE 'UTC' AS day_end
                    FROM generate_series(
                        ((SELECT min(_valid_from) FROM {h}) AT TIME ZONE 'UTC')::date,
                        (now() AT TIME ZONE 'UTC')::date,
                        interval '1 day'
                    ) d
                )
                SELECT days.day, h.pipeline_id, h.stage_id, count(*) AS open_deals,
                       sum(h.value) AS open_value
                FROM days JOIN {h} h
                  ON h._valid_from < days.day_end
                 AND (h._valid_to IS NULL OR h._valid_to >= days.day_end)
                WHERE h.status = 'open'{deleted}
                GROUP BY days.day, h.pipeline_id, h.stage_id
                """
            ).format(
                v=sql.Identifier(schema, PIPELINE_DAILY_VIEW),
                h=sql.Identifier(schema, history),
                deleted=deleted,
            )
        )
        conn.execute(
            sql.SQL(
                "COMMENT ON VIEW {} IS 'Open deals and their value (sum of value, in each"
                " deal''s own currency) per pipeline and stage at the end of each day (UTC), from"
                " the deals rebuilt from their changelogs.'"
            ).format(sql.Identifier(schema, PIPELINE_DAILY_VIEW))
        )
    for view, column in CHANGE_VIEWS.items():
        if column not in columns:
            continue
        kind = sql.SQL(columns[column])
        conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(schema, view)))
        conn.execute(
            sql.SQL(
                """
                CREATE VIEW {v} AS
                SELECT c.deal_id, c.changed_at, (c.old_value::jsonb #>> '{{}}')::{k} AS old_value,
                       (c.new_value::jsonb #>> '{{}}')::{k} AS new_value, c.user_id
                FROM {c} c WHERE c.column_name = {col}
                """
            ).format(
                v=sql.Identifier(schema, view),
                k=kind,
                c=sql.Identifier(schema, changes),
                col=sql.Literal(column),
            )
        )
