"""API v1 handlers (offset pagination): notes, users, leads, files, deal flow and changelog,
recents, field definitions, activity types, currencies; removed legacy list endpoints."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any, Final

import orjson

from pipedrive_simulator.account import Account, field_entity
from pipedrive_simulator.changelog import page_response as changelog_page
from pipedrive_simulator.errors import ApiError, bad_request, not_found
from pipedrive_simulator.fields import NOTE_FIELD_KEYS
from pipedrive_simulator.listing import Listings, ids_since
from pipedrive_simulator.merges import merged_deal_gone
from pipedrive_simulator.pagination import (
    decode_cursor,
    parse_limit,
    parse_start,
    v1_pagination,
)
from pipedrive_simulator.protocol import Request, Response
from pipedrive_simulator.query import int_param
from pipedrive_simulator.render import (
    file_v1,
    lead_v1,
    legacy_v1,
    note_v1,
    pipeline_v1,
    stage_v1,
    user_v1,
)
from pipedrive_simulator.store import Record
from pipedrive_simulator.timeutil import parse_query_time, parse_v1_time, to_v1

V1_MAX_LIMIT = 500
COMPANY_ID = 15043420
RECENT_STREAMS: Final = MappingProxyType(
    {
        "deal": "deals",
        "person": "persons",
        "organization": "organizations",
        "activity": "activities",
        "note": "notes",
        "product": "products",
        "file": "files",
        "user": "users",
        "pipeline": "pipelines",
        "stage": "stages",
        "activityType": "activity_types",
    }
)


def _page(data: list[Any], start: int, limit: int, total: int, **extra: Any) -> Response:
    additional: dict[str, Any] = {"pagination": v1_pagination(start, limit, total), **extra}
    return Response.json({"success": True, "data": data, "additional_data": additional})


NOTE_SORTS = frozenset(
    {"id", "user_id", "deal_id", "person_id", "org_id", "content", "add_time", "update_time"}
)
LEAD_SORTS = frozenset(
    {
        "id",
        "title",
        "owner_id",
        "creator_id",
        "was_seen",
        "expected_close_date",
        "next_activity_id",
        "add_time",
        "update_time",
    }
)
FILE_SORTS = frozenset({"id", "update_time"})
FILES_MAX_LIMIT = 100  # the spec caps /v1/files at 100 per page


SIMPLE_SORTS = {
    None: (False, False),
    "id": (False, False),
    "id ASC": (False, False),
    "id DESC": (False, True),
    "update_time": (True, False),
    "update_time ASC": (True, False),
    "update_time DESC": (True, True),
}


def _simple_sort(sort: str | None) -> tuple[bool, bool] | None:
    """(by update_time, descending) for the orders an index answers; None for the rest."""
    return SIMPLE_SORTS.get(None if sort is None else " ".join(sort.split()))


def _active(rec: Record | None) -> bool:
    # Records not built yet are base records, which are all active.
    return rec is None or bool(rec["active_flag"])


def _sort_key(field: str) -> Callable[[Record], tuple[bool, Any]]:
    def key(rec: Record) -> tuple[bool, Any]:
        value = rec.get(field)
        return (value is None, "" if value is None else value)

    return key


def _sorted(
    rows: list[Record], sort: str | None, allowed: frozenset[str], tiebreak: Callable[[Record], Any]
) -> list[Record]:
    """Apply a v1 ``sort`` parameter (``field ASC, other DESC``); None sorts after values."""
    rows = sorted(rows, key=tiebreak)
    if not sort:
        return rows
    specs = []
    for part in sort.split(","):
        field, _, direction = part.strip().partition(" ")
        direction = direction.strip().upper() or "ASC"
        if field not in allowed:
            raise bad_request(
                f"sort field {field!r} is not supported; one of: {', '.join(sorted(allowed))}"
            )
        if direction not in {"ASC", "DESC"}:
            raise bad_request(f"sort direction must be ASC or DESC, got {direction!r}")
        specs.append((field, direction == "DESC"))
    for field, descending in reversed(specs):
        rows.sort(key=_sort_key(field), reverse=descending)
    return rows


def _path_int(req: Request, name: str = "id") -> int:
    raw = req.params[name]
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {raw!r}") from None


class V1:
    def __init__(self, account: Account) -> None:
        self.account = account
        self.listings = Listings()
        #: The account's saved filters (coverage data), for recents' ``filter`` items.
        self.saved_filters: Callable[[], list[Record]] = list

    # -- notes -------------------------------------------------------------------------------
    def notes(self, req: Request) -> Response:
        start = parse_start(req.query.get("start"))
        limit = parse_limit(req.query.get("limit"), maximum=V1_MAX_LIMIT)
        since_raw = req.query.get("updated_since")
        since = None
        if since_raw:
            try:
                since = parse_v1_time("updated_since", since_raw)
            except ValueError:
                try:
                    since = parse_query_time("updated_since", since_raw)
                except ValueError as exc:
                    raise bad_request(str(exc)) from None
        filters = {
            k: v
            for k in ("user_id", "deal_id", "person_id", "org_id")
            if (v := int_param(req, k)) is not None
        }
        sort = req.query.get("sort")
        with self.account.lock:
            store = self.account.stores["notes"]

            def build() -> list[Any]:
                simple = _simple_sort(sort)
                if not filters and simple is not None:
                    ids = ids_since(store, since, *simple)
                    return [i for i in ids if _active(store.peek(i))]
                rows = [
                    r
                    for r in store.iter_records(store.ids())
                    if r["active_flag"]
                    and (since is None or r["update_time"] >= since)
                    and all(r.get(k) == v for k, v in filters.items())
                ]
                return [r["id"] for r in _sorted(rows, sort, NOTE_SORTS, lambda r: r["id"])]

            query = (since, tuple(sorted(filters.items())), sort)
            ids = self.listings.ids(store, query, build)
            page = [
                note_v1(self.account, r) for r in store.iter_records(ids[start : start + limit])
            ]
        return _page(page, start, limit, len(ids))

    def note(self, req: Request) -> Response:
        with self.account.lock:
            rec = self.account.stores["notes"].get(_path_int(req))
            if rec is None or not rec["active_flag"]:
                raise not_found("Note")
            return Response.json({"success": True, "data": note_v1(self.account, rec)})

    # -- users (unpaginated) -----------------------------------------------------------------
    def users(self, req: Request) -> Response:
        with self.account.lock:
            store = self.account.stores["users"]
            data = [user_v1(r) for r in store.iter_records(store.ids())]
        return Response.json(
            {"success": True, "data": data, "additional_data": {"company_id": COMPANY_ID}}
        )

    def user(self, req: Request) -> Response:
        with self.account.lock:
            rec = self.account.stores["users"].get(_path_int(req))
            if rec is None:
                raise not_found("User")
            return Response.json(
                {
                    "success": True,
                    "data": user_v1(rec),
                    "additional_data": {"company_id": COMPANY_ID},
                }
            )

    def me(self, req: Request) -> Response:
        with self.account.lock:
            rec = self.account.stores["users"].get(self.account.gen.user_ids[0])
            assert rec is not None
            data = {
                **user_v1(rec),
                "company_id": COMPANY_ID,
                "company_name": "Simulated Company",
                "company_domain": "simulated",
                "company_country": "EE",
                "company_industry": None,
                "language": {"language_code": "en", "country_code": "US"},
            }
            return Response.json({"success": True, "data": data})

    # -- leads -------------------------------------------------------------------------------
    def leads(self, req: Request) -> Response:
        return self._leads(req, archived=False)

    def archived_leads(self, req: Request) -> Response:
        return self._leads(req, archived=True)

    def _leads(self, req: Request, *, archived: bool) -> Response:
        """``/leads`` lists the leads not archived, ``/leads/archived`` the archived ones; the
        archived list documents no ``updated_since`` (so it is not applied there)."""
        start = parse_start(req.query.get("start"))
        limit = parse_limit(req.query.get("limit"), maximum=V1_MAX_LIMIT)
        since = None
        if not archived and req.query.get("updated_since"):
            try:
                since = parse_query_time("updated_since", req.query["updated_since"])
            except ValueError as exc:
                raise bad_request(str(exc)) from None
        filters = {
            k: v
            for k in ("owner_id", "person_id", "organization_id")
            if (v := int_param(req, k)) is not None
        }
        sort = req.query.get("sort")
        with self.account.lock:
            store = self.account.stores["leads"]

            def build() -> list[Any]:
                rows = [
                    r
                    for r in store.iter_records(store.ids())
                    if r["is_archived"] == archived
                    and not r.get("_deleted")
                    and (since is None or r["update_time"] >= since)
                    and all(r.get(k) == v for k, v in filters.items())
                ]
                return [r["id"] for r in _sorted(rows, sort, LEAD_SORTS, lambda r: r["_serial"])]

            query = (archived, since, tuple(sorted(filters.items())), sort)
            ids = self.listings.ids(store, query, build)
            page = [
                lead_v1(self.account, r) for r in store.iter_records(ids[start : start + limit])
            ]
        return _page(page, start, limit, len(ids))

    def lead(self, req: Request) -> Response:
        with self.account.lock:
            rec = self.account.stores["leads"].get(req.params["id"])
            if rec is None or rec.get("_deleted"):
                raise not_found("Lead")
            return Response.json({"success": True, "data": lead_v1(self.account, rec)})

    # -- files -------------------------------------------------------------------------------
    def files(self, req: Request) -> Response:
        start = parse_start(req.query.get("start"))
        limit = parse_limit(req.query.get("limit"), maximum=FILES_MAX_LIMIT)
        sort = req.query.get("sort")
        with self.account.lock:
            store = self.account.stores["files"]

            def build() -> list[Any]:
                simple = _simple_sort(sort)
                if simple is not None:
                    return [i for i in ids_since(store, None, *simple) if _active(store.peek(i))]
                rows = [r for r in store.iter_records(store.ids()) if r["active_flag"]]
                return [r["id"] for r in _sorted(rows, sort, FILE_SORTS, lambda r: r["id"])]

            ids = self.listings.ids(store, sort, build)
            records = store.iter_records(ids[start : start + limit])
            page = [file_v1(self.account, r, req.base_url) for r in records]
        return _page(page, start, limit, len(ids))

    def file(self, req: Request) -> Response:
        with self.account.lock:
            rec = self.account.stores["files"].get(_path_int(req))
            if rec is None or not rec["active_flag"]:
                raise not_found("File")
            return Response.json(
                {"success": True, "data": file_v1(self.account, rec, req.base_url)}
            )

    # -- deal flow and changelog -------------------------------------------------------------
    def _deal_or_404(self, deal_id: int) -> Record:
        deal = self.account.stores["deals"].get(deal_id)
        if deal_id in self.account.merged:
            raise merged_deal_gone(deal_id, self.account.merged[deal_id])
        if deal is None or not self.account.deal_visible(deal):
            raise not_found("Deal")
        return deal

    def changelog(self, req: Request) -> Response:
        deal_id = _path_int(req)
        limit = parse_limit(req.query.get("limit"), maximum=V1_MAX_LIMIT)
        cursor = req.query.get("cursor") or None
        after = decode_cursor(cursor, "log", "desc") if cursor else None
        with self.account.lock:
            self._deal_or_404(deal_id)
            events = self.account.deal_events(deal_id)
        return changelog_page(events, limit, after)

    def flow(self, req: Request) -> Response:
        deal_id = _path_int(req)
        start = parse_start(req.query.get("start"))
        limit = parse_limit(req.query.get("limit"), maximum=V1_MAX_LIMIT)
        items = req.query.get("items")
        wanted = None if not items else {i.strip() for i in items.split(",")}
        all_changes = req.query.get("all_changes") == "1"
        with self.account.lock:
            deal = self._deal_or_404(deal_id)
            custom_keys = {f.key for f in self.account.custom["deal"]}
            # Custom-field changes only with all_changes=1, as the API documents.
            events = [
                e
                for e in self.account.deal_events(deal_id)
                if all_changes or e["field_key"] not in custom_keys
            ]
            stage_names = {
                s["id"]: s["name"]
                for s in self.account.stores["stages"].iter_records(
                    self.account.stores["stages"].ids()
                )
            }
            pipeline_names = {
                p["id"]: p["name"]
                for p in self.account.stores["pipelines"].iter_records(
                    self.account.stores["pipelines"].ids()
                )
            }
            users = {}
            for e in events:
                user = self.account.stores["users"].get(e["user_id"])
                if user is not None:
                    users[str(user["id"])] = {
                        "id": user["id"],
                        "name": user["name"],
                        "email": user["email"],
                        "has_pic": 0,
                        "pic_hash": None,
                        "active_flag": user["active_flag"],
                    }
        rows: list[dict[str, Any]] = []
        if wanted is None or "dealChange" in wanted:
            for n, e in enumerate(events, start=1):
                names = (
                    stage_names
                    if e["field_key"] == "stage_id"
                    else pipeline_names
                    if e["field_key"] == "pipeline_id"
                    else None
                )
                extra: Any = []
                if names is not None:
                    extra = {
                        "old_value_formatted": names.get(e["old_value"]),
                        "new_value_formatted": names.get(e["new_value"]),
                    }
                stamp = to_v1(e["time"])
                rows.append(
                    {
                        "object": "dealChange",
                        "timestamp": stamp,
                        "data": {
                            "id": deal_id * 1000 + n,
                            "item_id": deal_id,
                            "user_id": e["user_id"],
                            "field_key": e["field_key"],
                            "old_value": e["old_value"],
                            "new_value": e["new_value"],
                            "is_bulk_update_flag": None,
                            "log_time": stamp,
                            "change_source": "app",
                            "change_source_user_agent": None,
                            "additional_data": extra,
                        },
                    }
                )
        rows.reverse()  # newest first
        total = len(rows)
        related = {
            "deal": {
                str(deal_id): {
                    "id": deal_id,
                    "title": deal["title"],
                    "status": deal["status"],
                    "value": deal["value"],
                    "currency": deal["currency"],
                    "stage_id": deal["stage_id"],
                    "pipeline_id": deal["pipeline_id"],
                }
            },
            "user": users,
        }
        doc = {
            "success": True,
            "data": rows[start : start + limit],
            "additional_data": {"pagination": v1_pagination(start, limit, total)},
            "related_objects": related,
        }
        return Response(body=orjson.dumps(doc))

    # -- recents -----------------------------------------------------------------------------

    def recents(self, req: Request) -> Response:
        raw = req.query.get("since_timestamp")
        if not raw:
            raise bad_request("since_timestamp is required")
        try:
            since = parse_v1_time("since_timestamp", raw)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        start = parse_start(req.query.get("start"))
        limit = parse_limit(req.query.get("limit"), maximum=V1_MAX_LIMIT)
        wanted = req.query.get("items")
        every = [*RECENT_STREAMS, "filter"]
        kinds = every if not wanted else [k.strip() for k in wanted.split(",")]
        # Saved filters live with the coverage data, not in a store.
        with_filters = "filter" in kinds
        kinds = [k for k in kinds if k != "filter"]
        bad = [k for k in kinds if k not in RECENT_STREAMS]
        if bad:
            raise bad_request(f"items has unknown value(s): {', '.join(bad)}")
        with self.account.lock:
            found: list[tuple[str, str, Record]] = []
            for kind in kinds:
                stream = RECENT_STREAMS[kind]
                store = self.account.stores[stream]
                time_field = "modified" if stream == "users" else "update_time"
                if stream in {"deals", "persons", "organizations", "activities", "notes"}:
                    import bisect

                    keys = store.time_index("update_time")
                    pos = bisect.bisect_left(keys, since + "|")
                    candidates = store.iter_records(int(k.rsplit("|", 1)[1]) for k in keys[pos:])
                else:
                    candidates = store.iter_records(store.ids())
                for rec in candidates:
                    stamp = rec.get(time_field) or ""
                    if stamp >= since:
                        found.append((stamp, kind, rec))
            if with_filters:
                found.extend(
                    (rec["update_time"], "filter", rec)
                    for rec in self.saved_filters()
                    if rec["update_time"] >= since
                )
            found.sort(key=lambda t: (t[0], t[1], str(t[2]["id"])))
            total = len(found)
            data = []
            for _, kind, rec in found[start : start + limit]:
                stream = RECENT_STREAMS.get(kind, "filters")
                if stream == "filters":
                    shaped = {
                        k: (to_v1(v) if k in {"add_time", "update_time"} else v)
                        for k, v in rec.items()
                    }
                elif stream == "notes":
                    shaped = note_v1(self.account, rec)
                elif stream == "users":
                    shaped = user_v1(rec)
                elif stream in {"files"}:
                    shaped = file_v1(self.account, rec, req.base_url)
                elif stream == "pipelines":
                    shaped = pipeline_v1(rec)
                elif stream == "stages":
                    shaped = stage_v1(rec)
                elif stream == "activity_types":
                    shaped = dict(rec)
                else:
                    shaped = legacy_v1(self.account, stream, rec)
                data.append({"item": kind, "id": rec["id"], "data": shaped})
        last = to_v1(found[min(start + limit, total) - 1][0]) if data else None
        return _page(
            data, start, limit, total, since_timestamp=to_v1(since), last_timestamp_on_page=last
        )

    # -- field definitions, activity types, currencies ---------------------------------------
    def fields(self, req: Request, entity: str) -> Response:
        start = parse_start(req.query.get("start"))
        limit = parse_limit(req.query.get("limit"), maximum=V1_MAX_LIMIT)
        with self.account.lock:
            defs = [d.v1() for d in self.account.field_defs(field_entity(entity))]
        if entity == "note":
            defs = [{key: d[key] for key in NOTE_FIELD_KEYS} for d in defs]
        if entity in {"activity", "note"}:  # these two lists take no paging parameters
            return Response.json(
                {
                    "success": True,
                    "data": defs,
                    "additional_data": {"pagination": v1_pagination(0, len(defs), len(defs))},
                }
            )
        return _page(defs[start : start + limit], start, limit, len(defs))

    def field(self, req: Request, entity: str) -> Response:
        ident = _path_int(req)
        with self.account.lock:
            for fdef in self.account.field_defs(field_entity(entity)):
                if fdef.id == ident:
                    return Response.json({"success": True, "data": fdef.v1()})
        raise not_found("Field")

    def activity_types(self, req: Request) -> Response:
        with self.account.lock:
            store = self.account.stores["activity_types"]
            # The spec declares these two as date-time (RFC 3339), unlike other v1 timestamps.
            data = [dict(r) for r in store.iter_records(store.ids())]
        return Response.json({"success": True, "data": data})

    def currencies(self, req: Request) -> Response:
        term = (req.query.get("term") or "").lower()
        with self.account.lock:
            store = self.account.stores["currencies"]
            data = [
                r
                for r in store.iter_records(store.ids())
                if not term or term in r["code"].lower() or term in r["name"].lower()
            ]
        return Response.json({"success": True, "data": data})

    # -- removed legacy endpoints ------------------------------------------------------------
    @staticmethod
    def removed(req: Request) -> Response:
        raise ApiError(
            410,
            "This endpoint has been removed. Use the API v2 endpoint instead.",
            "API v1 list and get endpoints for deals, persons, organizations, activities, "
            "products, "
            "pipelines and stages were deprecated on 2025-04-14 and are no longer available; "
            "see https://developers.pipedrive.com/docs/api/v2",
        )
