"""Deal stage history: from stage-change records to analytics-ready tables, in SQL.

What the expansion builds in the target schema, for the deals touched in a run:

- ``deal_stage_history``: one row per stay of a deal in a stage (``deal_id``, ``stay_number``,
  ``pipeline_id``, ``stage_id``, ``entered_at``, ``left_at``, ``seconds_in_stage``,
  ``is_current``, ``entered_by_user_id``, ``change_id``). A deal that re-enters a stage has one
  row per stay. Open stays have ``left_at`` NULL.
- on the deals table, one ``moved_to_stage_<stage>`` ``timestamptz`` column per stage: the
  first time the deal entered it. Names are the snake_case stage names; a name shared by stages
  of different pipelines gets the pipeline's name as suffix (on first sight of both; an
  established column never changes name). The stage id -> column mapping is kept in
  ``_pipeboard_stage_columns``, so a stage renamed in Pipedrive keeps its column, and a new
  stage adds one.
- views ``deal_stage_durations`` (per pipeline and stage: stays, completed-stay duration
  average/median/p90, deals in the stage now) and ``deal_stage_funnel`` (per pipeline, stages in
  order: deals that reached each stage, conversion to the next stage and from the first).

Inputs are three streams' tables, by default ``deals``, ``stages`` and ``deal_stage_changes``
(plus ``pipelines`` for readable suffixes), named by the target setting ``stage_history``.
The stage-change table needs ``deal_id``, ``to_stage_id`` and ``changed_at`` (the deal's
creation is a change with no ``from_stage_id``); ``id``, ``from_stage_id``, ``pipeline_id`` and
``user_id`` are used when present. Nothing depends on the order the streams arrive in: a deal
touched by any of them is recomputed in full from what is in the database, and a stage whose
definition arrives later gets its column then, filled for every deal.

How the loader drives it: inside each committed batch of the deals or stage-change stream,
:func:`mark_pending` queues the batch's deal ids (same transaction, so a crash between load and
expansion loses nothing); after commit, :func:`expand` recomputes the queued deals. Without the
queue (another loader, or the first run) :func:`expand` recomputes every deal.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from singer_sdk import typing as th

from target_pipeboard_postgres import identifiers, partitioning
from target_pipeboard_postgres import stage_history_sql as q
from target_pipeboard_postgres.identifiers import snake_case

if TYPE_CHECKING:
    from target_pipeboard_postgres.connector import TableLayout
    from target_pipeboard_postgres.post_load import LoadedBatch

LOGGER = logging.getLogger(__name__)

COLUMN_PREFIX = "moved_to_stage_"
SETTING_NAME = "stage_history"
_LOCK_NAMESPACE = 0x5354_4748  # "STGH": advisory lock class for the expansion

_REQUIRED = {
    "deals": ("id",),
    "stages": ("id",),
    "changes": ("deal_id", "to_stage_id", "changed_at"),
}


class StageHistoryConfigError(ValueError):
    """The ``stage_history`` setting or the input tables are not usable."""


@dataclass(frozen=True)
class StageHistorySettings:
    """The ``stage_history`` target setting.

    ``enabled`` None means automatic: on when the three tables exist.
    """

    enabled: bool | None = None
    deals_stream: str = "deals"
    stages_stream: str = "stages"
    changes_stream: str = "deal_stage_changes"
    pipelines_stream: str = "pipelines"

    @classmethod
    def from_config(cls, value: Mapping[str, Any] | None) -> StageHistorySettings:
        """Parse the setting, naming any key or value that is wrong."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            msg = f"setting {SETTING_NAME!r} must be an object, got {type(value).__name__}"
            raise StageHistoryConfigError(msg)
        known = {"enabled", "deals_stream", "stages_stream", "changes_stream", "pipelines_stream"}
        unknown = sorted(set(value) - known)
        if unknown:
            msg = f"setting {SETTING_NAME!r} has unknown keys {unknown}; known: {sorted(known)}"
            raise StageHistoryConfigError(msg)
        enabled = value.get("enabled")
        if isinstance(enabled, str) and enabled.strip().lower() in {"true", "false"}:
            enabled = enabled.strip().lower() == "true"
        if enabled is not None and not isinstance(enabled, bool):
            msg = f"setting {SETTING_NAME}.enabled must be true or false, got {enabled!r}"
            raise StageHistoryConfigError(msg)
        names: dict[str, str] = {}
        for key in known - {"enabled"}:
            if key in value and value[key] is not None:
                if not isinstance(value[key], str) or not value[key]:
                    msg = f"setting {SETTING_NAME}.{key} must be a stream name, got {value[key]!r}"
                    raise StageHistoryConfigError(msg)
                names[key] = value[key]
        return cls(enabled=enabled, **names)

    def streams(self) -> tuple[str, str, str]:
        """The deals, stages and stage-change stream names."""
        return self.deals_stream, self.stages_stream, self.changes_stream


def config_property() -> th.Property[Any]:
    """The ``stage_history`` property for the target's ``config_jsonschema``."""
    return th.Property(
        SETTING_NAME,
        th.ObjectType(
            th.Property(
                "enabled",
                th.BooleanType,
                description="Build stage history; default: on when the three streams are loaded.",
            ),
            th.Property("deals_stream", th.StringType, default="deals"),
            th.Property("stages_stream", th.StringType, default="stages"),
            th.Property("changes_stream", th.StringType, default="deal_stage_changes"),
            th.Property("pipelines_stream", th.StringType, default="pipelines"),
        ),
        description=(
            "Deal stage-history expansion (deal_stage_history table, moved_to_stage_* columns, "
            "BI views) and the stream names it reads."
        ),
    )


@dataclass
class ExpansionResult:
    """What one expansion did."""

    ran: bool
    reason: str = ""
    full: bool = False
    deals: int = 0
    history_rows: int = 0
    deals_updated: int = 0
    columns_added: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    """A stage as the naming needs it."""

    id: int
    name: str
    pipeline_id: int | None
    order_nr: int


def assign_stage_columns(
    stages: Iterable[Stage],
    pipeline_names: Mapping[int, str],
    existing: Mapping[int, str],
    taken: Iterable[str] = (),
) -> dict[int, str]:
    """Column names for stages without one; ``existing`` (stage id -> column) never changes.

    Args:
        stages: every stage currently known.
        pipeline_names: pipeline id -> name, for suffixes (ids are used when absent).
        existing: stage id -> column already assigned.
        taken: other column names on the deals table that must not be reused.

    Returns:
        stage id -> column for the stages that had none.
    """
    stages = list(stages)
    pipelines_by_base: dict[str, set[int | None]] = defaultdict(set)
    for stage in stages:
        pipelines_by_base[snake_case(stage.name)].add(stage.pipeline_id)
    used = set(existing.values()) | set(taken)
    new: dict[int, str] = {}
    for stage in sorted(stages, key=lambda s: (s.pipeline_id or 0, s.order_nr, s.id)):
        if stage.id in existing or stage.id in new:
            continue
        base = snake_case(stage.name) or f"stage_{stage.id}"
        name = identifiers.fit(COLUMN_PREFIX + base)
        if len(pipelines_by_base[snake_case(stage.name)]) > 1 or name in used:
            # The name is shared with another pipeline's stage (now or by an older column).
            pipeline = pipeline_names.get(stage.pipeline_id or 0, "")
            suffix = snake_case(pipeline) or f"pipeline_{stage.pipeline_id}"
            name = identifiers.fit(f"{COLUMN_PREFIX}{base}_{suffix}")
        if name in used:  # same name twice in one pipeline, or an unrelated column
            name = identifiers.fit(f"{name}_{stage.id}")
        new[stage.id] = name
        used.add(name)
    return new


# --- database side ---------------------------------------------------------------------------


def _columns(conn: psycopg.Connection[Any], schema: str, table: str) -> dict[str, str] | None:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s",
        (schema, table),
    ).fetchall()
    return {str(name): str(dtype) for name, dtype in rows} or None


def resolve_sources(
    conn: psycopg.Connection[Any],
    schema: str,
    settings: StageHistorySettings,
    table_name: Callable[[str], str] = lambda stream: stream,
) -> q.Sources | str:
    """The input tables, or the reason the expansion cannot run (a missing table).

    Raises:
        StageHistoryConfigError: a table exists but lacks a column the expansion needs.
    """
    tables: dict[str, q.Table] = {}
    for role, stream in zip(("deals", "stages", "changes"), settings.streams(), strict=True):
        name = table_name(stream)
        columns = _columns(conn, schema, name)
        if columns is None:
            return f"table {schema}.{name} (stream {stream!r}) does not exist"
        missing = [c for c in _REQUIRED[role] if c not in columns]
        if missing:
            msg = (
                f"stage history: table {schema}.{name} (stream {stream!r}) lacks column(s) "
                f"{missing}; set {SETTING_NAME}.{role}_stream to the right stream or "
                f"{SETTING_NAME}.enabled to false"
            )
            raise StageHistoryConfigError(msg)
        tables[role] = q.Table(name, columns)
    pipelines_name = table_name(settings.pipelines_stream)
    pipeline_columns = _columns(conn, schema, pipelines_name)
    pipelines = q.Table(pipelines_name, pipeline_columns) if pipeline_columns else None
    return q.Sources(schema, tables["deals"], tables["stages"], tables["changes"], pipelines)


def mark_pending(
    conn: psycopg.Connection[Any],
    schema: str,
    settings: StageHistorySettings,
    stream_name: str,
    source: sql.Composable,
) -> bool:
    """Queue the deals of a batch for expansion, inside the loader's batch transaction.

    Args:
        conn: the loader's connection, in the batch's open transaction.
        schema: the target schema.
        settings: the ``stage_history`` setting.
        stream_name: the batch's stream.
        source: a table holding the batch's rows (e.g. the staging table).

    Returns:
        Whether the stream feeds the expansion (and ids were queued).
    """
    if settings.enabled is False:
        return False
    if stream_name == settings.deals_stream:
        key = "id"
    elif stream_name == settings.changes_stream:
        key = "deal_id"
    else:
        return False
    conn.execute(q.create_pending_table(schema))
    conn.execute(q.mark_pending(schema, source, key))
    return True


class PendingQueue:
    """The post-load expansion queueing each batch's deals (see :mod:`.post_load`)."""

    def __init__(self, settings: StageHistorySettings) -> None:
        self.settings = settings

    def after_load(self, conn: psycopg.Connection[Any], batch: LoadedBatch) -> None:
        """Queue the batch's deals, in its transaction (a crash cannot lose the entry)."""
        streams = (self.settings.deals_stream, self.settings.changes_stream)
        if self.settings.enabled is not False and batch.stream in streams:
            mark_pending(conn, batch.schema, self.settings, batch.stream, batch.source)

    def after_retire(
        self, conn: psycopg.Connection[Any], layout: TableLayout, table: str, version: int
    ) -> None:
        """Nothing: the expansion reads soft-deleted deals as they are at its next run."""
        _ = conn, layout, table, version


def _load_stages(conn: psycopg.Connection[Any], src: q.Sources) -> list[Stage]:
    stages = src.stages
    name = sql.SQL("s.name::text") if stages.has("name") else sql.SQL("NULL::text")
    pipeline = sql.SQL("s.pipeline_id::bigint") if stages.has("pipeline_id") else sql.SQL("NULL")
    order = sql.SQL("s.order_nr::bigint") if stages.has("order_nr") else sql.SQL("0")
    live = (
        sql.SQL("s.{} IS NULL").format(sql.Identifier(q.SOFT_DELETE_COLUMN))
        if stages.has(q.SOFT_DELETE_COLUMN)
        else sql.SQL("TRUE")
    )
    rows = conn.execute(
        sql.SQL("SELECT s.id::bigint, {}, {}, {} FROM {} s WHERE s.id IS NOT NULL AND {}").format(
            name, pipeline, order, src.ident(stages), live
        )
    ).fetchall()
    return [Stage(int(r[0]), r[1] or "", r[2], int(r[3] or 0)) for r in rows]


def _load_pipeline_names(conn: psycopg.Connection[Any], src: q.Sources) -> dict[int, str]:
    if src.pipelines is None or not src.pipelines.has("name"):
        return {}
    rows = conn.execute(
        sql.SQL("SELECT id::bigint, name::text FROM {} WHERE id IS NOT NULL").format(
            src.ident(src.pipelines)
        )
    ).fetchall()
    return {int(r[0]): r[1] or "" for r in rows}


def _sync_stage_columns(
    conn: psycopg.Connection[Any], src: q.Sources
) -> tuple[list[tuple[int, str]], list[str]]:
    """Assign columns to new stages and make sure every assigned column exists.

    Returns:
        (all stage id -> column pairs, columns created in this call).
    """
    meta = sql.Identifier(src.schema, q.COLUMNS_TABLE)
    existing = {
        int(stage_id): str(column)
        for stage_id, column in conn.execute(
            sql.SQL("SELECT stage_id, column_name FROM {} WHERE deals_table = %s").format(meta),
            (src.deals.name,),
        ).fetchall()
    }
    stages = _load_stages(conn, src)
    owned = set(existing.values())
    taken = [c for c in src.deals.columns if c not in owned and not c.startswith(COLUMN_PREFIX)]
    new = assign_stage_columns(stages, _load_pipeline_names(conn, src), existing, taken)
    by_id = {stage.id: stage for stage in stages}
    for stage_id, column in new.items():
        stage = by_id[stage_id]
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (deals_table, stage_id, column_name, pipeline_id, stage_name)"
                " VALUES (%s, %s, %s, %s, %s)"
            ).format(meta),
            (src.deals.name, stage_id, column, stage.pipeline_id, stage.name),
        )
    assigned = {**existing, **new}
    created = []
    for column in sorted(set(assigned.values())):
        if column not in src.deals.columns:
            conn.execute(q.add_stage_column(src, column))
            created.append(column)
    return sorted(assigned.items()), created


def _changes_index_name(src: q.Sources) -> str:
    digest = hashlib.sha1(
        f"{src.schema}.{src.changes.name}".encode(), usedforsecurity=False
    ).hexdigest()[:10]
    return f"pipeboard_stage_changes_deal_{digest}"


def expand(
    conn: psycopg.Connection[Any],
    schema: str,
    settings: StageHistorySettings | None = None,
    *,
    deal_ids: Iterable[int] | None = None,
    full: bool | None = None,
    table_name: Callable[[str], str] = lambda stream: stream,
    partitioned: bool = False,
) -> ExpansionResult:
    """Build or refresh stage history for the deals touched since the last expansion.

    Runs in one transaction on ``conn`` (committed here), serialised per schema by an
    advisory lock, so it is safe to call from several loaders and after every commit.

    Args:
        conn: a connection not inside a transaction.
        schema: the target schema holding the streams' tables.
        settings: the ``stage_history`` setting (defaults when None).
        deal_ids: deals to recompute besides those queued by :func:`mark_pending`.
        full: recompute every deal; None = only when nothing was ever queued.
        table_name: maps a stream name to its table name (the loader's naming).
        partitioned: keep ``deal_stage_history`` range-partitioned by ``entered_at`` (the
            ``partitioned_tables`` setting); an unpartitioned one is rebuilt partitioned.

    Returns:
        What was done, or why nothing was.

    Raises:
        StageHistoryConfigError: a table lacks a needed column (only when ``enabled`` is true;
            in automatic mode the expansion is skipped with a warning).
    """
    settings = settings or StageHistorySettings()
    if settings.enabled is False:
        return ExpansionResult(ran=False, reason="disabled by setting")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_NAMESPACE, schema))
        try:
            resolved = resolve_sources(conn, schema, settings, table_name)
        except StageHistoryConfigError:
            if settings.enabled:
                raise
            LOGGER.warning("stage history skipped", exc_info=True)
            return ExpansionResult(ran=False, reason="input tables unusable")
        if isinstance(resolved, str):
            LOGGER.info("stage history skipped: %s", resolved)
            return ExpansionResult(ran=False, reason=resolved)
        return _expand(conn, resolved, deal_ids, full, partitioned=partitioned)


def _ensure_views(conn: psycopg.Connection[Any], src: q.Sources) -> None:
    """Create or update the views only when missing or from another version of this code.

    Re-creating a view takes a lock that waits for (and then blocks) BI queries on it, so a
    regular run leaves current views alone; they read only the expansion's own tables.
    """
    for name, build in (
        (q.DURATIONS_VIEW, q.create_durations_view),
        (q.FUNNEL_VIEW, q.create_funnel_view),
    ):
        found = conn.execute(
            "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s AND c.relkind = 'v'",
            (src.schema, name),
        ).fetchone()
        if found is not None and found[0] == q.VIEWS_VERSION:
            continue
        conn.execute(build(src))
        conn.execute(
            sql.SQL("COMMENT ON VIEW {} IS {}").format(
                sql.Identifier(src.schema, name), sql.Literal(q.VIEWS_VERSION)
            )
        )


def _expand(
    conn: psycopg.Connection[Any],
    src: q.Sources,
    deal_ids: Iterable[int] | None,
    full: bool | None,
    *,
    partitioned: bool = False,
) -> ExpansionResult:
    pending_existed = _columns(conn, src.schema, q.PENDING_TABLE) is not None
    history_existed = _columns(conn, src.schema, q.HISTORY_TABLE) is not None
    if (
        partitioned
        and history_existed
        and partitioning.catalog_column(conn, src.schema, q.HISTORY_TABLE) is None
    ):
        # Derived from the stage changes: rebuilt in full, partitioned, in this transaction.
        LOGGER.info("stage history: rebuilding %s partitioned by entered_at", q.HISTORY_TABLE)
        # Its own views go too (re-created below); a view of someone else's stops the drop.
        for view in (q.DURATIONS_VIEW, q.FUNNEL_VIEW):
            conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(src.schema, view)))
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(src.schema, q.HISTORY_TABLE)))
        history_existed = False
    for statement in q.create_metadata_tables(src.schema, partitioned=partitioned):
        conn.execute(statement)
    conn.execute(q.create_changes_index(src, _changes_index_name(src)))
    columns, created = _sync_stage_columns(conn, src)
    if full is None:
        full = (deal_ids is None and not pending_existed) or not history_existed
    # A column created now (a new stage, or a deals table that was replaced) must be filled
    # for every deal, since the deals that entered that stage were loaded in earlier runs.
    full = full or bool(created)
    conn.execute(q.create_touched(src.schema))
    if full:
        conn.execute(q.touch_all(src))
    if deal_ids is not None:
        conn.execute(q.touch_ids(), ([int(i) for i in deal_ids],))
    if pending_existed:
        conn.execute(q.touch_pending(src.schema))
    touched = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(q.TOUCHED)))
    deals = int(touched.fetchone()[0])  # type: ignore[index]
    result = ExpansionResult(ran=True, full=full, deals=deals, columns_added=created)
    if deals:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(q.TOUCHED)))
        conn.execute(q.delete_history(src.schema))
        result.history_rows = conn.execute(q.insert_history(src)).rowcount
        if columns:
            result.deals_updated = conn.execute(q.update_stage_columns(src, columns)).rowcount
        if pending_existed:
            conn.execute(q.clear_pending(src.schema))
    for statement in q.refresh_stages(src):
        conn.execute(statement)
    _ensure_views(conn, src)
    LOGGER.info(
        "stage history: %d deals recomputed (%s), %d stays, %d deals rows updated, new columns %s",
        result.deals,
        "all" if full else "touched",
        result.history_rows,
        result.deals_updated,
        created,
    )
    return result
