"""The route table: Pipedrive paths -> handlers, with each operation's spec template and cost."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pipedrive_simulator.changelog import changelog_handler
from pipedrive_simulator.costs import cost_of, spec_costs
from pipedrive_simulator.protocol import Request, Response
from pipedrive_simulator.routes_v1 import V1
from pipedrive_simulator.routes_v2 import V2
from pipedrive_simulator.webhooks import Webhooks

Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    endpoint: str  # stats key: method + path template, e.g. "GET /api/v2/deals/{id}"
    cost: int
    handler: Handler


def _bind(method: Callable[[Request, str], Response], arg: str) -> Handler:
    def handler(req: Request) -> Response:
        return method(req, arg)

    handler.__name__ = method.__name__
    return handler


def _compile(template: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{regex}$")


class Router:
    def __init__(self, v2: V2, v1: V1, webhooks: Webhooks) -> None:
        self.routes: list[Route] = []
        # v2 lists and single items
        for name, path in (
            ("deals/archived", "/deals/archived"),
            ("deals", "/deals"),
            ("persons", "/persons"),
            ("organizations", "/organizations"),
            ("activities", "/activities"),
            ("products", "/products"),
            ("pipelines", "/pipelines"),
            ("stages", "/stages"),
        ):
            self._v2("GET", path, _bind(v2.list_entities, name))
        self._v2("GET", "/deals/products", v2.deal_products)
        self._v2("GET", "/deals/{id}/products", v2.deal_products_of)
        for name in (
            "deals",
            "persons",
            "organizations",
            "activities",
            "products",
            "pipelines",
            "stages",
        ):
            self._v2("GET", f"/{name}/{{id}}", _bind(v2.get_entity, name))
        for entity in ("deal", "person", "organization", "product", "activity"):
            self._v2("GET", f"/{entity}Fields", _bind(v2.list_fields, entity))
            self._v2("GET", f"/{entity}Fields/{{field_code}}", _bind(v2.get_field, entity))
        # v1
        self._v1("GET", "/notes", v1.notes)
        self._v1("GET", "/notes/{id}", v1.note)
        self._v1("GET", "/users", v1.users)
        self._v1("GET", "/users/me", v1.me)
        self._v1("GET", "/users/{id}", v1.user)
        self._v1("GET", "/leads", v1.leads)
        self._v1("GET", "/leads/archived", v1.archived_leads)  # before /leads/{id}
        self._v1("GET", "/leads/{id}", v1.lead)
        self._v1("GET", "/files", v1.files)
        self._v1("GET", "/files/{id}", v1.file)
        self._v1("GET", "/deals/{id}/flow", v1.flow)
        self._v1("GET", "/deals/{id}/changelog", v1.changelog)
        for stream in ("persons", "organizations"):
            self._v1("GET", f"/{stream}/{{id}}/changelog", changelog_handler(v1.account, stream))
        self._v1("GET", "/recents", v1.recents)
        self._v1("GET", "/activityTypes", v1.activity_types)
        self._v1("GET", "/currencies", v1.currencies)
        for entity in ("deal", "person", "organization", "product"):
            self._v1("GET", f"/{entity}Fields", _bind(v1.fields, entity))
            self._v1("GET", f"/{entity}Fields/{{id}}", _bind(v1.field, entity))
        for entity in ("activity", "lead", "note"):  # lists only, no single-field endpoint
            self._v1("GET", f"/{entity}Fields", _bind(v1.fields, entity))
        self._v1("GET", "/webhooks", webhooks.list_hooks)
        self._v1("POST", "/webhooks", webhooks.create)
        self._v1("DELETE", "/webhooks/{id}", webhooks.delete)
        # Legacy v1 entity endpoints Pipedrive removed: documented only in the older snapshot.
        for operation in spec_costs()["v1_removed"]:
            method, path = operation.split(" ", 1)
            self._v1(method, path, v1.removed, version="v1_removed")

    def add_v2(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``/api/v2{path}`` (for route modules that register themselves)."""
        self._v2(method, path, handler)

    def add_v1(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``/v1{path}`` and ``/api/v1{path}``."""
        self._v1(method, path, handler)

    def _v2(self, method: str, path: str, handler: Handler) -> None:
        cost = cost_of("v2", f"{method} {path}")
        template = f"/api/v2{path}"
        self.routes.append(Route(method, _compile(template), f"{method} {template}", cost, handler))

    def _v1(self, method: str, path: str, handler: Handler, version: str = "v1") -> None:
        cost = cost_of(version, f"{method} {path}")
        endpoint = f"{method} /v1{path}"
        for prefix in ("/v1", "/api/v1"):
            self.routes.append(Route(method, _compile(prefix + path), endpoint, cost, handler))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            found = route.pattern.match(path)
            if found is not None:
                return route, found.groupdict()
        return None
