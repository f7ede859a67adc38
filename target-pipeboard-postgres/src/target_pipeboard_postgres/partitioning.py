"""Partitioned tables: chosen tables range-partitioned by a time column, one partition per
month (or quarter, or year), created as data arrives, old ones dropped by a retention setting.

Settings (see docs/partitioning.md):

- ``partitioned_tables``: which tables, and by which time column: an object ``{"table":
  "column"}``, or a list of table names whose column is known (``deal_stage_changes`` and the
  changelog streams: ``changed_at``; history mode's ``<table>_history``: ``_valid_from``).
- ``partition_interval``: ``month`` (default), ``quarter`` or ``year``.
- ``partition_retention_months``: drop partitions that end more than this many months before
  the start of the current month (UTC); unset keeps everything.

How the loader uses it: a table named in the setting is created ``PARTITION BY RANGE`` with a
DEFAULT partition (rows whose time is NULL). Each batch is staged, the partitions for the
months the staged rows fall in are created (:func:`ensure`), then the rows go in as before:
upserts by the stream's key are unchanged (the table's unique index is (key, time), so the
key is matched by UPDATE/INSERT rather than ON CONFLICT). Rows another writer put into the
DEFAULT partition (history mode's versions) get their partition after the batch
(:func:`sweep`): moved out of DEFAULT, the partition created, moved back, in the batch's
transaction. Retention (:func:`drop_expired`) runs when a stream's table is prepared, and never
deletes the DEFAULT partition's rows; of a history table's expired partition, the open versions
(``_valid_to`` NULL) are kept (they move to the DEFAULT partition). With retention set, no
partition older than the cut-off is created: such late rows stay in DEFAULT.

The catalog, not the setting, says whether an existing table is partitioned: a table created
partitioned stays maintained when the setting no longer names it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg import sql
from singer_sdk import typing as th

from target_pipeboard_postgres import identifiers
from target_pipeboard_postgres import partitioning_sql as q
from target_pipeboard_postgres.errors import InvalidSettingError

TABLES_SETTING = "partitioned_tables"
INTERVAL_SETTING = "partition_interval"
RETENTION_SETTING = "partition_retention_months"
INTERVALS = {"month": 1, "quarter": 3, "year": 12}
DEFAULT_INTERVAL = "month"
HISTORY_SUFFIX = "_history"
HISTORY_COLUMN = "_valid_from"
STAGE_HISTORY_TABLE = "deal_stage_history"  # stage history's derived table
# Tables whose time column is known (the streams tap-pipedrive writes).
KNOWN_COLUMNS = {
    "deal_stage_changes": "changed_at",
    "deal_changes": "changed_at",
    "person_changes": "changed_at",
    "organization_changes": "changed_at",
    STAGE_HISTORY_TABLE: "entered_at",
}
TIME_TYPES = {"timestamptz", "timestamp", "date"}
_BOUND = re.compile(r"FROM \('(\d{4}-\d{2}-\d{2})[^']*'\) TO \('(\d{4}-\d{2}-\d{2})[^']*'\)")


class PartitioningError(ValueError):
    """A table cannot be partitioned (or kept partitioned) as the settings ask."""


def config_properties() -> list[th.Property[Any]]:
    """The three settings for the target's ``config_jsonschema``."""
    return [
        th.Property(
            TABLES_SETTING,
            th.CustomType({"type": ["object", "array", "string"]}),
            description=(
                "Tables range-partitioned by a time column, created as data arrives: an object "
                '`{"table": "time_column"}`, or a list of tables whose column is known '
                "(`deal_stage_changes`, `deal_changes`, `person_changes`, "
                "`organization_changes`: `changed_at`; history mode's `<table>_history`: "
                "`_valid_from`; stage history's `deal_stage_history`: `entered_at`). None by "
                "default. See docs/partitioning.md."
            ),
        ),
        th.Property(
            INTERVAL_SETTING,
            th.StringType,
            default=DEFAULT_INTERVAL,
            allowed_values=list(INTERVALS),
            description="One partition per `month`, `quarter` or `year` (UTC).",
        ),
        th.Property(
            RETENTION_SETTING,
            th.CustomType({"type": ["integer", "string"]}),
            description=(
                "Drop partitions of partitioned tables that ended more than this many months "
                "before the current month (UTC); unset keeps everything. Rows with no time "
                "(the DEFAULT partition) and open history versions are never dropped."
            ),
        ),
    ]


def _as_tables(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        if text[0] in "[{":
            try:
                value = json.loads(text)
            except ValueError:
                raise InvalidSettingError(TABLES_SETTING, f"not valid JSON: {text!r}") from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, Mapping):
        tables: dict[str, str] = {}
        for table, column in value.items():
            if not isinstance(column, str) or not column.strip():
                raise InvalidSettingError(
                    TABLES_SETTING,
                    f"table {table!r}: expected the name of its time column, got {column!r}",
                )
            tables[identifiers.identifier(str(table))] = column.strip()
        return tables
    if isinstance(value, list):
        tables = {}
        for table in value:
            if not isinstance(table, str) or not table.strip():
                raise InvalidSettingError(TABLES_SETTING, f"expected table names, got {table!r}")
            name = identifiers.identifier(table.strip())
            column = known_column(name)
            if column is None:
                raise InvalidSettingError(
                    TABLES_SETTING,
                    f"no known time column for table {table!r}: name it, as in "
                    f'{{"{table}": "<time column>"}}',
                )
            tables[name] = column
        return tables
    raise InvalidSettingError(
        TABLES_SETTING,
        f'expected an object {{"table": "time_column"}} or a list of tables, got {value!r}',
    )


def known_column(table: str) -> str | None:
    """The time column of a table the target knows, if any."""
    if table in KNOWN_COLUMNS:
        return KNOWN_COLUMNS[table]
    return HISTORY_COLUMN if table.endswith(HISTORY_SUFFIX) else None


@dataclass(frozen=True)
class PartitionSettings:
    """The three settings, checked."""

    tables: Mapping[str, str] = field(default_factory=dict)
    months: int = 1
    retention_months: int | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PartitionSettings:
        """Parse the settings, naming any value that is wrong."""
        tables = _as_tables(config.get(TABLES_SETTING) or {})
        interval = config.get(INTERVAL_SETTING) or DEFAULT_INTERVAL
        if interval not in INTERVALS:
            raise InvalidSettingError(
                INTERVAL_SETTING, f"expected one of {tuple(INTERVALS)}, got {interval!r}"
            )
        retention = config.get(RETENTION_SETTING)
        if isinstance(retention, str):
            text = retention.strip()
            retention = int(text) if text.isdigit() else (None if not text else retention)
        if retention is not None and (
            isinstance(retention, bool) or not isinstance(retention, int) or retention < 1
        ):
            raise InvalidSettingError(
                RETENTION_SETTING, f"expected a positive number of months, got {retention!r}"
            )
        stays = tables.get(STAGE_HISTORY_TABLE)
        if stays is not None and stays != KNOWN_COLUMNS[STAGE_HISTORY_TABLE]:
            raise InvalidSettingError(
                TABLES_SETTING,
                f"{STAGE_HISTORY_TABLE} is partitioned by entered_at (part of its key), not "
                f"{stays!r}",
            )
        if tables and config.get("load_method") == "overwrite":
            raise InvalidSettingError(
                TABLES_SETTING,
                "partitioned tables cannot be loaded with `load_method: overwrite` (its shadow "
                "table is swapped in whole); use upsert or append-only",
            )
        return cls(tables=tables, months=INTERVALS[interval], retention_months=retention)

    def column_for(self, table: str) -> str | None:
        """The time column ``table`` is to be partitioned by, if the setting names it."""
        return self.tables.get(table)

    def cutoff(self, today: date | None = None) -> date | None:
        """Partitions ending on or before this date are expired (None: keep everything)."""
        if self.retention_months is None:
            return None
        today = today or datetime.now(tz=UTC).date()
        return add_months(today.replace(day=1), -self.retention_months)


def normalize(config: MutableMapping[str, Any]) -> None:
    """Before the SDK validates the config: check the settings (a clear error at start)."""
    PartitionSettings.from_config(config)


def add_months(day: date, months: int) -> date:
    """The first of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def interval_start(day: date, months: int) -> date:
    """The start of the interval of ``months`` months (aligned to the year) holding ``day``."""
    return date(day.year, (day.month - 1) // months * months + 1, 1)


# Runtime


def catalog_column(conn: psycopg.Connection[Any], schema: str, table: str) -> str | None:
    """The partition column of an existing partitioned table; None if not partitioned.

    Raises:
        PartitioningError: the table is partitioned by something the target cannot maintain.
    """
    row = conn.execute(q.partitioning(), {"schema": schema, "table": table}).fetchone()
    if row is None or row[0] != "p":
        return None
    if row[1] is None:
        raise PartitioningError(
            f"{schema}.{table} is partitioned by an expression or several columns; the target "
            "maintains tables range-partitioned by one time column only"
        )
    return str(row[1])


def not_partitioned_error(schema: str, table: str, column: str) -> PartitioningError:
    """The error for a table the setting names that exists unpartitioned."""
    return PartitioningError(
        f"`{TABLES_SETTING}` names {table} (by {column}), but {schema}.{table} exists and is not "
        "partitioned; the target does not convert a table holding rows. Remove it from the "
        f"setting, or convert it: rename the table (e.g. to {table}_old), run the target once "
        f"(it creates {table} partitioned) and copy the rows across (docs/partitioning.md)"
    )


def check_column(table: str, column: str, column_type: str | None) -> None:
    """Refuse a time column that is missing or not a date/time type."""
    if column_type is None:
        raise PartitioningError(
            f"`{TABLES_SETTING}` partitions {table} by {column!r}, which is not a column of it"
        )
    if column_type not in TIME_TYPES:
        raise PartitioningError(
            f"`{TABLES_SETTING}` partitions {table} by {column!r}, of type {column_type}; "
            f"the time column must be one of {sorted(TIME_TYPES)} (a date-time property)"
        )


@dataclass(frozen=True)
class Bound:
    """One partition and its range [start, end)."""

    name: str
    start: date
    end: date


def bounds(conn: psycopg.Connection[Any], schema: str, table: str) -> list[Bound]:
    """The ranged partitions of ``table`` (bounds read from the catalog)."""
    result = []
    rows = conn.execute(q.partitions(), {"schema": schema, "table": table}).fetchall()
    for name, expression, is_default in rows:
        match = _BOUND.search(expression or "")
        if is_default or match is None:
            continue
        result.append(
            Bound(name, date.fromisoformat(match.group(1)), date.fromisoformat(match.group(2)))
        )
    return result


def ranges_to_create(
    months: Iterable[date], existing: Iterable[Bound], interval: int, cutoff: date | None
) -> list[tuple[date, date]]:
    """New partitions [start, end) covering ``months`` (first days): one interval each, cut
    to fit between existing partitions (made with another interval); none before ``cutoff``."""
    taken = sorted((b.start, b.end) for b in existing)
    created: list[tuple[date, date]] = []
    for month in sorted(set(months)):
        if any(lo <= month < hi for lo, hi in taken):
            continue
        start = interval_start(month, interval)
        end = add_months(start, interval)
        for lo, hi in taken:
            if hi <= month and hi > start:
                start = hi
            if lo > month and lo < end:
                end = lo
        if cutoff is not None and end <= cutoff:
            continue
        taken.append((start, end))
        taken.sort()
        created.append((start, end))
    return created


def ensure(
    conn: psycopg.Connection[Any],
    schema: str,
    table: str,
    column: str,
    months: Iterable[date],
    settings: PartitionSettings,
) -> list[str]:
    """Create the partitions ``months`` need (in the caller's transaction); their names.

    Rows of such a month already in the DEFAULT partition move into the new partition.
    """
    months = list(months)
    if not months:
        return []
    wanted = ranges_to_create(
        months, bounds(conn, schema, table), settings.months, settings.cutoff()
    )
    created = []
    columns: list[str] | None = None
    for start, end in wanted:
        span = {"lo": start, "hi": end}
        default = q.default_name(table)
        moved = conn.execute(q.rows_in_range(schema, default, column), span).fetchone() is not None
        if moved:
            conn.execute(q.move_out_of_default(schema, table, column), span)
        conn.execute(q.create_partition(schema, table, start, end))
        if moved:
            columns = columns or _columns(conn, schema, table)
            for statement in q.move_back(schema, table, columns):
                conn.execute(statement)
        created.append(q.partition_name(table, start))
    return created


def ensure_for(
    conn: psycopg.Connection[Any],
    schema: str,
    table: str,
    column: str,
    source: sql.Composable,
    settings: PartitionSettings,
) -> list[str]:
    """Partitions for the months of the rows in ``source`` (a batch's staging table)."""
    months = [row[0] for row in conn.execute(q.months_in(source, column)).fetchall()]
    return ensure(conn, schema, table, column, months, settings)


def sweep(
    conn: psycopg.Connection[Any],
    schema: str,
    table: str,
    column: str,
    settings: PartitionSettings,
) -> list[str]:
    """Partitions for rows other writers put into the DEFAULT partition."""
    return ensure_for(
        conn, schema, table, column, sql.Identifier(schema, q.default_name(table)), settings
    )


def drop_expired(
    conn: psycopg.Connection[Any], schema: str, table: str, settings: PartitionSettings
) -> list[str]:
    """Drop partitions ending on or before the retention cut-off; their names.

    A history table's open versions (``_valid_to`` NULL) are kept: they move to the DEFAULT
    partition (no partition covers their time any more).
    """
    cutoff = settings.cutoff()
    if cutoff is None:
        return []
    expired = [b for b in bounds(conn, schema, table) if b.end <= cutoff]
    if not expired:
        return []
    columns = _columns(conn, schema, table)
    keeps_open = "_valid_to" in columns
    dropped = []
    with conn.transaction():
        for bound in expired:
            if keeps_open:
                conn.execute(q.keep_open_versions(schema, bound.name))
            conn.execute(q.drop_partition(schema, bound.name))
            if keeps_open:
                for statement in q.move_back(schema, table, columns):
                    conn.execute(statement)
            dropped.append(bound.name)
    return dropped


def _columns(conn: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    from target_pipeboard_postgres import sql_builders

    rows = conn.execute(sql_builders.table_columns(), {"schema": schema, "table": table})
    return [str(row[0]) for row in rows.fetchall()]
