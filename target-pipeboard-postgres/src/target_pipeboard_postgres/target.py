"""target-pipeboard-postgres: the Singer target."""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities

from target_pipeboard_postgres import (
    changelog_history,
    history_mode,
    identifiers,
    partitioning,
    settings,
    stage_history,
)
from target_pipeboard_postgres.commit_ledger import CommitLedger
from target_pipeboard_postgres.connector import PostgresConnector, TableLayout
from target_pipeboard_postgres.errors import (
    MalformedLineError,
    RecordBeforeSchemaError,
    SchemaError,
    StreamNameClashError,
)
from target_pipeboard_postgres.metrics import TargetMetrics, default_pipeline
from target_pipeboard_postgres.post_load import PostLoadExpansion
from target_pipeboard_postgres.quality import RunQuality
from target_pipeboard_postgres.reader import SingerLineReader
from target_pipeboard_postgres.sdk_seam import TargetSeam
from target_pipeboard_postgres.sinks import DEFAULT_SCHEMA, PostgresSink
from target_pipeboard_postgres.values import strip_nul


def _config_schema() -> dict[str, Any]:
    schema = copy.deepcopy(settings.CONFIG_SCHEMA)
    schema["properties"].update(stage_history.config_property().to_dict())
    schema["properties"].update(history_mode.config_property().to_dict())
    for prop in partitioning.config_properties():
        schema["properties"].update(prop.to_dict())
    return schema


class TargetPipeboardPostgres(TargetSeam):
    """Loads any Singer tap's output into PostgreSQL: COPY-staged upserts, state after commit.

    Its job is the dispatch of Singer messages: each goes to its sink (records, schemas) or to
    the commit ledger (STATE); the SDK is reached through :mod:`.sdk_seam`.
    """

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
        self._nul_counts: dict[str, int] = defaultdict(int)
        self._loaded_schemas: set[str] = set()
        self._tables: dict[tuple[str, str], str] = {}
        self._replication_keys: dict[str, str] = {}
        super().__init__(**kwargs)
        self.quality = RunQuality(
            self.metrics.registry, enabled=self.config.get("data_quality", True) is not False
        )
        self.ledger = CommitLedger(
            wait_limit=float(
                self.config.get("batch_wait_limit_seconds") or settings.DEFAULT_BATCH_WAIT_LIMIT
            ),
            write_state=self.emit_state,
            drain_all=self.drain_all,
        )
        # Fail at start, not at the first SCHEMA, when no database is configured.
        settings.connection_spec(self.config)
        tls_warning = settings.unverified_tls_warning(self.config)
        if tls_warning is not None:
            self.logger.warning(tls_warning)
        self.reader.exact_numbers = bool(self.config.get("exact_numbers"))
        self.reader.busy = self.ledger.busy
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
        self._stage_history_queue = stage_history.PendingQueue(self.stage_history)
        self._changelog_history_queue = changelog_history.PendingRecords(
            lambda stream: identifiers.split_stream_name(stream, None)[1]
        )
        self.history = history_mode.HistorySettings.from_config(
            self.config.get(history_mode.SETTING_NAME), self.config.get("load_method")
        )

    def normalize_config(self, config: dict[str, Any]) -> None:
        """The one place config is coerced (see settings.NUMBER_SETTINGS)."""
        settings.normalize(config)
        history_mode.normalize(config)
        partitioning.normalize(config)

    def make_connector(self) -> PostgresConnector:
        """The connector all sinks share; batches load on the ledger's loader thread."""
        return PostgresConnector(dict(self.config), self.ledger.loader)

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

    def history_table(self, stream: str, table: str, keys: Sequence[str]) -> str | None:
        """The history table ``stream`` keeps beside ``table`` (history mode), if any."""
        if not self.history.applies(stream):
            return None
        if not keys:
            if self.history.named(stream):
                raise SchemaError(
                    stream,
                    self.current_line,
                    "history mode (history_streams) needs key properties; this stream has none",
                )
            self.logger.warning(
                "Stream '%s' has no key properties: loaded without history (history_streams).",
                stream,
            )
            return None
        return history_mode.history_table(table)

    def post_load_expansions(
        self, stream: str, layout: TableLayout, history_table: str | None
    ) -> list[PostLoadExpansion]:
        """What runs inside each batch transaction of ``stream``, loaded as ``layout``."""
        expansions: list[PostLoadExpansion] = [
            self._stage_history_queue,
            self._changelog_history_queue,
        ]
        if history_table is not None:
            replication_key = self._replication_keys.get(stream)
            expansions.append(history_mode.HistoryMode(layout, history_table, replication_key))
        return expansions

    # Messages

    def _require(self, message: dict[str, Any], keys: Iterable[str]) -> None:
        missing = [k for k in keys if k not in message]
        if missing:
            raise MalformedLineError(
                self.current_line,
                f"{message.get('type')} message lacks {', '.join(missing)}",
                stream=message.get("stream") if isinstance(message.get("stream"), str) else None,
            )

    def handle_record(self, message_dict: dict[str, Any]) -> None:
        """A RECORD: numbered by the ledger, buffered by its sink (a full batch loads)."""
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
        seq = self.ledger.record_arrived()
        if not self._fast_path:
            if stream not in self.mapper.stream_maps:
                raise RecordBeforeSchemaError(stream, self.current_line)
            self.current_version = message_dict.get("version")
            if self.current_version is not None:
                for stream_map in self.mapper.stream_maps[stream]:
                    sink = self.active_sink(stream_map.stream_alias)
                    if isinstance(sink, PostgresSink):
                        sink.enable_versions()
            self.sdk_process_record(message_dict)
            return
        sink = self.active_sink(stream)
        if sink is None:
            raise RecordBeforeSchemaError(stream, self.current_line)
        assert isinstance(sink, PostgresSink)
        sink.add_message(message_dict, reader.line_number, reader.line_bytes, seq)
        if sink.is_full:
            self.drain_one(sink)
            self.ledger.release_state()
        self.ledger.drain_if_stale()

    def handle_schema(self, message_dict: dict[str, Any]) -> None:
        """A SCHEMA: checked; rows under the old schema load first; the SDK makes the sink."""
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
        bookmarks = message_dict.get("bookmark_properties")
        if isinstance(bookmarks, list) and len(bookmarks) == 1 and isinstance(bookmarks[0], str):
            self._replication_keys[stream] = bookmarks[0]
        else:
            self._replication_keys.pop(stream, None)
        # Rows buffered under the previous schema load first, with the table as it was.
        previous = self.active_sink(stream)
        if isinstance(previous, PostgresSink) and (
            previous.original_schema != schema or list(previous.key_properties) != (keys or [])
        ):
            previous.drain_whole()
            self.ledger.release_state()
        try:
            self.sdk_process_schema(message_dict)
        except SchemaError as exc:
            exc.line = self.current_line
            raise
        current = self.active_sink(stream)
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

    def handle_state(self, message_dict: dict[str, Any]) -> None:
        """A STATE: to the ledger, which emits it once the records before it are committed."""
        self._require(message_dict, ("value",))
        self.ledger.state_received(message_dict["value"])

    def handle_activate_version(self, message_dict: dict[str, Any]) -> None:
        """An ACTIVATE_VERSION: the stream's sinks retire older versions."""
        self._require(message_dict, ("stream", "version"))
        stream = message_dict["stream"]
        if stream not in self.mapper.stream_maps:
            raise RecordBeforeSchemaError(stream, self.current_line)
        if not isinstance(message_dict["version"], int):
            raise MalformedLineError(
                self.current_line, "ACTIVATE_VERSION `version` must be an integer", stream=stream
            )
        self.sdk_process_activate_version(message_dict)
        self.ledger.release_state()

    # The SDK's drains and checks, wired to the ledger

    def check_batch_age(self) -> None:
        """On the SDK's record path: commit batches that waited too long."""
        self.ledger.drain_if_stale()

    def after_drain(self) -> None:
        """Drained batches committed: let STATE advance."""
        self.ledger.release_state()

    def process_endofpipe(self) -> None:
        """Load what is buffered, finish `overwrite` swaps, emit the final state."""
        self.ledger.input_complete = True
        try:
            self.ledger.raise_deferred()
            self.drain_all(is_endofpipe=True)
            self.ledger.wait()
            self.ledger.release_state()
            for stream, count in sorted(self._nul_counts.items()):
                self.logger.warning(
                    "Removed %d NUL character(s) from string values of stream '%s' "
                    "(Postgres text cannot hold them).",
                    count,
                    stream,
                )
            self._expand_stage_history()
            self._sweep_partitions()
            self._finish_quality(succeeded=True)
        except Exception as exc:
            self._finish_failed_quality(exc)
            raise
        finally:
            self._close()

    def _close(self) -> None:
        self.ledger.close()
        if self.connector_opened:
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
        conn = self.target_connector.pg if self.connector_opened else None
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
        stays = partitioning.STAGE_HISTORY_TABLE
        partitioned = self.target_connector.partitions.column_for(stays) is not None
        for schema in sorted(self._loaded_schemas):
            stage_history.expand(
                conn,
                schema,
                self.stage_history,
                table_name=lambda stream: identifiers.split_stream_name(stream, None)[1],
                partitioned=partitioned,
            )
            self.target_connector.sweep_table(schema, stays)
            changelog_history.rebuild(
                conn, schema, table_name=lambda s: identifiers.split_stream_name(s, None)[1]
            )

    def _sweep_partitions(self) -> None:
        """Rows the run's expansions wrote into DEFAULT partitions (versions rebuilt from
        changelogs into a partitioned history table) get their partitions."""
        for sink in self.active_sinks():
            layout = sink.layout if isinstance(sink, PostgresSink) else None
            if layout is not None and layout.partitioned:
                self.target_connector.sweep_partitions(layout)

    # Run

    def run_lines(self, process: Callable[[], Counter[str]]) -> Counter[str]:
        """Process input lines; on failure, keep what can be kept and close the connection."""
        self.ledger.start_watch()
        try:
            try:
                stats = process()
            finally:
                self.ledger.stop_watch()
            self.ledger.raise_deferred()
        except Exception as exc:
            self._salvage()
            self._finish_failed_quality(exc)
            self._close()
            raise
        except BaseException:
            self._close()
            raise
        return stats

    def before_termination(self) -> None:
        """No idle drain may run while the SDK drains on the way out."""
        self.ledger.stop_watch()

    def _salvage(self) -> None:
        """After bad input or a failed batch, commit the good rows still buffered, emit their
        state, and let the original error stop the run."""
        if not self.connector_opened:
            return
        try:
            self.drain_all()
            self.ledger.wait()
            self.ledger.release_state()
        except Exception:
            self.logger.exception("Could not load the rows buffered before the failure")

    def run_listen(self, listen: Callable[[], None]) -> None:
        """Process the input; close the connection and push metrics however the run ends."""
        gateway = self.config.get("pushgateway_url")
        pipeline = self.config.get("metrics_pipeline") or default_pipeline()
        try:
            listen()
        except BaseException:
            self.metrics.push(gateway, pipeline)
            raise
        else:
            self.metrics.run_succeeded()
            self.metrics.push(gateway, pipeline)
        finally:
            self._close()
