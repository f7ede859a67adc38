"""SQL builders for the deal stage-history expansion (no database access here).

Every builder returns a ``psycopg.sql.Composed``; identifiers go through ``sql.Identifier``
and values are parameters or ``sql.Literal`` of integers. :mod:`.stage_history` executes them.

The input tables are described by :class:`Sources`: which optional columns exist decides the
expressions (another tap's stage-change stream may lack ``user_id`` or ``pipeline_id``; a
target with ``add_record_metadata`` soft-deletes with ``_sdc_deleted_at``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from target_pipeboard_postgres import partitioning_sql

HISTORY_TABLE = "deal_stage_history"
COLUMNS_TABLE = "_pipeboard_stage_columns"
STAGES_TABLE = "_pipeboard_stages"  # the views' copy of the stage dictionary
PENDING_TABLE = "_pipeboard_stage_pending"
DURATIONS_VIEW = "deal_stage_durations"
FUNNEL_VIEW = "deal_stage_funnel"
# Stored as the views' comment; change it whenever a view's definition changes.
VIEWS_VERSION = "pipeboard stage history views v2"
TOUCHED = "_pipeboard_stage_touched"  # temporary, dropped at commit
SOFT_DELETE_COLUMN = "_sdc_deleted_at"

NUMERIC_TYPES = frozenset({"bigint", "integer", "smallint", "numeric"})


@dataclass(frozen=True)
class Table:
    """An input table: its name and the columns it has (name -> data type)."""

    name: str
    columns: dict[str, str]

    def has(self, column: str) -> bool:
        """Whether the table has ``column``."""
        return column in self.columns


@dataclass(frozen=True)
class Sources:
    """The tables the expansion reads."""

    schema: str
    deals: Table
    stages: Table
    changes: Table
    pipelines: Table | None

    def ident(self, table: Table | str) -> sql.Identifier:
        """Schema-qualified identifier of ``table``."""
        name = table if isinstance(table, str) else table.name
        return sql.Identifier(self.schema, name)


def _col(alias: str, column: str) -> sql.Identifier:
    return sql.Identifier(alias, column)


def _optional(table: Table, alias: str, column: str, cast: str) -> sql.Composable:
    """``alias.column::cast`` when the column exists, else a typed NULL."""
    if table.has(column):
        return sql.SQL("{}::{}").format(_col(alias, column), sql.SQL(cast))
    return sql.SQL("NULL::{}").format(sql.SQL(cast))


def _live(table: Table, alias: str) -> sql.Composable:
    """A condition excluding soft-deleted rows, or TRUE when the table has no such column."""
    if table.has(SOFT_DELETE_COLUMN):
        return sql.SQL("{} IS NULL").format(_col(alias, SOFT_DELETE_COLUMN))
    return sql.SQL("TRUE")


def _key_equals(table: Table, alias: str, column: str, bigint_expr: sql.Composable) -> sql.Composed:
    """``alias.column = expr`` keeping an index on ``column`` usable whatever its type."""
    if table.columns.get(column) in NUMERIC_TYPES:
        return sql.SQL("{} = {}").format(_col(alias, column), bigint_expr)
    return sql.SQL("{} = ({})::text").format(_col(alias, column), bigint_expr)


def create_history_table(schema: str, *, partitioned: bool = False) -> list[sql.Composed]:
    """The history table; ``partitioned``: range-partitioned by ``entered_at`` (which then is
    part of the key, as Postgres requires), with its DEFAULT partition."""
    key = "deal_id, stay_number, entered_at" if partitioned else "deal_id, stay_number"
    by = " PARTITION BY RANGE (entered_at)" if partitioned else ""
    statements = [
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " deal_id bigint NOT NULL,"
            " stay_number integer NOT NULL,"
            " pipeline_id bigint,"
            " stage_id bigint NOT NULL,"
            " entered_at timestamptz NOT NULL,"
            " left_at timestamptz,"
            " seconds_in_stage numeric,"
            " is_current boolean NOT NULL,"
            " entered_by_user_id bigint,"
            " change_id text,"
            " deal_status text,"
            " deal_is_deleted boolean NOT NULL DEFAULT false,"
            " PRIMARY KEY ({})){}"
            # Safe: `key` and `by` are the constants above.
        ).format(sql.Identifier(schema, HISTORY_TABLE), sql.SQL(key), sql.SQL(by))
    ]
    if partitioned:
        statements.append(partitioning_sql.create_default(schema, HISTORY_TABLE))
        statements.append(partitioning_sql.index_default(schema, HISTORY_TABLE, "entered_at"))
    return statements


def create_metadata_tables(schema: str, *, partitioned: bool = False) -> list[sql.Composed]:
    """The expansion's own tables: the stage -> column mapping, the history (``partitioned``
    by ``entered_at`` if asked), the stages.

    The pending-deals table is created by the loader's first :func:`mark_pending`; while it
    does not exist the expansion knows no loader queues deals and recomputes them all.
    """
    return [
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " deals_table text NOT NULL,"
            " stage_id bigint NOT NULL,"
            " column_name text NOT NULL,"
            " pipeline_id bigint,"
            " stage_name text,"
            " created_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (deals_table, stage_id),"
            " UNIQUE (deals_table, column_name))"
        ).format(sql.Identifier(schema, COLUMNS_TABLE)),
        *create_history_table(schema, partitioned=partitioned),
        sql.SQL(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS deal_status text,"
            " ADD COLUMN IF NOT EXISTS deal_is_deleted boolean NOT NULL DEFAULT false"
        ).format(sql.Identifier(schema, HISTORY_TABLE)),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " stage_id bigint PRIMARY KEY,"
            " pipeline_id bigint,"
            " pipeline_name text,"
            " stage_name text,"
            " stage_order bigint,"
            " is_live boolean NOT NULL)"
        ).format(sql.Identifier(schema, STAGES_TABLE)),
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (stage_id)").format(
            sql.Identifier(f"{HISTORY_TABLE}_stage_id_idx"),
            sql.Identifier(schema, HISTORY_TABLE),
        ),
    ]


def create_pending_table(schema: str) -> sql.Composed:
    """Deals loaded but not yet expanded (filled inside the loader's batch transactions)."""
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} (deal_id bigint PRIMARY KEY)").format(
        sql.Identifier(schema, PENDING_TABLE)
    )


def mark_pending(schema: str, source: sql.Composable, key_column: str) -> sql.Composed:
    """Queue the deal ids found in ``source.key_column`` for the next expansion."""
    return sql.SQL(
        "INSERT INTO {} (deal_id) SELECT DISTINCT {}::bigint FROM {} WHERE {} IS NOT NULL"
        " ON CONFLICT (deal_id) DO NOTHING"
    ).format(
        sql.Identifier(schema, PENDING_TABLE),
        sql.Identifier(key_column),
        source,
        sql.Identifier(key_column),
    )


def create_changes_index(src: Sources, index_name: str) -> sql.Composed:
    """An index on the stage-change table's ``deal_id`` so per-deal expansion stays cheap."""
    return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (deal_id)").format(
        sql.Identifier(index_name), src.ident(src.changes)
    )


def create_touched(schema: str) -> sql.Composed:
    """The temporary set of deals this expansion recomputes."""
    del schema  # temporary tables live in pg_temp
    return sql.SQL("CREATE TEMPORARY TABLE {} (deal_id bigint PRIMARY KEY) ON COMMIT DROP").format(
        sql.Identifier(TOUCHED)
    )


def touch_all(src: Sources) -> sql.Composed:
    """Every deal known to the deals or stage-change tables."""
    return sql.SQL(
        "INSERT INTO {t} (deal_id)"
        " SELECT id::bigint FROM {deals} WHERE id IS NOT NULL"
        " UNION SELECT deal_id::bigint FROM {changes} WHERE deal_id IS NOT NULL"
        " UNION SELECT deal_id FROM {history}"
        " ON CONFLICT DO NOTHING"
    ).format(
        t=sql.Identifier(TOUCHED),
        deals=src.ident(src.deals),
        changes=src.ident(src.changes),
        history=src.ident(HISTORY_TABLE),
    )


def touch_ids() -> sql.Composed:
    """Deals given by the caller (parameter: a list of ids)."""
    return sql.SQL(
        "INSERT INTO {} (deal_id) SELECT unnest(%s::bigint[]) ON CONFLICT DO NOTHING"
    ).format(sql.Identifier(TOUCHED))


def touch_pending(schema: str) -> sql.Composed:
    """Deals queued by the loader."""
    return sql.SQL("INSERT INTO {} (deal_id) SELECT deal_id FROM {} ON CONFLICT DO NOTHING").format(
        sql.Identifier(TOUCHED), sql.Identifier(schema, PENDING_TABLE)
    )


def clear_pending(schema: str) -> sql.Composed:
    """Forget queued deals that this expansion covered."""
    return sql.SQL("DELETE FROM {} p USING {} t WHERE p.deal_id = t.deal_id").format(
        sql.Identifier(schema, PENDING_TABLE), sql.Identifier(TOUCHED)
    )


def delete_history(schema: str) -> sql.Composed:
    """Drop the touched deals' history rows (they are recomputed in full)."""
    return sql.SQL("DELETE FROM {} h USING {} t WHERE h.deal_id = t.deal_id").format(
        sql.Identifier(schema, HISTORY_TABLE), sql.Identifier(TOUCHED)
    )


def insert_history(src: Sources) -> sql.Composed:
    """Recompute the touched deals' stays from their stage changes.

    Each change is an entry into ``to_stage_id``; consecutive entries into the same stage
    (a repeated event, or creation and a first move reported at once) are one stay. A stay
    ends when the next one begins. Ties in time put the creation record (no from-stage) first,
    then order by event id, so the result never depends on arrival order.
    """
    ch = src.changes
    change_id = _optional(ch, "c", "id", "text")
    from_stage = _optional(ch, "c", "from_stage_id", "bigint")
    pipeline = _optional(ch, "c", "pipeline_id", "bigint")
    user = _optional(ch, "c", "user_id", "bigint")
    stage_pipeline = _optional(src.stages, "s", "pipeline_id", "bigint")
    return sql.SQL(
        "WITH src AS ("
        " SELECT c.deal_id::bigint AS deal_id, c.to_stage_id::bigint AS stage_id,"
        "  {pipeline} AS change_pipeline_id, c.changed_at::timestamptz AS entered_at,"
        "  {user} AS user_id, {change_id} AS change_id, ({from_stage} IS NOT NULL) AS is_move"
        " FROM {changes} c JOIN {touched} t ON {join}"
        " WHERE c.to_stage_id IS NOT NULL AND c.changed_at IS NOT NULL AND {live}"
        "), ordered AS ("
        " SELECT src.*, lag(stage_id) OVER w AS previous_stage_id FROM src"
        " WINDOW w AS (PARTITION BY deal_id ORDER BY entered_at, is_move, change_id)"
        "), stays AS ("
        " SELECT * FROM ordered WHERE previous_stage_id IS DISTINCT FROM stage_id"
        "), timed AS ("
        " SELECT stays.*, lead(entered_at) OVER w AS left_at,"
        "  row_number() OVER w AS stay_number FROM stays"
        " WINDOW w AS (PARTITION BY deal_id ORDER BY entered_at, is_move, change_id)"
        ")"
        " INSERT INTO {history} (deal_id, stay_number, pipeline_id, stage_id, entered_at, left_at,"
        "  seconds_in_stage, is_current, entered_by_user_id, change_id, deal_status,"
        "  deal_is_deleted)"
        " SELECT timed.deal_id, timed.stay_number,"
        "  coalesce(timed.change_pipeline_id, {stage_pipeline}), timed.stage_id,"
        "  timed.entered_at, timed.left_at,"
        "  extract(epoch FROM timed.left_at - timed.entered_at), timed.left_at IS NULL,"
        "  timed.user_id, timed.change_id, {deal_status}, coalesce({deal_deleted}, false)"
        " FROM timed LEFT JOIN {stages} s ON {stage_join}"
        " LEFT JOIN {deals} d ON {deal_join}"
    ).format(
        pipeline=pipeline,
        user=user,
        change_id=change_id,
        from_stage=from_stage,
        changes=src.ident(ch),
        touched=sql.Identifier(TOUCHED),
        join=sql.SQL("c.deal_id::bigint = t.deal_id")
        if ch.columns.get("deal_id") not in NUMERIC_TYPES
        else sql.SQL("c.deal_id = t.deal_id"),
        live=_live(ch, "c"),
        history=sql.Identifier(src.schema, HISTORY_TABLE),
        stage_pipeline=stage_pipeline,
        stages=src.ident(src.stages),
        stage_join=_key_equals(src.stages, "s", "id", sql.SQL("timed.stage_id")),
        deal_status=_optional(src.deals, "d", "status", "text"),
        deal_deleted=_deal_deleted(src.deals),
        deals=src.ident(src.deals),
        deal_join=_key_equals(src.deals, "d", "id", sql.SQL("timed.deal_id")),
    )


def _deal_deleted(deals: Table) -> sql.Composable:
    """Whether the joined deal ``d`` is deleted (soft-deleted, or flagged by the source)."""
    parts: list[sql.Composable] = []
    if deals.has(SOFT_DELETE_COLUMN):
        parts.append(sql.SQL("d.{} IS NOT NULL").format(sql.Identifier(SOFT_DELETE_COLUMN)))
    if deals.has("status"):
        parts.append(sql.SQL("d.status::text = 'deleted'"))
    if deals.has("is_deleted"):
        parts.append(sql.SQL("d.is_deleted IS TRUE"))
    if not parts:
        return sql.SQL("false")
    return sql.SQL("({})").format(sql.SQL(" OR ").join(parts))


def refresh_stages(src: Sources) -> list[sql.Composed]:
    """Copy the stage dictionary the views use (the views never read the loader's tables,
    so the loader stays free to widen, replace or re-create them)."""
    pipeline_name, pipeline_join = _pipeline_name(src)
    table = sql.Identifier(src.schema, STAGES_TABLE)
    return [
        sql.SQL("DELETE FROM {}").format(table),
        sql.SQL(
            "INSERT INTO {table} (stage_id, pipeline_id, pipeline_name, stage_name, stage_order,"
            "  is_live)"
            " SELECT DISTINCT ON (s.id::bigint) s.id::bigint, {pipeline}, {pipeline_name},"
            "  {stage_name}, coalesce({order}, s.id::bigint), {live}"
            " FROM {stages} s{pipeline_join} WHERE s.id IS NOT NULL"
        ).format(
            table=table,
            pipeline=_optional(src.stages, "s", "pipeline_id", "bigint"),
            pipeline_name=pipeline_name,
            stage_name=_optional(src.stages, "s", "name", "text"),
            order=_stage_order(src),
            live=_stage_is_live(src),
            stages=src.ident(src.stages),
            pipeline_join=pipeline_join,
        ),
    ]


def add_stage_column(src: Sources, column: str) -> sql.Composed:
    """A ``moved_to_stage_*`` column on the deals table."""
    return sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} timestamptz").format(
        src.ident(src.deals), sql.Identifier(column)
    )


def update_stage_columns(src: Sources, columns: Sequence[tuple[int, str]]) -> sql.Composed:
    """Set each touched deal's ``moved_to_stage_*`` columns to its first entry into the stage.

    Rows whose values already match are not rewritten.
    """
    names = [sql.Identifier(column) for _, column in columns]
    firsts = sql.SQL(", ").join(
        sql.SQL("min(h.entered_at) FILTER (WHERE h.stage_id = {}) AS {}").format(
            sql.Literal(int(stage_id)), sql.Identifier(column)
        )
        for stage_id, column in columns
    )
    current = sql.SQL(", ").join(_col("d", column) for _, column in columns)
    computed = sql.SQL(", ").join(_col("a", column) for _, column in columns)
    return sql.SQL(
        "UPDATE {deals} d SET ({names}) = ROW({computed})"
        " FROM (SELECT t.deal_id, {firsts} FROM {touched} t"
        "  LEFT JOIN {history} h ON h.deal_id = t.deal_id GROUP BY t.deal_id) a"
        " WHERE {join} AND ROW({current}) IS DISTINCT FROM ROW({computed})"
    ).format(
        deals=src.ident(src.deals),
        names=sql.SQL(", ").join(names),
        computed=computed,
        firsts=firsts,
        touched=sql.Identifier(TOUCHED),
        history=sql.Identifier(src.schema, HISTORY_TABLE),
        join=_key_equals(src.deals, "d", "id", sql.SQL("a.deal_id")),
        current=current,
    )


def _stage_order(src: Sources) -> sql.Composable:
    return _optional(src.stages, "s", "order_nr", "bigint")


def _stage_is_live(src: Sources) -> sql.Composable:
    parts: list[sql.Composable] = [_live(src.stages, "s")]
    if src.stages.has("is_deleted"):
        parts.append(sql.SQL("s.is_deleted IS NOT TRUE"))
    if src.stages.has("active_flag"):
        parts.append(sql.SQL("s.active_flag IS NOT FALSE"))
    return sql.SQL(" AND ").join(parts)


def _pipeline_name(src: Sources) -> tuple[sql.Composable, sql.Composable]:
    """The pipeline-name expression and the join that provides it."""
    if src.pipelines is None or not src.pipelines.has("name"):
        return sql.SQL("NULL::text"), sql.SQL("")
    join = sql.SQL(" LEFT JOIN {} p ON {}").format(
        src.ident(src.pipelines), _key_equals(src.pipelines, "p", "id", sql.SQL("s.pipeline_id"))
    )
    return sql.SQL("p.name::text"), join


def create_durations_view(src: Sources) -> sql.Composed:
    """Per pipeline and stage: how many stays, and how long completed stays lasted.

    Deleted deals are left out, as in Pipedrive's own reports (the history table keeps
    them); a won or lost deal is no longer counted as being in its last stage.
    """
    open_now = sql.SQL("h.is_current AND coalesce(h.deal_status, 'open') = 'open'")
    return sql.SQL(
        "CREATE OR REPLACE VIEW {view} AS"
        " SELECT h.pipeline_id, st.pipeline_name, h.stage_id, st.stage_name, st.stage_order,"
        "  count(*) AS stays, count(DISTINCT h.deal_id) AS deals,"
        "  count(*) FILTER (WHERE {open_now}) AS deals_in_stage_now,"
        "  count(*) FILTER (WHERE NOT h.is_current) AS completed_stays,"
        "  avg(h.seconds_in_stage) AS avg_seconds,"
        "  percentile_cont(0.5) WITHIN GROUP (ORDER BY h.seconds_in_stage) AS median_seconds,"
        "  percentile_cont(0.9) WITHIN GROUP (ORDER BY h.seconds_in_stage) AS p90_seconds,"
        "  round(avg(h.seconds_in_stage) / 86400, 2) AS avg_days,"
        "  avg(extract(epoch FROM now() - h.entered_at)) FILTER (WHERE {open_now})"
        "   AS avg_seconds_current_stays"
        " FROM {history} h LEFT JOIN {stages} st ON st.stage_id = h.stage_id"
        " WHERE NOT h.deal_is_deleted"
        " GROUP BY h.pipeline_id, st.pipeline_name, h.stage_id, st.stage_name, st.stage_order"
    ).format(
        view=sql.Identifier(src.schema, DURATIONS_VIEW),
        open_now=open_now,
        history=sql.Identifier(src.schema, HISTORY_TABLE),
        stages=sql.Identifier(src.schema, STAGES_TABLE),
    )


def create_funnel_view(src: Sources) -> sql.Composed:
    """Per pipeline, stages in order: deals that reached each stage and conversion onwards.

    A deal reached a stage when it was ever in that stage or a later one of the same
    pipeline (skipping a stage passes it), as Pipedrive's own conversion report counts.
    Deleted deals and deleted stages are left out.
    """
    return sql.SQL(
        "CREATE OR REPLACE VIEW {view} AS"
        " WITH live AS ("
        "  SELECT deal_id, stage_id FROM {history} WHERE NOT deal_is_deleted"
        " ), furthest AS ("
        "  SELECT h.deal_id, st.pipeline_id, max(st.stage_order) AS stage_order"
        "  FROM live h JOIN {stages} st ON st.stage_id = h.stage_id"
        "  GROUP BY h.deal_id, st.pipeline_id"
        " ), entered AS ("
        "  SELECT stage_id, count(DISTINCT deal_id) AS deals FROM live GROUP BY stage_id"
        " ), reached AS ("
        "  SELECT st.pipeline_id, st.pipeline_name, st.stage_id, st.stage_name, st.stage_order,"
        "   coalesce(e.deals, 0) AS deals_entered,"
        "   (SELECT count(*) FROM furthest f WHERE f.pipeline_id = st.pipeline_id"
        "     AND f.stage_order >= st.stage_order) AS deals_reached"
        "  FROM {stages} st LEFT JOIN entered e ON e.stage_id = st.stage_id"
        "  WHERE st.is_live"
        " )"
        " SELECT pipeline_id, pipeline_name, stage_id, stage_name, stage_order,"
        "  deals_entered, deals_reached,"
        "  lead(stage_id) OVER w AS next_stage_id,"
        "  lead(deals_reached) OVER w AS deals_reached_next,"
        "  round(lead(deals_reached) OVER w::numeric / nullif(deals_reached, 0), 4)"
        "   AS conversion_to_next,"
        "  round(deals_reached::numeric / nullif(first_value(deals_reached) OVER w, 0), 4)"
        "   AS conversion_from_first"
        " FROM reached"
        " WINDOW w AS (PARTITION BY pipeline_id ORDER BY stage_order, stage_id)"
    ).format(
        view=sql.Identifier(src.schema, FUNNEL_VIEW),
        history=sql.Identifier(src.schema, HISTORY_TABLE),
        stages=sql.Identifier(src.schema, STAGES_TABLE),
    )
