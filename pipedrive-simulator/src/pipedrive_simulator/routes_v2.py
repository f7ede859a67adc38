"""API v2 handlers: entity lists with keyset cursors, single items, field definitions."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipedrive_simulator.account import Account, field_entity
from pipedrive_simulator.errors import ApiError, bad_request, not_found
from pipedrive_simulator.pagination import decode_cursor, encode_cursor, keyset_page, parse_limit
from pipedrive_simulator.protocol import Request, Response
from pipedrive_simulator.query import (
    bool_param,
    csv_param,
    enum_param,
    int_csv_param,
    int_param,
    reject_unknown,
    time_param,
)
from pipedrive_simulator.relations import Relations
from pipedrive_simulator.render import v2_bytes, v2_record
from pipedrive_simulator.store import Record, key_id

DEAL_STATUSES = ("open", "won", "lost", "deleted")
DEAL_INCLUDE_FIELDS = (
    "next_activity_id",
    "last_activity_id",
    "first_won_time",
    "products_count",
    "files_count",
    "notes_count",
    "followers_count",
    "email_messages_count",
    "activities_count",
    "done_activities_count",
    "undone_activities_count",
    "participants_count",
    "last_incoming_mail_time",
    "last_outgoing_mail_time",
    "smart_bcc_email",
    "source_lead_id",
)
PERSON_INCLUDE_FIELDS = (
    "next_activity_id",
    "last_activity_id",
    "open_deals_count",
    "related_open_deals_count",
    "closed_deals_count",
    "related_closed_deals_count",
    "participant_open_deals_count",
    "participant_closed_deals_count",
    "email_messages_count",
    "activities_count",
    "done_activities_count",
    "undone_activities_count",
    "files_count",
    "notes_count",
    "followers_count",
    "won_deals_count",
    "related_won_deals_count",
    "lost_deals_count",
    "related_lost_deals_count",
    "last_incoming_mail_time",
    "last_outgoing_mail_time",
    "marketing_status",
    "doi_status",
    "smart_bcc_email",
)
ORG_INCLUDE_FIELDS = (
    "next_activity_id",
    "last_activity_id",
    "open_deals_count",
    "related_open_deals_count",
    "closed_deals_count",
    "related_closed_deals_count",
    "email_messages_count",
    "people_count",
    "activities_count",
    "done_activities_count",
    "undone_activities_count",
    "files_count",
    "notes_count",
    "followers_count",
    "won_deals_count",
    "related_won_deals_count",
    "lost_deals_count",
    "related_lost_deals_count",
    "smart_bcc_email",
)
ACTIVITY_INCLUDE_FIELDS = ("attendees",)


@dataclass(frozen=True)
class ListSpec:
    stream: str
    sort_fields: tuple[str, ...] = ("id", "update_time", "add_time")
    filters: tuple[str, ...] = ()  # integer equality filters on the record
    updated_since: bool = True
    updated_until: bool = True
    ids: bool = True
    custom_fields: bool = False
    option_labels: bool = False
    include_fields: tuple[str, ...] = ()
    extra_params: tuple[str, ...] = ()
    filter_id: bool = True
    deal_status: bool = False
    archived: bool | None = None  # deals: False = not archived, True = archived only
    visible: Callable[[Account, Record], bool] = field(
        default=lambda a, r: not r.get("is_deleted", False)
    )

    def allowed(self) -> set[str]:
        names = {
            "limit",
            "cursor",
            "sort_by",
            "sort_direction",
            *self.filters,
            *self.extra_params,
        }
        if self.filter_id:
            names.add("filter_id")
        if self.updated_since:
            names.add("updated_since")
        if self.updated_until:
            names.add("updated_until")
        if self.ids:
            names.add("ids")
        if self.custom_fields:
            names.add("custom_fields")
        if self.option_labels:
            names |= {"include_option_labels", "include_labels"}
        if self.include_fields:
            names.add("include_fields")
        if self.deal_status:
            names.add("status")
        return names


def _always(account: Account, rec: Record) -> bool:
    return True


LISTS: dict[str, ListSpec] = {
    "deals": ListSpec(
        "deals",
        filters=("owner_id", "person_id", "org_id", "pipeline_id", "stage_id"),
        custom_fields=True,
        option_labels=True,
        include_fields=DEAL_INCLUDE_FIELDS,
        deal_status=True,
        archived=False,
    ),
    "deals/archived": ListSpec(
        "deals",
        filters=("owner_id", "person_id", "org_id", "pipeline_id", "stage_id"),
        custom_fields=True,
        include_fields=DEAL_INCLUDE_FIELDS,
        deal_status=True,
        archived=True,
    ),
    "persons": ListSpec(
        "persons",
        filters=("owner_id", "org_id"),
        extra_params=("deal_id",),
        custom_fields=True,
        option_labels=True,
        include_fields=PERSON_INCLUDE_FIELDS,
    ),
    "organizations": ListSpec(
        "organizations",
        filters=("owner_id",),
        custom_fields=True,
        option_labels=True,
        include_fields=ORG_INCLUDE_FIELDS,
    ),
    "activities": ListSpec(
        "activities",
        sort_fields=("id", "update_time", "add_time", "due_date"),
        filters=("owner_id", "deal_id", "person_id", "org_id"),
        extra_params=("done", "lead_id"),
        include_fields=ACTIVITY_INCLUDE_FIELDS,
    ),
    "products": ListSpec(
        "products",
        sort_fields=("id", "name", "add_time", "update_time"),
        filters=("owner_id",),
        updated_until=False,
        custom_fields=True,
    ),
    "pipelines": ListSpec(
        "pipelines",
        updated_since=False,
        updated_until=False,
        ids=False,
        filter_id=False,
        visible=_always,
    ),
    "stages": ListSpec(
        "stages",
        sort_fields=("id", "update_time", "add_time", "order_nr"),
        filters=("pipeline_id",),
        updated_since=False,
        updated_until=False,
        ids=False,
        filter_id=False,
        visible=_always,
    ),
}


def _envelope(parts: list[bytes], next_cursor: str | None) -> bytes:
    return b"".join(
        (
            b'{"success":true,"data":[',
            b",".join(parts),
            b'],"additional_data":{"next_cursor":',
            orjson.dumps(next_cursor),
            b"}}",
        )
    )


class V2:
    def __init__(self, account: Account) -> None:
        self.account = account
        self.relations = Relations(account)

    # -- lists -------------------------------------------------------------------------------
    def list_entities(self, req: Request, name: str) -> Response:
        spec = LISTS[name]
        reject_unknown(req, spec.allowed())
        account = self.account
        limit = parse_limit(req.query.get("limit"))
        sort_by = enum_param(req, "sort_by", spec.sort_fields, "id")
        direction = enum_param(req, "sort_direction", ("asc", "desc"), "asc")
        since = time_param(req, "updated_since") if spec.updated_since else None
        until = time_param(req, "updated_until") if spec.updated_until else None
        equal = {f: v for f in spec.filters if (v := int_param(req, f)) is not None}
        ids = int_csv_param(req, "ids", maximum=100) if spec.ids else None
        statuses = self._statuses(req) if spec.deal_status else None
        custom_keys = self._custom_keys(req, spec)
        labels = bool(bool_param(req, "include_option_labels")) if spec.option_labels else False
        include = tuple(csv_param(req, "include_fields") or ()) if spec.include_fields else ()
        bad = [f for f in include if f not in spec.include_fields]
        if bad:
            raise bad_request(f"include_fields has unknown value(s): {', '.join(bad)}")
        done = bool_param(req, "done") if name == "activities" else None
        lead_id = req.query.get("lead_id") or None if name == "activities" else None
        if req.query.get("filter_id"):
            # The account has no saved filters, so any filter id is unknown.
            raise ApiError(404, f"Filter {req.query['filter_id']} not found")
        labels_of = bool(bool_param(req, "include_labels")) if spec.option_labels else False
        cursor = req.query.get("cursor") or None
        after = decode_cursor(cursor, sort_by, direction) if cursor else None
        fast = custom_keys is None and not labels and not include and not labels_of

        with account.lock:
            store = account.store(spec.stream)
            id_set = set(ids) if ids is not None else None
            if sort_by == "id":
                keys: Any = sorted(id_set) if id_set is not None else store.ids()
            else:
                keys = store.time_index(sort_by)
            lo, hi = 0, len(keys)
            if sort_by == "update_time" and (since or until):
                if since:
                    lo = bisect.bisect_left(keys, since + "|")
                if until:
                    hi = bisect.bisect_left(keys, until + "|")
            by_id = sort_by == "id"
            cutoff = account.deleted_cutoff()
            person_ids = self._persons_of_deal(req) if name == "persons" else None

            def accept(key: Any) -> Any:
                ident = key if by_id else key_id(key)
                if id_set is not None and ident not in id_set:
                    return None
                rec = store.get(ident)
                if rec is None:
                    return None
                if spec.deal_status:
                    if rec["is_archived"] != spec.archived or ident in account.merged:
                        return None
                    if rec["is_deleted"]:
                        if "deleted" not in statuses or rec["update_time"] < cutoff:  # type: ignore[operator]
                            return None
                    elif rec["status"] not in statuses:  # type: ignore[operator]
                        return None
                elif not spec.visible(account, rec):
                    return None
                for fname, value in equal.items():
                    if rec.get(fname) != value:
                        return None
                if done is not None and rec.get("done") != done:
                    return None
                if lead_id is not None and rec.get("lead_id") != lead_id:
                    return None
                if person_ids is not None and rec["id"] not in person_ids:
                    return None
                stamp = rec["update_time"]
                if since is not None and stamp < since:
                    return None
                if until is not None and stamp >= until:
                    return None
                return rec

            records, last_key = keyset_page(
                keys,
                after=after,
                descending=direction == "desc",
                limit=limit,
                lo=lo,
                hi=hi,
                accept=accept,
            )
            parts = [
                self._serialize(spec.stream, r, fast, custom_keys, labels, include, labels_of)
                for r in records
            ]
        next_cursor = None if last_key is None else encode_cursor(sort_by, direction, last_key)
        return Response(body=_envelope(parts, next_cursor))

    def _serialize(
        self,
        stream: str,
        rec: Record,
        fast: bool,
        keys: set[str] | None,
        labels: bool,
        include: tuple[str, ...],
        labels_of: bool = False,
    ) -> bytes:
        store = self.account.stores[stream]
        if fast:
            cached = store.serialized.get(rec["id"])
            if cached is None:
                cached = v2_bytes(self.account, stream, rec)
                store.remember_serialized(rec["id"], cached)
            return cached
        doc = v2_record(self.account, stream, rec, custom_keys=keys, labels=labels)
        for name in include:
            doc[name] = self.relations.value(stream, rec, name)
        if labels_of:
            doc["labels"] = self._label_objects(stream, rec)
        return orjson.dumps(doc)

    def _label_objects(self, stream: str, rec: Record) -> list[dict[str, Any]]:
        entity = {"deals": "deal", "persons": "person", "organizations": "organization"}[stream]
        options = next(
            (f.options or [] for f in self.account.system[entity] if f.key == "label_ids"), []
        )
        names = {o["id"]: o["label"] for o in options}
        return [{"id": i, "label": names.get(i)} for i in rec.get("label_ids") or ()]

    def _persons_of_deal(self, req: Request) -> set[int] | None:
        deal_id = int_param(req, "deal_id")
        if deal_id is None:
            return None
        deal = self.account.stores["deals"].get(deal_id)
        if deal is None or deal.get("person_id") is None:
            return set()
        return {deal["person_id"]}

    @staticmethod
    def _statuses(req: Request) -> set[str]:
        values = csv_param(req, "status")
        if values is None:
            return {"open", "won", "lost"}
        bad = [v for v in values if v not in DEAL_STATUSES]
        if bad:
            raise bad_request(
                f"status must be a comma separated list of {', '.join(DEAL_STATUSES)}"
            )
        return set(values)

    def _custom_keys(self, req: Request, spec: ListSpec) -> set[str] | None:
        if not spec.custom_fields:
            return None
        keys = csv_param(req, "custom_fields", maximum=15)
        return None if keys is None else set(keys)

    # -- single items ------------------------------------------------------------------------
    def get_entity(self, req: Request, name: str) -> Response:
        spec = LISTS[name]
        allowed = set()
        if spec.include_fields:
            allowed.add("include_fields")
        if spec.custom_fields:
            allowed.add("custom_fields")
        if spec.option_labels:
            allowed |= {"include_option_labels", "include_labels"}
        reject_unknown(req, allowed)
        ident = _path_int(req, "id")
        custom_keys = self._custom_keys(req, spec)
        labels = bool(bool_param(req, "include_option_labels")) if spec.option_labels else False
        include = tuple(csv_param(req, "include_fields") or ()) if spec.include_fields else ()
        with self.account.lock:
            rec = self.account.store(spec.stream).get(ident)
            if rec is None or (spec.stream == "deals" and not self.account.deal_visible(rec)):
                raise not_found(spec.stream.rstrip("s").capitalize())
            doc = v2_record(
                self.account,
                spec.stream,
                rec,
                custom_keys=custom_keys,
                labels=labels,
            )
            for name in include:
                doc[name] = self.relations.value(spec.stream, rec, name)
            if spec.option_labels and bool_param(req, "include_labels"):
                doc["labels"] = self._label_objects(spec.stream, rec)
        return Response(body=orjson.dumps({"success": True, "data": doc}))

    # -- deal line items ---------------------------------------------------------------------
    def deal_products(self, req: Request) -> Response:
        reject_unknown(req, {"deal_ids", "cursor", "limit", "sort_by", "sort_direction"})
        deal_ids = int_csv_param(req, "deal_ids", maximum=100)
        if not deal_ids:
            raise bad_request("deal_ids is required")
        limit = parse_limit(req.query.get("limit"))
        sort_by = enum_param(
            req, "sort_by", ("id", "deal_id", "add_time", "update_time", "order_nr"), "id"
        )
        direction = enum_param(req, "sort_direction", ("asc", "desc"), "asc")
        cursor = req.query.get("cursor") or None
        after = decode_cursor(cursor, sort_by, direction) if cursor else None
        with self.account.lock:
            items = [i for d in sorted(set(deal_ids)) for i in self.account.line_items_of(d)]
            keyed = sorted(
                ([i[sort_by], i["id"]] if sort_by != "id" else [i["id"], i["id"]], i) for i in items
            )
            keys = [k for k, _ in keyed]
            by_key = {tuple(k): i for k, i in keyed}
            page, last_key = keyset_page(
                keys,
                after=after,
                descending=direction == "desc",
                limit=limit,
                accept=lambda k: by_key[tuple(k)],
            )
            parts = [orjson.dumps(v2_record(self.account, "deal_products", r)) for r in page]
        next_cursor = None if last_key is None else encode_cursor(sort_by, direction, last_key)
        return Response(body=_envelope(parts, next_cursor))

    def deal_products_of(self, req: Request) -> Response:
        deal_id = _path_int(req, "id")
        req.query = {**req.query, "deal_ids": str(deal_id)}
        return self.deal_products(req)

    # -- field definitions -------------------------------------------------------------------
    def list_fields(self, req: Request, entity: str) -> Response:
        reject_unknown(req, {"include_fields", "limit", "cursor"})
        limit = parse_limit(req.query.get("limit"))
        cursor = req.query.get("cursor") or None
        after = decode_cursor(cursor, "id", "asc") if cursor else None
        with self.account.lock:
            defs = self.account.field_defs(field_entity(entity))
            by_id = {d.id: d for d in defs}
            keys = sorted(by_id)
            page, last_key = keyset_page(
                keys, after=after, descending=False, limit=limit, accept=by_id.get
            )
            data = [d.v2() for d in page]
        next_cursor = None if last_key is None else encode_cursor("id", "asc", last_key)
        return Response(body=_envelope([orjson.dumps(d) for d in data], next_cursor))

    def get_field(self, req: Request, entity: str) -> Response:
        reject_unknown(req, {"include_fields"})
        code = req.params["field_code"]
        with self.account.lock:
            for fdef in self.account.field_defs(field_entity(entity)):
                if fdef.key == code:
                    return Response.json({"success": True, "data": fdef.v2()})
        raise not_found("Field")


def _path_int(req: Request, name: str) -> int:
    raw = req.params[name]
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, got {raw!r}") from None
