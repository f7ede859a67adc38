"""Validation of query parameters the way the v2 API validates them (400 on anything off)."""

from __future__ import annotations

from collections.abc import Iterable

from pipedrive_simulator.errors import bad_request
from pipedrive_simulator.protocol import Request
from pipedrive_simulator.timeutil import parse_query_time

ALWAYS_ALLOWED = frozenset({"api_token"})


def reject_unknown(req: Request, allowed: Iterable[str]) -> None:
    allowed_set = set(allowed) | ALWAYS_ALLOWED
    unknown = sorted(set(req.query) - allowed_set)
    if unknown:
        raise bad_request(f"Unknown query parameter(s): {', '.join(unknown)}")


def int_param(req: Request, name: str) -> int | None:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {raw!r}") from None


def bool_param(req: Request, name: str) -> bool | None:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return None
    if raw in {"true", "1"}:
        return True
    if raw in {"false", "0"}:
        return False
    raise bad_request(f"{name} must be true or false, got {raw!r}")


def enum_param(req: Request, name: str, choices: Iterable[str], default: str) -> str:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return default
    options = tuple(choices)
    if raw not in options:
        raise bad_request(f"{name} must be one of {', '.join(options)}; got {raw!r}")
    return raw


def csv_param(req: Request, name: str, *, maximum: int | None = None) -> list[str] | None:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return None
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if maximum is not None and len(values) > maximum:
        raise bad_request(f"{name} accepts at most {maximum} values")
    return values


def int_csv_param(req: Request, name: str, *, maximum: int | None = None) -> list[int] | None:
    values = csv_param(req, name, maximum=maximum)
    if values is None:
        return None
    try:
        return [int(v) for v in values]
    except ValueError:
        raise bad_request(f"{name} must be a comma separated list of integers") from None


def time_param(req: Request, name: str) -> str | None:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_query_time(name, raw)
    except ValueError as exc:
        raise bad_request(str(exc)) from None
