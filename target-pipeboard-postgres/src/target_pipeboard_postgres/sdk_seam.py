"""The seam to the Singer SDK: every override of a private or final SDK member, in one place.

The target uses the SDK for its command line, configuration, stream maps, flattening, record
validation, ``--about`` and sink bookkeeping; its message handling, draining and STATE rule are
its own. Where that needs an SDK member that is private (``_...``) or ``@final``, the override is
here, with why, and delegates to a plainly named hook (``handle_record``, ``after_drain``, ...)
that :mod:`.target` implements. ``tests/test_target_sdk_seam.py`` checks that each member still
exists with the signature and behaviour relied on, so an SDK upgrade that changes one fails
there, loudly, instead of changing the target silently.

Public SDK members the target uses as documented (``message_reader_class``,
``SimpleSingerReader.process_lines``/``deserialize_json``, ``drain_one``, ``drain_all``,
``get_sink``, ``process_endofpipe``, ``Sink.process_batch``/``start_drain``/``clean_up``/
``activate_version``, ``SQLSink.setup``) are overridden where they are, not here.
:data:`SDK_MEMBERS` names every private or final SDK member touched here, and why;
``tests/test_sdk_seams.py`` fails when any other module of the target overrides or reaches one.
"""

from __future__ import annotations

import abc
import functools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from types import FrameType
from typing import IO, Any, Final

from singer_sdk.sinks import Sink
from singer_sdk.sql import SQLSink, SQLTarget

from target_pipeboard_postgres.connector import PostgresConnector

DELETED_AT = "_sdc_deleted_at"

#: Every private or final Singer SDK member the target overrides, reads or calls (only here), and
#: why (the comment at each override says more).
SDK_MEMBERS: Final[dict[str, str]] = {
    "PluginBase._validate_config": (
        "overridden -> normalize_config(config): after the merge of files and environment, "
        "before validation; no public hook runs there"
    ),
    "PluginBase._config": "passed to normalize_config(): the merged config, before validation",
    "Target._process_record_message": "overridden -> handle_record: the hot path",
    "Target._process_schema_message": (
        "overridden -> handle_schema: validation, one table per stream, buffered rows loaded "
        "before the SDK replaces the sink"
    ),
    "Target._process_state_message": (
        "overridden -> handle_state: STATE once the records before it are committed"
    ),
    "Target._process_activate_version_message": (
        "overridden -> handle_activate_version: validated first; STATE may advance after it"
    ),
    "Target._handle_max_record_age": (
        "overridden -> check_batch_age: batch_wait_limit_seconds replaces the SDK's 5 minutes"
    ),
    "Target._drain_all": "wrapped -> after_drain: the ledger releases what drains committed",
    "Target._handle_termination": "wrapped -> before_termination: no idle drain meanwhile",
    "Target._write_state_message": (
        "called by emit_state(): STATE goes out the SDK's way, when the ledger releases it"
    ),
    "Target._sinks_active": (
        "read by active_sink() and active_sinks(): the per-record lookup (get_sink re-checks "
        "the schema) and the run's sinks at its end"
    ),
    "SQLTarget._target_connector": (
        "read and set by target_connector: the SDK builds the connector as "
        "connector_class(config); the target's also takes the ledger's loader"
    ),
    "BaseSingerReader.process_lines": (
        "final, wrapped -> run_lines: the batch-age watcher runs while lines are read; on "
        "failure the good buffered rows are salvaged"
    ),
    "BaseSingerReader.listen": (
        "final, wrapped -> run_listen: a failed run closes its connection and pushes metrics"
    ),
    "Sink._remove_sdc_metadata_from_schema": (
        "wrapped: a declared _sdc_deleted_at marks deletions and is kept"
    ),
    "Sink._key_properties": (
        "read by tap_key_properties: the key properties as the tap named them (SQLSink's "
        "key_properties conforms them to column names, which the target maps itself)"
    ),
}


class TargetSeam(SQLTarget):
    """The SDK target with its private and final members routed to the target's hooks."""

    # Hooks (implemented by the target). SQLTarget's metaclass is abc.ABCMeta, so a subclass
    # that leaves one out cannot be instantiated.

    def normalize_config(self, config: dict[str, Any]) -> None:
        """Coerce the merged configuration in place, before the SDK validates it."""

    @abc.abstractmethod
    def make_connector(self) -> PostgresConnector:
        """The connector all sinks share."""

    @abc.abstractmethod
    def handle_record(self, message: dict[str, Any]) -> None:
        """A RECORD message."""

    @abc.abstractmethod
    def handle_schema(self, message: dict[str, Any]) -> None:
        """A SCHEMA message."""

    @abc.abstractmethod
    def handle_state(self, message: dict[str, Any]) -> None:
        """A STATE message."""

    @abc.abstractmethod
    def handle_activate_version(self, message: dict[str, Any]) -> None:
        """An ACTIVATE_VERSION message."""

    def check_batch_age(self) -> None:
        """Between records on the SDK's record path: commit batches that waited too long."""

    def after_drain(self) -> None:
        """After the SDK drained a list of sinks."""

    def before_termination(self) -> None:
        """A termination signal arrived; the SDK drains every sink next."""

    def run_lines(self, process: Callable[[], Counter[str]]) -> Counter[str]:
        """Wrap the processing of the input lines (``process`` does it)."""
        return process()

    def run_listen(self, listen: Callable[[], None]) -> None:
        """Wrap a whole run (``listen`` does it)."""
        listen()

    # The SDK's own paths, for the hooks

    def sdk_process_record(self, message: dict[str, Any]) -> None:
        """The SDK's record path: stream maps, flattening, validation, then the sink."""
        super()._process_record_message(message)

    def sdk_process_schema(self, message: dict[str, Any]) -> None:
        """The SDK's schema path: stream maps, then a new sink when the schema changed."""
        super()._process_schema_message(message)

    def sdk_process_activate_version(self, message: dict[str, Any]) -> None:
        """The SDK's ACTIVATE_VERSION path: each mapped sink's ``activate_version``."""
        super()._process_activate_version_message(message)

    def active_sink(self, stream: str) -> Sink | None:
        """The stream's current sink, if it has one.

        Why private: the SDK's public ``get_sink`` re-checks the schema on every call; this is
        the per-record lookup. ``_sinks_active`` (stream -> sink) is checked by the seam tests.
        """
        return self._sinks_active.get(stream)

    def active_sinks(self) -> list[Sink]:
        """The run's current sinks, one per stream (``_sinks_active``)."""
        return list(self._sinks_active.values())

    def emit_state(self, state: dict[str, Any]) -> None:
        """Write one STATE message the SDK's way (``Target._write_state_message``)."""
        self._write_state_message(state)

    @property
    def connector_opened(self) -> bool:
        """Whether the shared connector exists (a run that failed early has none)."""
        return self._target_connector is not None

    @property
    def target_connector(self) -> PostgresConnector:
        """The one connector all sinks share (the target's own, given the loader)."""
        # Why: the SDK builds it as `connector_class(config)`; ours also takes the ledger's
        # loader. `_target_connector` is where SQLTarget keeps it.
        if self._target_connector is None:
            self._target_connector = self.make_connector()
        assert isinstance(self._target_connector, PostgresConnector)
        return self._target_connector

    # Overrides of private and final members

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # Why: the only point after the SDK has merged config files and environment variables
        # and before it checks them against the schema (which wants numbers where Meltano
        # passes strings). No public hook runs there.
        self.normalize_config(self._config)
        return super()._validate_config(raise_errors=raise_errors)

    def _process_record_message(self, message_dict: dict[str, Any]) -> None:
        # Why: the hot path. The SDK's runs stream maps, validation and per-record sink
        # lookups; without stream maps the target numbers the record and hands it straight to
        # its sink (the SDK's path is still used when maps/flattening/validation are on).
        self.handle_record(message_dict)

    def _process_schema_message(self, message_dict: dict[str, Any]) -> None:
        # Why: the target validates the message, refuses two streams on one table and loads
        # the rows buffered under the old schema before the SDK replaces the sink.
        self.handle_schema(message_dict)

    def _process_state_message(self, message_dict: dict[str, Any]) -> None:
        # Why: the SDK keeps only the latest STATE and writes it at each full drain; the
        # target emits each STATE once the records before it are committed (commit ledger).
        self.handle_state(message_dict)

    def _process_activate_version_message(self, message_dict: dict[str, Any]) -> None:
        # Why: the message is validated first, and STATE may advance after the retirement.
        self.handle_activate_version(message_dict)

    def _handle_max_record_age(self) -> None:
        # Why: the SDK's five-minute bound is replaced by `batch_wait_limit_seconds`.
        self.check_batch_age()

    def _drain_all(self, sink_list: Iterable[Any], parallelism: int) -> None:
        # Why: `drain_all` (final) writes the SDK's latest state; the target instead lets the
        # ledger release what the drained batches committed.
        super()._drain_all(sink_list, parallelism)
        self.after_drain()

    def process_lines(self, file_input: IO[str] | None) -> Counter[str]:  # type: ignore[misc]
        # Why (final in the SDK; wrapped, not changed): the batch-age watcher runs while lines
        # are read, and on failure the good buffered rows are salvaged.
        return self.run_lines(functools.partial(super().process_lines, file_input))

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        # Why: no idle drain may run while the SDK drains on the way out.
        self.before_termination()
        super()._handle_termination(signum, frame)

    def listen(self, file_input: IO[str] | None = None) -> None:  # type: ignore[misc]
        # Why (final in the SDK; wrapped, not changed): a failed run must not leave its
        # connection open, and its metrics are pushed as well.
        self.run_listen(functools.partial(super().listen, file_input))


class SinkSeam(SQLSink[PostgresConnector]):
    """The SDK's SQL sink with its one private override."""

    connector_class = PostgresConnector

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        schema = args[2] if len(args) > 2 else kwargs["schema"]
        self._declares_deleted_at = DELETED_AT in (schema.get("properties") or {})
        super().__init__(*args, **kwargs)

    @property
    def tap_key_properties(self) -> Sequence[str]:
        """The key properties as the tap sent them (``Sink._key_properties``); the SDK's
        ``SQLSink.key_properties`` conforms them to column names, which the target does apart."""
        return self._key_properties

    def _remove_sdc_metadata_from_schema(self) -> None:
        # Why: without `add_record_metadata` the SDK removes every `_sdc_*` property; a tap
        # that declares `_sdc_deleted_at` uses it to mark deletions, so it is kept.
        deleted_at = self.schema["properties"].get(DELETED_AT)
        super()._remove_sdc_metadata_from_schema()
        if self._declares_deleted_at and deleted_at is not None:
            self.schema["properties"][DELETED_AT] = deleted_at
