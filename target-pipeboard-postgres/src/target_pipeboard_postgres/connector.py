"""The connection to Postgres and everything executed on it: DDL, schema evolution, batches."""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql as pgsql
from singer_sdk.sql import SQLConnector

from target_pipeboard_postgres import (
    column_types,
    embedded,
    history_mode_sql,
    identifiers,
    partitioning,
    sql_builders,
)
from target_pipeboard_postgres import partitioning_sql as part_sql
from target_pipeboard_postgres.commit_ledger import BackgroundLoader
from target_pipeboard_postgres.errors import DatabaseUnavailableError
from target_pipeboard_postgres.post_load import LoadedBatch, PostLoadExpansion
from target_pipeboard_postgres.settings import ConnectionSpec, connection_spec, redact

logger = logging.getLogger(__name__)

# Called with the connection and the staging table's name, before the table is written.
StagedHook = Callable[["psycopg.Connection[Any]", str], object]
SOURCE_KEY_ANNOTATIONS = ("x-pipedrive-key", "x-source-key")
SOURCE_SUBFIELD_ANNOTATIONS = ("x-pipedrive-subfield", "x-source-subfield")
_COPY_LINE = re.compile(r"line (\d+)")
_DIRECT_KEY_TYPES = {
    column_types.SMALLINT,
    column_types.INTEGER,
    column_types.BIGINT,
    column_types.TEXT,
}


def source_key(prop_schema: Mapping[str, Any]) -> str | None:
    """The source system's stable key of a property, if the tap annotated one.

    A field split into several properties (a monetary value and its currency, a range's start
    and end) marks each part with a subfield annotation; the part is then part of the key.
    """
    for name in SOURCE_KEY_ANNOTATIONS:
        value = prop_schema.get(name)
        if isinstance(value, str) and value:
            for sub_name in SOURCE_SUBFIELD_ANNOTATIONS:
                part = prop_schema.get(sub_name)
                if isinstance(part, str) and part:
                    return f"{value}#{part}"
            return value
    return None


@dataclass
class TableLayout:
    """How one stream's properties land in one table."""

    schema: str
    table: str
    columns: dict[str, str]  # property -> column
    column_types: dict[str, str]  # column -> canonical type
    key_columns: list[str]
    has_unique_key: bool
    added: int = 0
    widened: int = 0
    # Partitioned tables of this layout (the table, its history table) -> time column.
    partitioned: dict[str, str] = field(default_factory=dict)


# Postgres refusing a float's text for a bigint column: an integer literal past 64 bits, which
# the fast JSON decoder turns into a float.
_FLOAT_FOR_BIGINT = re.compile(r'type (bigint|integer|smallint): "-?\d(\.\d+)?e[+-]?\d+"')


class BatchFailure(Exception):
    """A batch could not be loaded; ``row`` is the 0-based batch row at fault, if known."""

    def __init__(self, problem: str, row: int | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.row = row


class KeyMismatch(Exception):
    """An existing table's key is not the stream's key (the target never changes a key).

    ``table_key`` is the table's key columns ([] if it has none); for a history table, without
    ``_valid_from``; for a partitioned table, without its time column.
    """

    def __init__(self, table: str, table_key: Sequence[str], stream_key: Sequence[str]) -> None:
        super().__init__(f"{table}: key ({', '.join(table_key)}) is not ({', '.join(stream_key)})")
        self.table = table
        self.table_key = list(table_key)
        self.stream_key = list(stream_key)


def _same_key(table_key: Sequence[str], stream_key: Sequence[str]) -> bool:
    return sorted(table_key) == sorted(stream_key)


class PostgresConnector(SQLConnector):
    """Runs every statement of the target on one psycopg 3 connection."""

    allow_column_alter = True
    allow_merge_upsert = True
    allow_temp_tables = True

    def __init__(
        self, config: dict[str, Any] | None = None, loader: BackgroundLoader | None = None
    ) -> None:
        super().__init__(config=config)
        self._spec: ConnectionSpec = connection_spec(self.config)
        self.partitions = partitioning.PartitionSettings.from_config(self.config)
        self._conn: psycopg.Connection[Any] | None = None
        # One batch may load in the background (on the loader's thread) while the next one is
        # read; everything else on the connection waits for it first (see `pg`).
        self._loader = loader

    # Connection

    def conninfo(self) -> str:
        """The libpq conninfo, starting the embedded server if that was chosen."""
        if self._spec.embedded_dir is not None:
            return embedded.server_uri(self._spec.embedded_dir)
        return self._spec.conninfo

    def get_sqlalchemy_url(self, config: dict[str, Any]) -> str:
        """A SQLAlchemy URL for the SDK's own helpers (same psycopg 3 driver)."""
        _ = config
        return "postgresql+psycopg:///?" + "&".join(
            f"{k}={v}" for k, v in psycopg.conninfo.conninfo_to_dict(self.conninfo()).items()
        )

    @property
    def pg(self) -> psycopg.Connection[Any]:
        """The open psycopg connection (opened on first use), once no batch is loading."""
        if self._loader is not None:
            self._loader.wait_unless_loading()
        if self._conn is None or self._conn.closed:
            self._conn = self._connect_pg()
        return self._conn

    def _connect_pg(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self.conninfo(), autocommit=True, application_name="target-pipeboard-postgres"
            )
        except psycopg.Error as exc:
            raise DatabaseUnavailableError(
                self._spec.display, redact(str(exc).strip(), (self._spec.password,))
            ) from None
        # Values without an offset are read as UTC, whatever the server's default zone.
        conn.execute("SET TIME ZONE 'UTC'")
        # Staging tables of a whole batch stay in memory instead of spilling to disk (the
        # default is 8MB; only used as temporary tables fill).
        conn.execute("SET temp_buffers = '256MB'")
        return conn

    def close(self) -> None:
        """Close the connection (after the background batch, whose error is only logged)."""
        if self._loader is not None:
            self._loader.close()
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def describe_error(self, exc: BaseException) -> str:
        """A database error as a message without secrets."""
        return redact(str(exc).strip(), (self._spec.password,))

    # Catalog

    def existing_columns(self, schema: str, table: str) -> dict[str, str]:
        """Column -> canonical type of a table ({} if it does not exist)."""
        rows = self.pg.execute(
            sql_builders.table_columns(), {"schema": schema, "table": table}
        ).fetchall()
        return {name: column_types.normalize(kind) for name, kind in rows}

    def unique_key_sets(self, schema: str, table: str) -> list[set[str]]:
        """Column sets of the table's unique indexes."""
        rows = self.pg.execute(sql_builders.unique_key_sets(), {"schema": schema, "table": table})
        return [set(row[0]) for row in rows.fetchall()]

    def table_key(self, schema: str, table: str, time_column: str | None = None) -> list[str]:
        """The key columns of an existing table, in key order ([] if it has no key).

        Its primary key; else, for a table partitioned by ``time_column``, the unique index the
        target gives it (key..., time column) without the time column.
        """
        rows = self.pg.execute(
            sql_builders.primary_key_columns(), {"schema": schema, "table": table}
        ).fetchall()
        if rows:
            return [row[0] for row in rows]
        if time_column is not None:
            for columns in self.unique_key_sets(schema, table):
                if time_column in columns and len(columns) > 1:
                    return sorted(columns - {time_column})
        return []

    def _exists(self, query: pgsql.SQL, **params: str) -> bool:
        return self.pg.execute(query, params).fetchone() is not None

    # Column mapping

    def _assign_columns(
        self, schema: str, table: str, properties: Mapping[str, Mapping[str, Any]]
    ) -> tuple[dict[str, str], list[tuple[str, str, str | None]]]:
        stored = self.pg.execute(sql_builders.read_metadata(schema), {"table": table}).fetchall()
        by_property = {prop: (column, key) for prop, column, key in stored}
        by_key = {key: column for _, column, key in stored if key}
        owned = {column for column, _ in by_property.values()}
        columns: dict[str, str] = {}
        claimed: set[str] = set()
        updates: list[tuple[str, str, str | None]] = []
        keys = {prop: source_key(prop_schema) for prop, prop_schema in properties.items()}
        # First the properties seen before under the same name and key keep their columns;
        # then a known source key leads to its column (a renamed field); else a new column.
        for prop, key in keys.items():
            if prop in by_property and by_property[prop][1] == key:
                columns[prop] = by_property[prop][0]
                claimed.add(columns[prop])
        for prop, key in keys.items():
            if prop in columns:
                continue
            if key and key in by_key and by_key[key] not in claimed:
                column = by_key[key]
            elif (
                prop in by_property
                and by_property[prop][1] is None
                and by_property[prop][0] not in claimed
            ):
                column = by_property[prop][0]
            else:
                # A column no other property owns; one of the same name left by another
                # loader (no mapping recorded) is adopted.
                column = identifiers.new_column(prop, owned | claimed)
            if key and key not in by_key:
                by_key[key] = column
            # Only the property holding its key's column records the key, so the mapping
            # read back next time is unambiguous.
            stored_key = key if key and by_key[key] == column else None
            claimed.add(column)
            columns[prop] = column
            updates.append((prop, column, stored_key))
            by_property[prop] = (column, stored_key)
            owned.add(column)
        columns = {prop: columns[prop] for prop in properties}
        return columns, updates

    # Table preparation

    def prepare_table_layout(
        self,
        *,
        schema: str,
        table: str,
        properties: Mapping[str, Mapping[str, Any]],
        key_properties: Sequence[str],
        extra_tables: Iterable[str] = (),
        primary_key: bool = True,
        reset_extra_tables: bool = False,
        history_table: str | None = None,
        keyed: bool = False,
    ) -> TableLayout:
        """Create or evolve the table (and ``extra_tables`` shaped like it) for a schema.

        New properties add columns; a changed type widens the column in place. Nothing is ever
        dropped, renamed or narrowed. A new table gets the key as its primary key unless
        ``primary_key`` is false (append-only loads keep every record). With
        ``reset_extra_tables`` the extra tables are created afresh (empty, shaped like the
        table as it is now) even if they exist. ``history_table`` (history mode) is created
        like the table plus the version columns, keyed by (key, ``_valid_from``), and its
        columns follow the table's as the extra tables' do.

        With ``keyed`` (rows are upserted by the stream's key), an existing table with a key
        (its history table too) must have exactly the stream's key, else :class:`KeyMismatch`
        is raised and nothing is changed. A table without a key is upserted by the stream's key
        all the same (UPDATE, then INSERT of the keys it lacks).
        """
        conn = self.pg
        with conn.transaction():
            # Loaders preparing tables of one schema at once take turns (CREATE ... IF NOT
            # EXISTS is not safe against a concurrent create).
            conn.execute(sql_builders.lock_schema_ddl(), {"schema": schema})
            # Only what is missing is created: a role may own its schema and tables without
            # the right to create schemas in the database.
            if not self._exists(sql_builders.schema_exists(), schema=schema):
                conn.execute(sql_builders.create_schema(schema))
            if not self._exists(
                sql_builders.table_exists(), schema=schema, table=sql_builders.METADATA_TABLE
            ):
                conn.execute(sql_builders.create_metadata_table(schema))
            columns, updates = self._assign_columns(schema, table, properties)
            desired = {
                columns[p]: column_types.sql_type(s) for p, s in properties.items() if p in columns
            }
            key_columns = [columns[k] for k in key_properties]
            existing = self.existing_columns(schema, table)
            added = widened = 0
            partitioned: dict[str, str] = {}
            wanted = self.partitions.column_for(table)
            if wanted is not None and wanted not in desired and wanted in columns:
                wanted = columns[wanted]  # named by its property
            if not existing:
                if wanted is not None:
                    partitioning.check_column(table, wanted, desired.get(wanted))
                    for statement in part_sql.create_parent(
                        schema,
                        table,
                        list(desired.items()),
                        key_columns if primary_key else [],
                        wanted,
                    ):
                        conn.execute(statement)
                    partitioned[table] = wanted
                else:
                    conn.execute(
                        sql_builders.create_table(
                            schema, table, list(desired.items()), key_columns if primary_key else []
                        )
                    )
                final = dict(desired)
            else:
                current = self._partition_column(schema, table, wanted)
                if current is not None:
                    partitioned[table] = current
                if keyed:
                    table_key = self.table_key(schema, table, current)
                    if table_key and not _same_key(table_key, key_columns):
                        raise KeyMismatch(table, table_key, key_columns)
                final = dict(existing)
                for column, kind in desired.items():
                    if column not in existing:
                        conn.execute(sql_builders.add_column(schema, table, column, kind))
                        final[column] = kind
                        added += 1
                        continue
                    wider = column_types.widen(existing[column], kind)
                    if wider != existing[column]:
                        conn.execute(
                            sql_builders.widen_column(
                                schema, table, column, existing[column], wider
                            )
                        )
                        final[column] = wider
                        widened += 1
            for extra in extra_tables:
                if reset_extra_tables:
                    conn.execute(sql_builders.drop_table(schema, extra))
                conn.execute(sql_builders.create_table_like(schema, extra, table))
            followers = list(extra_tables)
            if history_table is not None:
                if keyed and self.existing_columns(schema, history_table):
                    history_key = [
                        c
                        for c in self.table_key(schema, history_table)
                        if c != history_mode_sql.VALID_FROM
                    ]
                    if history_key and not _same_key(history_key, key_columns):
                        raise KeyMismatch(history_table, history_key, key_columns)
                self._prepare_history_table(schema, history_table, table, key_columns, partitioned)
                followers.append(history_table)
            for extra in followers:
                have = self.existing_columns(schema, extra)
                for column, kind in final.items():
                    if column not in have:
                        conn.execute(sql_builders.add_column(schema, extra, column, kind))
                    elif have[column] != kind:
                        conn.execute(
                            sql_builders.widen_column(schema, extra, column, have[column], kind)
                        )
            for prop, column, key in updates:
                conn.execute(
                    sql_builders.write_metadata(schema),
                    {"table": table, "property": prop, "column": column, "source_key": key},
                )
        for name in partitioned:
            dropped = partitioning.drop_expired(conn, schema, name, self.partitions)
            if dropped:
                logger.info(
                    "Dropped %d partition(s) of %s.%s older than %d months (%s): %s",
                    len(dropped),
                    schema,
                    name,
                    self.partitions.retention_months,
                    partitioning.RETENTION_SETTING,
                    ", ".join(dropped),
                )
        unique = set(key_columns) in self.unique_key_sets(schema, table) if key_columns else False
        return TableLayout(
            schema=schema,
            table=table,
            columns=columns,
            column_types={c: final[c] for c in desired},
            key_columns=key_columns,
            has_unique_key=unique,
            added=added,
            widened=widened,
            partitioned=partitioned,
        )

    def _partition_column(self, schema: str, table: str, wanted: str | None) -> str | None:
        """The time column an existing table is partitioned by (the catalog decides), checked
        against the one the setting asks for."""
        current = partitioning.catalog_column(self.pg, schema, table)
        if wanted is not None and current is None:
            raise partitioning.not_partitioned_error(schema, table, wanted)
        if wanted is not None and current != wanted:
            raise partitioning.PartitioningError(
                f"{schema}.{table} is partitioned by {current}, but `"
                f"{partitioning.TABLES_SETTING}` names {wanted}; a table keeps its partition "
                "column (give the one it has)"
            )
        return current

    def _prepare_history_table(
        self,
        schema: str,
        history: str,
        table: str,
        key_columns: Sequence[str],
        partitioned: dict[str, str],
    ) -> None:
        """History mode's table, partitioned by ``_valid_from`` when the setting names it."""
        wanted = self.partitions.column_for(history)
        if wanted is not None and wanted != history_mode_sql.VALID_FROM:
            raise partitioning.PartitioningError(
                f"`{partitioning.TABLES_SETTING}` partitions the history table {history} by "
                f"{wanted!r}; history tables are partitioned by {history_mode_sql.VALID_FROM}"
            )
        if self.existing_columns(schema, history):
            current = self._partition_column(schema, history, wanted)
        elif wanted is not None:
            for statement in part_sql.create_history_parent(
                schema, history, table, key_columns, history_mode_sql.current_index(history)
            ):
                self.pg.execute(statement)
            current = wanted
        else:
            current = None
        if current is None:
            for statement in history_mode_sql.create_history_table(
                schema, history, table, key_columns
            ):
                self.pg.execute(statement)
        else:
            partitioned[history] = current

    def sweep_table(self, schema: str, table: str) -> None:
        """Give DEFAULT-partition rows of ``table`` their partitions, if it is partitioned."""
        conn = self.pg
        column = partitioning.catalog_column(conn, schema, table)
        if column is not None:
            with conn.transaction():
                partitioning.sweep(conn, schema, table, column, self.partitions)

    def sweep_partitions(self, layout: TableLayout) -> None:
        """Give rows other writers put into DEFAULT partitions their partitions (after the
        run's expansions, which write history versions)."""
        conn = self.pg
        for table, column in layout.partitioned.items():
            with conn.transaction():
                partitioning.sweep(conn, layout.schema, table, column, self.partitions)

    # Loading

    def _copy_rows(
        self, cur: psycopg.Cursor[Any], statement: pgsql.Composed, rows: Sequence[Sequence[Any]]
    ) -> None:
        index = 0
        try:
            with cur.copy(statement) as copy:
                write = copy.write_row
                for position, values in enumerate(rows):
                    index = position
                    write(values)
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            context = getattr(exc.diag, "context", None) or ""
            match = _COPY_LINE.search(context)
            failed = int(match.group(1)) - 1 if match else index
            problem = self.describe_error(exc)
            overflowed = isinstance(exc, psycopg.errors.InvalidTextRepresentation)
            if overflowed and _FLOAT_FOR_BIGINT.search(problem):
                problem += (
                    " (an integer out of range for bigint: JSON integers past 64 bits are read as "
                    "floats; set `exact_numbers: true` to read them exactly, or give the property "
                    "bounds or `x-sql-datatype: numeric`)"
                )
            raise BatchFailure(problem, failed) from exc

    def load_batch(
        self,
        stream: str,
        layout: TableLayout,
        load_table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        upsert: bool,
        hard_delete: bool,
        expansions: Sequence[PostLoadExpansion] = (),
        dedupe: bool = True,
        on_staged: StagedHook | None = None,
    ) -> None:
        """Load one batch in one transaction: COPY to a stage, de-duplicate, upsert.

        Each of ``expansions`` runs inside the batch's transaction once the rows are in place
        (see :mod:`.post_load`). ``dedupe`` false skips the de-duplication (the caller saw no
        repeated key); should the database still find two rows for one key (values equal only
        after conversion), the batch is loaded again with it. ``on_staged(connection, stage)``
        runs in the transaction once the batch is staged and de-duplicated, before the table is
        written (only when a staging table is used: data-quality classification).
        """
        load = functools.partial(
            self._load_batch,
            stream,
            layout,
            load_table,
            columns,
            rows,
            upsert=upsert,
            hard_delete=hard_delete,
            expansions=expansions,
            on_staged=on_staged,
        )
        try:
            load(dedupe=dedupe, direct=not dedupe)
        except BatchFailure as failure:
            # Two rows for one key after all (equal only once converted), or a key inserted
            # concurrently since the check: load the batch again the careful way.
            retry = (psycopg.errors.CardinalityViolation, psycopg.errors.UniqueViolation)
            if dedupe or not isinstance(failure.__cause__, retry):
                raise
            load(dedupe=True, direct=False)

    def _load_batch(
        self,
        stream: str,
        layout: TableLayout,
        load_table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        upsert: bool,
        hard_delete: bool,
        expansions: Sequence[PostLoadExpansion],
        dedupe: bool,
        direct: bool,
        on_staged: StagedHook | None = None,
    ) -> None:
        keys = layout.key_columns
        deletes = hard_delete and sql_builders.DELETED_AT in columns
        conn = self.pg
        try:
            with conn.transaction(), conn.cursor() as cur:
                source = self._write_batch(
                    cur,
                    layout,
                    load_table,
                    columns,
                    rows,
                    upsert,
                    deletes,
                    dedupe,
                    direct,
                    on_staged,
                )
                if expansions:
                    batch = LoadedBatch(
                        stream, layout, load_table, columns, upsert and bool(keys), source
                    )
                    for expansion in expansions:
                        expansion.after_load(conn, batch)
                for table, column in layout.partitioned.items():
                    if table != load_table:  # written by an expansion (history versions)
                        partitioning.sweep(conn, layout.schema, table, column, self.partitions)
        except BatchFailure:
            raise
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            raise BatchFailure(self.describe_error(exc), None) from exc

    def _write_batch(
        self,
        cur: psycopg.Cursor[Any],
        layout: TableLayout,
        load_table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        upsert: bool,
        deletes: bool,
        dedupe: bool,
        direct: bool,
        on_staged: StagedHook | None = None,
    ) -> Callable[[], pgsql.Composable]:
        """Write the batch's rows; a function giving a relation that holds them."""
        schema = layout.schema
        keys = layout.key_columns
        # A partitioned table's batch is always staged: its months' partitions come first.
        time_column = layout.partitioned.get(load_table)
        appended = not upsert or not keys
        if appended and time_column is None:
            self._copy_rows(cur, sql_builders.copy_into_table(schema, load_table, columns), rows)
            if deletes:
                cur.execute(sql_builders.delete_marked(schema, load_table))
            return lambda: pgsql.Identifier(schema, load_table)
        if (
            time_column is None
            and direct
            and not deletes
            and self._all_keys_new(layout, load_table, columns, rows)
        ):
            # Only new keys (an initial load, new records): no staging needed.
            self._copy_rows(cur, sql_builders.copy_into_table(schema, load_table, columns), rows)
            key = keys[0]
            position = list(columns).index(key)
            return lambda: sql_builders.rows_with_keys(
                schema,
                load_table,
                key,
                layout.column_types[key],
                [row[position] for row in rows],
            )
        stage = f"pb_stage_{uuid.uuid4().hex[:12]}"
        cur.execute(
            sql_builders.create_stage(stage, [(c, layout.column_types[c]) for c in columns])
        )
        self._copy_rows(cur, sql_builders.copy_into_stage(stage, columns), rows)
        if time_column is not None:
            partitioning.ensure_for(
                cur.connection,
                schema,
                load_table,
                time_column,
                pgsql.Identifier(stage),
                self.partitions,
            )
            if appended:
                cur.execute(part_sql.insert_from_stage(schema, load_table, stage, columns))
                if deletes:
                    cur.execute(sql_builders.delete_marked(schema, load_table))
                return lambda: pgsql.Identifier(schema, load_table)
        if dedupe:
            cur.execute(sql_builders.dedupe_stage(stage, keys))
        if on_staged is not None:
            on_staged(cur.connection, stage)
        if deletes:
            cur.execute(sql_builders.delete_marked_from_stage(schema, load_table, stage, keys))
        if layout.has_unique_key:
            upsert_rows = sql_builders.upsert_on_conflict(
                schema, load_table, stage, columns, keys, hard_delete=deletes
            )
            cur.execute(upsert_rows)
        else:
            update = sql_builders.update_from_stage(
                schema, load_table, stage, columns, keys, hard_delete=deletes
            )
            if update is not None:
                cur.execute(update)
            cur.execute(
                sql_builders.insert_missing_from_stage(
                    schema, load_table, stage, columns, keys, hard_delete=deletes
                )
            )
        return lambda: pgsql.Identifier(stage)

    def _all_keys_new(
        self,
        layout: TableLayout,
        load_table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> bool:
        """Whether none of the batch's (single-column) keys is in the table yet."""
        if len(layout.key_columns) != 1:
            return False
        key = layout.key_columns[0]
        key_type = layout.column_types[key]
        if key_type not in _DIRECT_KEY_TYPES:
            return False
        position = list(columns).index(key)
        statement = sql_builders.any_key_exists(layout.schema, load_table, key, key_type)
        try:
            with self.pg.transaction():  # a savepoint: a key that does not parse is not fatal here
                found = self.pg.execute(
                    statement, {"keys": [row[position] for row in rows]}
                ).fetchone()
        except psycopg.DataError:
            return False
        return found is not None and not found[0]

    def activate_version(
        self,
        layout: TableLayout,
        table: str,
        version: int,
        *,
        hard_delete: bool,
        expansions: Sequence[PostLoadExpansion] = (),
    ) -> int:
        """Soft- or hard-delete rows of versions older than ``version``; rows affected.

        Each of ``expansions`` runs in the same transaction, after the rows are retired.
        """
        schema = layout.schema
        statement = (
            sql_builders.hard_delete_old_versions(schema, table)
            if hard_delete
            else sql_builders.soft_delete_old_versions(schema, table)
        )
        conn = self.pg
        with conn.transaction():
            cur = conn.execute(statement, {"version": version, "deleted_at": datetime.now(tz=UTC)})
            for expansion in expansions:
                expansion.after_retire(conn, layout, table, version)
            return cur.rowcount

    def replace_contents(self, schema: str, table: str, source: str) -> None:
        """Atomically replace a table's rows with those of ``source`` (dropped after)."""
        columns = list(self.existing_columns(schema, source))
        with self.pg.transaction():
            for statement in sql_builders.replace_contents(schema, table, source, columns):
                self.pg.execute(statement)
