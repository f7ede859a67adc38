"""Handlers of the less central list endpoints (see :mod:`pipedrive_simulator.coverage_data`):
call logs, lead labels and sources, filters, goals and their results, projects and their boards,
phases, templates, tasks and fields, deal installments, roles, permission sets, mail threads and
user permissions. :func:`register` adds them to the route table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pipedrive_simulator.coverage_data import MAIL_FOLDERS, CoverageData
from pipedrive_simulator.errors import bad_request, not_found
from pipedrive_simulator.pagination import (
    decode_cursor,
    encode_cursor,
    parse_limit,
    parse_start,
    v1_pagination,
)
from pipedrive_simulator.protocol import Request, Response
from pipedrive_simulator.query import bool_param, enum_param, int_csv_param, int_param
from pipedrive_simulator.render import custom_v2
from pipedrive_simulator.timeutil import to_v1

if TYPE_CHECKING:
    from pipedrive_simulator.router import Router

Row = dict[str, Any]
V1_MAX_LIMIT = 500
FILTER_TYPES = ("deals", "leads", "org", "people", "products", "activity", "projects")


def _v1_list(data: list[Row]) -> Response:
    return Response.json({"success": True, "data": data})


def _v1_page(req: Request, rows: list[Row]) -> Response:
    start = parse_start(req.query.get("start"))
    limit = parse_limit(req.query.get("limit"), maximum=V1_MAX_LIMIT)
    page = rows[start : start + limit]
    additional = {"pagination": v1_pagination(start, limit, len(rows))}
    return Response.json({"success": True, "data": page, "additional_data": additional})


def _v2_page(req: Request, rows: list[Row]) -> Response:
    """Rows in the order given; the cursor is the position after the page (small tables)."""
    limit = parse_limit(req.query.get("limit"))
    cursor = req.query.get("cursor") or None
    start = decode_cursor(cursor, "position", "asc") if cursor else 0
    if not isinstance(start, int) or start < 0:
        raise bad_request("Invalid cursor")
    page = rows[start : start + limit]
    more = start + limit < len(rows)
    next_cursor = encode_cursor("position", "asc", start + limit) if more else None
    return Response.json(
        {"success": True, "data": page, "additional_data": {"next_cursor": next_cursor}}
    )


def _v2_list(rows: list[Row]) -> Response:
    return Response.json({"success": True, "data": rows, "additional_data": {}})


def _int_path(req: Request) -> int:
    try:
        return int(req.params["id"])
    except ValueError:
        raise bad_request(f"id must be an integer, got {req.params['id']!r}") from None


def _v1_times(row: Row, keys: Iterable[str]) -> Row:
    return {k: (to_v1(v) if k in keys else v) for k, v in row.items()}


class CoverageRoutes:
    def __init__(self, data: CoverageData) -> None:
        self.data = data
        self.account = data.account

    def _rows(self, kind: str) -> list[Row]:
        return self.data.rows(kind)

    # -- leads' labels and sources, call logs, filters ---------------------------------------
    def lead_labels(self, req: Request) -> Response:
        return _v1_list(self._rows("lead_labels"))

    def lead_sources(self, req: Request) -> Response:
        return _v1_list(self._rows("lead_sources"))

    def call_logs(self, req: Request) -> Response:
        rows = sorted(self._rows("call_logs"), key=lambda r: r["start_time"], reverse=True)
        return _v1_page(req, rows)

    def filters(self, req: Request) -> Response:
        kind = req.query.get("type")
        if kind and kind not in FILTER_TYPES:
            raise bad_request(f"type must be one of {', '.join(FILTER_TYPES)}")
        rows = [
            _v1_times(r, ("add_time", "update_time"))
            for r in self._rows("filters")
            if not kind or r["type"] == kind
        ]
        return _v1_list(rows)

    # -- goals -------------------------------------------------------------------------------
    def goals(self, req: Request) -> Response:
        active = bool_param(req, "is_active")
        wanted = True if active is None else active
        rows = [r for r in self._rows("goals") if r["is_active"] == wanted]
        return Response.json({"success": True, "data": {"goals": rows}})

    def goal_results(self, req: Request) -> Response:
        for name in ("period.start", "period.end"):
            if not req.query.get(name):
                raise bad_request(f"{name} is required")
        goal = self.data.tables["goals"].get(req.params["id"])
        if goal is None:
            raise not_found("Goal")
        data = {"progress": self.data.goal_progress(goal["id"]), "goal": dict(goal)}
        return Response.json({"success": True, "data": data})

    # -- projects ----------------------------------------------------------------------------
    def _project(self, rec: Row) -> Row:
        out = dict(rec)
        defs = [f for f in self.data.project_fields if f.is_custom]
        out["custom_fields"] = custom_v2(defs, rec["custom_fields"], keys=None, labels=False)
        return out

    def _projects(self, req: Request, *, archived: bool) -> Response:
        status = req.query.get("status")
        phase_id = int_param(req, "phase_id")
        rows = [
            self._project(r)
            for r in self._rows("projects")
            if (r["archive_time"] is not None) == archived
            and (not status or r["status"] in status.split(","))
            and (phase_id is None or r["phase_id"] == phase_id)
        ]
        return _v2_page(req, rows)

    def projects(self, req: Request) -> Response:
        return self._projects(req, archived=False)

    def archived_projects(self, req: Request) -> Response:
        return self._projects(req, archived=True)

    def project_fields(self, req: Request) -> Response:
        return _v2_page(req, [f.v2() for f in self.data.project_fields])

    def boards(self, req: Request) -> Response:
        return _v2_list(self._rows("boards"))

    def phases(self, req: Request) -> Response:
        board = int_param(req, "board_id")
        rows = [r for r in self._rows("phases") if board is None or r["board_id"] == board]
        return _v2_list(rows)

    def project_templates(self, req: Request) -> Response:
        return _v2_page(req, self._rows("project_templates"))

    def tasks(self, req: Request) -> Response:
        project_id = int_param(req, "project_id")
        done = bool_param(req, "is_done")
        rows = [
            r
            for r in self._rows("tasks")
            if (project_id is None or r["project_id"] == project_id)
            and (done is None or r["is_done"] == done)
        ]
        return _v2_page(req, rows)

    # -- deal installments -------------------------------------------------------------------
    def installments(self, req: Request) -> Response:
        deal_ids = int_csv_param(req, "deal_ids", maximum=100)
        if not deal_ids:
            raise bad_request("deal_ids is required")
        sort_by = enum_param(req, "sort_by", ("id", "billing_date", "deal_id"), "id")
        enum_param(req, "sort_direction", ("asc",), "asc")
        wanted = set(deal_ids)
        rows = [r for r in self._rows("installments") if r["deal_id"] in wanted]
        rows.sort(key=lambda r: (r[sort_by], r["id"]))
        return _v2_page(req, rows)

    # -- roles and permission sets -----------------------------------------------------------
    def _users(self) -> list[Row]:
        store = self.account.stores["users"]
        with self.account.lock:
            return [dict(r) for r in store.iter_records(store.ids())]

    def roles(self, req: Request) -> Response:
        users = self._users()
        rows = []
        for role in self._rows("roles"):
            members = sum(1 for u in users if self.data.role_of(u) == role["id"])
            subs = sum(1 for r in self._rows("roles") if r["parent_role_id"] == role["id"])
            rows.append({**role, "assignment_count": str(members), "sub_role_count": str(subs)})
        return _v1_page(req, rows)

    def _role(self, req: Request) -> Row:
        role = self.data.tables["roles"].get(_int_path(req))
        if role is None:
            raise not_found("Role")
        return role

    def role_assignments(self, req: Request) -> Response:
        role = self._role(req)
        rows = [
            {
                "user_id": u["id"],
                "role_id": role["id"],
                "parent_role_id": role["parent_role_id"],
                "name": role["name"],
                "active_flag": bool(u["active_flag"]),
                "type": "1",
            }
            for u in self._users()
            if self.data.role_of(u) == role["id"]
        ]
        return _v1_page(req, rows)

    def role_settings(self, req: Request) -> Response:
        role = self._role(req)
        return Response.json({"success": True, "data": self.data.role_settings(role["id"])})

    def permission_sets(self, req: Request) -> Response:
        app = req.query.get("app")
        users = self._users()
        rows = [
            {
                **r,
                "assignment_count": sum(
                    1 for u in users if self.data.permission_set_of(u) == r["id"]
                ),
            }
            for r in self._rows("permission_sets")
            if not app or r["app"] == app
        ]
        return _v1_list(rows)

    def permission_set_assignments(self, req: Request) -> Response:
        ident = req.params["id"]
        if ident not in self.data.tables["permission_sets"]:
            raise not_found("Permission set")
        name = self.data.tables["permission_sets"][ident]["name"]
        rows = [
            {"user_id": u["id"], "permission_set_id": ident, "name": name}
            for u in self._users()
            if self.data.permission_set_of(u) == ident
        ]
        return _v1_page(req, rows)

    # -- per-record lists: followers, product variations ---------------------------------------
    def _record(self, stream: str, req: Request) -> Row:
        rec = self.account.stores[stream].get(_int_path(req))
        if rec is None or rec.get("is_deleted"):
            raise not_found(stream[:-1].capitalize())
        return rec

    def followers(self, req: Request, stream: str) -> Response:
        """A record's followers (see :meth:`CoverageData.followers`)."""
        with self.account.lock:
            rows = self.data.followers(stream, self._record(stream, req))
        return _v2_page(req, rows)

    def delete_follower(self, req: Request, stream: str) -> Response:
        """Remove a follower: the spec's ``{"user_id": ...}`` answer, 404 for one that is not
        following the record."""
        try:
            user_id = int(req.params["follower_id"])
        except ValueError:
            raise bad_request(
                f"follower_id must be an integer, got {req.params['follower_id']!r}"
            ) from None
        with self.account.lock:
            rec = self._record(stream, req)
            try:
                self.data.remove_follower(stream, rec, user_id)
            except KeyError:
                raise not_found("Follower") from None
        return Response.json({"success": True, "data": {"user_id": user_id}})

    def product_variations(self, req: Request) -> Response:
        """A product's variations (see :meth:`CoverageData.variations`)."""
        with self.account.lock:
            rows = self.data.variations(self._record("products", req))
        return _v2_page(req, rows)

    def delete_product_variation(self, req: Request) -> Response:
        """Remove a variation: the spec's ``{"id": ...}`` answer, 404 for one the product does
        not have."""
        given = req.params["product_variation_id"]
        try:
            variation_id = int(given)
        except ValueError:
            raise bad_request(f"product_variation_id must be an integer, got {given!r}") from None
        with self.account.lock:
            product = self._record("products", req)
            try:
                self.data.remove_variation(product, variation_id)
            except KeyError:
                raise not_found("Product variation") from None
        return Response.json({"success": True, "data": {"id": variation_id}})

    # -- per-record lists: deal participants and discounts, organization relationships ---------
    def deal_participants(self, req: Request) -> Response:
        """The v1 shape: the person as an object (``value`` is its id), the deal as related
        item data; ``additional_data`` is the page itself (as the spec gives it)."""
        with self.account.lock:
            deal = self._record("deals", req)
            persons = self.account.stores["persons"]
            rows = []
            for part in self.data.participants(deal):
                person = persons.get(part["person_id"]) or {}
                rows.append(
                    {
                        "id": part["id"],
                        "person_id": {
                            "active_flag": not person.get("is_deleted", False),
                            "name": person.get("name") or "",
                            "email": [dict(e) for e in person.get("emails") or ()],
                            "phone": [dict(p) for p in person.get("phones") or ()],
                            "owner_id": person.get("owner_id") or self.account.gen.user_ids[0],
                            "value": part["person_id"],
                        },
                        "add_time": to_v1(part["add_time"]),
                        "active_flag": part["active_flag"],
                        "related_item_data": {"deal_id": deal["id"], "title": deal["title"]},
                        "related_item_type": "deal",
                        "related_item_id": deal["id"],
                    }
                )
        start = parse_start(req.query.get("start"))
        limit = parse_limit(req.query.get("limit"), maximum=V1_MAX_LIMIT)
        page = {
            "start": start,
            "limit": limit,
            "more_items_in_collection": start + limit < len(rows),
        }
        return Response.json(
            {"success": True, "data": rows[start : start + limit], "additional_data": page}
        )

    def deal_discounts(self, req: Request) -> Response:
        with self.account.lock:
            deal = self._record("deals", req)
        return Response.json({"success": True, "data": self.data.discounts(deal)})

    def _organization_item(self, org_id: int, people: dict[int, int]) -> Row:
        org = self.account.stores["organizations"].get(org_id) or {}
        address = org.get("address")
        return {
            "name": org.get("name") or "",
            "people_count": people.get(org_id, 0),
            "owner_id": org.get("owner_id") or self.account.gen.user_ids[0],
            "address": address.get("value") if isinstance(address, dict) else address,
            "cc_email": None,
            "value": org_id,
        }

    def _people_counts(self, org_ids: set[int]) -> dict[int, int]:
        store = self.account.stores["persons"]
        counts: dict[int, int] = {}
        for person in store.iter_records(store.ids()):
            org = person.get("org_id")
            if org in org_ids and not person.get("is_deleted"):
                counts[org] = counts.get(org, 0) + 1
        return counts

    def organization_relationships(self, req: Request) -> Response:
        """An organization's relationships, either side; ``calculated_type`` is the other
        organization's role seen from this one (its parent, its daughter, or related)."""
        org_id = int_param(req, "org_id")
        if org_id is None:
            raise bad_request("org_id is required")
        with self.account.lock:
            org = self.account.stores["organizations"].get(org_id)
            if org is None or org.get("is_deleted"):
                raise not_found("Organization")
            rows = []
            related: dict[str, Row] = {}
            mine = [
                r
                for r in self._rows("organization_relationships")
                if org_id in (r["rel_owner_org_id"], r["rel_linked_org_id"])
            ]
            people = self._people_counts(
                {org_id}
                | {r["rel_owner_org_id"] for r in mine}
                | {r["rel_linked_org_id"] for r in mine}
            )
            for rel in mine:
                owner, linked = rel["rel_owner_org_id"], rel["rel_linked_org_id"]
                other = linked if org_id == owner else owner
                if rel["type"] == "related":
                    kind = "related"
                else:
                    kind = "daughter" if org_id == owner else "parent"
                other_item = self._organization_item(other, people)
                for ident in (owner, linked):
                    item = self._organization_item(ident, people)
                    related[str(ident)] = {
                        "id": ident,
                        **{k: v for k, v in item.items() if k != "value"},
                    }
                rows.append(
                    {
                        **_v1_times(rel, ("add_time", "update_time")),
                        "rel_owner_org_id": self._organization_item(owner, people),
                        "rel_linked_org_id": self._organization_item(linked, people),
                        "calculated_type": kind,
                        "calculated_related_org_id": other,
                        "related_organization_name": other_item["name"],
                    }
                )
        page = {"start": 0, "limit": 100, "more_items_in_collection": False}
        return Response.json(
            {
                "success": True,
                "data": rows,
                "additional_data": page,
                "related_objects": {"organization": related},
            }
        )

    # -- mailbox and user permissions ----------------------------------------------------------
    def mail_messages(self, req: Request) -> Response:
        thread = self.data.tables["mail_threads"].get(_int_path(req))
        if thread is None:
            raise not_found("Mail thread")
        # RFC 3339 times here, unlike the threads' (as the spec gives them).
        return _v1_list(self.data.mail_messages(thread))

    def mail_threads(self, req: Request) -> Response:
        folder = enum_param(req, "folder", MAIL_FOLDERS, "inbox")
        rows = [r for r in self._rows("mail_threads") if folder in r["folders"]]
        rows.sort(key=lambda r: r["update_time"], reverse=True)
        return _v1_page(req, rows)

    def user_permissions(self, req: Request) -> Response:
        user_id = _int_path(req)
        if self.account.stores["users"].get(user_id) is None:
            raise not_found("User")
        return Response.json({"success": True, "data": self.data.user_permissions(user_id)})


def _bound(method: Callable[[Request, str], Response], arg: str) -> Callable[[Request], Response]:
    def handler(req: Request) -> Response:
        return method(req, arg)

    handler.__name__ = method.__name__
    return handler


def register(router: Router, routes: CoverageRoutes) -> None:
    """Add the endpoints to ``router`` (v1 paths first where a v1 list shares a prefix)."""
    v1: tuple[tuple[str, Callable[[Request], Response]], ...] = (
        ("/callLogs", routes.call_logs),
        ("/leadLabels", routes.lead_labels),
        ("/leadSources", routes.lead_sources),
        ("/filters", routes.filters),
        ("/goals/find", routes.goals),
        ("/goals/{id}/results", routes.goal_results),
        ("/roles", routes.roles),
        ("/roles/{id}/assignments", routes.role_assignments),
        ("/roles/{id}/settings", routes.role_settings),
        ("/permissionSets", routes.permission_sets),
        ("/permissionSets/{id}/assignments", routes.permission_set_assignments),
        ("/mailbox/mailThreads", routes.mail_threads),
        ("/mailbox/mailThreads/{id}/mailMessages", routes.mail_messages),
        ("/deals/{id}/participants", routes.deal_participants),
        ("/organizationRelationships", routes.organization_relationships),
        ("/users/{id}/permissions", routes.user_permissions),
    )
    v2: tuple[tuple[str, Callable[[Request], Response]], ...] = (
        ("/projects/archived", routes.archived_projects),
        ("/projects", routes.projects),
        ("/projectFields", routes.project_fields),
        ("/boards", routes.boards),
        ("/phases", routes.phases),
        ("/projectTemplates", routes.project_templates),
        ("/tasks", routes.tasks),
        ("/deals/installments", routes.installments),
        ("/persons/{id}/followers", _bound(routes.followers, "persons")),
        ("/organizations/{id}/followers", _bound(routes.followers, "organizations")),
        ("/products/{id}/followers", _bound(routes.followers, "products")),
        ("/products/{id}/variations", routes.product_variations),
        ("/deals/{id}/followers", _bound(routes.followers, "deals")),
        ("/deals/{id}/discounts", routes.deal_discounts),
    )
    # Inserted ahead of the existing routes so that e.g. /users/{id}/permissions and
    # /deals/installments are not taken for /users/{id} or /deals/{id}.
    first = len(router.routes)
    for path, handler in v1:
        router.add_v1("GET", path, handler)
    for path, handler in v2:
        router.add_v2("GET", path, handler)
    for kind in ("persons", "organizations", "products", "deals"):
        router.add_v2(
            "DELETE",
            f"/{kind}/{{id}}/followers/{{follower_id}}",
            _bound(routes.delete_follower, kind),
        )
    router.add_v2(
        "DELETE",
        "/products/{id}/variations/{product_variation_id}",
        routes.delete_product_variation,
    )
    added = router.routes[first:]
    del router.routes[first:]
    router.routes[:0] = added
