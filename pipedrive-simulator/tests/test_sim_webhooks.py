"""Webhooks v2: the /v1/webhooks endpoints, payloads, Basic auth, retries, ban and deletion."""

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests


class Receiver:
    """A subscription URL on loopback that records each POST and answers ``status``."""

    def __init__(self):
        self.received = []
        self.status = 200
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                if receiver.delay:
                    time.sleep(receiver.delay)
                receiver.received.append(
                    {"auth": self.headers.get("authorization"), "body": json.loads(body)}
                )
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"

    def bodies(self):
        return [r["body"] for r in self.received]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _subscribe(client, url, event_object="*", **extra):
    return client.session.post(
        client.handle.base_url + "/v1/webhooks",
        json={
            "subscription_url": url,
            "event_action": "*",
            "event_object": event_object,
            "name": f"test {event_object}",
            "http_auth_user": "pipeboard",
            "http_auth_password": "s3cret",
            "version": "2.0",
            **extra,
        },
        timeout=10,
    )


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_create_list_delete_and_the_rules(client, receiver):
    created = _subscribe(client, receiver.url, "deal")
    assert created.status_code == 201, created.text
    hook = created.json()["data"]
    assert hook["version"] == "2.0"
    assert hook["event_object"] == "deal"
    assert hook["is_active"] == 1
    listed = client.ok("/v1/webhooks")["data"]
    assert [h["id"] for h in listed] == [hook["id"]]
    bad = _subscribe(client, "not a url")
    assert bad.status_code == 400
    assert bad.json()["errors"]["subscription_url"] == ["invalid or non-reachable URL"]
    own = _subscribe(client, client.handle.base_url + "/v1/deals")
    assert own.status_code == 400
    assert "event_object" in _subscribe(client, receiver.url, "planet").json()["errors"]
    for n in range(39):
        assert _subscribe(client, receiver.url, "person").status_code == 201, n
    over = _subscribe(client, receiver.url, "person")
    assert over.status_code == 400
    assert "40 webhooks per user" in json.dumps(over.json())
    gone = client.session.delete(f"{client.handle.base_url}/v1/webhooks/{hook['id']}", timeout=5)
    assert gone.json() == {"status": "ok", "success": True}
    assert hook["id"] not in {h["id"] for h in client.ok("/v1/webhooks")["data"]}
    missing = client.session.delete(f"{client.handle.base_url}/v1/webhooks/999999", timeout=5)
    assert missing.status_code == 404
    assert client.handle.stats()["endpoints"]["POST /v1/webhooks"]["tokens"] > 0


def test_payloads_for_create_change_delete_with_basic_auth(client, receiver):
    handle = client.handle
    assert _subscribe(client, receiver.url).status_code == 201
    org = handle.create("organizations", name="Webhook Org")
    handle.advance(60)
    handle.update("organizations", org["id"], name="Webhook Org (renamed)")
    person = handle.truth("persons")[0]
    handle.delete("persons", person["id"])
    assert handle.drain_webhooks() == 0
    bodies = receiver.bodies()
    assert [(b["meta"]["entity"], b["meta"]["action"]) for b in bodies] == [
        ("organization", "create"),
        ("organization", "change"),
        ("person", "delete"),
    ]
    expected = "Basic " + base64.b64encode(b"pipeboard:s3cret").decode()
    assert {r["auth"] for r in receiver.received} == {expected}
    create, change, delete = bodies
    assert create["previous"] is None
    assert create["data"]["name"] == "Webhook Org"
    assert create["meta"]["entity_id"] == str(org["id"])
    assert create["meta"]["version"] == "2.0"
    assert create["meta"]["attempt"] == 1
    assert len(create["meta"]["id"]) == 36
    assert change["data"]["name"] == "Webhook Org (renamed)"
    assert change["previous"]["name"] == "Webhook Org"
    assert "owner_id" not in change["previous"]  # only the changed fields
    assert delete["data"] is None
    assert delete["previous"]["id"] == person["id"]
    assert len({b["meta"]["id"] for b in bodies}) == 3
    # Custom fields in the webhook shape, not the REST one.
    for value in create["data"]["custom_fields"].values():
        assert "type" in value
        assert value["type"] in {
            "enum",
            "set",
            "user",
            "varchar",
            "text",
            "double",
            "date",
            "monetary",
            "address",
            "phone",
        }


def test_custom_field_change_and_merge_meta(client, receiver):
    handle = client.handle
    account = handle.simulator.account
    enum = next(f for f in account.custom["deal"] if f.field_type == "enum")
    assert _subscribe(client, receiver.url, "deal").status_code == 201
    deal = handle.truth("deals")[0]
    option = next(o["id"] for o in enum.options if o["id"] != deal["custom_fields"].get(enum.key))
    handle.update("deals", deal["id"], **{enum.key: option})
    other = handle.truth("deals")[1]
    handle.merge_deal(other["id"], deal["id"])
    assert handle.drain_webhooks() == 0
    change, merged_delete, survivor_change = receiver.bodies()
    assert change["data"]["custom_fields"][enum.key] == {"type": "enum", "id": option}
    assert set(change["previous"]["custom_fields"]) <= {enum.key}
    assert merged_delete["meta"]["action"] == "delete"
    assert merged_delete["meta"]["merged_to_id"] == str(deal["id"])
    assert survivor_change["meta"]["merged_from_id"] == str(other["id"])


def test_delivery_does_not_hold_up_the_api(client, receiver):
    assert _subscribe(client, receiver.url).status_code == 201
    receiver.delay = 3.0  # each delivery takes 3 s: blocking would show at the first call
    started = time.monotonic()
    for n in range(3):
        resp = client.session.post(
            client.handle.base_url + "/_simulator/mutate",
            json={"op": "create", "entity": "persons", "fields": {"name": f"P{n}"}},
            timeout=5,
        )
        assert resp.status_code == 200
    assert client.get("/api/v2/deals", limit=1).status_code == 200
    assert time.monotonic() - started < 2.5
    assert client.handle.drain_webhooks() == 0
    assert len(receiver.received) == 3


def test_retries_after_3_30_150_simulated_seconds(client, receiver):
    handle = client.handle
    assert _subscribe(client, receiver.url).status_code == 201
    receiver.status = 500
    handle.create("persons", name="Retried")
    handle.drain_webhooks()
    assert [b["meta"]["attempt"] for b in receiver.bodies()] == [1]
    time.sleep(0.2)
    assert len(receiver.received) == 1  # the retry waits for simulated time
    for step, attempts in ((3, [1, 2]), (30, [1, 2, 3]), (150, [1, 2, 3, 4]), (3600, None)):
        handle.advance(step)
        handle.drain_webhooks()
        assert [b["meta"]["attempt"] for b in receiver.bodies()] == (attempts or [1, 2, 3, 4])
    assert len({b["meta"]["id"] for b in receiver.bodies()}) == 1


def test_a_retry_delivers_once_the_receiver_is_back(client, receiver):
    handle = client.handle
    assert _subscribe(client, receiver.url).status_code == 201
    receiver.status = 503
    handle.create("persons", name="Late")
    handle.drain_webhooks()
    receiver.status = 200
    handle.advance(3)
    handle.drain_webhooks()
    handle.advance(200)
    handle.drain_webhooks()
    assert [b["meta"]["attempt"] for b in receiver.bodies()] == [1, 2]


def test_ban_after_10_failed_first_tries_loses_events_for_30_minutes(client, receiver):
    handle = client.handle
    assert _subscribe(client, receiver.url).status_code == 201
    handle.webhook_switches(fail_all=True)
    for n in range(10):
        handle.create("persons", name=f"Failed {n}")
        handle.drain_webhooks()
    report = handle.webhook_report()
    assert report["subscriptions"][0]["banned_until"] is not None
    assert report["pending"] == 0  # queued retries are dropped by the ban
    handle.webhook_switches(fail_all=False)
    handle.create("persons", name="Lost while banned")
    handle.drain_webhooks()
    assert receiver.received == []
    assert report_outcomes(handle)[-1] == "lost: webhook banned"
    handle.advance(30 * 60)
    handle.create("persons", name="After the ban")
    handle.drain_webhooks()
    assert [b["data"]["name"] for b in receiver.bodies()] == ["After the ban"]


def report_outcomes(handle):
    return [d["outcome"] for d in handle.webhook_report()["deliveries"]]


def test_deleted_after_3_days_without_success(client, receiver):
    handle = client.handle
    assert _subscribe(client, receiver.url).status_code == 201
    handle.webhook_switches(fail_all=True)
    handle.advance(3 * 86400 + 1)
    handle.create("persons", name="Never delivered")
    handle.drain_webhooks()
    assert client.ok("/v1/webhooks")["data"] == []
    removed = handle.webhook_report()["subscriptions"][0]
    assert removed["is_active"] == 0
    assert "3 days" in removed["remove_reason"]


def test_switches_duplicate_stall_and_fail(client, receiver):
    handle = client.handle
    assert _subscribe(client, receiver.url).status_code == 201
    resp = requests.post(
        handle.base_url + "/_simulator/webhooks", json={"duplicate": True}, timeout=5
    )
    assert resp.status_code == 200
    handle.create("persons", name="Twice")
    handle.drain_webhooks()
    ids = [b["meta"]["id"] for b in receiver.bodies()]
    assert len(ids) == 2
    assert len(set(ids)) == 1
    handle.webhook_switches(duplicate=False, stall=True)
    handle.create("persons", name="Held")
    handle.drain_webhooks(timeout=0.3)
    assert len(receiver.received) == 2
    handle.webhook_switches(stall=False, fail=1)
    drained = requests.post(handle.base_url + "/_simulator/webhooks/drain", json={}, timeout=30)
    assert drained.json() == {"pending": 1}  # the forced failure waits for its retry
    assert len(receiver.received) == 2
    handle.advance(3)
    handle.drain_webhooks()
    assert [b["data"]["name"] for b in receiver.bodies()][-1] == "Held"
    bad = requests.post(handle.base_url + "/_simulator/webhooks", json={"bogus": 1}, timeout=5)
    assert bad.status_code == 400
