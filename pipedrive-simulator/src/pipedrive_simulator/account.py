"""The simulated account: records of every entity, field definitions, stage histories.

Reads and mutations go through one lock; records are plain dicts in the v2 shape (v1 shape for
v1-only entities) with internal RFC 3339 UTC timestamps.
"""

from __future__ import annotations

import copy
import threading
from datetime import timedelta
from typing import Any

from pipedrive_simulator import history_seed
from pipedrive_simulator.clock import SimClock
from pipedrive_simulator.fields import SYSTEM_FIELDS, FieldDef
from pipedrive_simulator.generate import ACTIVITY_TYPES, CURRENCIES, Generator, Sizes
from pipedrive_simulator.store import MEMO_LIMIT, Record, Store
from pipedrive_simulator.timeutil import from_epoch, to_rfc3339

DELETED_VISIBLE_DAYS = 30
LINE_ITEM_SLOTS = 10  # deal product ids are deal_id * 10 + k

# Stream name -> field-definition entity.
FIELD_ENTITIES = {
    "deal": "deal",
    "deals": "deal",
    "deal_fields": "deal",
    "person": "person",
    "persons": "person",
    "person_fields": "person",
    "organization": "organization",
    "organizations": "organization",
    "organization_fields": "organization",
    "product": "product",
    "products": "product",
    "product_fields": "product",
    "activity": "activity",
    "activities": "activity",
    "activity_fields": "activity",
    "lead": "lead",
    "leads": "lead",
    "lead_fields": "lead",
    "note": "note",
    "notes": "note",
    "note_fields": "note",
}
# Leads have no custom fields of their own: they carry the deal custom fields.
CUSTOM_FIELD_OWNER = {"lead": "deal"}
CUSTOM_FIELD_TYPES = frozenset(
    {
        "varchar",
        "varchar_auto",
        "text",
        "phone",
        "double",
        "monetary",
        "enum",
        "set",
        "user",
        "org",
        "people",
        "date",
        "daterange",
        "time",
        "timerange",
        "address",
    }
)


def field_entity(name: str) -> str:
    try:
        return FIELD_ENTITIES[name]
    except KeyError:
        raise ValueError(f"no field definitions for entity {name!r}") from None


def custom_entity(name: str) -> str:
    """The entity whose custom fields the records of ``name`` carry."""
    kind = field_entity(name)
    return CUSTOM_FIELD_OWNER.get(kind, kind)


class Account:
    def __init__(self, seed: int, sizes: Sizes, clock: SimClock) -> None:
        self.seed = seed
        self.sizes = sizes
        self.clock = clock
        self.lock = threading.RLock()
        self.gen = gen = Generator(seed, sizes, clock.now)
        self._option_seq = [0]
        self._field_id_seq = 1000
        self.custom: dict[str, list[FieldDef]] = {}
        for entity in ("deal", "person", "organization", "product", "activity"):
            defs = gen.custom_field_defs(entity, self._field_id_seq, self._option_seq)
            self._field_id_seq += 100
            self.custom[entity] = defs
        # Base records are generated against the field set the account started with; fields added
        # later are empty on them until a mutation sets a value.
        self.base_custom = {entity: list(defs) for entity, defs in self.custom.items()}
        self.system = {
            entity: [
                FieldDef(
                    id=i,
                    key=key,
                    name=name,
                    field_type=ftype,
                    is_custom=False,
                    order_nr=i,
                    add_time=to_rfc3339(clock.now - timedelta(days=3 * 365)),
                    update_time=to_rfc3339(clock.now - timedelta(days=3 * 365)),
                    options=self._system_options(entity, key),
                    entity=entity,
                )
                for i, (key, name, ftype) in enumerate(specs, start=1)
            ]
            for entity, specs in SYSTEM_FIELDS.items()
        }
        self.histories: dict[int, list[dict[str, Any]]] = {}
        self.events: dict[int, list[dict[str, Any]]] = {}
        # Persons' and organizations' changelogs from their first mutation on (see changelog.py).
        self.changelogs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        # Deals merged into another deal (merged id -> surviving id): gone from every list, and
        # their per-deal endpoints answer 410 Gone.
        self.merged: dict[int, int] = {}
        n = sizes
        memo = {
            name: count <= MEMO_LIMIT
            for name, count in (
                ("deals", n.deals),
                ("persons", n.persons),
                ("organizations", n.organizations),
                ("activities", n.activities),
                ("notes", n.notes),
                ("leads", n.leads),
            )
        }
        self.stores: dict[str, Store] = {
            "deals": Store(
                "deals",
                lambda: range(1, n.deals + 1),
                self._build_deal,
                base_time=self._deal_time,
                memo=memo["deals"],
            ),
            "persons": Store(
                "persons",
                lambda: range(1, n.persons + 1),
                lambda i: gen.person(i, self.base_custom["person"]),
                base_time=lambda i, f: self._base_time(3, i, n.persons, f),
                memo=memo["persons"],
            ),
            "organizations": Store(
                "organizations",
                lambda: range(1, n.organizations + 1),
                lambda i: gen.organization(i, self.base_custom["organization"]),
                base_time=lambda i, f: self._base_time(2, i, n.organizations, f),
                memo=memo["organizations"],
            ),
            "products": Store(
                "products",
                lambda: range(1, n.products + 1),
                lambda i: gen.product(i, self.base_custom["product"]),
            ),
            "activities": Store(
                "activities",
                lambda: range(1, n.activities + 1),
                gen.activity,
                base_time=lambda i, f: self._base_time(7, i, n.activities, f),
                memo=memo["activities"],
            ),
            "notes": Store(
                "notes",
                lambda: range(1, n.notes + 1),
                gen.note,
                base_time=lambda i, f: self._base_time(8, i, n.notes, f),
                memo=memo["notes"],
            ),
            "files": Store("files", lambda: range(1, n.files + 1), gen.file),
            "leads": Store("leads", self._lead_ids, self._build_lead, memo=memo["leads"]),
            "deal_products": Store(
                "deal_products", self._line_item_ids, self._build_line_item, memo=memo["deals"]
            ),
            "users": Store("users", lambda: list(gen.user_ids), self._build_user),
            "pipelines": Store(
                "pipelines",
                lambda: range(1, len(gen.pipelines) + 1),
                lambda i: copy.deepcopy(gen.pipelines[i - 1]),
            ),
            "stages": Store(
                "stages",
                lambda: range(1, len(gen.stages) + 1),
                lambda i: copy.deepcopy(gen.stages[i - 1]),
            ),
            "activity_types": Store(
                "activity_types", lambda: range(1, len(ACTIVITY_TYPES) + 1), self._activity_type
            ),
            "currencies": Store(
                "currencies", lambda: range(1, len(CURRENCIES) + 1), self._currency
            ),
        }
        self._lead_serials: dict[str, int] | None = None

    # -- base builders -----------------------------------------------------------------------
    def _system_options(self, entity: str, key: str) -> list[dict[str, Any]] | None:
        if entity == "activity" and key == "type":
            # Activity type options use string ids, unlike custom field options.
            return [{"id": k, "label": name} for name, k, _ in ACTIVITY_TYPES]
        if key == "label_ids" and entity == "organization":
            return [
                {"id": i, "label": label}
                for i, label in enumerate(("Customer", "Hot lead", "Warm lead"), 5)
            ]
        if key == "label_ids":
            return [
                {"id": i, "label": label}
                for i, label in enumerate(("Hot", "Warm", "Cold", "VIP"), 1)
            ]
        if entity == "note" and key.startswith("pinned_to_"):
            return [{"id": 1, "label": "Yes"}, {"id": 0, "label": "No"}]
        if entity == "deal" and key == "status":
            return [{"id": s, "label": s.title()} for s in ("open", "won", "lost", "deleted")]
        return None

    def _base_time(self, code: int, ident: int, count: int, field: str) -> str:
        add, update = self.gen.span(code, ident, count)
        return from_epoch(add if field == "add_time" else update)

    def _deal_time(self, ident: int, field: str) -> str:
        if field == "update_time":
            return self.gen.deal_update_time(ident)
        return self._base_time(1, ident, self.sizes.deals, field)

    def _build_deal(self, ident: int) -> Record:
        deal, _ = self.gen.deal(ident, self.base_custom["deal"])
        return deal

    def _lead_ids(self) -> list[str]:
        serials = {self.gen.lead_id(s): s for s in range(1, self.sizes.leads + 1)}
        self._lead_serials = serials
        return list(serials)

    def _build_lead(self, ident: str) -> Record | None:
        if self._lead_serials is None:
            self.stores["leads"].ids()
        assert self._lead_serials is not None
        serial = self._lead_serials.get(ident)
        if serial is None:
            return None
        lead = self.gen.lead(serial, self.base_custom["deal"])
        if lead["is_archived"]:
            lead["archive_time"] = lead["update_time"]
        return lead

    def _line_item_ids(self) -> list[int]:
        return [
            d * LINE_ITEM_SLOTS + k
            for d in range(1, self.sizes.deals + 1)
            for k in range(self.gen.line_item_count(d))
        ]

    def _build_line_item(self, ident: int) -> Record | None:
        deal_id, k = divmod(ident, LINE_ITEM_SLOTS)
        deal = self.stores["deals"].get(deal_id)
        if deal is None or k >= self.gen.line_item_count(deal_id):
            return None
        return self.gen.deal_product(ident, deal)

    def _build_user(self, ident: int) -> Record:
        return self.gen.user(self.gen.user_ids.index(ident) + 1)

    def _activity_type(self, ident: int) -> Record:
        name, key, icon = ACTIVITY_TYPES[ident - 1]
        stamp = self.gen.pipelines[0]["add_time"]
        return {
            "id": ident,
            "order_nr": ident,
            "name": name,
            "key_string": key,
            "icon_key": icon,
            "active_flag": True,
            "color": None,
            "is_custom_flag": ident > 5,
            "add_time": stamp,
            "update_time": stamp,
        }

    def _currency(self, ident: int) -> Record:
        _, code, name, symbol = CURRENCIES[ident - 1]
        return {
            "id": ident,
            "code": code,
            "name": name,
            "decimal_points": 0 if code == "JPY" else 2,
            "symbol": symbol,
            "active_flag": True,
            "is_custom_flag": False,
        }

    # -- reads -------------------------------------------------------------------------------
    def store(self, name: str) -> Store:
        try:
            return self.stores[name]
        except KeyError:
            raise ValueError(f"unknown entity {name!r}") from None

    def deleted_cutoff(self) -> str:
        return to_rfc3339(self.clock.now - timedelta(days=DELETED_VISIBLE_DAYS))

    def deal_visible(self, deal: Record) -> bool:
        """Deleted deals disappear for good 30 days after deletion; merged deals at once."""
        if deal["id"] in self.merged:
            return False
        return not deal["is_deleted"] or deal["update_time"] >= self.deleted_cutoff()

    def custom_defs(self, entity: str) -> list[FieldDef]:
        """The custom fields the records of ``entity`` carry (none for notes)."""
        return self.custom.get(custom_entity(entity), [])

    def field_defs(self, entity: str) -> list[FieldDef]:
        return [*self.system[entity], *self.custom_defs(entity)]

    def custom_def(self, entity: str, key: str) -> FieldDef:
        for fdef in self.custom_defs(entity):
            if fdef.key == key:
                return fdef
        raise ValueError(f"no custom field {key!r} on {entity}")

    def stage_history(self, deal_id: int) -> list[dict[str, Any]]:
        with self.lock:
            if deal_id in self.histories:
                return copy.deepcopy(self.histories[deal_id])
            if self.stores["deals"].get(deal_id) is None:
                raise ValueError(f"no deal {deal_id}")
            return self.gen.deal(deal_id, [])[1]

    def deal_events(self, deal_id: int) -> list[dict[str, Any]]:
        """Changes logged on a deal, oldest first: ``{time, field_key, old_value, new_value,
        user_id}``. Stage and pipeline changes come from the same history as stage_history()."""
        with self.lock:
            if deal_id in self.events:
                return list(self.events[deal_id])
            deal = self.stores["deals"].get(deal_id)
            if deal is None:
                raise ValueError(f"no deal {deal_id}")
            return self._base_events(deal, self.gen.deal(deal_id, [])[1])

    def _base_events(self, deal: Record, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if deal["id"] <= self.sizes.deals:  # a seeded deal: its whole past (history_seed.py)
            return history_seed.deal_events(self, deal, history, self._status_events(deal))
        return self._status_events(deal)

    def _status_events(self, deal: Record) -> list[dict[str, Any]]:
        """A deal's status changes (won or lost, then deleted), oldest first."""
        closed = deal.get("close_time")
        status = deal["status"]
        events: list[dict[str, Any]] = []
        if deal["is_deleted"]:
            if closed:
                events.append(
                    self._status_event(closed, "open", "won" if deal["won_time"] else "lost", deal)
                )
            events.append(
                self._status_event(
                    deal["update_time"],
                    "won" if deal["won_time"] else ("lost" if deal["lost_time"] else "open"),
                    "deleted",
                    deal,
                )
            )
        elif status in {"won", "lost"} and closed:
            events.append(self._status_event(closed, "open", status, deal))
        events.sort(key=lambda e: e["time"])
        return events

    @staticmethod
    def _status_event(time: str, old: str, new: str, deal: Record) -> dict[str, Any]:
        return {
            "time": time,
            "field_key": "status",
            "old_value": old,
            "new_value": new,
            "user_id": deal["owner_id"],
        }

    def line_items_of(self, deal_id: int) -> list[Record]:
        """A deal's line items; none once the deal is purged (30 days after deletion)."""
        deal = self.stores["deals"].get(deal_id)
        if deal is None or not self.deal_visible(deal):
            return []
        store = self.stores["deal_products"]
        ids = [deal_id * LINE_ITEM_SLOTS + k for k in range(LINE_ITEM_SLOTS)]
        return [r for r in store.iter_records(ids) if not r.get("_deleted")]

    def snapshot_deal(self, deal_id: int) -> None:
        """Before mutating a base deal, keep its generated history and events."""
        if deal_id not in self.histories:
            deal = self.stores["deals"].get(deal_id)
            assert deal is not None
            history = self.gen.deal(deal_id, [])[1] if deal_id <= self.sizes.deals else []
            self.histories[deal_id] = history
            self.events[deal_id] = self._base_events(deal, history)
