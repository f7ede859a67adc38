"""SQL of partitioned tables (see :mod:`.partitioning`). Nothing here executes anything."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from psycopg import sql

from target_pipeboard_postgres import identifiers

DEFAULT_SUFFIX = "_default"
MOVED = "pb_partition_moved"


def _cols(columns: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(c) for c in columns)


def _type(kind: str) -> sql.SQL:
    # Safe: `kind` is a canonical type name from column_types (never user input).
    return sql.SQL(kind)


def partition_name(table: str, start: date) -> str:
    """The name of ``table``'s partition starting at ``start`` (fits 63 bytes)."""
    return identifiers.derived_name(table, f"_p{start:%Y%m}")


def default_name(table: str) -> str:
    """The name of ``table``'s DEFAULT partition (NULL times, and times with no partition)."""
    return identifiers.derived_name(table, DEFAULT_SUFFIX)


def create_parent(
    schema: str,
    table: str,
    columns: Sequence[tuple[str, str]],
    keys: Sequence[str],
    time_column: str,
) -> list[sql.Composed]:
    """A table range-partitioned by ``time_column``, its DEFAULT partition, and (with keys) a
    unique index on (keys..., time column): Postgres only allows unique indexes of a
    partitioned table that hold the partition column. The time column may be NULL (such rows
    live in the DEFAULT partition), so it is a unique index, not a primary key."""
    parts = [sql.SQL("{} {}").format(sql.Identifier(name), _type(kind)) for name, kind in columns]
    statements = [
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}) PARTITION BY RANGE ({})").format(
            sql.Identifier(schema, table), sql.SQL(", ").join(parts), sql.Identifier(time_column)
        ),
        create_default(schema, table),
        index_default(schema, table, time_column),
    ]
    if keys:
        statements.append(
            sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(identifiers.derived_name(table, "_key")),
                sql.Identifier(schema, table),
                _cols([*keys, time_column]),
            )
        )
    return statements


def create_default(schema: str, table: str) -> sql.Composed:
    """The DEFAULT partition of ``table``."""
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} DEFAULT").format(
        sql.Identifier(schema, default_name(table)), sql.Identifier(schema, table)
    )


def index_default(schema: str, table: str, time_column: str) -> sql.Composed:
    """An index of the DEFAULT partition's times: finding its rows of a new month is cheap."""
    default = default_name(table)
    return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
        sql.Identifier(identifiers.derived_name(default, "_time")),
        sql.Identifier(schema, default),
        sql.Identifier(time_column),
    )


def create_history_parent(
    schema: str, history: str, like: str, keys: Sequence[str], current_index: str
) -> list[sql.Composed]:
    """History mode's table, partitioned by ``_valid_from`` (part of its primary key already).

    The index of open versions cannot be unique here (a unique index of a partitioned table
    must hold the partition column); the history mode's own rules keep one open version.
    """
    return [
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {h} (LIKE {t} INCLUDING DEFAULTS, "
            "_valid_from timestamptz NOT NULL, _valid_to timestamptz, "
            "_is_current boolean NOT NULL DEFAULT TRUE, PRIMARY KEY ({pk})) "
            "PARTITION BY RANGE (_valid_from)"
        ).format(
            h=sql.Identifier(schema, history),
            t=sql.Identifier(schema, like),
            pk=_cols([*keys, "_valid_from"]),
        ),
        create_default(schema, history),
        index_default(schema, history, "_valid_from"),
        sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {h} ({k}) WHERE _valid_to IS NULL").format(
            i=sql.Identifier(current_index),
            h=sql.Identifier(schema, history),
            k=_cols(keys),
        ),
    ]


def partitioning() -> sql.SQL:
    """(relkind, partition column or NULL) of %(schema)s.%(table)s."""
    return sql.SQL(
        "SELECT c.relkind::text, (SELECT a.attname::text FROM pg_partitioned_table p "
        "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
        "WHERE p.partrelid = c.oid AND p.partnatts = 1) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %(schema)s AND c.relname = %(table)s"
    )


def partitions() -> sql.SQL:
    """(name, bound expression, default?) of each partition of %(schema)s.%(table)s."""
    return sql.SQL(
        "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid), "
        "pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
        "WHERE n.nspname = %(schema)s AND p.relname = %(table)s ORDER BY 1"
    )


def months_in(relation: sql.Composable, time_column: str) -> sql.Composed:
    """The distinct months (as dates) of the non-NULL times in ``relation``."""
    return sql.SQL(
        "SELECT DISTINCT date_trunc('month', {c})::date FROM {r} WHERE {c} IS NOT NULL"
    ).format(c=sql.Identifier(time_column), r=relation)


def default_months(schema: str, table: str, time_column: str) -> sql.Composed:
    """The months of the DEFAULT partition's times (rows another writer put there)."""
    return months_in(sql.Identifier(schema, default_name(table)), time_column)


def rows_in_range(schema: str, relation: str, time_column: str) -> sql.Composed:
    """A row if %(lo)s <= time < %(hi)s for some row of ``relation``."""
    return sql.SQL("SELECT 1 FROM {} WHERE {c} >= %(lo)s AND {c} < %(hi)s LIMIT 1").format(
        sql.Identifier(schema, relation), c=sql.Identifier(time_column)
    )


def move_out_of_default(schema: str, table: str, time_column: str) -> sql.Composed:
    """Take the DEFAULT partition's rows with %(lo)s <= time < %(hi)s into a scratch table."""
    return sql.SQL(
        "CREATE TEMPORARY TABLE {m} ON COMMIT DROP AS WITH gone AS (DELETE FROM {d} "
        "WHERE {c} >= %(lo)s AND {c} < %(hi)s RETURNING *) SELECT * FROM gone"
    ).format(
        m=sql.Identifier(MOVED),
        d=sql.Identifier(schema, default_name(table)),
        c=sql.Identifier(time_column),
    )


def create_partition(schema: str, table: str, start: date, end: date) -> sql.Composed:
    """The partition of ``table`` for ``start`` <= time < ``end`` (dates at UTC midnight)."""
    return sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
        sql.Identifier(schema, partition_name(table, start)),
        sql.Identifier(schema, table),
        sql.Literal(start.isoformat()),
        sql.Literal(end.isoformat()),
    )


def move_back(schema: str, table: str, columns: Sequence[str]) -> list[sql.Composed]:
    """Insert the moved rows through the parent (into their new partition); drop the scratch."""
    return [
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
            sql.Identifier(schema, table), _cols(columns), _cols(columns), sql.Identifier(MOVED)
        ),
        sql.SQL("DROP TABLE {}").format(sql.Identifier(MOVED)),
    ]


def keep_open_versions(schema: str, partition: str) -> sql.Composed:
    """Before a history partition is dropped: its open versions into the scratch table."""
    return sql.SQL(
        "CREATE TEMPORARY TABLE {m} ON COMMIT DROP AS SELECT * FROM {p} WHERE _valid_to IS NULL"
    ).format(m=sql.Identifier(MOVED), p=sql.Identifier(schema, partition))


def drop_partition(schema: str, partition: str) -> sql.Composed:
    """DROP TABLE of one partition (the parent forgets it)."""
    return sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, partition))


def insert_from_stage(schema: str, table: str, stage: str, columns: Sequence[str]) -> sql.Composed:
    """Append a staged batch (no keys, or not upserting) to the table."""
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
        sql.Identifier(schema, table), _cols(columns), _cols(columns), sql.Identifier(stage)
    )
