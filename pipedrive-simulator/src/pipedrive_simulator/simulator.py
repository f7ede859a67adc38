"""One simulated Pipedrive account behind one API: auth, rate limits, faults, routing, stats."""

from __future__ import annotations

import secrets
import sys
import traceback
from dataclasses import dataclass

import orjson

from pipedrive_simulator.account import Account
from pipedrive_simulator.auth import Auth
from pipedrive_simulator.clock import SimClock
from pipedrive_simulator.control import Control
from pipedrive_simulator.coverage_data import CoverageData
from pipedrive_simulator.errors import ApiError
from pipedrive_simulator.faults import Fault, Faults
from pipedrive_simulator.generate import Sizes
from pipedrive_simulator.mutations import Mutator
from pipedrive_simulator.protocol import Request, Response
from pipedrive_simulator.ratelimit import BLOCK_PAGE, RateLimiter
from pipedrive_simulator.router import Router
from pipedrive_simulator.routes_coverage import CoverageRoutes, register
from pipedrive_simulator.routes_v1 import V1
from pipedrive_simulator.routes_v2 import V2
from pipedrive_simulator.stats import Stats
from pipedrive_simulator.webhooks import Webhooks


@dataclass
class Outcome:
    """What the HTTP layer must do: send ``response``, or drop the connection."""

    response: Response | None
    reset_connection: bool = False
    delay: float = 0.0


class Simulator:
    def __init__(
        self,
        seed: int = 42,
        deals: int | None = None,
        plan: str = "unlimited",
        api_token: str | None = None,
        seats: int | None = None,
        **sizes: int | None,
    ) -> None:
        self.seed = seed
        self.clock = SimClock()
        self.account = Account(seed, Sizes.scaled(deals, **sizes), self.clock)
        self.api_token = api_token or f"sim{secrets.token_hex(18)}"
        self.auth = Auth(self.clock, self.api_token, "pipeboard-sim-client", secrets.token_hex(16))
        self.ratelimit = RateLimiter(self.clock, plan, seats or self.account.sizes.users)
        self.faults = Faults(seed)
        self.stats = Stats()
        self.mutator = Mutator(self.account)
        self.webhooks = Webhooks(self.account, self.clock)
        v1 = V1(self.account)
        self.router = Router(V2(self.account), v1, self.webhooks)
        self.coverage = CoverageData(self.account)
        v1.saved_filters = lambda: self.coverage.rows("filters")
        register(self.router, CoverageRoutes(self.coverage))
        self.control = Control(self)

    def handle(self, req: Request) -> Outcome:
        path = req.path
        if path.startswith("/_simulator/"):
            return Outcome(self._guard(lambda: self.control.handle(req)))
        if path == "/oauth/token" and req.method == "POST":
            return Outcome(self._guard(lambda: self.auth.token(req)))
        if path == "/oauth/authorize" and req.method == "GET":
            return Outcome(self._guard(lambda: self.auth.authorize(req)))
        matched = self.router.match(req.method, path)
        if matched is None:
            self.stats.record(f"{req.method} (unknown path)", 0, 404)
            return Outcome(_error(ApiError(404, f"Unknown method {req.method} {path}")))
        route, params = matched
        req.params = params
        try:
            principal = self.auth.authenticate(req)
        except ApiError as exc:
            self.stats.record(route.endpoint, 0, exc.status)
            return Outcome(_error(exc))
        fault = self.faults.take(path)
        delay = 0.0
        if fault is not None:
            if fault.kind == "slow":
                delay = fault.delay or 0.0
            else:
                limit_headers = self.ratelimit.headers_for(principal.token, principal.kind)
                outcome = self._fault(fault, route.endpoint, limit_headers)
                if outcome is not None:
                    return outcome
        decision = self.ratelimit.check(principal.token, principal.kind, route.cost)
        if decision.status == 403:
            self.stats.record(route.endpoint, 0, 403)
            page = BLOCK_PAGE.replace("{ray}", secrets.token_hex(8))
            return Outcome(
                Response(status=403, body=page.encode(), content_type="text/html; charset=UTF-8")
            )
        if decision.status == 429:
            self.stats.record(route.endpoint, 0, 429)
            message = (
                "Daily token budget exhausted"
                if decision.reason == "daily"
                else "Request over limit"
            )
            resp = _error(ApiError(429, message))
            resp.headers.update(decision.headers)
            return Outcome(resp, delay=delay)
        resp = self._guard(lambda: route.handler(req))
        resp.headers.update(decision.headers)
        self.stats.record(route.endpoint, route.cost, resp.status)
        if fault is not None:
            resp.body = _spoil(fault.kind, resp.body)
        return Outcome(resp, delay=delay)

    def _fault(self, fault: Fault, endpoint: str, limit_headers: dict[str, str]) -> Outcome | None:
        kind = fault.kind
        if kind == "reset":
            self.stats.record(endpoint, 0, 0)
            return Outcome(None, reset_connection=True)
        if kind in {"http_500", "http_502", "http_503"}:
            status = int(kind[5:])
            self.stats.record(endpoint, 0, status)
            if status == 500:
                return Outcome(_error(ApiError(500, "Internal server error")))
            title = "502 Bad Gateway" if status == 502 else "503 Service Temporarily Unavailable"
            page = (
                f"<html><head><title>{title}</title></head>"
                f"<body><center><h1>{title}</h1></center></body></html>"
            )
            return Outcome(Response(status=status, body=page.encode(), content_type="text/html"))
        if kind in {"burst_429", "budget_exhausted"}:
            self.stats.record(endpoint, 0, 429)
            headers = dict(limit_headers)
            if kind == "burst_429":
                headers["x-ratelimit-remaining"] = "0"
                message = "Request over limit"
            else:
                headers["x-daily-ratelimit-token-remaining"] = "0"
                message = "Daily token budget exhausted"
            resp = _error(ApiError(429, message))
            resp.headers.update(headers)
            return Outcome(resp)
        return None  # the body faults spoil the real answer (see _spoil)

    @staticmethod
    def _guard(call: object) -> Response:
        try:
            return call()  # type: ignore[operator,no-any-return]
        except ApiError as exc:
            return _error(exc)
        except ValueError as exc:
            return _error(ApiError(400, str(exc)))
        except Exception:  # a simulator bug: answer like the API would, and show it loudly
            traceback.print_exc(file=sys.stderr)
            return _error(ApiError(500, "Internal server error"))


def _spoil(kind: str, body: bytes) -> bytes:
    """Body faults applied to a real answer (its Content-Length stays consistent)."""
    if kind == "truncated_json":
        return body[: max(1, len(body) // 2)]
    if kind == "malformed_json":
        return body.replace(b":", b"::", 1)
    if kind == "null_body":
        # Seen on /v1/deals/{id}/flow: a 200 whose data is null.
        return b'{"success":true,"data":null,"additional_data":null}'
    return body


def _error(exc: ApiError) -> Response:
    return Response(status=exc.status, body=orjson.dumps(exc.body()))
