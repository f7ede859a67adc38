"""Checking a request body is one webhook v2 event (``meta``, ``data``, ``previous``)."""

from __future__ import annotations

import datetime as dt
import typing as t

import orjson

from tap_pipedrive.webhooks.events import Event

#: The event objects the tap reads (one webhook each is registered); others are acknowledged
#: and not stored.
TAP_OBJECTS = (
    "deal",
    "person",
    "organization",
    "product",
    "activity",
    "note",
    "lead",
    "pipeline",
    "stage",
    "user",
)
ACTIONS = ("create", "change", "delete")
MAX_ID_LENGTH = 100


class Rejected(Exception):
    """A body that is not a webhook v2 event; ``reason`` is the metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse(body: bytes) -> Event:
    """The event in ``body``; :class:`Rejected` says what is wrong with it."""
    if not body:
        raise Rejected("empty_body", "the request body is empty")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected("malformed_json", f"the body is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise Rejected("not_v2", "the body is not a JSON object")
    meta = doc.get("meta")
    if not isinstance(meta, dict):
        raise Rejected("not_v2", "the body has no 'meta' object (webhooks v2 have one)")
    if str(meta.get("version")) != "2.0":
        version = meta.get("version")
        raise Rejected(
            "not_v2", f"meta.version is {version!r}, not '2.0': register the webhook as v2.0"
        )
    for key in ("data", "previous"):
        if key not in doc:
            raise Rejected("not_v2", f"the body has no '{key}' (webhooks v2 carry it)")
        if doc[key] is not None and not isinstance(doc[key], dict):
            raise Rejected("not_v2", f"'{key}' is neither an object nor null")
    event_id = _text(meta, "id")
    action = _text(meta, "action")
    if action not in ACTIONS:
        raise Rejected("not_v2", f"meta.action is {action!r}; one of {', '.join(ACTIONS)}")
    entity = _text(meta, "entity")
    entity_id = meta.get("entity_id")
    if isinstance(entity_id, int) and not isinstance(entity_id, bool):
        entity_id = str(entity_id)
    if not isinstance(entity_id, str) or not entity_id or len(entity_id) > MAX_ID_LENGTH:
        raise Rejected("not_v2", "meta.entity_id is missing or not a string id")
    if action == "delete" and not isinstance(doc["previous"], dict):
        raise Rejected("not_v2", "a delete event carries the last state in 'previous'")
    if action != "delete" and not isinstance(doc["data"], dict):
        raise Rejected("not_v2", f"a {action} event carries the current state in 'data'")
    timestamp = _text(meta, "timestamp")
    try:
        when = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected("not_v2", f"meta.timestamp {timestamp[:40]!r} is not ISO 8601") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    attempt = meta.get("attempt")
    return Event(
        event_id=event_id,
        entity=entity,
        action=action,
        entity_id=entity_id,
        event_time=when,
        attempt=attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else None,
        body=t.cast("dict[str, t.Any]", doc),
    )


def _text(meta: dict[str, t.Any], key: str) -> str:
    value = meta.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise Rejected("not_v2", f"meta.{key} is missing or not a short string")
    return value
