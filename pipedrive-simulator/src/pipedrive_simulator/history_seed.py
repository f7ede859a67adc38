"""A realistic past for the seeded deals, persons and organizations.

Every seeded record of these three entities was created months ago (its ``add_time``) and
edited since: this module draws, from the seed alone, the field edits between its creation and
its current state (its ``update_time``), newest state = the record as generated. Going back from
the current record, each edit names the value the field had before. The record's last edit is
at its ``update_time`` whenever that is after its creation, so the changelog and the record
agree on when it last changed.

Deals also log what their stage history and status imply: ``stage_change_time`` with each stage
move, ``won_time``/``lost_time``/``close_time``/``local_*_date``/``lost_reason`` with the status
change, ``is_deleted`` with a deletion, ``is_archived``/``archive_time`` with an archiving.
Events are typed as the internal record holds them (:mod:`pipedrive_simulator.changelog` turns
them into the API's strings), oldest first; events at the same second keep their order.
"""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING, Any

from pipedrive_simulator import names
from pipedrive_simulator.fields import FieldDef
from pipedrive_simulator.timeutil import from_epoch, to_rfc3339

if TYPE_CHECKING:
    from pipedrive_simulator.account import Account
    from pipedrive_simulator.store import Record

Event = dict[str, Any]

# Custom-field types whose past values are drawn (the others keep their value throughout).
EDITABLE_CUSTOM_TYPES = frozenset(
    {"varchar", "varchar_auto", "text", "phone", "double", "enum", "set", "user", "date"}
)
SYSTEM_EDITS = {
    "deals": ("value", "value", "title", "owner_id", "expected_close_date", "label_ids"),
    "persons": ("owner_id", "org_id", "label_ids"),
    "organizations": ("owner_id", "website", "industry", "employee_count", "annual_revenue"),
}
ENTITY_CODES = {"deals": 1, "organizations": 2, "persons": 3}
CUSTOM_OWNERS = {"deals": "deal", "persons": "person", "organizations": "organization"}
MAX_EDITS = 6


def _epoch(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def event(time: str, key: str, old: Any, new: Any, user: int | None) -> Event:
    return {
        "time": time,
        "field_key": key,
        "old_value": old,
        "new_value": new,
        "user_id": user,
        "change_source": "app",
    }


def _older_value(
    account: Account, stream: str, rng: random.Random, key: str, current: Any, add: int
) -> Any:
    """A plausible earlier value of a system field, different from ``current``."""
    gen = account.gen
    if key == "value":
        return rng.choice([v for v in (rng.randint(1, 400) * 250, 0) if v != current] or [1])
    if key == "title":
        return f"{current} (draft)" if current else rng.choice(names.DEAL_WORDS)
    if key == "owner_id":
        others = [u for u in gen.user_ids if u != current]
        return rng.choice(others) if others else current
    if key == "expected_close_date":
        if current is None:
            return from_epoch(add + rng.randint(14, 90) * 86400)[:10]
        return None if rng.random() < 0.3 else from_epoch(add + rng.randint(5, 150) * 86400)[:10]
    if key == "label_ids":
        options = (5, 6, 7) if stream == "organizations" else (1, 2, 3, 4)
        older = sorted(rng.sample(options, rng.randint(0, 2)))
        return older if older != current else []
    if key == "org_id":
        count = account.sizes.organizations
        return None if current is not None or not count else rng.randint(1, count)
    if key == "website":
        return None if current else f"https://old{rng.randint(1, 999)}.example.com"
    if key in {"industry", "employee_count", "annual_revenue"}:
        pool = {
            "industry": (None, 1, 2, 3, 4),
            "employee_count": (None, 10, 50, 250, 1000),
            "annual_revenue": (None, 1_000_000, 25_000_000),
        }[key]
        return rng.choice([v for v in pool if v != current])
    raise ValueError(f"no past values for {stream}.{key}")


def _older_custom(account: Account, rng: random.Random, fdef: FieldDef, current: Any) -> Any:
    if current is not None and rng.random() < 0.35:
        return None
    for _ in range(5):
        older = account.gen.custom_value(
            rng, fdef, account.gen.origin + rng.randint(0, 900) * 86400
        )
        if older != current:
            return older
    return None


def past_edits(account: Account, stream: str, rec: Record, busy: set[str]) -> list[Event]:
    """Edits of the record's plain fields between its creation and now, oldest first.

    ``busy``: times that already have a logged change (the deal's stage moves and status); when
    none of them is the record's ``update_time``, the last edit lands there.
    """
    ident = rec["id"]
    code = ENTITY_CODES[stream]
    rng = random.Random((account.seed * 1_000_003 + 900 + code) * 10_000_019 + ident)
    add, update = _epoch(rec["add_time"]), _epoch(rec["update_time"])
    if update <= add:
        return []
    count = rng.randint(0 if rec["update_time"] in busy else 1, MAX_EDITS)
    times = sorted(rng.randint(add + 1, update) for _ in range(count))
    if times and rec["update_time"] not in busy:
        times[-1] = update
    customs = [
        f
        for f in account.base_custom[CUSTOM_OWNERS[stream]]
        if f.field_type in EDITABLE_CUSTOM_TYPES
    ]
    state = dict(rec)
    values = dict(rec.get("custom_fields") or {})
    edits: list[Event] = []
    for at in reversed(times):  # newest first: each edit names the value before it
        user = rec.get("owner_id") if rng.random() < 0.75 else rng.choice(account.gen.user_ids)
        when = from_epoch(at)
        if customs and rng.random() < 0.4:
            fdef = rng.choice(customs)
            current = values.get(fdef.key)
            older = _older_custom(account, rng, fdef, current)
            if older != current:
                values[fdef.key] = older
                edits.append(event(when, fdef.key, older, current, user))
                continue
            if at != update:
                continue
        key = rng.choice(SYSTEM_EDITS[stream])
        current = state.get(key)
        older = _older_value(account, stream, rng, key, current, add)
        if older == current:
            if at != update:
                continue
            # The edit at update_time always happens: the owner changed then.
            key, current = "owner_id", state.get("owner_id")
            older = _older_value(account, stream, rng, key, current, add)
        state[key] = older
        edits.append(event(when, key, older, current, user))
    edits.reverse()
    return edits


def deal_events(
    account: Account, deal: Record, history: list[dict[str, Any]], status_events: list[Event]
) -> list[Event]:
    """Every logged change of a seeded deal, oldest first.

    ``history``: its stage stays (creation first); ``status_events``: its status changes.
    """
    events: list[Event] = []
    previous_change: str | None = None
    for prev, cur in itertools.pairwise(history):
        at, user = cur["entered_at"], cur["user_id"]
        events.append(event(at, "stage_change_time", previous_change, at, user))
        previous_change = at
        if prev["pipeline_id"] != cur["pipeline_id"]:
            events.append(event(at, "pipeline_id", prev["pipeline_id"], cur["pipeline_id"], user))
        events.append(event(at, "stage_id", prev["stage_id"], cur["stage_id"], user))
    for status in status_events:
        at, user, new = status["time"], status["user_id"], status["new_value"]
        if new in {"won", "lost"}:
            side = {
                "close_time": deal["close_time"],
                "won_time": deal["won_time"],
                "lost_time": deal["lost_time"],
                "local_close_date": deal["local_close_date"],
                "local_won_date": deal["local_won_date"],
                "local_lost_date": deal["local_lost_date"],
                "lost_reason": deal["lost_reason"],
            }
            for key, value in side.items():
                if value is not None:
                    events.append(event(at, key, None, value, user))
        events.append({**status, "change_source": "app"})
        if new == "deleted":
            events.append(event(at, "is_deleted", False, True, user))
    if deal.get("is_archived") and deal.get("archive_time"):
        at = deal["archive_time"]
        events.append(event(at, "archive_time", None, at, deal["owner_id"]))
        events.append(event(at, "is_archived", False, True, deal["owner_id"]))
    busy = {e["time"] for e in events}
    events.extend(past_edits(account, "deals", deal, busy))
    # Stable: events of one second keep the order they were logged in.
    events.sort(key=lambda e: e["time"])
    return events


def contact_events(account: Account, stream: str, rec: Record) -> list[Event]:
    """Every logged change of a seeded person or organization, oldest first."""
    return past_edits(account, stream, rec, set())


def now_text(account: Account) -> str:
    return to_rfc3339(account.clock.now)
