"""The control API under /_simulator/ (never charged tokens): clock, mutations, faults, plan,
stats, ground truth, webhook delivery switches."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipedrive_simulator.changelog import truth_at
from pipedrive_simulator.errors import ApiError
from pipedrive_simulator.merges import merge_deal
from pipedrive_simulator.protocol import Request, Response
from pipedrive_simulator.timeutil import to_rfc3339
from pipedrive_simulator.truth import truth

if TYPE_CHECKING:
    from pipedrive_simulator.simulator import Simulator

MUTATION_OPS = (
    "create",
    "update",
    "delete",
    "archive_deal",
    "move_deal",
    "merge_deal",
    "add_field",
    "rename_field",
    "delete_field",
    "add_field_option",
    "rename_field_option",
    "delete_field_option",
    "rename_stage",
    "add_stage",
    "random_changes",
)


class Control:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def handle(self, req: Request) -> Response:
        sim = self.sim
        route = req.path[len("/_simulator/") :]
        method = req.method
        if method == "GET" and route == "stats":
            return Response.json(sim.stats.snapshot())
        if method == "POST" and route == "reset-stats":
            sim.stats.reset()
            return Response.json({"ok": True})
        if method == "GET" and route == "clock":
            return Response.json({"now": to_rfc3339(sim.clock.now)})
        if method == "POST" and route == "advance":
            seconds = _number(req.json(), "seconds")
            return Response.json({"now": to_rfc3339(sim.clock.advance(seconds))})
        if method == "POST" and route == "mutate":
            return Response.json({"result": self.mutate(req.json())})
        if method == "POST" and route == "faults":
            body = _object(req.json())
            kind = body.get("kind")
            if not isinstance(kind, str):
                raise ApiError(400, "faults needs a kind")
            sim.faults.add(
                kind,
                path=body.get("path"),
                times=body.get("times"),
                probability=body.get("probability"),
                delay=body.get("delay"),
            )
            return Response.json({"ok": True})
        if method == "DELETE" and route == "faults":
            sim.faults.clear()
            return Response.json({"ok": True})
        if method == "GET" and route.startswith("truth-at/"):
            stream = route[len("truth-at/") :]
            return Response.json(truth_at(sim.account, stream, req.query))
        if method == "GET" and route.startswith("truth/"):
            return Response.json(truth(sim.account, route[len("truth/") :], base_url=req.base_url))
        if method == "GET" and route.startswith("stage-history/"):
            try:
                deal_id = int(route[len("stage-history/") :])
            except ValueError:
                raise ApiError(400, "deal id must be an integer") from None
            return Response.json(sim.account.stage_history(deal_id))
        if method == "POST" and route == "plan":
            body = _object(req.json())
            if "plan" in body:
                sim.ratelimit.set_plan(str(body["plan"]))
            if "budget_remaining" in body:
                sim.ratelimit.set_budget_remaining(int(body["budget_remaining"]))
            if "plan" not in body and "budget_remaining" not in body:
                raise ApiError(400, "plan needs 'plan' and/or 'budget_remaining'")
            return Response.json({"ok": True})
        if method == "GET" and route == "webhooks":
            return Response.json(sim.webhooks.report())
        if method == "POST" and route == "webhooks":
            sim.webhooks.set_switches(_object(req.json()))
            return Response.json({"ok": True})
        if method == "POST" and route == "webhooks/drain":
            timeout = _object(req.json()).get("timeout", 30)
            if not isinstance(timeout, int | float):
                raise ApiError(400, "timeout must be a number of seconds")
            return Response.json({"pending": sim.webhooks.drain(float(timeout))})
        if method == "GET" and route == "oauth-code":
            return Response.json({"code": sim.auth.issue_code(req.query.get("redirect_uri", ""))})
        if method == "GET" and route == "info":
            return Response.json(
                {
                    "api_token": sim.api_token,
                    "oauth_client_id": sim.auth.client_id,
                    "oauth_client_secret": sim.auth.client_secret,
                    "seed": sim.seed,
                    "now": to_rfc3339(sim.clock.now),
                    "plan": sim.ratelimit.plan.name,
                }
            )
        raise ApiError(404, f"unknown control endpoint {method} /_simulator/{route}")

    def mutate(self, body: Any) -> Any:
        args = dict(_object(body))
        op = args.pop("op", None)
        if op not in MUTATION_OPS:
            raise ApiError(400, f"op must be one of: {', '.join(MUTATION_OPS)}")
        m = self.sim.mutator
        try:
            if op == "create":
                return m.create(args.pop("entity"), **args.pop("fields", {}), **args)
            if op == "update":
                return m.update(
                    args.pop("entity"), args.pop("id"), **args.pop("fields", {}), **args
                )
            if op == "delete":
                m.delete(args.pop("entity"), args.pop("id"), **args)
                return None
            if op == "archive_deal":
                return m.archive_deal(args.pop("id"), **args)
            if op == "move_deal":
                return m.move_deal(args.pop("id"), args.pop("stage_id"), **args)
            if op == "merge_deal":
                return merge_deal(m.account, args.pop("id"), args.pop("merge_with_id"), **args)
            if op == "rename_stage":
                m.rename_stage(args.pop("id"), args.pop("name"), **args)
                return None
            return getattr(m, op)(**args)
        except KeyError as exc:
            raise ApiError(400, f"{op} needs argument {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ApiError(400, f"bad arguments for {op}: {exc}") from None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def _number(body: Any, key: str) -> float:
    value = _object(body).get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ApiError(400, f"{key} must be a number")
    return float(value)
