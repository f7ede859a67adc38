"""Changes to the account between runs; each stamps update_time with the simulated clock."""

from __future__ import annotations

import copy
import random
from typing import Any

from pipedrive_simulator.account import CUSTOM_FIELD_TYPES, Account, custom_entity
from pipedrive_simulator.changelog import log_changes
from pipedrive_simulator.fields import FieldDef, field_key
from pipedrive_simulator.store import Record, Store

MUTABLE = ("deals", "persons", "organizations", "products", "activities", "notes", "leads", "files")
CUSTOM_STREAMS = {
    "deals": "deal",
    "persons": "person",
    "organizations": "organization",
    "products": "product",
}
READ_ONLY_KEYS = frozenset({"id", "add_time", "update_time"})
# Deal fields with their own operation (so histories and logs stay consistent).
DEAL_OPERATION_KEYS = {
    "pipeline_id": "move_deal to a stage of the other pipeline",
    "stage_change_time": "move_deal",
    "is_deleted": "delete",
    "is_archived": "archive_deal",
    "archive_time": "archive_deal",
}


class Mutator:
    def __init__(self, account: Account) -> None:
        self.account = account
        self._field_serial = 1000

    # -- helpers -----------------------------------------------------------------------------
    def _store(self, entity: str) -> Store:
        if entity not in MUTABLE:
            raise ValueError(f"entity {entity!r} cannot be mutated; one of: {', '.join(MUTABLE)}")
        return self.account.stores[entity]

    def _existing(self, entity: str, ident: Any) -> Record:
        rec = self._store(entity).get(ident)
        if (
            rec is None
            or rec.get("_deleted")
            or rec.get("is_deleted")
            or rec.get("active_flag") is False
        ):
            raise ValueError(f"no {entity} record with id {ident!r}")
        return rec

    def _apply(
        self, entity: str, rec: Record, fields: dict[str, Any]
    ) -> list[tuple[str, Any, Any]]:
        changes = []
        owner = CUSTOM_STREAMS.get(entity) or ("deal" if entity == "leads" else None)
        custom_keys = {f.key for f in self.account.custom[owner]} if owner else set()
        for key, value in fields.items():
            if key in READ_ONLY_KEYS:
                raise ValueError(f"{key} cannot be set")
            if entity == "deals" and key in DEAL_OPERATION_KEYS:
                raise ValueError(f"{key} cannot be set directly: use {DEAL_OPERATION_KEYS[key]}")
            if key in custom_keys:
                values = rec.setdefault("custom_fields", {}) or {}
                rec["custom_fields"] = values
                changes.append((key, values.get(key), value))
                values[key] = value
            elif key in rec:
                changes.append((key, rec[key], value))
                rec[key] = value
            else:
                raise ValueError(f"{entity} has no field {key!r}")
        return changes

    # -- create / update / delete ------------------------------------------------------------
    def create(self, entity: str, **fields: Any) -> Record:
        acc = self.account
        with acc.lock:
            store = self._store(entity)
            now = acc.clock.now_text()
            gen = acc.gen
            if entity == "leads":
                serial = len(store) + 1
                while gen.lead_id(serial) in store.ids():
                    serial += 1
                template = gen.lead(serial, acc.base_custom["deal"])
            else:
                ident = (max(store.ids(), default=0) if len(store) else 0) + 1
                build = {
                    "deals": lambda i: gen.deal(i, acc.base_custom["deal"])[0],
                    "persons": lambda i: gen.person(i, acc.base_custom["person"]),
                    "organizations": lambda i: gen.organization(i, acc.base_custom["organization"]),
                    "products": lambda i: gen.product(i, acc.base_custom["product"]),
                    "activities": gen.activity,
                    "notes": gen.note,
                    "files": gen.file,
                }[entity]
                template = build(ident)
            rec = copy.deepcopy(template)
            rec["add_time"] = rec["update_time"] = now
            if entity == "deals":
                stage = acc.stores["stages"].get(fields.get("stage_id", 1))
                if stage is None:
                    raise ValueError(f"no stage {fields.get('stage_id')}")
                rec.update(
                    status="open",
                    is_deleted=False,
                    is_archived=False,
                    archive_time=None,
                    close_time=None,
                    won_time=None,
                    lost_time=None,
                    local_won_date=None,
                    local_lost_date=None,
                    local_close_date=None,
                    lost_reason=None,
                    stage_change_time=None,
                    stage_id=stage["id"],
                    pipeline_id=stage["pipeline_id"],
                )
            if entity in {"persons", "organizations", "products", "activities"}:
                rec["is_deleted"] = False
            if entity == "leads":  # a new lead is never archived
                rec.update(is_archived=False, archive_time=None)
            self._apply(entity, rec, {k: v for k, v in fields.items()})
            if entity == "deals":
                stage = acc.stores["stages"].get(rec["stage_id"])
                assert stage is not None
                rec["pipeline_id"] = stage["pipeline_id"]
                acc.histories[rec["id"]] = [
                    {
                        "stage_id": rec["stage_id"],
                        "pipeline_id": rec["pipeline_id"],
                        "entered_at": now,
                        "user_id": rec["owner_id"],
                    }
                ]
                acc.events[rec["id"]] = []
            store.put(rec)
            return copy.deepcopy(rec)

    def update(self, entity: str, ident: Any, **fields: Any) -> Record:
        acc = self.account
        with acc.lock:
            if entity == "deals" and "stage_id" in fields:
                self.move_deal(ident, fields.pop("stage_id"))
            before = self._existing(entity, ident)
            rec = copy.deepcopy(before)
            changes = self._apply(entity, rec, fields)
            rec["update_time"] = acc.clock.now_text()
            if entity == "leads" and any(key == "is_archived" for key, _, _ in changes):
                rec["archive_time"] = rec["update_time"] if rec["is_archived"] else None
            if entity == "deals":
                self._deal_status_side_effects(rec, changes)
            log_changes(acc, entity, before, rec, rec.get("owner_id"), tuple(fields))
            self._store(entity).put(rec)
            return copy.deepcopy(rec)

    def _deal_status_side_effects(self, rec: Record, changes: list[tuple[str, Any, Any]]) -> None:
        for key, _, new in changes:
            if key != "status":
                continue
            if new not in {"open", "won", "lost"}:
                raise ValueError("status must be open, won or lost (use delete for deleted)")
            now = rec["update_time"]
            rec["won_time"] = now if new == "won" else None
            rec["lost_time"] = now if new == "lost" else None
            rec["close_time"] = now if new != "open" else None
            rec["local_won_date"] = now[:10] if new == "won" else None
            rec["local_lost_date"] = now[:10] if new == "lost" else None
            rec["local_close_date"] = now[:10] if new != "open" else None

    def delete(self, entity: str, ident: Any) -> None:
        acc = self.account
        with acc.lock:
            before = self._existing(entity, ident)
            rec = copy.deepcopy(before)
            now = acc.clock.now_text()
            rec["update_time"] = now
            if entity == "deals":
                rec["status"] = "deleted"
                rec["is_deleted"] = True
            elif entity in {"notes", "files"}:
                rec["active_flag"] = False
            elif entity == "leads":
                rec["_deleted"] = True
            else:
                rec["is_deleted"] = True
            log_changes(acc, entity, before, rec, rec.get("owner_id"), ("is_deleted", "status"))
            self._store(entity).put(rec)

    def archive_deal(self, ident: int) -> Record:
        acc = self.account
        with acc.lock:
            before = self._existing("deals", ident)
            rec = copy.deepcopy(before)
            if rec["is_archived"]:
                raise ValueError(f"deal {ident} is already archived")
            now = acc.clock.now_text()
            rec.update(is_archived=True, archive_time=now, update_time=now)
            log_changes(acc, "deals", before, rec, rec["owner_id"], ("is_archived",))
            acc.stores["deals"].put(rec)
            return copy.deepcopy(rec)

    def move_deal(self, ident: int, stage_id: int, user_id: int | None = None) -> Record:
        acc = self.account
        with acc.lock:
            before = self._existing("deals", ident)
            rec = copy.deepcopy(before)
            stage = acc.stores["stages"].get(stage_id)
            if stage is None or stage.get("is_deleted"):
                raise ValueError(f"no stage {stage_id}")
            if stage_id == rec["stage_id"]:
                raise ValueError(f"deal {ident} is already in stage {stage_id}")
            acc.snapshot_deal(ident)
            now = acc.clock.now_text()
            actor = user_id if user_id is not None else rec["owner_id"]
            if actor not in acc.gen.user_ids:
                raise ValueError(f"no user {actor}")
            acc.histories[ident].append(
                {
                    "stage_id": stage_id,
                    "pipeline_id": stage["pipeline_id"],
                    "entered_at": now,
                    "user_id": actor,
                }
            )
            rec.update(
                stage_id=stage_id,
                pipeline_id=stage["pipeline_id"],
                stage_change_time=now,
                update_time=now,
            )
            log_changes(acc, "deals", before, rec, actor, ("pipeline_id", "stage_id"))
            acc.stores["deals"].put(rec)
            return copy.deepcopy(rec)

    # -- fields ------------------------------------------------------------------------------
    def add_field(
        self, entity: str, name: str, field_type: str, options: list[str] | None = None
    ) -> str:
        acc = self.account
        kind = custom_entity(entity)
        if kind == "activity":
            raise ValueError("activities have no custom fields in API v2")
        if kind not in acc.custom:
            raise ValueError(f"{entity} have no custom fields")
        if field_type not in CUSTOM_FIELD_TYPES:
            raise ValueError(
                f"unknown field_type {field_type!r}; "
                f"one of: {', '.join(sorted(CUSTOM_FIELD_TYPES))}"
            )
        if field_type in {"enum", "set"} and not options:
            raise ValueError(f"a {field_type} field needs options")
        with acc.lock:
            self._field_serial += 1
            now = acc.clock.now_text()
            opts = None
            if options:
                opts = []
                for label in options:
                    acc._option_seq[0] += 1
                    opts.append({"id": acc._option_seq[0], "label": label, "color": None})
            existing = acc.custom[kind]
            fdef = FieldDef(
                id=max((f.id for f in existing), default=5000) + 1,
                key=field_key(acc.seed, f"{kind}-added", self._field_serial),
                name=name,
                field_type=field_type,
                is_custom=True,
                order_nr=max((f.order_nr for f in existing), default=100) + 1,
                add_time=now,
                update_time=now,
                options=opts,
                entity=kind,
            )
            existing.append(fdef)
            self._forget(kind)
            return fdef.key

    def rename_field(self, entity: str, key: str, new_name: str) -> None:
        with self.account.lock:
            fdef = self.account.custom_def(entity, key)
            fdef.name = new_name
            fdef.update_time = self.account.clock.now_text()

    def delete_field(self, entity: str, key: str) -> None:
        with self.account.lock:
            fdef = self.account.custom_def(entity, key)
            kind = custom_entity(entity)
            self.account.custom[kind].remove(fdef)
            self._forget(kind)

    def add_field_option(self, entity: str, key: str, label: str) -> int:
        acc = self.account
        with acc.lock:
            fdef = acc.custom_def(entity, key)
            if fdef.options is None:
                raise ValueError(f"field {key} is a {fdef.field_type} field and has no options")
            acc._option_seq[0] += 1
            fdef.options.append({"id": acc._option_seq[0], "label": label, "color": None})
            fdef.update_time = acc.clock.now_text()
            self._forget(custom_entity(entity))
            return acc._option_seq[0]

    def rename_field_option(self, entity: str, key: str, option_id: int, label: str) -> None:
        """Relabel an enum/set option; records keep the option id, so they show the new label.
        Their update_time does not change."""
        acc = self.account
        with acc.lock:
            fdef = acc.custom_def(entity, key)
            fdef.option(option_id)["label"] = label
            fdef.update_time = acc.clock.now_text()
            self._forget(custom_entity(entity))

    def delete_field_option(self, entity: str, key: str, option_id: int) -> None:
        """Remove an enum/set option from the field (v1 then lists it in ``options_deleted``).
        Records that hold it keep the id."""
        acc = self.account
        with acc.lock:
            fdef = acc.custom_def(entity, key)
            option = fdef.option(option_id)
            assert fdef.options is not None
            fdef.options.remove(option)
            fdef.deleted_options.append(option)
            fdef.update_time = acc.clock.now_text()
            self._forget(custom_entity(entity))

    def _forget(self, kind: str) -> None:
        for stream, entity in CUSTOM_STREAMS.items():
            if entity == kind:
                self.account.stores[stream].forget_serialized()

    # -- pipelines and stages ----------------------------------------------------------------
    def rename_stage(self, ident: int, name: str) -> None:
        acc = self.account
        with acc.lock:
            stage = acc.stores["stages"].get(ident)
            if stage is None:
                raise ValueError(f"no stage {ident}")
            stage = {**stage, "name": name, "update_time": acc.clock.now_text()}
            acc.stores["stages"].put(stage)

    def add_stage(self, pipeline_id: int, name: str) -> int:
        acc = self.account
        with acc.lock:
            if acc.stores["pipelines"].get(pipeline_id) is None:
                raise ValueError(f"no pipeline {pipeline_id}")
            store = acc.stores["stages"]
            stages = [s for s in store.iter_records(store.ids()) if s["pipeline_id"] == pipeline_id]
            now = acc.clock.now_text()
            ident = int(max(store.ids())) + 1
            store.put(
                {
                    "id": ident,
                    "order_nr": len(stages) + 1,
                    "name": name,
                    "is_deleted": False,
                    "deal_probability": 100,
                    "pipeline_id": pipeline_id,
                    "is_deal_rot_enabled": False,
                    "days_to_rotten": None,
                    "add_time": now,
                    "update_time": now,
                }
            )
            return ident

    # -- a realistic mix ---------------------------------------------------------------------
    def random_changes(self, n: int, seed: int | None = None) -> dict[str, int]:
        acc = self.account
        rng = random.Random(seed if seed is not None else acc.seed + 7)
        summary = {k: 0 for k in ("created", "updated", "deleted", "archived", "moved")}
        with acc.lock:
            deals = acc.stores["deals"]
            stage_ids = list(acc.stores["stages"].ids())
            for _ in range(n):
                roll = rng.random()
                if roll < 0.15:
                    entity = rng.choice(
                        ("deals", "persons", "organizations", "notes", "activities")
                    )
                    self.create(entity)
                    summary["created"] += 1
                    continue
                entity = rng.choice(
                    ("deals", "deals", "deals", "persons", "organizations", "activities")
                )
                store = acc.stores[entity]
                ident = rng.randint(1, max(len(store), 1))
                rec = store.get(ident)
                if rec is None or rec.get("is_deleted") or rec.get("is_archived"):
                    continue
                if entity == "deals" and roll < 0.55:
                    choices = [s for s in stage_ids if s != rec["stage_id"]]
                    self.move_deal(ident, rng.choice(choices))
                    summary["moved"] += 1
                elif entity == "deals" and roll < 0.6:
                    self.archive_deal(ident)
                    summary["archived"] += 1
                elif roll < 0.65:
                    self.delete(entity, ident)
                    summary["deleted"] += 1
                else:
                    field = {
                        "deals": "value",
                        "persons": "name",
                        "organizations": "name",
                        "activities": "subject",
                    }[entity]
                    value: Any = (
                        float(rng.randint(1, 400) * 250)
                        if field == "value"
                        else f"{rec[field]} (edited)"
                    )
                    self.update(entity, ident, **{field: value})
                    summary["updated"] += 1
            del deals
        return summary
