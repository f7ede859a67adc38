"""Change records from webhook events: ``deal_changes``, ``person_changes`` and
``organization_changes`` at no API cost.

A v2 change event carries in ``previous`` the old values of the fields it changed and in
``data`` the record after the change (see ../shared/pipedrive-webhooks). Each changed field
becomes the change record a changelog read would give: the event is turned into the v1
changelog's entries (values written as the changelog writes them: numbers as digits, ``true``/
``false``, option ids as digits, lists of ids comma-separated, objects as compact JSON with sorted
keys; custom fields from the webhook shape, e.g. ``{"type": "enum", "id": 3}`` -> ``3``) and read
by :func:`tap_pipedrive.changelog_records.change_records`, so columns, typing, labels and the
stable id (``<entity id>:<epoch of data.update_time>:<field key>[:<part>]:<digest of the two
values>``) are the changelog's. A later changelog read of the same change gives the same id (the
target keeps one row) when the changelog logs it at the same second, under the same key (the
webhook's key: a changelog that names the field otherwise, as Pipedrive's v1 deal changelog names
the owner ``user_id``, gives another id) and with the same value strings. ``user_id`` is
``meta.user_id``, ``change_source`` ``meta.change_source``; ``log_position`` is NULL (the
event does not tell the change's place in the record's log; a changelog read fills it).

Which records' changelog calls are then skipped (:meth:`ChangeFeed.explains`): those whose every
change since the stream's gate is in the events. That is, all their change events are complete
(every changed field's new value is in ``data``; no custom field that ``data`` holds may have
been empty before: ``previous`` leaves empty fields out, so when ``previous`` lists custom fields
and ``data`` holds one it does not list, the change is not known and the changelog is read), the
first event is the record's creation or starts (``previous.update_time``) at or before the gate,
and the last one is at the record's ``update_time``.
"""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from dataclasses import dataclass, field

from tap_pipedrive.backfill import DealHead
from tap_pipedrive.changelog_records import ChangeTyper, change_records

if t.TYPE_CHECKING:
    from tap_pipedrive.webhooks.events import StoredEvent

#: Keys of ``previous`` that are not field changes (the changelog does not log them).
UNLOGGED = frozenset({"id", "add_time", "update_time", "custom_fields"})
#: Slack between a record's ``update_time`` and its last event's (the API rounds to seconds).
SLACK = dt.timedelta(seconds=1)


def log_text(value: t.Any) -> str | None:
    """A value as the v1 changelog writes it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return ",".join(str(v) for v in value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def custom_text(value: t.Any) -> str | None:
    """A custom-field value in the webhook shape as the changelog writes it."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return log_text(value)
    rest = {k: v for k, v in value.items() if k != "type"}
    if "values" in rest:  # set
        return log_text([item.get("id") for item in rest["values"] or []])
    if "id" in rest:  # enum, user, org, people
        return log_text(rest["id"])
    if "from" in rest or "until" in rest:  # daterange, timerange
        return log_text({"start": rest.get("from"), "end": rest.get("until")})
    if set(rest) == {"value"}:
        return log_text(rest["value"])
    return log_text(rest)  # monetary, time, address: the whole object


def _time(value: t.Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def _v1_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def entries(body: t.Mapping[str, t.Any]) -> tuple[list[dict[str, t.Any]], bool]:
    """The changelog entries of one change event, and whether they are all its changes."""
    data = body.get("data") or {}
    previous = body.get("previous") or {}
    meta = body.get("meta") or {}
    when = _time(data.get("update_time")) or _time(meta.get("timestamp"))
    if when is None:
        return [], False
    base = {
        "time": _v1_time(when),
        "actor_user_id": meta.get("user_id"),
        "change_source": meta.get("change_source"),
        "is_bulk_update_flag": meta.get("is_bulk_edit"),
    }
    found: list[dict[str, t.Any]] = []
    complete = True
    for key, old in previous.items():
        if key in UNLOGGED:
            continue
        if key not in data:
            complete = False  # the new value is not in the payload
            continue
        found.append(
            {**base, "field_key": key, "old_value": log_text(old), "new_value": log_text(data[key])}
        )
    old_custom = previous.get("custom_fields")
    if old_custom is not None:
        new_custom = data.get("custom_fields")
        if not isinstance(old_custom, dict) or not isinstance(new_custom, dict):
            return found, False
        for key in sorted(set(old_custom) | set(new_custom)):
            if key not in old_custom:
                # Filled from empty, or unchanged: previous leaves empty fields out.
                complete = False
                continue
            old_text, new_text = custom_text(old_custom[key]), custom_text(new_custom.get(key))
            if old_text != new_text:
                found.append(
                    {**base, "field_key": key, "old_value": old_text, "new_value": new_text}
                )
    return found, complete


@dataclass
class _Covered:
    """What the events say of one record."""

    created: bool = False
    complete: bool = True
    first_previous: dt.datetime | None = None  # update_time before its first change event
    first_seen: bool = False
    last_update: dt.datetime | None = None


@dataclass
class ChangeFeed:
    """Change records from one entity's events, and which records they fully explain."""

    records: list[dict[str, t.Any]]
    position: int
    covered: dict[int, _Covered] = field(default_factory=dict)

    def explains(self, record: DealHead, gate: dt.datetime | None) -> bool:
        """Whether the events hold every change of ``record`` after ``gate`` (so its changelog
        need not be read)."""
        seen = self.covered.get(record.id)
        if seen is None or gate is None or not seen.complete or seen.last_update is None:
            return False
        if seen.last_update < record.update_time - SLACK:
            return False  # a later change than the events show
        if seen.created:
            return True
        return seen.first_previous is not None and seen.first_previous <= gate


def change_feed(events: t.Sequence[StoredEvent], typer: ChangeTyper, id_key: str) -> ChangeFeed:
    """The change records of the events (oldest first), and what they cover."""
    feed = ChangeFeed([], events[-1].position if events else 0)
    for stored in events:
        event = stored.event
        try:
            ident = int(event.entity_id)
        except ValueError:
            continue
        seen = feed.covered.setdefault(ident, _Covered())
        body = event.body
        data = body.get("data") or {}
        if event.action == "create":
            if not seen.first_seen:
                seen.created = True
            seen.first_seen = True
            seen.last_update = _time(data.get("update_time")) or event.event_time
            continue
        if event.action != "change":
            seen.complete = False  # a delete: the record's changelog is gone with it
            continue
        items, complete = entries(body)
        if not seen.first_seen:
            seen.first_previous = _time((body.get("previous") or {}).get("update_time"))
            seen.first_seen = True
        seen.complete = seen.complete and complete
        seen.last_update = _time(data.get("update_time")) or event.event_time
        for record in change_records(typer, id_key, ident, items):
            record["log_position"] = None
            feed.records.append(record)
    return feed
