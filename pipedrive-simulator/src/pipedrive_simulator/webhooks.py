"""Webhooks v2: subscriptions (``/v1/webhooks``) and deliveries of every stored change.

As Pipedrive's "Guide for Webhooks v2" describes them (see ../shared/pipedrive-webhooks):

- a payload has ``meta``, ``data`` (current state; ``null`` on delete) and ``previous`` (the
  changed fields' old values on change, the last state on delete, ``null`` on create); custom
  fields under ``custom_fields`` in the webhook shape (``{"type": "enum", "id": 235}``,
  ``{"type": "monetary", "value": 10, "currency": "EUR"}``, ...), an empty field absent;
- deliveries are HTTP POSTs with the subscription's Basic credentials; any 2xx is a success,
  the timeout is 10 s; a failed delivery is retried after 3, 30 and 150 s (of simulated time:
  retries wait for the clock to be advanced); each failed *first* attempt counts towards a
  ban: at 10 the webhook is banned for 30 minutes and its events in that time are lost (queued
  retries too); a webhook with no successful delivery for 3 days is deleted.

Simplifications: ``data`` carries the record's whole v2 object (Pipedrive says "crucial fields";
the ``omit_fields`` switch drops fields to make payloads partial); only version 2.0 payloads
are produced; a subscription URL is not checked for being public (tests listen on loopback);
a webhook of a non-admin user sees only the records that user owns.

Control switches (``/_simulator/webhooks``): ``fail`` (the next N attempts fail without being
sent), ``fail_all``, ``stall`` (nothing is sent until it is lifted), ``duplicate`` (every
successful delivery is sent a second time, same ``meta.id``), ``omit_fields``.

Deliveries run on one background thread, so API responses never wait for them.
"""

from __future__ import annotations

import base64
import copy
import heapq
import itertools
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from pipedrive_simulator.errors import ApiError
from pipedrive_simulator.fields import FieldDef
from pipedrive_simulator.protocol import Request, Response
from pipedrive_simulator.render import INTERNAL_KEYS, V2_CUSTOM_ENTITY
from pipedrive_simulator.store import Record
from pipedrive_simulator.timeutil import to_rfc3339

if TYPE_CHECKING:
    from pipedrive_simulator.account import Account
    from pipedrive_simulator.clock import SimClock

EVENT_ACTIONS = ("create", "change", "delete", "*")
EVENT_OBJECTS = (
    "activity",
    "deal",
    "lead",
    "note",
    "organization",
    "person",
    "pipeline",
    "product",
    "stage",
    "user",
    "*",
)
# Store name -> webhook event object (files and users send no webhooks here).
STORE_OBJECTS = {
    "deals": "deal",
    "persons": "person",
    "organizations": "organization",
    "products": "product",
    "activities": "activity",
    "notes": "note",
    "leads": "lead",
    "stages": "stage",
    "pipelines": "pipeline",
}
RETRY_DELAYS = (3, 30, 150)
BAN_AFTER_FAILED_FIRST_TRIES = 10
BAN_SECONDS = 30 * 60
DELETE_AFTER = timedelta(days=3)
MAX_PER_USER = 40
TIMEOUT_SECONDS = 10.0
COMPANY_ID = "15043420"  # as /v1/users/me
HOST = "simulated.pipedrive.com"


@dataclass
class Subscription:
    id: int
    owner_id: int
    user_id: int
    event_action: str
    event_object: str
    subscription_url: str
    name: str
    http_auth_user: str | None
    http_auth_password: str | None
    add_time: datetime
    version: str = "2.0"
    last_success: datetime | None = None
    last_delivery_time: datetime | None = None
    last_http_status: int | None = None
    ban_counter: int = 0
    banned_until: datetime | None = None
    remove_time: datetime | None = None
    remove_reason: str | None = None

    def doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "company_id": int(COMPANY_ID),
            "owner_id": self.owner_id,
            "user_id": self.user_id,
            "event_action": self.event_action,
            "event_object": self.event_object,
            "subscription_url": self.subscription_url,
            "version": self.version,
            "is_active": 0 if self.remove_time else 1,
            "add_time": _ms(self.add_time),
            "remove_time": _ms(self.remove_time) if self.remove_time else None,
            "type": "general",
            "http_auth_user": self.http_auth_user,
            "http_auth_password": self.http_auth_password,
            "remove_reason": self.remove_reason,
            "last_delivery_time": _ms(self.last_delivery_time) if self.last_delivery_time else None,
            "last_http_status": self.last_http_status,
            "admin_id": self.owner_id,
            "name": self.name,
        }

    def matches(self, obj: str, action: str) -> bool:
        return self.event_object in (obj, "*") and self.event_action in (action, "*")


@dataclass(order=True)
class Delivery:
    due: datetime
    seq: int
    webhook_id: int = field(compare=False)
    payload: dict[str, Any] = field(compare=False)


@dataclass
class Switches:
    fail: int = 0
    fail_all: bool = False
    stall: bool = False
    duplicate: bool = False
    omit_fields: tuple[str, ...] = ()


def _ms(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def webhook_custom(defs: list[FieldDef], values: dict[str, Any]) -> dict[str, Any]:
    """Custom-field values in the webhook shape; empty fields are absent."""
    out: dict[str, Any] = {}
    for fdef in defs:
        value = values.get(fdef.key)
        if value is None or value == "" or value == []:
            continue
        out[fdef.key] = webhook_value(fdef.field_type, value)
    return out


def webhook_value(ftype: str, value: Any) -> dict[str, Any]:
    if ftype in {"enum", "user", "org", "people"}:
        return {"type": ftype, "id": value}
    if ftype == "set":
        return {"type": "set", "values": [{"id": v} for v in value]}
    if ftype == "monetary":
        return {"type": ftype, "value": value["value"], "currency": value["currency"]}
    if ftype == "time":
        return {"type": ftype, "value": value["value"], "timezone_id": value["timezone_id"]}
    if ftype in {"daterange", "timerange"}:
        return {"type": ftype, "from": value["start"], "until": value["end"]}
    if ftype == "address":
        return {"type": ftype, **value}
    return {"type": ftype, "value": value}


def _is_deleted(rec: Record) -> bool:
    return bool(
        rec.get("is_deleted") is True or rec.get("_deleted") or rec.get("active_flag") is False
    )


class Webhooks:
    def __init__(self, account: Account, clock: SimClock) -> None:
        self.account = account
        self.clock = clock
        self.switches = Switches()
        self.timeout = TIMEOUT_SECONDS
        self._subs: dict[int, Subscription] = {}
        self._removed: list[Subscription] = []
        self._ids = itertools.count(1)
        self._seq = itertools.count()
        self._queue: list[Delivery] = []
        self._cond = threading.Condition()
        self._busy = 0
        self._merged_from: dict[int, int] = {}
        self.log: list[dict[str, Any]] = []
        self._thread: threading.Thread | None = None
        for store_name, obj in STORE_OBJECTS.items():
            account.stores[store_name].on_put = self._hook(store_name, obj)

    # -- the API ---------------------------------------------------------------------------
    def create(self, req: Request) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            return _errors({"body": ["must be a JSON object"]})
        errors: dict[str, list[str]] = {}
        for key in ("subscription_url", "event_action", "event_object", "name"):
            if not isinstance(body.get(key), str) or not body[key]:
                errors[key] = ["is required"]
        url = str(body.get("subscription_url") or "")
        parts = urlsplit(url)
        if "subscription_url" not in errors and (
            parts.scheme not in {"http", "https"}
            or not parts.hostname
            or (req.base_url and url.startswith(req.base_url))
        ):
            errors["subscription_url"] = ["invalid or non-reachable URL"]
        if "event_action" not in errors and body["event_action"] not in EVENT_ACTIONS:
            errors["event_action"] = [f"must be one of {', '.join(EVENT_ACTIONS)}"]
        if "event_object" not in errors and body["event_object"] not in EVENT_OBJECTS:
            errors["event_object"] = [f"must be one of {', '.join(EVENT_OBJECTS)}"]
        version = body.get("version", "2.0")
        if version not in ("1.0", "2.0"):
            errors["version"] = ["must be 1.0 or 2.0"]
        elif version == "1.0":
            errors["version"] = ["the simulator delivers webhooks v2 (2.0) only"]
        owner = self.account.gen.user_ids[0]
        user_id = body.get("user_id", owner)
        if not isinstance(user_id, int) or self.account.stores["users"].get(user_id) is None:
            errors["user_id"] = ["no such user"]
        for key in ("http_auth_user", "http_auth_password", "name"):
            value = body.get(key)
            if value is not None and not isinstance(value, str):
                errors[key] = ["must be a string"]
        if errors:
            return _errors(errors)
        with self._cond:
            if sum(1 for s in self._subs.values() if s.owner_id == owner) >= MAX_PER_USER:
                return _errors({"webhooks": [f"limit of {MAX_PER_USER} webhooks per user reached"]})
            sub = Subscription(
                id=next(self._ids),
                owner_id=owner,
                user_id=user_id,
                event_action=body["event_action"],
                event_object=body["event_object"],
                subscription_url=url,
                name=body["name"][:255],
                http_auth_user=body.get("http_auth_user"),
                http_auth_password=body.get("http_auth_password"),
                add_time=self.clock.now,
            )
            self._subs[sub.id] = sub
            self._start()
        return Response.json({"status": "ok", "success": True, "data": sub.doc()}, status=201)

    def list_hooks(self, req: Request) -> Response:
        with self._cond:
            data = [s.doc() for s in self._subs.values()]
        return Response.json({"status": "ok", "success": True, "data": data})

    def delete(self, req: Request) -> Response:
        try:
            ident = int(req.params["id"])
        except ValueError:
            ident = -1
        with self._cond:
            sub = self._subs.pop(ident, None)
            if sub is None:
                return Response.json(
                    {"status": "error", "success": False, "errors": {"id": ["not found"]}},
                    status=404,
                )
            self._retire(sub, "deleted by the user")
        return Response.json({"status": "ok", "success": True})

    # -- control ---------------------------------------------------------------------------
    def set_switches(self, body: dict[str, Any]) -> None:
        unknown = set(body) - {"fail", "fail_all", "stall", "duplicate", "omit_fields"}
        if unknown:
            raise ApiError(400, f"unknown webhook switches: {', '.join(sorted(unknown))}")
        with self._cond:
            sw = self.switches
            if "fail" in body:
                sw.fail = int(body["fail"])
            for key in ("fail_all", "stall", "duplicate"):
                if key in body:
                    setattr(sw, key, bool(body[key]))
            if "omit_fields" in body:
                sw.omit_fields = tuple(str(k) for k in body["omit_fields"] or ())
            self._cond.notify_all()

    def report(self) -> dict[str, Any]:
        with self._cond:
            subs = [
                {
                    **s.doc(),
                    "ban_counter": s.ban_counter,
                    "banned_until": to_rfc3339(s.banned_until) if s.banned_until else None,
                }
                for s in [*self._subs.values(), *self._removed]
            ]
            return {
                "subscriptions": subs,
                "pending": len(self._queue),
                "deliveries": list(self.log),
            }

    def drain(self, timeout: float = 30.0) -> int:
        """Wait until nothing due now is queued or being sent; the number still queued."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while time.monotonic() < deadline:
                due = any(d.due <= self.clock.now for d in self._queue)
                if (not due or self.switches.stall) and self._busy == 0:
                    break
                self._cond.wait(0.02)
            return len(self._queue)

    # -- events ----------------------------------------------------------------------------
    def _hook(self, store_name: str, obj: str) -> Any:
        def on_put(old: Record | None, new: Record) -> None:
            if self._subs:
                self._event(store_name, obj, old, new)

        return on_put

    def _event(self, store_name: str, obj: str, old: Record | None, new: Record) -> None:
        if old is None:
            action = "create"
        elif _is_deleted(new) and not _is_deleted(old):
            action = "delete"
        else:
            action = "change"
        with self._cond:
            subs = [s for s in self._subs.values() if s.matches(obj, action)]
        if not subs:
            return
        now = self.clock.now
        ident = new["id"]
        meta: dict[str, Any] = {
            "action": action,
            "entity": obj,
            "entity_id": str(ident),
            "id": str(uuid.uuid4()),
            "company_id": COMPANY_ID,
            "correlation_id": str(uuid.uuid4()),
            "is_bulk_edit": False,
            "timestamp": _ms(now),
            "type": "general",
            "user_id": str(new.get("owner_id") or new.get("user_id") or subs[0].owner_id),
            "version": "2.0",
            "change_source": "api",
            "host": HOST,
            "permitted_user_ids": [str(u) for u in self.account.gen.user_ids],
        }
        if store_name == "deals":
            merged_to = self.account.merged.get(ident)
            if action == "delete" and merged_to is not None:
                meta["merged_to_id"] = str(merged_to)
                self._merged_from[merged_to] = ident
            elif action == "change" and ident in self._merged_from:
                meta["merged_from_id"] = str(self._merged_from.pop(ident))
        data = None if action == "delete" else self._render(store_name, new)
        if action == "create":
            previous = None
        elif action == "delete":
            assert old is not None
            previous = self._render(store_name, old)
        else:
            assert old is not None
            previous = self._changed(store_name, old, new)
        owner = new.get("owner_id", new.get("user_id"))
        with self._cond:
            for sub in subs:
                if not self._is_admin(sub.user_id) and owner != sub.user_id:
                    continue  # a non-admin user's webhook sees only that user's records
                if sub.banned_until is not None and now < sub.banned_until:
                    self._note(sub, meta, 1, None, "lost: webhook banned")
                    continue
                payload = {
                    "meta": {
                        **meta,
                        "webhook_id": str(sub.id),
                        "webhook_owner_id": str(sub.owner_id),
                        "attempt": 1,
                    },
                    "data": data,
                    "previous": previous,
                }
                heapq.heappush(self._queue, Delivery(now, next(self._seq), sub.id, payload))
            self._cond.notify_all()

    def _is_admin(self, user_id: int) -> bool:
        user = self.account.stores["users"].get(user_id)
        return bool(user and user.get("is_admin"))

    def _custom_defs(self, store_name: str) -> list[FieldDef]:
        entity = V2_CUSTOM_ENTITY.get(store_name) or ("deal" if store_name == "leads" else None)
        return self.account.custom[entity] if entity else []

    def _render(self, store_name: str, rec: Record) -> dict[str, Any]:
        out = {
            k: copy.deepcopy(v)
            for k, v in rec.items()
            if k not in INTERNAL_KEYS and k not in self.switches.omit_fields
        }
        defs = self._custom_defs(store_name)
        if defs and "custom_fields" not in self.switches.omit_fields:
            out["custom_fields"] = webhook_custom(defs, rec.get("custom_fields") or {})
        return out

    def _changed(self, store_name: str, old: Record, new: Record) -> dict[str, Any]:
        previous = {
            k: copy.deepcopy(v)
            for k, v in old.items()
            if k not in INTERNAL_KEYS and k != "custom_fields" and new.get(k) != v
        }
        defs = self._custom_defs(store_name)
        if defs:
            before = old.get("custom_fields") or {}
            after = new.get("custom_fields") or {}
            changed = [f for f in defs if before.get(f.key) != after.get(f.key)]
            if changed:
                previous["custom_fields"] = webhook_custom(changed, before)
        return previous

    # -- delivery --------------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                item = None
                if self._queue and not self.switches.stall and self._queue[0].due <= self.clock.now:
                    item = heapq.heappop(self._queue)
                    self._busy += 1
                if item is None:
                    self._cond.wait(0.05)
                    continue
            try:
                self._deliver(item)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _deliver(self, item: Delivery) -> None:
        with self._cond:
            sub = self._subs.get(item.webhook_id)
            if sub is None:
                return
            forced = self.switches.fail_all or self.switches.fail > 0
            if self.switches.fail > 0:
                self.switches.fail -= 1
            duplicate = self.switches.duplicate
        status = 0 if forced else self._post(sub, item.payload)
        if not forced and duplicate and 200 <= status < 300:
            self._post(sub, item.payload)
        now = self.clock.now
        meta = item.payload["meta"]
        attempt = int(meta["attempt"])
        with self._cond:
            sub.last_delivery_time = now
            sub.last_http_status = status or None
            if 200 <= status < 300:
                sub.last_success = now
                self._note(sub, meta, attempt, status, "delivered")
                return
            self._note(sub, meta, attempt, status or None, "failed")
            if now - (sub.last_success or sub.add_time) >= DELETE_AFTER:
                self._subs.pop(sub.id, None)
                self._retire(sub, "no successful delivery in 3 days")
                return
            if attempt == 1:
                sub.ban_counter += 1
                if sub.ban_counter >= BAN_AFTER_FAILED_FIRST_TRIES:
                    sub.ban_counter = 0
                    sub.banned_until = now + timedelta(seconds=BAN_SECONDS)
                    self._queue = [d for d in self._queue if d.webhook_id != sub.id]
                    heapq.heapify(self._queue)
                    return
            if attempt <= len(RETRY_DELAYS):
                retry = {**item.payload, "meta": {**meta, "attempt": attempt + 1}}
                due = now + timedelta(seconds=RETRY_DELAYS[attempt - 1])
                heapq.heappush(self._queue, Delivery(due, next(self._seq), sub.id, retry))

    def _post(self, sub: Subscription, payload: dict[str, Any]) -> int:
        headers = {"content-type": "application/json", "user-agent": "Pipedrive Webhooks"}
        if sub.http_auth_user is not None:
            pair = f"{sub.http_auth_user}:{sub.http_auth_password or ''}".encode()
            headers["authorization"] = "Basic " + base64.b64encode(pair).decode()
        # create() accepted http(s) URLs only.
        request = urllib.request.Request(  # noqa: S310
            sub.subscription_url, data=orjson.dumps(payload), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
                resp.read()
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (OSError, ValueError):
            return 0

    def _note(
        self, sub: Subscription, meta: dict[str, Any], attempt: int, status: int | None, what: str
    ) -> None:
        self.log.append(
            {
                "webhook_id": sub.id,
                "event_id": meta["id"],
                "entity": meta["entity"],
                "entity_id": meta["entity_id"],
                "action": meta["action"],
                "attempt": attempt,
                "status": status,
                "outcome": what,
                "time": to_rfc3339(self.clock.now),
            }
        )

    def _retire(self, sub: Subscription, reason: str) -> None:
        sub.remove_time = self.clock.now
        sub.remove_reason = reason
        self._removed.append(sub)
        self._queue = [d for d in self._queue if d.webhook_id != sub.id]
        heapq.heapify(self._queue)


def _errors(errors: dict[str, list[str]]) -> Response:
    return Response.json({"status": "error", "success": False, "errors": errors}, status=400)
