"""The sink: buffers a stream's rows in bounded batches and loads each in one transaction."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg

from target_pipeboard_postgres import (
    child_sets,
    column_types,
    identifiers,
    partitioning,
    quality,
    sql_builders,
    values,
)
from target_pipeboard_postgres.commit_ledger import Batch, CommitLedger
from target_pipeboard_postgres.connector import (
    BatchFailure,
    KeyMismatch,
    PostgresConnector,
    TableLayout,
)
from target_pipeboard_postgres.errors import (
    BatchLoadError,
    RecordMissingKeyError,
    SchemaError,
    TableKeyChangedError,
    TableSetupError,
)
from target_pipeboard_postgres.metrics import TargetMetrics
from target_pipeboard_postgres.post_load import PostLoadExpansion
from target_pipeboard_postgres.quality import RunQuality
from target_pipeboard_postgres.sdk_seam import SinkSeam
from target_pipeboard_postgres.settings import DEFAULT_BATCH_SIZE_BYTES, DEFAULT_BATCH_SIZE_ROWS

DEFAULT_SCHEMA = "public"
OVERWRITE_SUFFIX = "__pb_overwrite"
_VERSION_PROPERTIES = {
    sql_builders.TABLE_VERSION: {"type": ["null", "integer"]},
    sql_builders.DELETED_AT: {"type": ["null", "string"], "format": "date-time"},
}


class SinkHost(Protocol):
    """What a sink uses of its target (besides the SDK's own plumbing)."""

    ledger: CommitLedger
    metrics: TargetMetrics
    quality: RunQuality
    current_version: int | None

    @property
    def current_line(self) -> int:
        """The number of the input line being processed."""

    def count_nul(self, stream: str, count: int) -> None:
        """Note NUL characters removed from a stream's values."""

    def history_table(self, stream: str, table: str, keys: Sequence[str]) -> str | None:
        """The history table ``stream`` keeps beside ``table`` (history mode), if any."""

    def post_load_expansions(
        self, stream: str, layout: TableLayout, history_table: str | None
    ) -> list[PostLoadExpansion]:
        """What runs inside each batch transaction of ``stream``, loaded as ``layout``."""

    def drain_one(self, sink: Any) -> None:
        """Load the sink's buffered batch now (the SDK's public drain)."""


class PostgresSink(SinkSeam):
    """Turns one stream's records into batches and loads each into one Postgres table."""

    def __init__(
        self,
        target: SinkHost,
        stream_name: str,
        schema: dict[str, Any],
        key_properties: Sequence[str] | None,
        connector: PostgresConnector | None = None,
    ) -> None:
        super().__init__(target, stream_name, schema, key_properties, connector)
        self._target = target
        self._ledger = target.ledger
        self.expansions: list[PostLoadExpansion] = []
        self.superseded = False
        self._rows: list[list[Any]] = []
        self._lines: list[int | None] = []
        self._bytes = 0
        self._batch: Batch | None = None  # the ledger's record of the batch being buffered
        self._batched_at: datetime | None = None
        self._max_rows = int(self.config.get("batch_size_rows") or DEFAULT_BATCH_SIZE_ROWS)
        self._max_bytes = int(self.config.get("batch_size_bytes") or DEFAULT_BATCH_SIZE_BYTES)
        method = self.config.get("load_method") or "upsert"
        self._overwrite = method == "overwrite"
        self._keyed = method in {"upsert", "overwrite"}  # rows are upserted by the stream's key
        self._upsert = method in {"upsert", "overwrite"} and bool(self.tap_key_properties)
        self._hard_delete = bool(self.config.get("hard_delete"))
        self._fill_metadata = self.include_sdc_metadata_properties
        self.layout: TableLayout | None = None
        self._props: list[str] = []
        self._columns: list[str] = []
        self._build_row: Callable[[Mapping[str, Any]], list[Any]] = list
        self._seen_keys: set[Any] = set()
        self._repeated_keys = False
        self._one_row_per_key = False  # batches never repeat a key (history mode)
        self._versioned = False
        self._children_of: list[str] = []
        # The run of rows of the last parent buffered (child sets only): where it starts, the
        # number of its first record, its parent key, its rows' keys and bytes.
        self._run_start = 0
        self._run_seq = 0
        self._run_parent: tuple[Any, ...] | None = None
        self._run_keys: list[tuple[Any, ...]] = []
        self._run_bytes = 0
        #: Set while a drain must take every buffered row (a new schema for the stream).
        self.closing = False

    # Names

    @property
    def schema_name(self) -> str:
        """The Postgres schema this stream loads into."""
        schema, _ = identifiers.split_stream_name(self.stream_name, self.default_target_schema)
        return schema or DEFAULT_SCHEMA

    @property
    def table_name(self) -> str:
        """The table this stream loads into."""
        return identifiers.split_stream_name(self.stream_name, None)[1]

    @property
    def load_table(self) -> str:
        """The table batches go to: the table itself, or its shadow for `overwrite`."""
        if self._overwrite:
            return identifiers.derived_name(self.table_name, OVERWRITE_SUFFIX)
        return self.table_name

    @property
    def key_properties(self) -> Sequence[str]:
        """Key properties as the tap named them (columns are mapped separately)."""
        return self.tap_key_properties

    # Setup: the table follows the schema

    def setup(self) -> None:
        """Create or evolve the table for this schema and compile the row layout."""
        properties = self.schema.get("properties")
        if not isinstance(properties, dict):
            raise SchemaError(self.stream_name, None, "it has no `properties` object")
        missing = [k for k in self.tap_key_properties if k not in properties]
        if missing:
            raise SchemaError(
                self.stream_name,
                None,
                f"key propert{'y' if len(missing) == 1 else 'ies'} "
                f"{', '.join(map(repr, missing))} not among the schema's properties",
            )
        for prop, prop_schema in properties.items():
            try:
                if isinstance(prop_schema, Mapping):
                    column_types.sql_type(prop_schema)  # refuses an x-sql-datatype that is no type
            except column_types.UnsafeSQLTypeError as exc:
                line = self._target.current_line
                raise SchemaError(self.stream_name, line, f"property {prop!r}: {exc}") from None
        self._versioned = sql_builders.TABLE_VERSION in properties
        try:
            self._children_of = child_sets.parent_properties(self.schema, self.tap_key_properties)
        except ValueError as exc:
            raise SchemaError(self.stream_name, self._target.current_line, str(exc)) from None
        if self._children_of and not self._hard_delete:
            # Missing children are retired by setting `_sdc_deleted_at`, declared or not.
            deleted_at = sql_builders.DELETED_AT
            properties.setdefault(deleted_at, _VERSION_PROPERTIES[deleted_at])
        self._prepare()

    def _prepare(self) -> None:
        extra = [self.load_table] if self._overwrite else []
        # A run's shadow starts empty: rows a killed run left there are not this run's records.
        fresh_shadow = self._overwrite and self._ledger.start_overwrite(
            self.schema_name, self.table_name
        )
        history = self._target.history_table(
            self.stream_name, self.table_name, self.tap_key_properties
        )
        try:
            self.layout = self.connector.prepare_table_layout(
                schema=self.schema_name,
                table=self.table_name,
                properties=self.schema["properties"],
                key_properties=self.tap_key_properties,
                extra_tables=extra,
                primary_key=self._upsert,
                reset_extra_tables=fresh_shadow,
                history_table=history,
                keyed=self._keyed,
            )
        except KeyMismatch as mismatch:
            raise TableKeyChangedError(
                self.stream_name,
                f"{self.schema_name}.{mismatch.table}",
                mismatch.table_key,
                self.tap_key_properties,
                line=self._target.current_line,
                history=None if history is None else f"{self.schema_name}.{history}",
                is_history=mismatch.table == history,
            ) from None
        except (
            psycopg.Error,
            column_types.UnsafeSQLTypeError,
            partitioning.PartitioningError,
        ) as exc:
            raise TableSetupError(
                self.stream_name,
                f"{self.schema_name}.{self.table_name}",
                self.connector.describe_error(exc),
                self._target.current_line,
            ) from None
        layout = self.layout
        self.expansions = self._target.post_load_expansions(self.stream_name, layout, history)
        if self._children_of:
            self.expansions.append(
                child_sets.ChildSetRetirement(self._children_of, hard_delete=self._hard_delete)
            )
        self._one_row_per_key = history is not None
        metrics = self._target.metrics
        if layout.added:
            metrics.columns_added.labels(stream=self.stream_name).inc(layout.added)
        if layout.widened:
            metrics.columns_widened.labels(stream=self.stream_name).inc(layout.widened)
        if layout.added or layout.widened:
            self._target.quality.columns_changed(self.stream_name, layout.added, layout.widened)
        self._props = list(layout.columns)
        self._columns = [layout.columns[p] for p in self._props]
        properties: Mapping[str, Any] = self.schema["properties"]
        converters: dict[int, values.Converter] = {}
        for index, prop in enumerate(self._props):
            converter = values.converter_for(
                layout.column_types[layout.columns[prop]], properties[prop]
            )
            if converter is not None:
                converters[index] = converter
        self._build_row = values.row_builder(self._props, converters)

    def enable_versions(self) -> None:
        """Track `_sdc_table_version` (needed by ACTIVATE_VERSION) from now on."""
        if self._versioned:
            return
        self.drain_whole()
        for name, prop_schema in _VERSION_PROPERTIES.items():
            self.schema["properties"].setdefault(name, prop_schema)
        self._versioned = True
        self._prepare()

    # The hot path

    def add_message(self, message: dict[str, Any], line: int | None, nbytes: int, seq: int) -> None:
        """Buffer one RECORD message's row."""
        record = message["record"]
        if self._fill_metadata:
            self._add_metadata(record, message)
        elif self._versioned or "version" in message:
            if not self._versioned:
                self.enable_versions()
            record[sql_builders.TABLE_VERSION] = message.get("version")
        self.add_record(record, line, nbytes, seq)

    def add_record(self, record: dict[str, Any], line: int | None, nbytes: int, seq: int) -> None:
        """Buffer one record's row (the values in column order, converted for COPY)."""
        key = tuple([record.get(k) for k in self.tap_key_properties])
        if None in key:
            missing = [k for k in self.tap_key_properties if record.get(k) is None]
            raise RecordMissingKeyError(self.stream_name, line, missing)
        try:
            if key in self._seen_keys:
                if self._one_row_per_key:
                    # History mode: every record is a version, so a key's second record in a
                    # batch starts the next batch (versions never depend on batch bounds).
                    self.drain_whole()
                    self._seen_keys.add(key)
                else:
                    self._repeated_keys = True
            else:
                self._seen_keys.add(key)
        except TypeError:  # an object as key: let the database de-duplicate
            self._repeated_keys = True
        row = self._build_row(record)
        if not self._rows:
            self._batch = self._ledger.batch_started(seq)
            if self._overwrite:
                self._ledger.hold_until_swap(self.schema_name, self.table_name, seq)
        if self._children_of:
            self._follow_parent_run(record, key, seq, nbytes)
        self._rows.append(row)
        self._lines.append(line)
        self._bytes += nbytes

    def _follow_parent_run(
        self, record: dict[str, Any], key: tuple[Any, ...], seq: int, nbytes: int
    ) -> None:
        parent = tuple([record.get(p) for p in self._children_of])
        if parent != self._run_parent or not self._rows:
            self._run_start, self._run_seq, self._run_parent = len(self._rows), seq, parent
            self._run_keys, self._run_bytes = [], 0
        self._run_keys.append(key)
        self._run_bytes += nbytes

    def drain_whole(self) -> None:
        """Load every buffered row now, a child set's last run too (the stream's rows end here:
        a new schema follows, or history mode starts a batch at a repeated key)."""
        self.closing = True
        try:
            self._target.drain_one(self)
        finally:
            self.closing = False

    def _held_rows(self) -> int:
        """How many of the buffered rows a drain leaves for the next batch: the run of the last
        parent's children, for a child set, until the stream's input ended. A batch retires the
        children of its parents that it does not hold (see child_sets), so a batch never ends
        inside one parent's run: its second part would retire the first."""
        if not self._children_of or self.closing or self._ledger.input_complete:
            return 0
        return len(self._rows) - self._run_start

    def _add_metadata(self, record: dict[str, Any], message: Mapping[str, Any]) -> None:
        now = datetime.now(tz=UTC)
        if self._batched_at is None:
            self._batched_at = now
        record["_sdc_extracted_at"] = message.get("time_extracted")
        record["_sdc_received_at"] = now
        record["_sdc_batched_at"] = self._batched_at
        record["_sdc_sequence"] = time.time_ns() // 1000
        record["_sdc_table_version"] = message.get("version")
        record["_sdc_sync_started_at"] = self.sync_started_at

    # SDK interface

    def process_record(self, record: dict[str, Any], context: dict[str, Any]) -> None:
        """Records reaching the sink through the SDK's path (stream maps configured)."""
        _ = context
        if self._versioned and not self._fill_metadata:
            record[sql_builders.TABLE_VERSION] = self._target.current_version
        record, count = values.strip_nul(record)
        if count:
            self._target.count_nul(self.stream_name, count)
        line = self._target.current_line
        self.add_record(record, line, 0, self._ledger.seq)

    @property
    def current_size(self) -> int:
        """Rows buffered."""
        return len(self._rows)

    @property
    def is_full(self) -> bool:
        """Whether the batch reached its row or byte bound (a child set's batch: and holds a
        parent's complete run before the last parent's, which may not be complete yet)."""
        full = len(self._rows) >= self._max_rows or self._bytes >= self._max_bytes
        return full and (not self._children_of or self._run_start > 0)

    def start_drain(self) -> dict[str, Any]:
        """The batch context (records are held by the sink itself)."""
        return {}

    def process_batch(self, context: dict[str, Any]) -> None:
        """Hand the buffered rows to the background loader (one transaction per batch).

        The next batch is read while this one loads; the STATE gate counts it as uncommitted
        until its transaction has committed.
        """
        for record in context.get("records") or ():  # BATCH messages
            self.add_record(record, None, 0, self._ledger.seq)
        if not self._rows:
            return
        layout = self.layout
        batch = self._batch
        assert layout is not None
        assert batch is not None
        held = self._held_rows()
        if held == len(self._rows):
            return  # one parent's run so far: it stays whole in the buffer
        # The previous batch first: should it have failed, this one stays buffered (salvaged).
        self._ledger.wait()
        cut = len(self._rows) - held
        rows, lines = self._rows[:cut], self._lines[:cut]
        nbytes = self._bytes - (self._run_bytes if held else 0)
        dedupe, load_table, columns = self._repeated_keys, self.load_table, self._columns
        self._rows, self._lines, self._bytes = (
            self._rows[cut:],
            self._lines[cut:],
            self._bytes - nbytes,
        )
        self._seen_keys = set(self._run_keys) if held else set()
        self._repeated_keys = held > len(self._seen_keys)
        self._batch = self._ledger.batch_started(self._run_seq) if held else None
        self._run_start = 0
        self._batched_at = None
        self.tally_record_read(len(rows))
        self.record_counter_metric.increment(len(rows))

        measure = self._target.quality.enabled
        props = list(self._props)
        key_positions = [props.index(k) for k in self.tap_key_properties if k in props]
        classified: list[tuple[int, int, int] | None] = []

        def classify(conn: psycopg.Connection[Any], stage: str) -> None:
            # Before the upsert: which staged rows are new, changed or the same (last try wins).
            classified[:] = [
                quality.classify_staged(
                    conn, stage, layout.schema, load_table, columns, layout.key_columns
                )
            ]

        def load() -> None:
            started = time.perf_counter()
            self._load(
                layout,
                load_table,
                columns,
                rows,
                lines,
                dedupe=dedupe,
                on_staged=classify if measure else None,
            )
            seconds = time.perf_counter() - started
            self._target.metrics.batch_committed(self.stream_name, len(rows), seconds)
            if measure:
                self._target.quality.batch_loaded(
                    self.stream_name,
                    props,
                    columns,
                    rows,
                    key_positions,
                    classified[0] if classified else None,
                    repeated_keys=dedupe,
                    staged=bool(classified),
                )
            table = f"{self.schema_name}.{load_table}"
            # One line per batch; with the SDK's structured logging (SINGER_SDK_LOG_CONFIG, or
            # Meltano's `structured-logging`) the extra fields are JSON fields of the line.
            self.logger.info(
                "Batch committed: %d rows (%d bytes) of '%s' into %s in %.3f s",
                len(rows),
                nbytes,
                self.stream_name,
                table,
                seconds,
                extra={
                    "event_type": "batch_committed",
                    "stream_name": self.stream_name,
                    "table": table,
                    "rows": len(rows),
                    "bytes": nbytes,
                    "duration_seconds": round(seconds, 4),
                },
            )

        # Until `load` has committed, the ledger counts the batch's records as uncommitted.
        self._ledger.load(batch, load)

    def _load(
        self,
        layout: TableLayout,
        load_table: str,
        columns: list[str],
        rows: list[list[Any]],
        lines: list[int | None],
        *,
        dedupe: bool,
        on_staged: Callable[[psycopg.Connection[Any], str], None] | None = None,
    ) -> None:
        known = [line for line in lines if line is not None]
        span = (min(known), max(known)) if known else None
        try:
            self.connector.load_batch(
                self.stream_name,
                layout,
                load_table,
                columns,
                rows,
                upsert=self._upsert,
                hard_delete=self._hard_delete,
                expansions=self.expansions,
                # A child set is always staged: its retirement compares the parents' rows with
                # the exact keys of the batch (see child_sets).
                dedupe=dedupe or bool(self._children_of),
                on_staged=on_staged,
            )
        except BatchFailure as failure:
            row = failure.row
            line = lines[row] if row is not None and row < len(lines) else None
            raise BatchLoadError(self.stream_name, failure.problem, line=line, lines=span) from None
        except psycopg.OperationalError as exc:
            raise BatchLoadError(
                self.stream_name,
                f"lost the database connection ({self.connector.describe_error(exc)})",
                lines=span,
            ) from None

    def activate_version(self, new_version: int) -> None:
        """Soft- or hard-delete rows of older versions, after this stream's rows are loaded."""
        self.enable_versions()
        self.drain_whole()
        assert self.layout is not None
        affected = self.connector.activate_version(
            self.layout,
            self.load_table,
            new_version,
            hard_delete=self._hard_delete,
            expansions=self.expansions,
        )
        self._target.quality.retired(self.stream_name, affected)
        self.logger.info(
            "ACTIVATE_VERSION %s: %s %d rows of older versions",
            new_version,
            "deleted" if self._hard_delete else "soft-deleted",
            affected,
        )

    def clean_up(self) -> None:
        """For `overwrite`, swap this run's rows in once the input ended normally."""
        if self._overwrite and not self.superseded and self._ledger.input_complete:
            self.connector.replace_contents(self.schema_name, self.table_name, self.load_table)
            self._ledger.swapped(self.schema_name, self.table_name)
            self.logger.info("Replaced the contents of %s.%s", self.schema_name, self.table_name)
        super().clean_up()
