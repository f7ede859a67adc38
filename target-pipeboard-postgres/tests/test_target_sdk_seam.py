"""The seam to the Singer SDK (sdk_seam.py): what each override relies on is still there.

Fails loudly when an SDK release renames, re-signs or rewires a private or final member the
target overrides, instead of letting the target change behaviour silently.
"""

from __future__ import annotations

import inspect
import io
import signal
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from singer_sdk.plugin_base import BaseSingerReader, PluginBase
from singer_sdk.sinks import Sink
from singer_sdk.sql import SQLSink, SQLTarget
from singer_sdk.target_base import Target
from target_pipeboard_postgres import sdk_seam
from target_pipeboard_postgres.target import TargetPipeboardPostgres

# (owner in the SDK, member, parameters after self as (name, kind, default))
_POS = inspect.Parameter.POSITIONAL_OR_KEYWORD
_KW = inspect.Parameter.KEYWORD_ONLY
_NONE = inspect.Parameter.empty
EXPECTED: list[tuple[type, str, list[tuple[str, Any, Any]]]] = [
    (PluginBase, "_validate_config", [("raise_errors", _KW, True)]),
    (Target, "_process_record_message", [("message_dict", _POS, _NONE)]),
    (Target, "_process_schema_message", [("message_dict", _POS, _NONE)]),
    (Target, "_process_state_message", [("message_dict", _POS, _NONE)]),
    (Target, "_process_activate_version_message", [("message_dict", _POS, _NONE)]),
    (Target, "_handle_max_record_age", []),
    (Target, "_drain_all", [("sink_list", _POS, _NONE), ("parallelism", _POS, _NONE)]),
    (BaseSingerReader, "process_lines", [("file_input", _POS, _NONE)]),
    (BaseSingerReader, "listen", [("file_input", _POS, None)]),
    (Target, "_handle_termination", [("signum", _POS, _NONE), ("frame", _POS, _NONE)]),
    (SQLSink, "_remove_sdc_metadata_from_schema", []),
]


@pytest.mark.parametrize(("owner", "member", "params"), EXPECTED, ids=[m for _, m, _ in EXPECTED])
def test_each_overridden_sdk_member_keeps_its_signature(owner, member, params):
    found = inspect.getattr_static(owner, member, None)
    assert found is not None, f"singer-sdk no longer has {owner.__name__}.{member}"
    signature = inspect.signature(getattr(owner, member))
    actual = [(p.name, p.kind, p.default) for p in list(signature.parameters.values())[1:]]
    assert actual == params, f"{owner.__name__}.{member} changed its signature: {signature}"


def test_each_override_lives_in_the_seam_and_nowhere_else():
    overridden = {member for _, member, _ in EXPECTED}
    for cls in (TargetPipeboardPostgres,):
        for klass in cls.__mro__:
            if klass.__module__.startswith("target_pipeboard_postgres"):
                own = set(vars(klass)) & overridden
                if klass is sdk_seam.TargetSeam:
                    continue
                assert not own, f"{klass.__name__} overrides {own} outside sdk_seam"
    assert set(vars(sdk_seam.TargetSeam)) >= overridden - {"_remove_sdc_metadata_from_schema"}
    assert "_remove_sdc_metadata_from_schema" in vars(sdk_seam.SinkSeam)


def test_the_sdk_still_keeps_its_sinks_and_connector_where_the_seam_reads_them():
    target = TargetPipeboardPostgres(config={"database_url": "postgresql://u@127.0.0.1:9/db"})
    assert isinstance(target._sinks_active, dict)
    assert isinstance(target._sinks_to_clear, list)
    assert "_target_connector" in vars(target) or "_target_connector" in vars(SQLTarget)
    assert target._target_connector is None
    assert isinstance(inspect.getattr_static(SQLTarget, "target_connector"), property)


def test_process_lines_and_listen_are_still_final_wrappers_of_the_reader():
    # `listen` -> `process_lines` -> the reader's `process_lines` with one callback per type.
    source = inspect.getsource(BaseSingerReader.listen)
    assert "self.process_lines(file_input)" in source
    assert "self.process_endofpipe()" in source
    source = inspect.getsource(BaseSingerReader.process_lines)
    for name in (
        "_process_schema_message",
        "_process_record_message",
        "_process_state_message",
        "_process_activate_version_message",
    ):
        assert f"self.{name}" in source, f"process_lines no longer dispatches to {name}"


class Spy(TargetPipeboardPostgres):
    """The target, noting each hook the SDK reaches through the seam."""

    calls: list[str]

    def __init__(self, **kwargs: Any) -> None:
        self.calls = []
        super().__init__(**kwargs)

    def normalize_config(self, config: dict[str, Any]) -> None:
        self.calls.append(f"normalize_config:{type(config.get('batch_wait_limit_seconds'))}")
        super().normalize_config(config)

    def handle_record(self, message_dict: dict[str, Any]) -> None:
        self.calls.append("record")
        super().handle_record(message_dict)

    def handle_schema(self, message_dict: dict[str, Any]) -> None:
        self.calls.append("schema")
        super().handle_schema(message_dict)

    def handle_state(self, message_dict: dict[str, Any]) -> None:
        self.calls.append("state")
        super().handle_state(message_dict)

    def handle_activate_version(self, message_dict: dict[str, Any]) -> None:
        self.calls.append("activate_version")
        super().handle_activate_version(message_dict)

    def check_batch_age(self) -> None:
        self.calls.append("check_batch_age")
        super().check_batch_age()

    def after_drain(self) -> None:
        self.calls.append("after_drain")
        super().after_drain()

    def before_termination(self) -> None:
        self.calls.append("before_termination")
        super().before_termination()

    def run_lines(self, process: Callable[[], Counter[str]]) -> Counter[str]:
        self.calls.append("run_lines")
        return super().run_lines(process)

    def run_listen(self, listen: Callable[[], None]) -> None:
        self.calls.append("run_listen")
        super().run_listen(listen)


LINES = (
    '{"type": "SCHEMA", "stream": "things", "key_properties": ["id"], "schema": {"properties": '
    '{"id": {"type": "integer"}, "_sdc_deleted_at": {"type": ["null", "string"], '
    '"format": "date-time"}, "_sdc_extracted_at": {"type": ["null", "string"]}}}}\n'
    '{"type": "RECORD", "stream": "things", "record": {"id": 1}, "version": 7}\n'
    '{"type": "STATE", "value": {"n": 1}}\n'
    '{"type": "ACTIVATE_VERSION", "stream": "things", "version": 7}\n'
)


def test_the_sdk_reaches_each_hook_through_the_seam(target_config, column_types, capsys):
    target = Spy(config={**target_config, "batch_wait_limit_seconds": "5"})
    assert target.calls == ["normalize_config:<class 'str'>"]  # before validation, unconverted
    target.listen(io.StringIO(LINES))
    calls = [c for c in target.calls[1:] if c != "after_drain"]
    assert calls == ["run_listen", "run_lines", "schema", "record", "state", "activate_version"]
    assert "after_drain" in target.calls
    assert capsys.readouterr().out.strip() == '{"n": 1}'
    # The sink seam keeps a declared `_sdc_deleted_at`; the SDK drops other `_sdc_` properties.
    assert set(column_types("things")) == {"id", "_sdc_deleted_at", "_sdc_table_version"}


def test_the_sdk_record_path_still_checks_the_record_age(target_config):
    target = Spy(config={**target_config, "validate_records": True})
    target.listen(io.StringIO(LINES))
    assert target.calls.index("check_batch_age") == target.calls.index("record") + 1


def test_a_termination_signal_reaches_the_hook_then_drains_and_exits(target_config, rows):
    target = Spy(config=target_config)
    target.process_lines(io.StringIO(LINES.splitlines(keepends=True)[0] + LINES.splitlines()[1]))
    with pytest.raises(SystemExit) as info:
        target._handle_termination(signal.SIGTERM, None)
    assert info.value.code == 0
    assert target.calls.index("before_termination") < target.calls.index("after_drain")
    target.ledger.close()  # the drained batch loads on the loader thread: wait for it
    target.target_connector.close()
    assert rows("things", "id") == [(1,)]


def test_a_sink_is_still_built_by_the_sdk_from_the_default_sink_class():
    assert issubclass(TargetPipeboardPostgres.default_sink_class, sdk_seam.SinkSeam)
    assert issubclass(sdk_seam.SinkSeam, Sink)


def test_the_target_hooks_are_abstract_and_the_target_implements_them() -> None:
    """A target class that leaves out one of the seam's hooks cannot be instantiated."""
    from target_pipeboard_postgres.target import TargetPipeboardPostgres

    assert sdk_seam.TargetSeam.__abstractmethods__ == {
        "make_connector",
        "handle_record",
        "handle_schema",
        "handle_state",
        "handle_activate_version",
    }
    assert not TargetPipeboardPostgres.__abstractmethods__


def test_state_sinks_and_key_properties_the_seam_reads(target_config, capsys):
    """``Target._write_state_message(state)`` writes one JSON line to stdout;
    ``Target._sinks_active`` maps each stream to its sink; ``Sink._key_properties`` keeps the
    key properties as the tap named them while ``SQLSink.key_properties`` conforms them."""
    target = TargetPipeboardPostgres(config=target_config)
    target.emit_state({"bookmarks": {"s": 1}})
    assert capsys.readouterr().out == '{"bookmarks": {"s": 1}}\n'
    schema = (
        '{"type": "SCHEMA", "stream": "Things", "key_properties": ["Thing ID"], "schema": '
        '{"properties": {"Thing ID": {"type": "integer"}}}}\n'
    )
    target.process_lines(io.StringIO(schema))
    sinks = target.active_sinks()
    assert [s.stream_name for s in sinks] == ["Things"]
    assert target.active_sink("Things") is sinks[0]
    sink = sinks[0]
    assert isinstance(sink, sdk_seam.SinkSeam)
    assert list(sink.tap_key_properties) == ["Thing ID"]
    conformed = list(SQLSink.key_properties.fget(sink))
    assert conformed != ["Thing ID"], (
        "SQLSink.key_properties no longer conforms key names: tap_key_properties can go"
    )
    target.ledger.close()
    target.target_connector.close()
