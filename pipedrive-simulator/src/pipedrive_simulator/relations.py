"""Values of the optional v2 ``include_fields``: counts and links computed from the account.

Records are grouped by their link to a deal, person or organization once per version of the
child entity, so a page asking for counts costs one pass over the children, not one per record.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pipedrive_simulator.account import Account
from pipedrive_simulator.store import Record

OWNER_KEY = {"deals": "deal_id", "persons": "person_id", "organizations": "org_id"}
# Things the account does not model (mail, followers besides the owner) count as none.
NOT_MODELLED = frozenset(
    {
        "email_messages_count",
        "last_incoming_mail_time",
        "last_outgoing_mail_time",
        "marketing_status",
        "doi_status",
        "source_lead_id",
    }
)


class Relations:
    def __init__(self, account: Account) -> None:
        self.account = account
        self._groups: dict[tuple[str, str], tuple[int, dict[Any, list[Record]]]] = {}

    def children(self, child: str, key: str, parent_id: Any) -> list[Record]:
        """Live records of ``child`` whose ``key`` is ``parent_id``."""
        store = self.account.stores[child]
        cached = self._groups.get((child, key))
        if cached is None or cached[0] != store.version:
            groups: dict[Any, list[Record]] = defaultdict(list)
            for rec in store.iter_records(store.ids()):
                if rec.get(key) is not None and _alive(child, rec):
                    groups[rec[key]].append(rec)
            cached = (store.version, dict(groups))
            self._groups[(child, key)] = cached
        return cached[1].get(parent_id, [])

    def value(self, stream: str, rec: Record, name: str) -> Any:
        ident = rec["id"]
        if name in NOT_MODELLED:
            return 0 if name.endswith("_count") else None
        if name == "attendees":
            return rec.get("attendees", [])
        if name == "smart_bcc_email":
            return f"company+{stream[:-1]}{ident}@pipedrivemail.example.com"
        if name == "followers_count":
            return 1  # the owner follows what they own
        if name == "products_count":
            return len(self.account.line_items_of(ident))
        if name == "first_won_time":
            return rec.get("won_time")
        key = OWNER_KEY[stream]
        if name == "notes_count":
            return len(self.children("notes", key, ident))
        if name == "files_count":
            return len(self.children("files", key, ident))
        activities = self.children("activities", key, ident)
        if name == "activities_count":
            return len(activities)
        if name == "done_activities_count":
            return sum(1 for a in activities if a["done"])
        if name == "undone_activities_count":
            return sum(1 for a in activities if not a["done"])
        if name == "next_activity_id":
            undone = [a for a in activities if not a["done"]]
            return min(undone, key=lambda a: (a["due_date"], a["id"]))["id"] if undone else None
        if name == "last_activity_id":
            done = [a for a in activities if a["done"]]
            return max(done, key=lambda a: (a["due_date"], a["id"]))["id"] if done else None
        if name == "people_count":
            return len(self.children("persons", "org_id", ident))
        if name == "participants_count":
            return 1 if rec.get("person_id") else 0
        return self._deal_count(stream, rec, name)

    def _deal_count(self, stream: str, rec: Record, name: str) -> int:
        """open/closed/won/lost deal counts, direct, related (via the organization) and as a
        participant (the contact person takes part in their deals)."""
        field = (
            name.removeprefix("related_").removeprefix("participant_").removesuffix("_deals_count")
        )
        wanted = {"open": {"open"}, "closed": {"won", "lost"}, "won": {"won"}, "lost": {"lost"}}
        if field not in wanted:
            raise ValueError(f"include_fields value {name!r} is not supported")
        key = OWNER_KEY[stream]
        deals = self.children("deals", key, rec["id"])
        if name.startswith("related_"):
            org_id = rec.get("org_id") if stream == "persons" else None
            own = {d["id"] for d in deals}
            deals = [d for d in self.children("deals", "org_id", org_id) if d["id"] not in own]
        return sum(1 for d in deals if d["status"] in wanted[field])


def _alive(stream: str, rec: Record) -> bool:
    if stream == "deals":
        return not rec["is_deleted"] and not rec["is_archived"]
    if "active_flag" in rec:
        return bool(rec["active_flag"])
    return not rec.get("is_deleted", False)
