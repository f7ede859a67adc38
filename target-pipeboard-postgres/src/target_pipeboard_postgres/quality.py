"""Data-quality figures of a run, per stream: measured as the rows load, written to the table
``_pipeboard_quality`` of the stream's schema (one row per stream per run) and set as
Prometheus gauges pushed with the run's other metrics.

What is measured, and where:

- rows inserted / updated / unchanged: an upsert batch that goes through a staging table is
  compared with the table inside the batch's transaction, just before it is written (one
  aggregate query); a batch of only new keys, or an append, is all inserted.
- rows retired: rows ACTIVATE_VERSION soft- or hard-deleted, plus records arriving with
  ``_sdc_deleted_at`` set.
- null share per column: counted on the batch's rows in the loading thread.
- values changed on the way in (NUL characters stripped), records refused with their reason
  (the error that stopped the run), duplicate keys within a batch, columns added or widened.
- freshness lag: now minus the newest value of the stream's replication key (the SCHEMA
  message's ``bookmark_properties``) loaded so far; a run that loads nothing new carries the
  previous run's newest value, so the lag keeps growing.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Gauge
from psycopg import sql

from target_pipeboard_postgres.sql_builders import DELETED_AT, lock_schema_ddl

QUALITY_TABLE = "_pipeboard_quality"
# Metadata columns the target or the SDK fill each run: a row whose data is the same but whose
# metadata moved on is unchanged.
_METADATA_PREFIX = "_sdc_"
# NULLs are counted on every row of a batch of up to this many rows, and on this many rows
# drawn at random from a larger one: counting every value of a 10,000-row batch in Python would cost
# 10-15% of the load, a sample of 1,000 under 1%, and estimates a share within about 1.6%.
NULL_SAMPLE_ROWS = 1_000
# Staged rows compared with the table per batch (exact below, a random sample above): comparing
# every row of a 10,000-row batch costs about half as much as the upsert itself.
CLASSIFY_SAMPLE_ROWS = 1_000


@dataclass
class StreamQuality:
    """The figures of one stream in one run."""

    stream: str
    schema: str = ""
    table: str = ""
    rows_received: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    unclassified: int = 0  # staged rows the comparison could not judge (a json column)
    retired: int = 0
    duplicate_keys: int = 0
    nul_stripped: int = 0
    columns_added: int = 0
    columns_widened: int = 0
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    nulls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    null_rows: int = 0  # rows the NULLs were counted on
    replication_key: str | None = None
    newest: datetime | None = None
    previous_newest: datetime | None = None
    previous_null_share: dict[str, float] = field(default_factory=dict)

    @property
    def null_share(self) -> dict[str, float]:
        """Share of NULL per column among the rows received (empty when none were); large
        batches are sampled (NULL_SAMPLE_ROWS)."""
        if not self.null_rows:
            return {}
        return {c: round(n / self.null_rows, 6) for c, n in sorted(self.nulls.items())}

    @property
    def newest_loaded(self) -> datetime | None:
        """The newest replication-key value loaded by this run or an earlier one."""
        known = [v for v in (self.newest, self.previous_newest) if v is not None]
        return max(known) if known else None

    def freshness_lag(self, now: datetime) -> float | None:
        """Seconds from the newest replication-key value loaded (this run or before) to now."""
        newest = self.newest_loaded
        return None if newest is None else max(0.0, (now - newest).total_seconds())


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def classify_staged(
    conn: psycopg.Connection[Any],
    stage: str,
    schema: str,
    table: str,
    columns: Sequence[str],
    keys: Sequence[str],
) -> tuple[int, int, int] | None:
    """(inserted, updated, unchanged) of the staged rows against the table, before the upsert.

    Up to CLASSIFY_SAMPLE_ROWS staged rows are compared exactly; a larger batch is judged on a
    random sample of about that many rows (each looked up by its key through the table's index)
    and the counts scaled to the batch. Runs in the batch's transaction, inside a savepoint: a
    column type without equality (json) leaves the batch unclassified instead of failing it.
    """
    compared = [c for c in columns if not c.startswith(_METADATA_PREFIX) or c == DELETED_AT]
    if not keys:
        return None
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in keys
    )
    differs: sql.Composable
    if compared:
        differs = sql.SQL("ROW({s}) IS DISTINCT FROM ROW({t})").format(
            s=sql.SQL(", ").join(sql.Identifier("s", c) for c in compared),
            t=sql.SQL(", ").join(sql.Identifier("t", c) for c in compared),
        )
    else:
        differs = sql.SQL("false")
    stage_id = sql.Identifier(stage)
    try:
        with conn.transaction():
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(stage_id)).fetchone()
            total = int(row[0]) if row else 0
            if not total:
                return 0, 0, 0
            percent = min(100.0, 100.0 * CLASSIFY_SAMPLE_ROWS / total)
            sample = (
                sql.SQL("{} AS s").format(stage_id)
                if percent >= 100
                else sql.SQL("{} AS s TABLESAMPLE BERNOULLI ({})").format(
                    stage_id, sql.Literal(percent)
                )
            )
            # LATERAL ... LIMIT 1: one index lookup per sampled row, never a scan of the table.
            query = sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE t.ctid IS NULL), "
                "count(*) FILTER (WHERE t.ctid IS NOT NULL AND {differs}) "
                "FROM {sample} LEFT JOIN LATERAL "
                "(SELECT t.ctid, t.* FROM {table} AS t WHERE {match} LIMIT 1) AS t ON true"
            ).format(
                differs=differs, sample=sample, table=sql.Identifier(schema, table), match=match
            )
            found = conn.execute(query).fetchone()
    except psycopg.errors.UndefinedFunction:
        return None
    if found is None or not found[0]:
        return None
    sampled, new, changed = (int(v) for v in found)
    inserted = round(new * total / sampled)
    updated = min(total - inserted, round(changed * total / sampled))
    return inserted, updated, total - inserted - updated


def refusal_reason(error: BaseException) -> str:
    """A short, stable reason for a refused record (a metric label, a JSON key)."""
    problem = str(getattr(error, "problem", "") or error).lower()
    kind = type(error).__name__
    if kind == "RecordMissingKeyError":
        return "missing_key"
    if kind == "RecordBeforeSchemaError":
        return "record_before_schema"
    if kind in {"MalformedLineError", "SchemaError"}:
        return "malformed_input"
    numeric = ("numeric", "bigint", "integer", "smallint", "double precision", "real")
    if "out of range" in problem or any(f"for type {t}" in problem for t in numeric):
        return "number_refused"
    if "invalid input syntax" in problem or "invalid input value" in problem:
        return "invalid_string"
    if "null value in column" in problem:
        return "null_in_required_column"
    return "refused_by_database"


def create_table(schema: str) -> sql.Composed:
    """The quality table of a schema: one row per stream per run."""
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} ("
        "run_id uuid NOT NULL, stream text NOT NULL, table_name text NOT NULL, "
        "pipeline text, run_started_at timestamptz NOT NULL, run_ended_at timestamptz NOT NULL, "
        "succeeded boolean NOT NULL, rows_received bigint NOT NULL, rows_inserted bigint, "
        "rows_updated bigint, rows_unchanged bigint, rows_unclassified bigint NOT NULL, "
        "rows_retired bigint NOT NULL, "
        "duplicate_keys bigint NOT NULL, nul_characters_stripped bigint NOT NULL, "
        "records_refused bigint NOT NULL, refused_reasons jsonb NOT NULL, "
        "columns_added integer NOT NULL, columns_widened integer NOT NULL, "
        "replication_key text, newest_replication_value timestamptz, "
        "freshness_lag_seconds double precision, null_share jsonb NOT NULL, "
        "PRIMARY KEY (run_id, stream))"
    ).format(sql.Identifier(schema, QUALITY_TABLE))


class QualityMetrics:
    """The quality gauges, in the run's metrics registry (pushed with the other metrics)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Gauge(
            "pipeboard_target_quality_rows",
            "Rows of the last run by outcome (inserted, updated, unchanged, retired).",
            ["stream", "outcome"],
            registry=registry,
        )
        self.rows_received = Gauge(
            "pipeboard_target_quality_rows_received",
            "Records the last run received for the stream.",
            ["stream"],
            registry=registry,
        )
        self.null_share = Gauge(
            "pipeboard_target_quality_null_share",
            "Share of NULL values per column among the rows the last run received.",
            ["stream", "column"],
            registry=registry,
        )
        self.previous_null_share = Gauge(
            "pipeboard_target_quality_null_share_previous",
            "The column's NULL share in the previous run that received rows (from the table).",
            ["stream", "column"],
            registry=registry,
        )
        self.values_changed = Gauge(
            "pipeboard_target_quality_values_changed",
            "Values changed on the way in during the last run, by change.",
            ["stream", "change"],
            registry=registry,
        )
        self.refused = Gauge(
            "pipeboard_target_quality_records_refused",
            "Records refused in the last run, by reason.",
            ["stream", "reason"],
            registry=registry,
        )
        self.duplicate_keys = Gauge(
            "pipeboard_target_quality_duplicate_keys",
            "Records whose key repeated an earlier one of the same batch (the last one wins).",
            ["stream"],
            registry=registry,
        )
        self.columns_changed = Gauge(
            "pipeboard_target_quality_columns_changed",
            "Columns added or widened in the last run.",
            ["stream", "change"],
            registry=registry,
        )
        self.freshness_lag = Gauge(
            "pipeboard_target_quality_freshness_lag_seconds",
            "Seconds from the newest replication-key value loaded to the end of the last run.",
            ["stream"],
            registry=registry,
        )

    def set(self, figures: StreamQuality, now: datetime) -> None:
        """Set every gauge of one stream."""
        stream = figures.stream
        for outcome, value in (
            ("inserted", figures.inserted),
            ("updated", figures.updated),
            ("unchanged", figures.unchanged),
            ("unclassified", figures.unclassified),
            ("retired", figures.retired),
        ):
            self.rows.labels(stream=stream, outcome=outcome).set(value)
        self.rows_received.labels(stream=stream).set(figures.rows_received)
        for column, share in figures.null_share.items():
            self.null_share.labels(stream=stream, column=column).set(share)
            previous = figures.previous_null_share.get(column)
            if previous is not None:
                self.previous_null_share.labels(stream=stream, column=column).set(previous)
        self.values_changed.labels(stream=stream, change="nul_stripped").set(figures.nul_stripped)
        self.refused.labels(stream=stream, reason="none").set(0)
        for reason, count in figures.refused.items():
            self.refused.labels(stream=stream, reason=reason).set(count)
        self.duplicate_keys.labels(stream=stream).set(figures.duplicate_keys)
        self.columns_changed.labels(stream=stream, change="added").set(figures.columns_added)
        self.columns_changed.labels(stream=stream, change="widened").set(figures.columns_widened)
        lag = figures.freshness_lag(now)
        if lag is not None:
            self.freshness_lag.labels(stream=stream).set(lag)


class RunQuality:
    """The figures of every stream of one run; batches report from the loading thread."""

    def __init__(self, registry: CollectorRegistry, *, enabled: bool = True) -> None:
        self.enabled = enabled  # the `data_quality` setting
        self.run_id = uuid.uuid4()
        self.started_at = datetime.now(tz=UTC)
        self.streams: dict[str, StreamQuality] = {}
        self.metrics = QualityMetrics(registry)
        self.seconds = 0.0  # time spent measuring (reported in the run's log)
        self._lock = threading.Lock()

    def stream(self, name: str) -> StreamQuality:
        """The figures of a stream (created on first use)."""
        with self._lock:
            figures = self.streams.get(name)
            if figures is None:
                figures = self.streams[name] = StreamQuality(name)
            return figures

    def declared(
        self, name: str, schema: str, table: str, bookmark_properties: Sequence[str] | None
    ) -> None:
        """A SCHEMA message: where the stream lands and its replication key."""
        figures = self.stream(name)
        figures.schema, figures.table = schema, table
        if bookmark_properties:
            figures.replication_key = bookmark_properties[0]

    def columns_changed(self, name: str, added: int, widened: int) -> None:
        """The table gained or widened columns."""
        figures = self.stream(name)
        figures.columns_added += added
        figures.columns_widened += widened

    def batch_loaded(
        self,
        name: str,
        properties: Sequence[str],
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        key_positions: Sequence[int],
        classified: tuple[int, int, int] | None,
        *,
        repeated_keys: bool,
        staged: bool = False,
    ) -> None:
        """A committed batch: count its NULLs, outcomes, duplicates and newest key value."""
        started = time.perf_counter()
        figures = self.stream(name)
        count = len(rows)
        nulls = figures.nulls
        # A random sample: an evenly spaced one would alias with periodic data.
        sample = random.sample(rows, NULL_SAMPLE_ROWS) if count > NULL_SAMPLE_ROWS else rows
        # One transposition (in C) instead of a pass over the sample per column.
        for column, values in zip(columns, zip(*sample, strict=False), strict=False):
            if not column.startswith(_METADATA_PREFIX):
                nulls[column] += values.count(None)
        figures.null_rows += len(sample)
        duplicates = 0
        if repeated_keys and key_positions:
            keys = {tuple(row[i] for i in key_positions) for row in rows}
            duplicates = count - len(keys)
        if DELETED_AT in columns:
            position = list(columns).index(DELETED_AT)
            figures.retired += count - list(map(itemgetter(position), rows)).count(None)
        key = figures.replication_key
        if key is not None and key in properties:
            position = list(properties).index(key)
            try:  # ISO-8601 text (or dates) of one format order as their times do
                newest = max(
                    (v for v in map(itemgetter(position), rows) if v is not None), default=None
                )
            except TypeError:  # mixed types: no bookmark to read
                newest = None
            parsed = _as_datetime(newest)
            if parsed is not None and (figures.newest is None or parsed > figures.newest):
                figures.newest = parsed
        figures.rows_received += count
        figures.duplicate_keys += duplicates
        if classified is None and staged:
            figures.unclassified += count - duplicates
        elif classified is None:
            figures.inserted += count - duplicates
        else:
            inserted, updated, unchanged = classified
            figures.inserted += inserted
            figures.updated += updated
            figures.unchanged += unchanged
        self.seconds += time.perf_counter() - started

    def retired(self, name: str, rows: int) -> None:
        """ACTIVATE_VERSION retired ``rows`` rows of older versions."""
        self.stream(name).retired += rows

    def refused(self, name: str, error: BaseException) -> None:
        """A record was refused (the run stops on it): counted under its reason."""
        self.stream(name).refused[refusal_reason(error)] += 1

    def finish(
        self,
        conn: psycopg.Connection[Any] | None,
        nul_counts: Mapping[str, int],
        *,
        pipeline: str,
        succeeded: bool,
    ) -> None:
        """Write one row per stream to ``_pipeboard_quality`` and set the gauges."""
        now = datetime.now(tz=UTC)
        for name, count in nul_counts.items():
            self.stream(name).nul_stripped = count
        streams = [s for s in self.streams.values() if s.schema]
        if conn is not None:
            for schema in sorted({s.schema for s in streams}):
                with conn.transaction():
                    conn.execute(lock_schema_ddl(), {"schema": schema})
                    conn.execute(create_table(schema))
            for figures in streams:
                self._read_previous(conn, figures)
        for figures in streams:
            self.metrics.set(figures, now)
        if conn is None:
            return
        with conn.transaction():
            for figures in streams:
                conn.execute(self._insert(figures), self._values(figures, now, pipeline, succeeded))

    def _read_previous(self, conn: psycopg.Connection[Any], figures: StreamQuality) -> None:
        table = sql.Identifier(figures.schema, QUALITY_TABLE)
        row = conn.execute(
            sql.SQL(
                "SELECT (SELECT max(newest_replication_value) FROM {t} WHERE stream = %(s)s), "
                "(SELECT null_share FROM {t} WHERE stream = %(s)s AND rows_received > 0 "
                "ORDER BY run_ended_at DESC LIMIT 1)"
            ).format(t=table),
            {"s": figures.stream},
        ).fetchone()
        if row is None:
            return
        figures.previous_newest = row[0]
        figures.previous_null_share = dict(row[1] or {})

    @staticmethod
    def _insert(figures: StreamQuality) -> sql.Composed:
        return sql.SQL(
            "INSERT INTO {} (run_id, stream, table_name, pipeline, run_started_at, run_ended_at, "
            "succeeded, rows_received, rows_inserted, rows_updated, rows_unchanged, "
            "rows_unclassified, rows_retired, "
            "duplicate_keys, nul_characters_stripped, records_refused, refused_reasons, "
            "columns_added, columns_widened, replication_key, newest_replication_value, "
            "freshness_lag_seconds, null_share) VALUES (%(run_id)s, %(stream)s, %(table)s, "
            "%(pipeline)s, %(started)s, %(ended)s, %(succeeded)s, %(received)s, %(inserted)s, "
            "%(updated)s, %(unchanged)s, %(unclassified)s, %(retired)s, %(duplicates)s, %(nul)s, "
            "%(refused)s, %(reasons)s, %(added)s, %(widened)s, %(key)s, %(newest)s, %(lag)s, "
            "%(nulls)s)"
        ).format(sql.Identifier(figures.schema, QUALITY_TABLE))

    def _values(
        self, figures: StreamQuality, now: datetime, pipeline: str, succeeded: bool
    ) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "stream": figures.stream,
            "table": figures.table,
            "pipeline": pipeline,
            "started": self.started_at,
            "ended": now,
            "succeeded": succeeded,
            "received": figures.rows_received,
            "inserted": figures.inserted,
            "updated": figures.updated,
            "unchanged": figures.unchanged,
            "unclassified": figures.unclassified,
            "retired": figures.retired,
            "duplicates": figures.duplicate_keys,
            "nul": figures.nul_stripped,
            "refused": sum(figures.refused.values()),
            "reasons": json.dumps(dict(figures.refused)),
            "added": figures.columns_added,
            "widened": figures.columns_widened,
            "key": figures.replication_key,
            "newest": figures.newest_loaded,
            "lag": figures.freshness_lag(now),
            "nulls": json.dumps(figures.null_share),
        }
