"""SQL statement builders. Nothing here executes anything.

Identifiers always go through ``sql.Identifier``; type names come from ``column_types``
(canonical names or checked ``x-sql-datatype`` values); values are parameters or travel by COPY.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from target_pipeboard_postgres import column_types

SEQ_COLUMN = "_pb_seq"
DELETED_AT = "_sdc_deleted_at"
TABLE_VERSION = "_sdc_table_version"
METADATA_TABLE = "_pipeboard_columns"

Composed = sql.Composed


def _table(schema: str, table: str) -> sql.Identifier:
    return sql.Identifier(schema, table)


def _cols(columns: Sequence[str], prefix: str | None = None) -> sql.Composed:
    if prefix is None:
        return sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    return sql.SQL(", ").join(sql.Identifier(prefix, c) for c in columns)


def _type(type_name: str) -> sql.SQL:
    # Safe: canonical names from column_types, or x-sql-datatype values checked by
    # column_types.sql_datatype.
    return sql.SQL(type_name)


def _keys_match(keys: Sequence[str], left: str, right: str) -> sql.Composed:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(left, k), sql.Identifier(right, k)) for k in keys
    )


def create_schema(schema: str) -> sql.Composed:
    """CREATE SCHEMA IF NOT EXISTS."""
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))


def create_table(
    schema: str, table: str, columns: Sequence[tuple[str, str]], keys: Sequence[str]
) -> sql.Composed:
    """CREATE TABLE with the given columns and, if any, a primary key."""
    parts = [sql.SQL("{} {}").format(sql.Identifier(name), _type(kind)) for name, kind in columns]
    if keys:
        parts.append(sql.SQL("PRIMARY KEY ({})").format(_cols(keys)))
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
        _table(schema, table), sql.SQL(", ").join(parts)
    )


def create_table_like(schema: str, table: str, like: str) -> sql.Composed:
    """CREATE TABLE shaped like another one of the same schema, with its keys."""
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS INCLUDING INDEXES)"
    ).format(_table(schema, table), _table(schema, like))


def add_column(schema: str, table: str, column: str, kind: str) -> sql.Composed:
    """ALTER TABLE ... ADD COLUMN IF NOT EXISTS."""
    return sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
        _table(schema, table), sql.Identifier(column), _type(kind)
    )


def _conversion(column: str, old: str, new: str) -> sql.Composed:
    ident = sql.Identifier(column)
    if column_types.is_json(new) and not column_types.is_json(old):
        return sql.SQL("to_jsonb({})").format(ident)
    if new == column_types.TIMESTAMPTZ and old in {column_types.DATE, column_types.TIMESTAMP}:
        # stored values are read as UTC, the zone every load session uses
        return sql.SQL("({}::timestamp AT TIME ZONE 'UTC')").format(ident)
    return sql.SQL("{}::{}").format(ident, _type(new))


def widen_column(schema: str, table: str, column: str, old: str, new: str) -> sql.Composed:
    """ALTER COLUMN ... TYPE with a conversion that keeps every stored value."""
    return sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}").format(
        _table(schema, table), sql.Identifier(column), _type(new), _conversion(column, old, new)
    )


def create_stage(stage: str, columns: Sequence[tuple[str, str]]) -> sql.Composed:
    """A temporary staging table for one batch, numbering rows in arrival order."""
    parts = [sql.SQL("{} {}").format(sql.Identifier(name), _type(kind)) for name, kind in columns]
    parts.append(
        sql.SQL("{} bigint GENERATED ALWAYS AS IDENTITY").format(sql.Identifier(SEQ_COLUMN))
    )
    return sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
        sql.Identifier(stage), sql.SQL(", ").join(parts)
    )


def copy_into(table: sql.Identifier, columns: Sequence[str]) -> sql.Composed:
    """COPY ... FROM STDIN for the given columns."""
    return sql.SQL("COPY {} ({}) FROM STDIN").format(table, _cols(columns))


def copy_into_stage(stage: str, columns: Sequence[str]) -> sql.Composed:
    """COPY into a staging table."""
    return copy_into(sql.Identifier(stage), columns)


def copy_into_table(schema: str, table: str, columns: Sequence[str]) -> sql.Composed:
    """COPY straight into a target table (append-only loads)."""
    return copy_into(_table(schema, table), columns)


def dedupe_stage(stage: str, keys: Sequence[str]) -> sql.Composed:
    """Keep only the last row per key in the staging table."""
    return sql.SQL(
        "DELETE FROM {s} AS a USING {s} AS b WHERE {match} AND a.{seq} < b.{seq}"
    ).format(
        s=sql.Identifier(stage),
        match=_keys_match(keys, "a", "b"),
        seq=sql.Identifier(SEQ_COLUMN),
    )


def _not_deleted(alias: str, hard_delete: bool) -> sql.Composable:
    if not hard_delete:
        return sql.SQL("TRUE")
    return sql.SQL("{} IS NULL").format(sql.Identifier(alias, DELETED_AT))


def upsert_on_conflict(
    schema: str,
    table: str,
    stage: str,
    columns: Sequence[str],
    keys: Sequence[str],
    *,
    hard_delete: bool = False,
) -> sql.Composed:
    """INSERT ... ON CONFLICT DO UPDATE from a de-duplicated staging table."""
    updates = [c for c in columns if c not in keys]
    action: sql.Composable
    if updates:
        action = sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                for c in updates
            )
        )
    else:
        action = sql.SQL("DO NOTHING")
    return sql.SQL(
        "INSERT INTO {t} ({cols}) SELECT {scols} FROM {s} AS s WHERE {keep} "
        "ON CONFLICT ({keys}) {action}"
    ).format(
        t=_table(schema, table),
        cols=_cols(columns),
        scols=_cols(columns, "s"),
        s=sql.Identifier(stage),
        keep=_not_deleted("s", hard_delete),
        keys=_cols(keys),
        action=action,
    )


def update_from_stage(
    schema: str,
    table: str,
    stage: str,
    columns: Sequence[str],
    keys: Sequence[str],
    *,
    hard_delete: bool = False,
) -> sql.Composed | None:
    """UPDATE existing rows from the staging table (tables without a unique key index)."""
    updates = [c for c in columns if c not in keys]
    if not updates:
        return None
    return sql.SQL("UPDATE {t} AS t SET {sets} FROM {s} AS s WHERE {match} AND {keep}").format(
        t=_table(schema, table),
        sets=sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Identifier("s", c)) for c in updates
        ),
        s=sql.Identifier(stage),
        match=_keys_match(keys, "t", "s"),
        keep=_not_deleted("s", hard_delete),
    )


def insert_missing_from_stage(
    schema: str,
    table: str,
    stage: str,
    columns: Sequence[str],
    keys: Sequence[str],
    *,
    hard_delete: bool = False,
) -> sql.Composed:
    """INSERT the staging rows whose key is not in the table yet."""
    return sql.SQL(
        "INSERT INTO {t} ({cols}) SELECT {scols} FROM {s} AS s WHERE {keep} "
        "AND NOT EXISTS (SELECT 1 FROM {t} AS t WHERE {match})"
    ).format(
        t=_table(schema, table),
        cols=_cols(columns),
        scols=_cols(columns, "s"),
        s=sql.Identifier(stage),
        keep=_not_deleted("s", hard_delete),
        match=_keys_match(keys, "t", "s"),
    )


def delete_marked_from_stage(
    schema: str, table: str, stage: str, keys: Sequence[str]
) -> sql.Composed:
    """DELETE the rows whose last staged record carries ``_sdc_deleted_at`` (hard delete)."""
    return sql.SQL(
        "DELETE FROM {t} AS t USING {s} AS s WHERE {match} AND s.{d} IS NOT NULL"
    ).format(
        t=_table(schema, table),
        s=sql.Identifier(stage),
        match=_keys_match(keys, "t", "s"),
        d=sql.Identifier(DELETED_AT),
    )


def delete_marked(schema: str, table: str) -> sql.Composed:
    """DELETE rows carrying ``_sdc_deleted_at`` (hard delete for tables without keys)."""
    return sql.SQL("DELETE FROM {} WHERE {} IS NOT NULL").format(
        _table(schema, table), sql.Identifier(DELETED_AT)
    )


def soft_delete_old_versions(schema: str, table: str) -> sql.Composed:
    """Mark rows of versions older than %(version)s deleted (ACTIVATE_VERSION)."""
    return sql.SQL(
        "UPDATE {t} SET {d} = %(deleted_at)s WHERE {d} IS NULL "
        "AND ({v} IS NULL OR {v} < %(version)s)"
    ).format(t=_table(schema, table), d=sql.Identifier(DELETED_AT), v=sql.Identifier(TABLE_VERSION))


def hard_delete_old_versions(schema: str, table: str) -> sql.Composed:
    """Delete rows of versions older than %(version)s (ACTIVATE_VERSION, hard_delete)."""
    return sql.SQL("DELETE FROM {t} WHERE {v} IS NULL OR {v} < %(version)s").format(
        t=_table(schema, table), v=sql.Identifier(TABLE_VERSION)
    )


def replace_contents(
    schema: str, table: str, source: str, columns: Sequence[str]
) -> list[sql.Composed]:
    """Statements replacing ``table``'s rows with ``source``'s and dropping ``source``."""
    return [
        sql.SQL("DELETE FROM {}").format(_table(schema, table)),
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
            _table(schema, table), _cols(columns), _cols(columns), _table(schema, source)
        ),
        drop_table(schema, source),
    ]


def drop_table(schema: str, table: str) -> sql.Composed:
    """DROP TABLE IF EXISTS."""
    return sql.SQL("DROP TABLE IF EXISTS {}").format(_table(schema, table))


def table_columns() -> sql.SQL:
    """Columns and their formatted types of %(schema)s.%(table)s, in order."""
    return sql.SQL(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum"
    )


def unique_key_sets() -> sql.SQL:
    """Column sets of the non-partial unique indexes of %(schema)s.%(table)s."""
    return sql.SQL(
        "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
        "WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND i.indisunique "
        "AND i.indpred IS NULL GROUP BY i.indexrelid"
    )


def primary_key_columns() -> sql.SQL:
    """The columns of %(schema)s.%(table)s's primary key, in key order (none: no rows)."""
    return sql.SQL(
        "SELECT a.attname::text FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
        "WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)"
    )


def create_metadata_table(schema: str) -> sql.Composed:
    """The table remembering which property (and source key) owns which column."""
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (table_name text NOT NULL, property text NOT NULL, "
        "column_name text NOT NULL, source_key text, PRIMARY KEY (table_name, property))"
    ).format(_table(schema, METADATA_TABLE))


def read_metadata(schema: str) -> sql.Composed:
    """The column mapping of %(table)s."""
    return sql.SQL(
        "SELECT property, column_name, source_key FROM {} WHERE table_name = %(table)s"
    ).format(_table(schema, METADATA_TABLE))


def write_metadata(schema: str) -> sql.Composed:
    """Record one property's column (parameters: table, property, column, source_key)."""
    return sql.SQL(
        "INSERT INTO {} (table_name, property, column_name, source_key) "
        "VALUES (%(table)s, %(property)s, %(column)s, %(source_key)s) "
        "ON CONFLICT (table_name, property) DO UPDATE SET column_name = EXCLUDED.column_name, "
        "source_key = EXCLUDED.source_key"
    ).format(_table(schema, METADATA_TABLE))


def any_key_exists(schema: str, table: str, key: str, key_type: str) -> sql.Composed:
    """Whether any of the keys %(keys)s (an array) is in the table already."""
    return sql.SQL("SELECT EXISTS (SELECT 1 FROM {t} WHERE {k} = ANY(%(keys)s::{kt}[]))").format(
        t=_table(schema, table), k=sql.Identifier(key), kt=_type(key_type)
    )


def rows_with_keys(
    schema: str, table: str, key: str, key_type: str, keys: Sequence[object]
) -> sql.Composed:
    """A subquery (usable after FROM) of the table's rows with the given keys."""
    return sql.SQL("(SELECT * FROM {t} WHERE {k} = ANY({keys}::{kt}[])) AS pb_batch").format(
        t=_table(schema, table),
        k=sql.Identifier(key),
        keys=sql.Literal(list(keys)),
        kt=_type(key_type),
    )


# Advisory lock class for the target's DDL ("PBTG"); the second key is the schema name's hash.
DDL_LOCK_CLASS = 0x5042_5447


def lock_schema_ddl() -> sql.Composed:
    """Take the transaction-scoped lock serialising DDL on schema %(schema)s."""
    return sql.SQL("SELECT pg_advisory_xact_lock({}, hashtext(%(schema)s))").format(
        sql.Literal(DDL_LOCK_CLASS)
    )


def schema_exists() -> sql.SQL:
    """A row if schema %(schema)s exists."""
    return sql.SQL("SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s")


def table_exists() -> sql.SQL:
    """A row if table %(schema)s.%(table)s exists."""
    return sql.SQL(
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %(schema)s AND c.relname = %(table)s"
    )
