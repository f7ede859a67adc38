"""Changelogs of deals, persons and organizations, and records as they were at any time.

``GET /v1/{deals|persons|organizations}/{id}/changelog`` (x-token-cost 20 each) list the field
changes of one record, newest first, keyset-paged by ``cursor``/``limit`` with
``additional_data.next_cursor``. Each entry is shaped as the v1 spec gives it: ``field_key``,
``old_value``/``new_value`` as strings (or null), ``actor_user_id``, ``time``
(``YYYY-MM-DD HH:MM:SS`` UTC), ``change_source``, ``change_source_user_agent``,
``is_bulk_update_flag``.

Field keys are the record's own keys (v2 names, e.g. ``owner_id``) and custom fields' 40-hex
keys. Values are written as the API writes them: numbers as digits (``250`` for 250.0), booleans
``true``/``false``, option ids (enum) as digits, lists of ids (set fields, ``label_ids``)
comma-separated, objects (addresses, monetary values, e-mails) as JSON.

Seeded records come with their past (:mod:`pipedrive_simulator.history_seed`); every mutation
logs one entry per field it changes (:func:`log_changes`). :func:`record_at` replays a record's
log backwards from its current state: the record as the API would have shown it at that time,
which is the ground truth history reconstruction is tested against.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from pipedrive_simulator import history_seed
from pipedrive_simulator.errors import ApiError
from pipedrive_simulator.pagination import decode_cursor, encode_cursor, keyset_page, parse_limit
from pipedrive_simulator.protocol import Request, Response
from pipedrive_simulator.timeutil import parse_query_time, to_v1

if TYPE_CHECKING:
    from pipedrive_simulator.account import Account
    from pipedrive_simulator.store import Record

Event = dict[str, Any]
TRACKED = ("deals", "persons", "organizations")
V1_MAX_LIMIT = 500
# Keys that are not field changes: the record's identity and its own change stamp.
UNLOGGED = frozenset({"id", "add_time", "update_time", "custom_fields"})


def log_text(value: Any) -> str | None:
    """A typed value as the changelog writes it."""
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


def entry_v1(event: Event) -> dict[str, Any]:
    """One changelog entry as the v1 spec shapes it."""
    return {
        "field_key": event["field_key"],
        "old_value": log_text(event["old_value"]),
        "new_value": log_text(event["new_value"]),
        "actor_user_id": event["user_id"],
        "time": to_v1(event["time"]),
        "change_source": event.get("change_source", "app"),
        "change_source_user_agent": None,
        "is_bulk_update_flag": False,
    }


# -- the log ----------------------------------------------------------------------------------


def events_of(account: Account, stream: str, ident: int) -> list[Event]:
    """A record's logged changes, oldest first (a copy)."""
    if stream == "deals":
        return account.deal_events(ident)
    _check(stream)
    with account.lock:
        logged = account.changelogs.get((stream, ident))
        if logged is not None:
            return list(logged)
        rec = account.stores[stream].get(ident)
        if rec is None:
            raise ValueError(f"no {stream} record {ident}")
        return _base_events(account, stream, ident, rec)


def _base_events(account: Account, stream: str, ident: int, rec: Record) -> list[Event]:
    seeded = {"persons": account.sizes.persons, "organizations": account.sizes.organizations}
    if ident > seeded[stream]:
        return []  # created through a mutation: no past
    return history_seed.contact_events(account, stream, rec)


def _log_of(account: Account, stream: str, ident: int) -> list[Event]:
    """The mutable log of a record (kept from its first change on)."""
    if stream == "deals":
        account.snapshot_deal(ident)
        return account.events[ident]
    key = (stream, ident)
    if key not in account.changelogs:
        rec = account.stores[stream].get(ident)
        assert rec is not None
        account.changelogs[key] = _base_events(account, stream, ident, rec)
    return account.changelogs[key]


def _check(stream: str) -> None:
    if stream not in TRACKED:
        raise ValueError(f"no changelog for {stream!r}; one of: {', '.join(TRACKED)}")


def log_changes(
    account: Account,
    stream: str,
    before: Record,
    after: Record,
    user_id: int | None,
    last: tuple[str, ...] = (),
    source: str = "api",
) -> None:
    """Log every field that differs between two states of a record, at its ``update_time``.

    Fields named in ``last`` (the ones the caller asked to change) are logged last, in that
    order, so they are the newest entries; fields changed as a consequence come before them.
    """
    if stream not in TRACKED:
        return
    changed = [
        (key, before.get(key), after.get(key))
        for key in after
        if key not in UNLOGGED and before.get(key) != after.get(key)
    ]
    old_custom = before.get("custom_fields") or {}
    new_custom = after.get("custom_fields") or {}
    changed += [
        (key, old_custom.get(key), new_custom.get(key))
        for key in {**old_custom, **new_custom}
        if old_custom.get(key) != new_custom.get(key)
    ]
    order = {key: n for n, key in enumerate(last)}
    changed.sort(key=lambda c: order.get(c[0], -1))
    with account.lock:
        log = _log_of(account, stream, after["id"])
        for key, old, new in changed:
            entry = history_seed.event(
                after["update_time"], key, copy.deepcopy(old), copy.deepcopy(new), user_id
            )
            log.append({**entry, "change_source": source})


# -- a record as it was -----------------------------------------------------------------------


def record_at(account: Account, stream: str, ident: int, when: str) -> Record | None:
    """The record (internal shape) as it was at ``when`` (RFC 3339 UTC); None before creation."""
    _check(stream)
    with account.lock:
        current = account.stores[stream].get(ident)
        if current is None or when < current["add_time"]:
            return None
        rec = copy.deepcopy(current)
        events = events_of(account, stream, ident)
    values = dict(rec.get("custom_fields") or {})
    last_change = rec["add_time"]
    for event in reversed(events):
        if event["time"] <= when:
            last_change = max(last_change, event["time"])
            continue
        key = event["field_key"]
        if key in values or key not in rec:
            values[key] = copy.deepcopy(event["old_value"])
        else:
            rec[key] = copy.deepcopy(event["old_value"])
    if rec.get("custom_fields") is not None or values:
        rec["custom_fields"] = values
    if when < current["update_time"]:
        rec["update_time"] = last_change
    return rec


def records_at(account: Account, stream: str, when: str) -> list[Record]:
    """Every record of ``stream`` that existed at ``when``, in the v2 shape, as it was then."""
    from pipedrive_simulator.render import v2_record

    _check(stream)
    out = []
    with account.lock:
        store = account.stores[stream]
        for ident in store.ids():
            if stream == "deals" and ident in account.merged:
                continue
            rec = record_at(account, stream, ident, when)
            if rec is not None:
                out.append(v2_record(account, stream, rec))
    return out


# -- HTTP -------------------------------------------------------------------------------------


def changelog_handler(account: Account, stream: str) -> Any:
    """The handler of ``GET /v1/{stream}/{id}/changelog`` for persons and organizations."""
    singular = {"persons": "Person", "organizations": "Organization"}[stream]

    def changelog(req: Request) -> Response:
        try:
            ident = int(req.params["id"])
        except (KeyError, ValueError):
            raise ApiError(400, "id must be an integer") from None
        limit = parse_limit(req.query.get("limit"), maximum=V1_MAX_LIMIT)
        cursor = req.query.get("cursor") or None
        after = decode_cursor(cursor, "log", "desc") if cursor else None
        with account.lock:
            if account.stores[stream].get(ident) is None:
                raise ApiError(404, f"{singular} not found")
            events = events_of(account, stream, ident)
        return page_response(events, limit, after)

    changelog.__name__ = f"{stream}_changelog"
    return changelog


def page_response(events: list[Event], limit: int, after: int | None) -> Response:
    """One page of a changelog, newest first; the cursor is the position in the log."""
    keys = list(range(len(events)))
    page, last = keyset_page(
        keys, after=after, descending=True, limit=limit, accept=lambda k: events[k]
    )
    next_cursor = None if last is None else encode_cursor("log", "desc", last)
    return Response.json(
        {
            "success": True,
            "data": [entry_v1(e) for e in page],
            "additional_data": {"next_cursor": next_cursor},
        }
    )


def truth_at(account: Account, stream: str, query: dict[str, str]) -> Any:
    """``GET /_simulator/truth-at/{stream}?at=...[&id=...]``: records as they were at ``at``."""
    at = query.get("at")
    if not at:
        raise ApiError(400, "truth-at needs at=<RFC 3339 time>")
    try:
        when = parse_query_time("at", at)
        _check(stream)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    if "id" in query:
        from pipedrive_simulator.render import v2_record

        try:
            rec = record_at(account, stream, int(query["id"]), when)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return None if rec is None else v2_record(account, stream, rec)
    return records_at(account, stream, when)
