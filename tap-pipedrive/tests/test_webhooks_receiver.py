"""The webhook receiver under good and bad input (its own process, real HTTP, real Postgres)."""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import uuid

import pytest
import requests
from webhook_support import PASSWORD, USER, Receiver, example, receiver_command, stored_events


@pytest.fixture
def receiver(postgres_url, pg_schema):
    r = Receiver(postgres_url, pg_schema, "--max-body-bytes", "65536").start()
    yield r
    r.stop()


def _event(name="person-delete.json", **meta):
    body = copy.deepcopy(example(name))
    body["meta"]["id"] = str(uuid.uuid4())
    body["meta"].update(meta)
    return body


def test_first_line_is_the_subscription_url_and_events_are_stored_once(receiver, postgres_url):
    assert receiver.url.endswith("/pipedrive/webhooks")
    body = _event()
    first = receiver.post(body)
    assert first.status_code == 200, first.text
    assert first.json() == {"status": "stored"}
    replay = receiver.post({**body, "meta": {**body["meta"], "attempt": 2}})
    assert replay.json() == {"status": "duplicate"}
    change = _event("deal-change-stage.json")
    assert receiver.post(change).json() == {"status": "stored"}
    rows = stored_events(postgres_url, receiver.schema)
    assert rows == [
        (body["meta"]["id"], "person", "delete", "42"),
        (change["meta"]["id"], "deal", "change", "8"),
    ]
    m = receiver.metrics()
    assert m["pipeboard_webhook_events_received_total"] == 3
    assert m["pipeboard_webhook_events_stored_total"] == 2
    assert m["pipeboard_webhook_events_duplicate_total"] == 1
    assert m["pipeboard_webhook_oldest_unconsumed_event_age_seconds"] >= 0


def test_bad_input_is_answered_counted_and_not_stored(receiver, postgres_url):
    good = _event()
    raw = json.dumps(good).encode()
    cases = [
        ("wrong auth", receiver.post(good, auth=(USER, "wrong")), 401, "unauthorized"),
        ("no auth", receiver.post(good, auth=None), 401, "unauthorized"),
        ("malformed", receiver.post(b'{"meta": {"id": '), 400, "malformed_json"),
        ("truncated", receiver.post(raw[: len(raw) // 2]), 400, "malformed_json"),
        ("empty", receiver.post(b""), 400, "empty_body"),
        ("array", receiver.post(b"[1, 2]"), 400, "not_v2"),
        ("v1 body", receiver.post({"v": 1, "event": "updated.deal", "current": {}}), 400, "not_v2"),
        ("version 1", receiver.post(_event(version="1.0")), 400, "not_v2"),
        ("bad action", receiver.post(_event(action="explode")), 400, "not_v2"),
        ("huge", receiver.post(b"{" + b" " * 70_000 + b"}"), 413, "too_large"),
        ("nul", receiver.post(_event(entity_id="4\u00002")), 400, "unstorable"),
    ]
    for name, resp, status, reason in cases:
        assert resp.status_code == status, (name, resp.text)
        assert resp.json()["reason"] == reason, name
    assert "www-authenticate" in cases[0][1].headers
    assert stored_events(postgres_url, receiver.schema) == []
    m = receiver.metrics()
    assert m['pipeboard_webhook_events_rejected_total{reason="unauthorized"}'] == 2
    assert m['pipeboard_webhook_events_rejected_total{reason="malformed_json"}'] == 2
    assert m['pipeboard_webhook_events_rejected_total{reason="not_v2"}'] == 4
    assert m['pipeboard_webhook_events_rejected_total{reason="too_large"}'] == 1
    # An object the tap does not read: acknowledged (no retries, no ban), counted, not stored.
    project = _event(entity="project")
    resp = receiver.post(project)
    assert resp.status_code == 200
    assert resp.json()["status"] == "ignored"
    assert receiver.metrics()['pipeboard_webhook_events_ignored_total{entity="project"}'] == 1
    # Still up, and storing.
    assert receiver.post(good).json() == {"status": "stored"}
    assert [r[0] for r in stored_events(postgres_url, receiver.schema)] == [good["meta"]["id"]]
    assert receiver.alive()


def test_a_huge_body_without_length_and_a_client_that_hangs_up(receiver, postgres_url):
    def chunks():
        for _ in range(100):
            yield b" " * 10_000

    resp = requests.post(
        receiver.url, data=chunks(), auth=(USER, PASSWORD), timeout=10
    )  # chunked: no content-length
    assert resp.status_code == 413
    head = (
        f"POST /pipedrive/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
        f"Authorization: {requests.auth._basic_auth_str(USER, PASSWORD)}\r\n"
        "Content-Type: application/json\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(head + b'{"meta": {')
    assert receiver.post(_event()).json() == {"status": "stored"}
    assert len(stored_events(postgres_url, receiver.schema)) == 1
    assert "correct horse" not in receiver.logs()
    assert USER not in receiver.logs()


def test_credentials_from_files_and_a_clear_error_without_them(tmp_path, postgres_url, pg_schema):
    cmd = [*receiver_command(), "serve", "--port", "0", "--database-url", postgres_url]
    missing = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env={"PATH": ""})
    assert missing.returncode == 1
    assert "PIPEBOARD_WEBHOOK_USER (or PIPEBOARD_WEBHOOK_USER_FILE)" in missing.stderr
    (tmp_path / "user").write_text(USER + "\n")
    (tmp_path / "password").write_text(PASSWORD + "\n")
    import os

    env = {
        "PATH": os.environ["PATH"],
        "PIPEBOARD_WEBHOOK_USER_FILE": str(tmp_path / "user"),
        "PIPEBOARD_WEBHOOK_PASSWORD_FILE": str(tmp_path / "password"),
    }
    with subprocess.Popen(
        [*cmd, "--schema", pg_schema], stdout=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        import time

        for _ in range(200):
            try:
                requests.get(url.replace("/pipedrive/webhooks", "/healthz"), timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.05)
        body = _event()
        ok = requests.post(url, json=body, auth=(USER, PASSWORD), timeout=10)
        proc.terminate()
        assert ok.json() == {"status": "stored"}


def test_healthz_reports_an_unreachable_database(pg_schema):
    r = Receiver("postgresql://postgres@127.0.0.1:1/none", pg_schema)
    with pytest.raises(AssertionError, match="did not become healthy"):
        r.start()
    try:
        assert requests.get(r.base + "/healthz", timeout=5).status_code == 503
        resp = r.post(_event())
        assert resp.status_code == 503
        assert resp.json()["reason"] == "database_unavailable"
        assert r.alive()
    finally:
        r.stop()
