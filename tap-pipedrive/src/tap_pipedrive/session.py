"""The run's HTTP session: every request paced, budgeted, counted and read whole.

The SDK sends each request through the stream's ``requests_session`` (its public hook); this
session is shared by every stream of a run. Before a request goes out it checks the token
budget and waits for room in the burst window; afterwards it counts the request and its tokens
and feeds the rate-limit headers back to the limiter and the budget. What an answer means (429,
401, 5xx, a malformed body ...) is decided afterwards, in the stream's ``validate_response``
(see :meth:`tap_pipedrive.api.PipedriveApi.check_response`).

A request carries its endpoint (the path template, e.g. ``/api/v1/deals/{id}/changelog``) and
its token cost as a tag set by the stream before it is sent (:func:`tag_request`): the label
of its metrics and the amount charged.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import requests

from tap_pipedrive.sdk_seam import read_body

if t.TYPE_CHECKING:
    from tap_pipedrive.budget import TokenBudget
    from tap_pipedrive.metrics import TapMetrics
    from tap_pipedrive.ratelimit import BurstLimiter

_TAG_ATTR = "pipedrive_tag"


@dataclass(frozen=True, slots=True)
class RequestTag:
    """What a request is, for pacing and accounting."""

    endpoint: str
    cost: int


def tag_request(request: requests.PreparedRequest, endpoint: str, cost: int) -> None:
    """Name the endpoint (path template) and token cost of a request about to be sent."""
    setattr(request, _TAG_ATTR, RequestTag(endpoint, cost))


def tag_of(request: requests.PreparedRequest | None) -> RequestTag:
    """The tag of a request; an untagged one is labelled by its path and costs nothing."""
    tag = getattr(request, _TAG_ATTR, None)
    if isinstance(tag, RequestTag):
        return tag
    path = (request.path_url if request is not None else "?").split("?", 1)[0]
    return RequestTag(path, 0)


def server_time(response: requests.Response) -> dt.datetime | None:
    """The API's clock when it answered (its ``Date`` header), or ``None``."""
    value = response.headers.get("date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class PipedriveSession(requests.Session):
    """A :class:`requests.Session` that paces, budgets and counts the requests it sends."""

    def __init__(self, limiter: BurstLimiter, budget: TokenBudget, metrics: TapMetrics) -> None:
        super().__init__()
        self.limiter = limiter
        self.budget = budget
        self.metrics = metrics
        #: The API's clock at its first answer of the run (see tap_pipedrive.change_feed).
        self.first_answer_at: dt.datetime | None = None
        #: The API's clock at its latest answer (when a dictionary was read, see streams.fields).
        self.last_answer_at: dt.datetime | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: t.Any) -> requests.Response:
        tag = tag_of(request)
        self.budget.check(tag.cost)
        self.limiter.acquire()
        metrics = self.metrics
        # Streamed, then read whole in large chunks (see sdk_seam.read_body).
        kwargs["stream"] = True
        try:
            response = super().send(request, **kwargs)
            read_body(response)
        except requests.RequestException as exc:
            metrics.api_requests.labels(tag.endpoint, type(exc).__name__).inc()
            raise
        answered = server_time(response)
        if answered is not None:
            self.last_answer_at = answered
            if self.first_answer_at is None:
                self.first_answer_at = answered
        status = response.status_code
        metrics.api_requests.labels(tag.endpoint, str(status)).inc()
        headers = response.headers
        self.limiter.observe(headers)
        self.budget.observe(headers)
        if status != 429:
            self.budget.charge(tag.cost)
            metrics.tokens_spent.inc(tag.cost)
        remaining = self.budget.estimated_remaining()
        if remaining is not None:
            metrics.budget_remaining.set(remaining)
        return response
