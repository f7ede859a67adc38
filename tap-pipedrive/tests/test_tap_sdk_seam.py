"""The Singer SDK behaviour under each item of ``tap_pipedrive.sdk_seam``, pinned.

Every test here names the private or final SDK member the tap relies on and checks the
behaviour the tap assumes of it. When an SDK release changes one of them, the matching test
fails with a message saying what the tap's seam must be adapted for. ``make sdk-canary`` runs
this module against the newest singer-sdk on the registry.
"""

from __future__ import annotations

import copy
import inspect
import io
import json
import typing as t
from contextlib import redirect_stdout

import pytest
import requests
from singer_sdk import Stream, Tap
from singer_sdk.exceptions import AbortedSyncFailedException
from singer_sdk.helpers._state import StateWriter
from singer_sdk.pagination import BaseAPIPaginator
from singer_sdk.streams import RESTStream
from tap_pipedrive import sdk_seam
from tap_pipedrive.base_stream import PipedriveStream
from tap_pipedrive.incremental import IncrementalStream
from tap_pipedrive.pagination import CursorPaginator
from tap_pipedrive.session import PipedriveSession, tag_of
from tap_pipedrive.streams.bases import ChildRowsParent, ChildRowsStream, PerParentStream
from tap_pipedrive.tap import TapPipedrive

PRIVATE_MEMBERS = {
    RESTStream: ("_request",),
    Stream: (
        "_write_record_message",
        "_generate_schema_messages",
        "_increment_stream_state",
        "_write_state_message",
        "_write_activate_version_message",
        "_write_schema_message",
        "_sync_children",
    ),
    Tap: ("_validate_config",),
}


@pytest.mark.parametrize(
    ("owner", "name"), [(owner, name) for owner, names in PRIVATE_MEMBERS.items() for name in names]
)
def test_the_private_members_the_seam_uses_exist(owner: type, name: str) -> None:
    assert callable(getattr(owner, name, None)), (
        f"singer-sdk no longer has {owner.__name__}.{name}: adapt tap_pipedrive/sdk_seam.py"
    )


def test_signatures_the_seam_overrides_are_unchanged() -> None:
    expected = {
        (Stream, "_write_record_message"): ["self", "record"],
        (Stream, "_generate_schema_messages"): ["self"],
        (Stream, "_increment_stream_state"): ["self", "latest_record", "context"],
        (Tap, "_validate_config"): ["self", "raise_errors"],
        (RESTStream, "_request"): ["self", "prepared_request", "context"],
        (Stream, "_sync_children"): ["self", "child_context"],
        (Stream, "_write_state_message"): ["self"],
        (Stream, "_write_schema_message"): ["self"],
        (Tap, "sync_all"): ["self"],
    }
    for (owner, name), params in expected.items():
        got = list(inspect.signature(getattr(owner, name)).parameters)
        assert got == params, f"{owner.__name__}.{name} now takes {got}: adapt sdk_seam.py"


def test_only_the_seam_overrides_private_sdk_members() -> None:
    """The tap's own classes reach private SDK members only through the seam's classes."""
    seam_classes = {sdk_seam.SeamStream, sdk_seam.SeamTap}
    private = {name for names in PRIVATE_MEMBERS.values() for name in names} | {"sync_all"}
    for cls in (PipedriveStream, IncrementalStream, TapPipedrive):
        for klass in cls.__mro__:
            if klass in seam_classes or not klass.__module__.startswith("tap_pipedrive"):
                continue
            overridden = private.intersection(vars(klass))
            assert not overridden, f"{klass.__qualname__} overrides {overridden} outside sdk_seam"


# --- the request path: public hooks, and the SDK's request call under them --------------------


def _tap(sim: t.Any, **extra: t.Any) -> TapPipedrive:
    config = {"api_url": sim.base_url, "api_token": sim.api_token, **extra}
    return TapPipedrive(config=config, parse_env_config=False)


def test_the_sdk_request_call_goes_through_the_public_hooks(
    pipedrive_simulator: t.Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``RESTStream._request`` (reached by ``request_records`` and ``send_with_retries``) must
    authenticate with ``authenticator``, send through ``requests_session`` with the stream's
    ``timeout``, and pass the answer to ``validate_response``; the seam's request tag must
    survive to the response."""
    tap = _tap(pipedrive_simulator, request_timeout=17)
    stream = tap.streams["users"]
    assert isinstance(stream, PipedriveStream)
    sent: list[dict[str, t.Any]] = []
    validated: list[requests.Response] = []
    original_send = PipedriveSession.send

    def spy_send(self: PipedriveSession, request: t.Any, **kwargs: t.Any) -> t.Any:
        sent.append({"kwargs": kwargs, "headers": dict(request.headers)})
        return original_send(self, request, **kwargs)

    original_validate = type(stream).validate_response

    def spy_validate(self: t.Any, response: requests.Response) -> None:
        validated.append(response)
        original_validate(self, response)

    monkeypatch.setattr(PipedriveSession, "send", spy_send)
    monkeypatch.setattr(type(stream), "validate_response", spy_validate)
    prepared = stream.build_prepared_request(method="GET", url=stream.get_url(None))
    response = sdk_seam.send_with_retries(stream, prepared, None)
    assert response.status_code == 200
    assert len(sent) == 1, "the SDK's request call no longer uses requests_session.send"
    assert sent[0]["kwargs"].get("timeout") == 17, "the SDK no longer sends with stream.timeout"
    assert sent[0]["headers"].get("x-api-token") == pipedrive_simulator.api_token, (
        "the SDK no longer applies stream.authenticator"
    )
    assert validated == [response], "the SDK no longer calls validate_response"
    assert tag_of(response.request).endpoint == "/api/v1/users"


def test_request_records_uses_the_request_decorator_and_paginator(
    pipedrive_simulator: t.Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retries, the breaker and the request tags hang off ``request_decorator``: the SDK's
    ``request_records`` must still decorate its request call with it, once per page."""
    tap = _tap(pipedrive_simulator, page_size=2)
    stream = tap.streams["pipelines"]
    calls: list[str] = []
    original = type(stream).request_decorator

    def spy(self: t.Any, func: t.Any) -> t.Any:
        decorated = original(self, func)

        def wrapped(request: t.Any, context: t.Any) -> t.Any:
            calls.append(request.url)
            return decorated(request, context)

        return wrapped

    monkeypatch.setattr(type(stream), "request_decorator", spy)
    rows = list(stream.request_records(None))
    assert len(rows) >= 3
    assert len(calls) == -(-len(rows) // 2) or len(calls) == len(rows) // 2 + 1
    assert all("cursor=" in url for url in calls[1:]), "pages no longer follow the paginator"


def test_a_paginator_starts_at_the_value_it_is_given() -> None:
    """Resuming a deal list at a saved cursor relies on ``BaseAPIPaginator(start_value)``."""
    paginator = CursorPaginator("abc")
    assert paginator.current_value == "abc"
    assert not paginator.finished
    assert isinstance(paginator, BaseAPIPaginator)


def test_read_body_fills_what_content_returns() -> None:
    """requests keeps the body in ``Response._content``; ``content`` must return it unread."""
    response = requests.Response()
    response.raw = io.BytesIO(b'{"data": []}')
    sdk_seam.read_body(response)
    assert response.content == b'{"data": []}'
    assert response._content_consumed  # type: ignore[attr-defined]


# --- records, schema and state ------------------------------------------------------------------


def _sync(tap: TapPipedrive) -> list[dict[str, t.Any]]:
    out = io.StringIO()
    with redirect_stdout(out):
        tap.sync_all()
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def _catalog_of(tap: TapPipedrive, streams: set[str]) -> dict[str, t.Any]:
    catalog = tap.catalog_dict
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def test_sync_writes_every_record_through_write_record_and_state_through_the_state_writer(
    pipedrive_simulator: t.Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Stream._write_record_message`` is called once per record written and
    ``_increment_stream_state`` once per record; STATE goes through ``Tap.state_writer``
    (the SDK's StateWriter, whose subclass settles the boundary digests)."""
    config = {"api_url": pipedrive_simulator.base_url, "api_token": pipedrive_simulator.api_token}
    catalog = _catalog_of(TapPipedrive(config=config, parse_env_config=False), {"persons"})
    tap = TapPipedrive(config=config, catalog=catalog, parse_env_config=False)
    written: list[t.Any] = []
    advanced: list[t.Any] = []
    settled: list[int] = []
    original_write = IncrementalStream.write_record
    original_advance = IncrementalStream.advance_bookmark

    def write(self: t.Any, record: dict[str, t.Any]) -> None:
        written.append(record["id"])
        original_write(self, record)

    def advance(self: t.Any, record: dict[str, t.Any], context: t.Any) -> bool:
        advanced.append(record["id"])
        return bool(original_advance(self, record, context))

    monkeypatch.setattr(IncrementalStream, "write_record", write)
    monkeypatch.setattr(IncrementalStream, "advance_bookmark", advance)
    monkeypatch.setattr(
        IncrementalStream, "settle_boundary", lambda self: settled.append(1) or None
    )
    assert isinstance(tap.state_writer, sdk_seam.SettlingStateWriter), (
        "Tap.state_writer is no longer the writer installed in Tap._state_writer"
    )
    assert isinstance(tap.state_writer, StateWriter)
    messages = _sync(tap)
    records = [m["record"]["id"] for m in messages if m["type"] == "RECORD"]
    assert records, "the seeded account has persons"
    assert written == records, "Stream._write_record_message is no longer the record path"
    assert advanced == records, "Stream._increment_stream_state is no longer called per record"
    assert settled, "STATE messages no longer go through Tap.state_writer"
    state = [m for m in messages if m["type"] == "STATE"][-1]["value"]
    bookmark = state["bookmarks"]["persons"]
    assert bookmark["replication_key"] == "update_time"
    assert bookmark["replication_key_value"] == max(
        m["record"]["update_time"] for m in messages if m["type"] == "RECORD"
    )


def test_the_sdk_increment_and_the_fast_bookmark_agree(pipedrive_simulator: t.Any) -> None:
    """The fast path of ``advance_bookmark`` must leave the state the SDK's own
    ``_increment_stream_state`` would (replication_key and replication_key_value)."""
    config = {"api_url": pipedrive_simulator.base_url, "api_token": pipedrive_simulator.api_token}
    records = [
        {"id": 1, "update_time": "2026-01-01T00:00:00Z"},
        {"id": 2, "update_time": "2026-01-02T00:00:00Z"},
        {"id": 3, "update_time": "2026-01-02T00:00:00Z"},
    ]
    sdk_tap = TapPipedrive(config=config, parse_env_config=False)
    sdk_stream = sdk_tap.streams["persons"]
    for record in records:
        Stream._increment_stream_state(sdk_stream, dict(record), context=None)
    fast_tap = TapPipedrive(config=config, parse_env_config=False)
    fast_stream = fast_tap.streams["persons"]
    assert isinstance(fast_stream, IncrementalStream)
    fast_stream._state_ref = fast_stream.get_context_state(None)
    for record in records:
        assert fast_stream.advance_bookmark(dict(record), None)
    keys = ("replication_key", "replication_key_value")
    sdk_state = {k: sdk_stream.get_context_state(None).get(k) for k in keys}
    fast_state = {k: fast_stream.get_context_state(None).get(k) for k in keys}
    assert (
        sdk_state
        == fast_state
        == {
            "replication_key": "update_time",
            "replication_key_value": "2026-01-02T00:00:00Z",
        }
    )


def test_schema_messages_still_lose_annotations_without_the_seam(
    pipedrive_simulator: t.Any,
) -> None:
    """``_generate_schema_messages`` yields messages whose ``schema`` is a mutable dict built
    from the SDK's schema model, which drops the ``x-pipedrive-*`` keywords (the reason for
    the override) when the schema comes from a catalog; the seam puts them back."""
    config = {"api_url": pipedrive_simulator.base_url, "api_token": pipedrive_simulator.api_token}
    catalog = _catalog_of(TapPipedrive(config=config, parse_env_config=False), {"deals"})
    assert catalog["streams"][0]["schema"]["properties"]
    deals = next(e for e in catalog["streams"] if e["tap_stream_id"] == "deals")
    assert deals["schema"]["properties"]["title"].get("x-pipedrive-key") == "title"
    tap = TapPipedrive(config=config, catalog=catalog, parse_env_config=False)
    stream = tap.streams["deals"]
    sdk_schemas = [copy.deepcopy(m.schema) for m in Stream._generate_schema_messages(stream)]
    ours = list(stream._generate_schema_messages())
    assert len(sdk_schemas) == len(ours) == 1
    assert isinstance(ours[0].schema, dict)
    assert ours[0].schema["properties"]["title"].get("x-pipedrive-key") == "title"
    if "x-pipedrive-key" in sdk_schemas[0]["properties"]["title"]:
        pytest.fail(
            "singer-sdk now keeps custom schema keywords in SCHEMA messages: the "
            "_generate_schema_messages override in sdk_seam.py can go"
        )


def test_validate_config_runs_after_the_merge_and_before_validation(
    pipedrive_simulator: t.Any,
) -> None:
    """Number settings given as strings (as Meltano passes them) are numbers by the time the
    SDK validates: ``Tap._validate_config`` must still be called from ``__init__`` with the
    merged ``_config``."""
    config = {
        "api_url": pipedrive_simulator.base_url,
        "api_token": pipedrive_simulator.api_token,
        "max_budget_share": "0.5",
    }
    tap = TapPipedrive(config=config, parse_env_config=False)
    assert tap.config["max_budget_share"] == 0.5


def test_sync_all_is_final_and_our_wrapper_runs(
    pipedrive_simulator: t.Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Tap.sync_all`` is the run's entry point (``invoke`` calls it); the seam wraps it."""
    config = {"api_url": pipedrive_simulator.base_url, "api_token": pipedrive_simulator.api_token}
    catalog = _catalog_of(TapPipedrive(config=config, parse_env_config=False), {"currencies"})
    tap = TapPipedrive(config=config, catalog=catalog, parse_env_config=False)
    around: list[str] = []
    original = TapPipedrive.around_sync

    def spy(self: TapPipedrive, sync: t.Callable[[], None]) -> None:
        around.append("in")
        original(self, sync)

    monkeypatch.setattr(TapPipedrive, "around_sync", spy)
    messages = _sync(tap)
    assert around == ["in"]
    assert any(m["type"] == "RECORD" and m["stream"] == "currencies" for m in messages)
    source = inspect.getsource(Tap.invoke)
    assert ".sync_all()" in source, "Tap.invoke no longer runs sync_all: adapt SeamTap"


def test_stream_version_and_activate_version(pipedrive_simulator: t.Any) -> None:
    """A reconciliation run's ACTIVATE_VERSION carries ``Stream._stream_version``, written by
    ``Stream._write_activate_version_message``."""
    config = {
        "api_url": pipedrive_simulator.base_url,
        "api_token": pipedrive_simulator.api_token,
        "reconcile": True,
    }
    catalog = _catalog_of(TapPipedrive(config=config, parse_env_config=False), {"currencies"})
    tap = TapPipedrive(config=config, catalog=catalog, parse_env_config=False)
    messages = _sync(tap)
    versions = [m["version"] for m in messages if m["type"] == "ACTIVATE_VERSION"]
    records = [m for m in messages if m["type"] == "RECORD"]
    assert versions, "no ACTIVATE_VERSION in a reconciliation run"
    assert {r["version"] for r in records} == {versions[-1]}
    last_record = max(i for i, m in enumerate(messages) if m["type"] == "RECORD")
    last_activate = max(i for i, m in enumerate(messages) if m["type"] == "ACTIVATE_VERSION")
    assert last_activate > last_record
    assert sdk_seam.stream_version(tap.streams["currencies"]) == versions[-1]


# --- child streams, the stream's STATE, SCHEMA outside a sync, the tap's streams ---------------


def test_the_sdk_syncs_each_selected_child_and_the_seam_narrows_them(
    pipedrive_simulator: t.Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Stream._sync_children`` syncs every selected child in ``child_streams`` with the
    context, goes on after a child's aborted sync and skips a null context; the seam narrows
    ``child_streams`` to the children ``syncs_child`` accepts, for the call only."""
    tap = _tap(pipedrive_simulator)
    persons = tap.streams["persons"]
    assert isinstance(persons, ChildRowsParent)
    children = list(persons.child_streams)
    kinds = {type(c).__mro__[1] for c in children}
    assert {ChildRowsStream, PerParentStream} <= kinds, "persons lost its kinds of children"
    synced: list[tuple[str, t.Any]] = []

    def fake_sync(child: Stream) -> t.Callable[..., None]:
        def sync(context: t.Any = None) -> None:
            synced.append((child.name, context))
            if child is children[0]:
                raise AbortedSyncFailedException("first child stops")

        return sync

    for child in children:
        monkeypatch.setattr(child, "sync", fake_sync(child))
    Stream._sync_children(persons, {"any": 1})
    assert [name for name, _ in synced] == [c.name for c in children if c.selected], (
        "Stream._sync_children no longer syncs each selected child (after an aborted one)"
    )
    assert all(context == {"any": 1} for _, context in synced)
    synced.clear()
    Stream._sync_children(persons, None)
    assert synced == [], "Stream._sync_children now syncs children with a null context"
    sdk_seam.sync_children(persons, {"parent_batch": 1, "mark_empty": False})
    assert {name for name, _ in synced} == {
        c.name for c in children if isinstance(c, ChildRowsStream) and c.selected
    }
    assert persons.child_streams == children, "the seam left child_streams narrowed"
    synced.clear()
    sdk_seam.sync_children(persons, {"id": 7, "mark_empty": False})
    assert {name for name, _ in synced} == {
        c.name for c in children if isinstance(c, PerParentStream) and c.selected
    }


def test_pending_children_go_out_before_each_state_of_their_parent(
    pipedrive_simulator: t.Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Stream._write_state_message`` is where the SDK writes a stream's STATE (every
    ``STATE_MSG_FREQUENCY`` records here); the seam's ``before_state_message`` sends the
    parents' pending child rows first, so no bookmark passes a parent whose children are not
    out. Without the hook the children would wait for a batch of 500 parents."""
    config = {"api_url": pipedrive_simulator.base_url, "api_token": pipedrive_simulator.api_token}
    catalog = _catalog_of(
        TapPipedrive(config=config, parse_env_config=False), {"persons", "person_emails"}
    )
    tap = TapPipedrive(config=config, catalog=catalog, parse_env_config=False)
    monkeypatch.setattr(type(tap.streams["persons"]), "STATE_MSG_FREQUENCY", 2)
    hooks: list[int] = []
    original = ChildRowsParent.before_state_message

    def spy(self: ChildRowsParent) -> None:
        hooks.append(len(self._pending_parents))
        original(self)

    monkeypatch.setattr(ChildRowsParent, "before_state_message", spy)
    messages = _sync(tap)
    with_emails: set[int] = set()
    emailed: set[int] = set()
    checked = 0
    for message in messages:
        if message["type"] == "RECORD" and message["stream"] == "persons":
            if message["record"].get("emails"):
                with_emails.add(message["record"]["id"])
        elif message["type"] == "RECORD" and message["stream"] == "person_emails":
            emailed.add(message["record"]["person_id"])
        elif message["type"] == "STATE" and with_emails:
            assert with_emails <= emailed, f"STATE before the emails of {with_emails - emailed}"
            checked += 1
    assert checked >= 2, "too few persons with emails to see STATE between them"
    assert any(hooks), "Stream._write_state_message no longer runs while parents are pending"


def test_write_schema_sends_the_annotated_schema(pipedrive_simulator: t.Any) -> None:
    """``Stream._write_schema_message`` writes the SCHEMA messages of
    ``_generate_schema_messages`` (so annotations restored by the seam) through the tap."""
    tap = _tap(pipedrive_simulator)
    stream = tap.streams["person_emails"]
    out = io.StringIO()
    with redirect_stdout(out):
        sdk_seam.write_schema(stream)
    messages = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    assert [m["type"] for m in messages] == ["SCHEMA"]
    assert messages[0]["stream"] == "person_emails"
    assert messages[0]["schema"]["x-replace-children-of"] == ["person_id"], (
        "the SCHEMA message no longer carries the seam's annotations"
    )


def test_the_tap_and_its_built_streams(pipedrive_simulator: t.Any) -> None:
    """``Stream._tap`` is the stream's tap; ``Tap._streams`` holds the streams ``Tap.streams``
    built (and is None before: reading it never starts discovery)."""
    tap = _tap(pipedrive_simulator)
    streams = tap.streams
    assert sdk_seam.tap_of(streams["persons"]) is tap
    assert sdk_seam.streams_built(tap) == dict(streams)
    bare = TapPipedrive.__new__(TapPipedrive)
    bare._streams = None
    assert sdk_seam.streams_built(bare) == {}
    assert "self._streams is None" in inspect.getsource(Tap.streams.fget), (
        "Tap.streams no longer builds the streams into Tap._streams: adapt streams_built"
    )
