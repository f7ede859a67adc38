"""The record hot path: response bodies read in large chunks, batched output that never lets a
STATE overtake its records, and the bookmark increment that must agree with the SDK's own."""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
import sys
import threading

import pytest
import requests
from singer_sdk.exceptions import InvalidStreamSortException
from singer_sdk.singerlib.messages import StateMessage
from singer_sdk.streams import Stream
from tap_pipedrive.output import RECORD_BATCH_BYTES, OrjsonSingerWriter
from tap_pipedrive.sdk_seam import BODY_CHUNK_BYTES, read_body
from tap_pipedrive.tap import TapPipedrive

EXTRACTED = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


class _RawHttpServer:
    """Answers each connection's requests with the given raw responses, one per request."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/api/v2/deals"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            conn, _ = self.sock.accept()
            self.connections += 1
            with conn:
                while self.answers:
                    if not conn.recv(65536):
                        break
                    answer = self.answers.pop(0)
                    conn.sendall(answer)
                    if b"Connection: close" in answer:
                        break
        self.sock.close()


def _http(body: bytes, *, length: int | None = None, close: bool = False) -> bytes:
    head = [
        "HTTP/1.1 200 OK",
        "Content-Type: application/json",
        f"Content-Length: {length or len(body)}",
        *(["Connection: close"] if close else []),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _get(session: requests.Session, url: str) -> requests.Response:
    response = session.get(url, stream=True, timeout=10)
    read_body(response)
    return response


def test_a_body_larger_than_one_chunk_is_read_whole_and_the_connection_reused() -> None:
    big = json.dumps({"data": ["x" * 1000] * (2 * BODY_CHUNK_BYTES // 1000)}).encode()
    server = _RawHttpServer([_http(big), _http(b'{"data": []}')])
    with requests.Session() as session:
        first = _get(session, server.url)
        assert first.content == big
        assert first.json()["data"][0] == "x" * 1000
        second = _get(session, server.url)
        assert second.json() == {"data": []}
    assert server.connections == 1


def test_a_body_cut_short_is_a_retriable_read_error() -> None:
    server = _RawHttpServer([_http(b'{"data": [1, 2', length=5000, close=True)])
    with requests.Session() as session, pytest.raises(requests.exceptions.ChunkedEncodingError):
        _get(session, server.url)


class _BinaryStdout:
    """Stands in for ``sys.stdout``: a text stream with a binary layer."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines()]


def _fake_stdout(monkeypatch: pytest.MonkeyPatch) -> _BinaryStdout:
    # In the test body: pytest's output capture puts its own sys.stdout back after fixtures.
    fake = _BinaryStdout()
    monkeypatch.setattr(sys, "stdout", fake)
    return fake


def test_records_wait_for_the_next_message_and_go_out_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdout = _fake_stdout(monkeypatch)
    writer = OrjsonSingerWriter()
    for n in range(3):
        writer.write_record("deals", {"id": n}, None, EXTRACTED)
    assert stdout.buffer.getvalue() == b"", "a few small records are held back"

    writer.write_message(StateMessage(value={"bookmarks": {"deals": {"n": 3}}}))
    lines = stdout.lines()
    assert [m["type"] for m in lines] == ["RECORD", "RECORD", "RECORD", "STATE"]
    assert [m["record"]["id"] for m in lines[:3]] == [0, 1, 2]
    assert lines[0]["time_extracted"] == "2026-01-02T03:04:05+00:00"


def test_state_lines_are_what_the_sdk_writes() -> None:
    value = {
        "bookmarks": {
            "deals": {
                "partitions": [{"context": {"is_archived": False}, "replication_key_value": "x"}],
                "boundary": {"update_time": "x", "ids": {"1": 5}},
                "custom_field_columns": {"a" * 40: "budget"},
            }
        }
    }
    message = StateMessage(value=value)
    line = OrjsonSingerWriter().serialize_message(message)
    assert json.loads(line) == json.loads(json.dumps(message.to_dict()))
    assert line.endswith(b"\n")


def test_records_are_written_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = _fake_stdout(monkeypatch)
    writer = OrjsonSingerWriter()
    record = {"id": 0, "title": "x" * 2000}
    count = 3 * RECORD_BATCH_BYTES // 2000
    for n in range(count):
        writer.write_record("deals", {**record, "id": n}, 7, EXTRACTED)
    written = stdout.lines()
    assert 0 < len(written) < count, "full batches are written, the rest waits"
    assert [m["record"]["id"] for m in written] == list(range(len(written)))
    assert all(m["version"] == 7 for m in written)

    writer.write_records()
    assert [m["record"]["id"] for m in stdout.lines()] == list(range(count))


def test_text_only_stdout_still_gets_every_record(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    writer = OrjsonSingerWriter()
    writer.write_record("deals", {"id": 1, "title": "Zürich"}, None, EXTRACTED)
    writer.write_records()
    assert json.loads(out.getvalue())["record"] == {"id": 1, "title": "Zürich"}


def _deals_stream(config: dict) -> tuple[Stream, dict]:
    tap = TapPipedrive(config=config, parse_env_config=False)
    stream = tap.streams["deals"]
    context = {"is_archived": False}
    state = stream.get_context_state(context)
    stream._state_ref = state  # what get_records sets for the partition it reads
    return stream, context


RECORDS = [
    {"id": 1, "update_time": "2026-01-01T00:00:00Z"},
    {"id": 2, "update_time": "2026-01-01T00:00:00Z"},
    {"id": 3, "update_time": "2026-01-01T00:00:09Z"},
    {"id": 4, "update_time": None},
    {"id": 5, "update_time": "2026-01-02T00:00:00Z"},
]


def test_bookmark_increment_matches_the_sdks(pipedrive_simulator, config_for) -> None:
    ours, context = _deals_stream(config_for(pipedrive_simulator))
    sdks, _ = _deals_stream(config_for(pipedrive_simulator))
    for record in RECORDS:
        ours._increment_stream_state(dict(record), context=context)
        Stream._increment_stream_state(sdks, dict(record), context=context)
        assert ours.get_context_state(context) == sdks.get_context_state(context)
    assert ours.get_context_state(context)["replication_key_value"] == "2026-01-02T00:00:00Z"
    assert ours.get_context_state(context)["replication_key"] == "update_time"


def test_out_of_order_records_still_stop_the_sync(pipedrive_simulator, config_for) -> None:
    stream, context = _deals_stream(config_for(pipedrive_simulator))
    stream._increment_stream_state(dict(RECORDS[-1]), context=context)
    with pytest.raises(InvalidStreamSortException, match="Unsorted data"):
        stream._increment_stream_state(dict(RECORDS[0]), context=context)


def test_reconciling_runs_keep_no_bookmark(pipedrive_simulator, config_for) -> None:
    stream, context = _deals_stream(config_for(pipedrive_simulator, reconcile=True))
    stream._increment_stream_state(dict(RECORDS[0]), context=context)
    assert "replication_key_value" not in stream.get_context_state(context)
