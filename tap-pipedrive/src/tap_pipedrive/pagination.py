"""Paginators for the two Pipedrive list styles: v2 keyset cursors and v1 offsets.

Both read the JSON body that :func:`response_body` parsed once per response, so a page is
decoded a single time however many consumers look at it.
"""

from __future__ import annotations

import typing as t
from urllib.parse import urlparse

import orjson
import requests
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.pagination import BaseAPIPaginator
from typing_extensions import override

_BODY_ATTR = "_pipedrive_body"


class MalformedResponseError(RetriableAPIError):
    """A 200 response whose body is not the JSON envelope Pipedrive promises."""


def response_body(
    response: requests.Response,
    decode: t.Callable[[bytes], dict[str, t.Any] | None] | None = None,
) -> dict[str, t.Any]:
    """The response's JSON envelope, parsed once and remembered on the response.

    ``decode`` is a stream's own decoder (typed rows, see :mod:`tap_pipedrive.typed_pages`),
    tried first; a body it returns ``None`` for is parsed as plain JSON.

    Raises:
        MalformedResponseError: the body is not JSON or not an object (e.g. a literal ``null``
            or a truncated page); such responses are retried.
    """
    cached = response.__dict__.get(_BODY_ATTR)
    if cached is not None:
        return t.cast("dict[str, t.Any]", cached)
    typed = None if decode is None else decode(response.content)
    if typed is not None:
        response.__dict__[_BODY_ATTR] = typed
        return typed
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        msg = f"Malformed JSON from {response.request.method} {_path(response)}: {exc}"
        raise MalformedResponseError(msg, response) from None
    if not isinstance(body, dict):
        msg = (
            f"Unexpected body from {response.request.method} {_path(response)}: "
            f"a JSON {type(body).__name__} instead of an object"
        )
        raise MalformedResponseError(msg, response)
    response.__dict__[_BODY_ATTR] = body
    return body


def _path(response: requests.Response) -> str:
    return urlparse(response.url).path or "?"


def next_cursor(body: dict[str, t.Any]) -> str | None:
    """The v2 keyset cursor of the next page (``None``: the last page)."""
    extra = body.get("additional_data") or {}
    cursor = extra.get("next_cursor")
    return str(cursor) if cursor else None


def next_start(body: dict[str, t.Any]) -> int | None:
    """The v1 offset of the next page (``None``: the last page).

    The spec's schema puts the fields directly under ``additional_data``, its examples and real
    responses nest them under ``pagination``: both are read.
    """
    extra = body.get("additional_data") or {}
    page = extra.get("pagination") or extra
    if not page.get("more_items_in_collection"):
        return None
    start = page.get("next_start")
    if start is None:
        return int(page.get("start", 0)) + int(page.get("limit", 0))
    return int(start)


class CursorPaginator(BaseAPIPaginator[str | None]):
    """API v2: ``additional_data.next_cursor`` names the next page; ``null`` ends the list.

    ``start`` resumes a list at a saved cursor (``None``: the first page).
    """

    def __init__(self, start: str | None = None) -> None:
        super().__init__(start)

    @override
    def get_next(self, response: requests.Response) -> str | None:
        return next_cursor(response_body(response))

    @override
    def continue_if_empty(self, response: requests.Response) -> bool:
        # An empty page that still carries a cursor is not the end of the list.
        return self.get_next(response) is not None


class OffsetPaginator(BaseAPIPaginator[int | None]):
    """API v1: ``additional_data.pagination`` says whether more items follow and where."""

    def __init__(self) -> None:
        super().__init__(None)

    @override
    def get_next(self, response: requests.Response) -> int | None:
        return next_start(response_body(response))

    @override
    def continue_if_empty(self, response: requests.Response) -> bool:
        return self.get_next(response) is not None


class EnvelopePaginator(BaseAPIPaginator[str | int | None]):
    """Either style, as each answer shows it: a ``next_cursor`` (v2 lists, v1 changelogs) or
    offsets (other v1 lists). For a stream that reads endpoints of both kinds (the flow)."""

    def __init__(self) -> None:
        super().__init__(None)

    @override
    def get_next(self, response: requests.Response) -> str | int | None:
        body = response_body(response)
        if "next_cursor" in (body.get("additional_data") or {}):
            return next_cursor(body)
        return next_start(body)

    @override
    def continue_if_empty(self, response: requests.Response) -> bool:
        return self.get_next(response) is not None
