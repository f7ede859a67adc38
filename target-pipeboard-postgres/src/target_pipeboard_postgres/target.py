"""target-pipeboard-postgres: the Singer target."""

from __future__ import annotations

import copy
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from types import FrameType
from typing import IO, Any, ClassVar

from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities
from singer_sdk.sql import SQLTarget

from target_pipeboard_postgres import identifiers, settings, stage_history
from target_pipeboard_postgres.connector import PostgresConnector
from target_pipeboard_postgres.errors import (
    MalformedLineError,
    RecordBeforeSchemaError,
    SchemaError,
    StreamNameClashError,
)
from target_pipeboard_postgres.metrics import TargetMetrics, default_pipeline
from target_pipeboard_postgres.quality import RunQuality
from target_pipeboard_postgres.reader import SingerLineReader
from target_pipeboard_postgres.sinks import DEFAULT_SCHEMA, PostgresSink
from target_pipeboard_postgres.state import StateGate
from target_pipeboard_postgres.values import strip_nul


def _config_schema() -> dict[str, Any]:
    schema = copy.deepcopy(settings.CONFIG_SCHEMA)
    extra = stage_history.config_property().to_dict()
    schema["properties"].update(extra)
    return schema


class TargetPipeboardPostgres(SQLTarget):
    """Loads any Singer tap's output into PostgreSQL: COPY-staged upserts, state after commit."""

    name = "target-pipeboard-postgres"
    package_name = "target-pipeboard-postgres"
    default_sink_class = PostgresSink
    message_reader_class = SingerLineReader
    config_jsonschema: ClassVar[dict[str, Any]] = _config_schema()
    capabilities: ClassVar[list[Any]] = [
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
        TargetCapabilities.VALIDATE_RECORDS,
        PluginCapabilities.ACTIVATE_VERSION,
        TargetCapabilities.TARGET_SCHEMA,
        TargetCapabilities.HARD_DELETE,
    ]

    def __init__(self, **kwargs: Any) -> None:
        self.metrics = TargetMetrics()
        self._quality_written = False
        self.seq = 0
        self.input_complete = False
        self._gate = StateGate()
        self._failed_seq: int | None = None
        self._state_lock = threading.Lock()
        self._nul_counts: dict[str, int] = defaultdict(int)
        self._loaded_schemas: set[str] = set()
        self._tables: dict[tuple[str, str], str] = {}
        # `overwrite`: tables whose shadow this run has emptied, and the first record of each
        # whose swap is still to come (no STATE may pass it before the swap).
        self._overwrites_started: set[tuple[str, str]] = set()
        self._swap_holds: dict[tuple[str, str], int] = {}
        # Batch age: when the oldest buffered batch may have waited `batch_wait_limit_seconds`.
        self._age_deadline = math.inf
        self._stale = False
        self._busy = threading.RLock()  # held while a message is handled or an idle drain runs
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._deferred_error: BaseException | None = None
        super().__init__(**kwargs)
        self.quality = RunQuality(
            self.metrics.registry, enabled=self.config.get("data_quality", True) is not False
        )
        self._wait_limit = float(
            self.config.get("batch_wait_limit_seconds") or settings.DEFAULT_BATCH_WAIT_LIMIT
        )
        # Fail at start, not at the first SCHEMA, when no database is configured.
        settings.connection_spec(self.config)
        tls_warning = settings.unverified_tls_warning(self.config)
        if tls_warning is not None:
            self.logger.warning(tls_warning)
        self.reader.exact_numbers = bool(self.config.get("exact_numbers"))
        self.reader.busy = self._busy
        # One connection, one batch at a time: sinks are drained in order.
        self.max_parallelism = 1
        # The SDK's own record path (mapping, flattening, JSON-schema validation) only when
        # configured; otherwise records go straight to their sink.
        self._fast_path = not (
            self.config.get("stream_maps")
            or self.config.get("flattening_enabled")
            or self.config.get("validate_records")
        )
        self.current_version: int | None = None
        self.stage_history = stage_history.StageHistorySettings.from_config(
            self.config.get(stage_history.SETTING_NAME)
        )

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # The one place config is coerced: after the SDK has merged files and environment
        # variables, before it checks the values against the schema (which wants numbers where
        # Meltano passes strings, see settings.NUMBER_SETTINGS).
        settings.normalize(self._config)
        return super()._validate_config(raise_errors=raise_errors)

    @property
    def target_connector(self) -> PostgresConnector:
        """The one connector all sinks share."""
        if self._target_connector is None:
            self._target_connector = PostgresConnector(dict(self.config))
        assert isinstance(self._target_connector, PostgresConnector)
        return self._target_connector

    @property
    def reader(self) -> SingerLineReader:
        """The line reader (knows the current line number)."""
        assert isinstance(self.message_reader, SingerLineReader)
        return self.message_reader

    @property
    def current_line(self) -> int:
        """The number of the input line being processed."""
        return self.reader.line_number

    def count_nul(self, stream: str, count: int) -> None:
        """Note NUL characters removed from a stream's values."""
        self._nul_counts[stream] += count

    # Messages

    def _require(self, message: dict[str, Any], keys: Iterable[str]) -> None:
        missing = [k for k in keys if k not in message]
        if missing:
            raise MalformedLineError(
                self.current_line,
                f"{message.get('type')} message lacks {', '.join(missing)}",
                stream=message.get("stream") if isinstance(message.get("stream"), str) else None,
            )

    def _process_record_message(self, message_dict: dict[str, Any]) -> None:
        stream = message_dict.get("stream")
        record = message_dict.get("record")
        if not isinstance(stream, str) or not isinstance(record, dict):
            self._require(message_dict, ("stream", "record"))
            raise MalformedLineError(
                self.current_line, "RECORD needs a string `stream` and an object `record`"
            )
        reader = self.reader
        if reader.line_has_nul:
            record, count = strip_nul(record)
            message_dict["record"] = record
            self.count_nul(stream, count)
        self.seq += 1
        if not self._fast_path:
            if stream not in self.mapper.stream_maps:
                raise RecordBeforeSchemaError(stream, self.current_line)
            self.current_version = message_dict.get("version")
            if self.current_version is not None:
                for stream_map in self.mapper.stream_maps[stream]:
                    sink = self._sinks_active.get(stream_map.stream_alias)
                    if isinstance(sink, PostgresSink):
                        sink.enable_versions()
            super()._process_record_message(message_dict)
            return
        sink = self._sinks_active.get(stream)
        if sink is None:
            raise RecordBeforeSchemaError(stream, self.current_line)
        assert isinstance(sink, PostgresSink)
        sink.add_message(message_dict, reader.line_number, reader.line_bytes, self.seq)
        if sink.is_full:
            self.drain_one(sink)
            self._release_state()
        if self._stale:
            self._drain_stale()

    def _process_schema_message(self, message_dict: dict[str, Any]) -> None:
        self._require(message_dict, ("stream", "schema"))
        stream = message_dict["stream"]
        schema = message_dict["schema"]
        if not isinstance(stream, str) or not stream:
            raise SchemaError(None, self.current_line, "`stream` must be a non-empty string")
        if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
            raise SchemaError(stream, self.current_line, "the schema has no `properties` object")
        keys = message_dict.get("key_properties")
        if keys is not None and (
            not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)
        ):
            raise SchemaError(stream, self.current_line, "`key_properties` must be a list of names")
        self._claim_table(stream)
        # Rows buffered under the previous schema load first, with the table as it was.
        previous = self._sinks_active.get(stream)
        if isinstance(previous, PostgresSink) and (
            previous.original_schema != schema or list(previous.key_properties) != (keys or [])
        ):
            self.drain_one(previous)
            self._release_state()
        try:
            super()._process_schema_message(message_dict)
        except SchemaError as exc:
            exc.line = self.current_line
            raise
        current = self._sinks_active.get(stream)
        if previous is not None and current is not previous and isinstance(previous, PostgresSink):
            previous.superseded = True
        if isinstance(current, PostgresSink):
            self._loaded_schemas.add(current.schema_name)
            bookmarks = message_dict.get("bookmark_properties")
            self.quality.declared(
                stream,
                current.schema_name,
                current.table_name,
                bookmarks if isinstance(bookmarks, list) else None,
            )

    def _claim_table(self, stream: str) -> None:
        """Refuse a second stream whose name conforms to a table another stream loads."""
        schema, table = identifiers.split_stream_name(
            stream, self.config.get("default_target_schema")
        )
        place = (schema or DEFAULT_SCHEMA, table)
        other = self._tables.setdefault(place, stream)
        if other != stream:
            raise StreamNameClashError(stream, other, ".".join(place), self.current_line)

    def _process_state_message(self, message_dict: dict[str, Any]) -> None:
        self._require(message_dict, ("value",))
        self._gate.received(self.seq, message_dict["value"])
        if self._stale or time.monotonic() >= self._age_deadline:
            self._drain_stale()
        self._release_state()

    def _process_activate_version_message(self, message_dict: dict[str, Any]) -> None:
        self._require(message_dict, ("stream", "version"))
        stream = message_dict["stream"]
        if stream not in self.mapper.stream_maps:
            raise RecordBeforeSchemaError(stream, self.current_line)
        if not isinstance(message_dict["version"], int):
            raise MalformedLineError(
                self.current_line, "ACTIVATE_VERSION `version` must be an integer", stream=stream
            )
        super()._process_activate_version_message(message_dict)
        self._release_state()

    # Batch age: a trickle of input still commits (and lets STATE out) within a bound

    def batch_started(self) -> float:
        """A sink buffered the first row of a batch; the time it did (``time.monotonic``)."""
        now = time.monotonic()
        if self._age_deadline == math.inf:
            self._age_deadline = now + self._wait_limit
        return now

    def _handle_max_record_age(self) -> None:
        # The SDK's check (every record on its path; its own five-minute bound is replaced).
        if self._stale:
            self._drain_stale()

    def _drain_stale(self) -> None:
        """Commit every buffered batch once the oldest has waited `batch_wait_limit_seconds`."""
        self._stale = False
        if self._deferred_error is not None:
            error, self._deferred_error = self._deferred_error, None
            raise error
        sinks = [*self._sinks_to_clear, *self._sinks_active.values()]
        starts = [
            s.batch_started
            for s in sinks
            if isinstance(s, PostgresSink) and s.batch_started is not None
        ]
        if not starts:
            self._age_deadline = math.inf
            return
        oldest = min(starts)
        if time.monotonic() - oldest < self._wait_limit:
            self._age_deadline = oldest + self._wait_limit
            return
        self._age_deadline = math.inf
        self.logger.info(
            "Committing the buffered batches: the oldest waited longer than %ss "
            "(batch_wait_limit_seconds).",
            self._wait_limit,
        )
        self.drain_all()

    def _watch_batch_age(self) -> None:
        """While the input is idle, commit batches that waited too long (a thread)."""
        poll = min(1.0, max(0.05, self._wait_limit / 4))
        while not self._watch_stop.wait(poll):
            if time.monotonic() < self._age_deadline:
                continue
            self._stale = True  # the main thread drains at its next message, if it comes first
            # Only when no batch is loading, so an earlier batch's error stays the main thread's.
            connector = self._target_connector
            if not isinstance(connector, PostgresConnector) or not connector.idle():
                continue
            if not self._busy.acquire(timeout=poll):
                continue
            try:
                if self._stale:
                    self._drain_stale()
            except BaseException as exc:  # raised in the main thread at its next message
                self._deferred_error = exc
                self._stale = True
                return
            finally:
                self._busy.release()

    def _start_watch(self) -> None:
        self._watch_stop.clear()
        self._watcher = threading.Thread(
            target=self._watch_batch_age, name="pipeboard-batch-age", daemon=True
        )
        self._watcher.start()

    def _stop_watch(self) -> None:
        self._watch_stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join()
        self._watcher = None

    # `overwrite`: each run fills an empty shadow, swapped in at the end

    def start_overwrite(self, schema: str, table: str) -> bool:
        """Whether this is the run's first setup of ``table`` (its shadow must be emptied)."""
        if (schema, table) in self._overwrites_started:
            return False
        self._overwrites_started.add((schema, table))
        return True

    def hold_state_until_swap(self, schema: str, table: str, seq: int) -> None:
        """Record ``seq`` went to a shadow: no STATE may pass it until the swap commits.

        Rows in a shadow are not in the table yet, and a rerun empties the shadow: a STATE
        emitted before the swap would let the rerun skip records the table never got.
        """
        self._swap_holds.setdefault((schema, table), seq)

    def swapped(self, schema: str, table: str) -> None:
        """The shadow of ``table`` replaced its contents."""
        self._swap_holds.pop((schema, table), None)

    # State after commit

    def hold_state_before(self, seq: int | None) -> None:
        """A batch starting at record ``seq`` failed: no STATE covering it may be emitted."""
        if seq is not None and (self._failed_seq is None or seq < self._failed_seq):
            self._failed_seq = seq

    def _oldest_uncommitted(self) -> int | None:
        oldest: int | None = self._failed_seq
        for held in list(self._swap_holds.values()):
            if oldest is None or held < oldest:
                oldest = held
        for sink in [*self._sinks_to_clear, *list(self._sinks_active.values())]:
            for first in (getattr(sink, "first_seq", None), getattr(sink, "in_flight_seq", None)):
                if first is not None and (oldest is None or first < oldest):
                    oldest = first
        return oldest

    def release_state(self) -> None:
        """Emit the newest STATE whose records are all committed (called after each commit)."""
        with self._state_lock:
            state = self._gate.release(self._oldest_uncommitted())
            if state is not None:
                self._write_state_message(copy.deepcopy(state))

    _release_state = release_state

    def _drain_all(self, sink_list: Iterable[Any], parallelism: int) -> None:
        super()._drain_all(sink_list, parallelism)
        self._release_state()

    def process_endofpipe(self) -> None:
        """Load what is buffered, finish `overwrite` swaps, emit the final state."""
        self.input_complete = True
        try:
            if self._deferred_error is not None:
                self._drain_stale()  # raises it
            self.drain_all(is_endofpipe=True)
            self.target_connector.wait()
            self._release_state()
            for stream, count in sorted(self._nul_counts.items()):
                self.logger.warning(
                    "Removed %d NUL character(s) from string values of stream '%s' "
                    "(Postgres text cannot hold them).",
                    count,
                    stream,
                )
            self._expand_stage_history()
            self._finish_quality(succeeded=True)
        except Exception as exc:
            self._finish_failed_quality(exc)
            raise
        finally:
            self._close()

    def _close(self) -> None:
        if self._target_connector is not None:
            self.target_connector.close()

    def _finish_failed_quality(self, error: BaseException) -> None:
        """After a failure: record the refused record and what was loaded, if still possible."""
        try:
            self._finish_quality(succeeded=False, error=error)
        except Exception:
            self.logger.exception("Could not record the run's data quality")

    def _finish_quality(self, *, succeeded: bool, error: BaseException | None = None) -> None:
        """Write the run's quality figures (one row per stream) and set their gauges (once)."""
        if self._quality_written or not self.quality.enabled:
            return
        self._quality_written = True
        stream = getattr(error, "stream", None)
        if error is not None and isinstance(stream, str) and stream in self.quality.streams:
            self.quality.refused(stream, error)
        pipeline = self.config.get("metrics_pipeline") or default_pipeline()
        conn = self.target_connector.pg if self._target_connector is not None else None
        self.quality.finish(conn, self._nul_counts, pipeline=pipeline, succeeded=succeeded)
        self.logger.info(
            "Data quality of %d stream(s) written to %s (%.3f s measuring)",
            len(self.quality.streams),
            "_pipeboard_quality",
            self.quality.seconds,
        )

    def _expand_stage_history(self) -> None:
        """Derived deal stage history, once this run's batches are all committed."""
        if not self._loaded_schemas:
            return
        conn = self.target_connector.pg
        for schema in sorted(self._loaded_schemas):
            stage_history.expand(
                conn,
                schema,
                self.stage_history,
                table_name=lambda stream: identifiers.split_stream_name(stream, None)[1],
            )

    # Run

    def process_lines(self, file_input: IO[str] | None) -> Counter[str]:  # type: ignore[misc]
        """Process input lines; on failure, keep what can be kept and close the connection.

        (Final in the SDK; wrapped, not changed.)
        """
        self._start_watch()
        try:
            try:
                stats = super().process_lines(file_input)
            finally:
                self._stop_watch()
            if self._deferred_error is not None:
                self._drain_stale()  # raises it
        except Exception as exc:
            self._salvage()
            self._finish_failed_quality(exc)
            self._close()
            raise
        except BaseException:
            self._close()
            raise
        return stats

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        # No idle drain may run while the SDK drains on the way out.
        self._stop_watch()
        super()._handle_termination(signum, frame)

    def _salvage(self) -> None:
        """After bad input or a failed batch, commit the good rows still buffered, emit their
        state, and let the original error stop the run."""
        if self._target_connector is None:
            return
        try:
            self.drain_all()
            self.target_connector.wait()
            self._release_state()
        except Exception:
            self.logger.exception("Could not load the rows buffered before the failure")

    def listen(self, file_input: IO[str] | None = None) -> None:  # type: ignore[misc]
        """Process the input; close the connection and push metrics however the run ends.

        (Final in the SDK; wrapped, not changed: a failed run must not leave its connection
        open, and its metrics are pushed as well.)
        """
        gateway = self.config.get("pushgateway_url")
        pipeline = self.config.get("metrics_pipeline") or default_pipeline()
        try:
            super().listen(file_input)
        except BaseException:
            self.metrics.push(gateway, pipeline)
            raise
        else:
            self.metrics.run_succeeded()
            self.metrics.push(gateway, pipeline)
        finally:
            self._close()
