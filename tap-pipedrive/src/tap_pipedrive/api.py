"""The tap run's connection to Pipedrive: one object shared by every stream.

It owns the HTTP session (:mod:`tap_pipedrive.session`: pacing, token counting), the
authentication, the circuit breaker, the dictionary cache and the metrics, and classifies every
response (burst limit vs exhausted budget, bad credentials, server errors, malformed bodies).
Streams plug it into the SDK's public request hooks: ``requests_session``, ``authenticator``,
``request_decorator`` (:meth:`PipedriveApi.guarded`) and ``validate_response``
(:meth:`PipedriveApi.check_response`).
"""

from __future__ import annotations

import json
import logging
import typing as t
from dataclasses import dataclass
from functools import cached_property
from importlib import resources

import pybreaker
import requests
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_pipedrive.auth import DEFAULT_TOKEN_URL, ApiTokenAuth, OAuthRefreshAuth
from tap_pipedrive.budget import TokenBudget
from tap_pipedrive.cache import DictionaryCache
from tap_pipedrive.metrics import TapMetrics
from tap_pipedrive.pagination import response_body
from tap_pipedrive.ratelimit import BurstLimiter, header_number, retry_after_seconds
from tap_pipedrive.resilience import (
    AuthenticationError,
    BurstLimitedError,
    CircuitOpenError,
    GoneError,
    RunStopped,
    make_breaker,
)
from tap_pipedrive.session import PipedriveSession, tag_of, tag_request
from tap_pipedrive.store import CounterStore, MemoryStore, RedisStore, account_key

if t.TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_API_URL = "https://api.pipedrive.com"
LOGGER = logging.getLogger("tap-pipedrive.api")


@dataclass(frozen=True)
class OpenApiData:
    """The trimmed spec: record schemas per stream and the token cost per operation."""

    streams: dict[str, dict[str, t.Any]]
    token_costs: dict[str, int]

    @classmethod
    def load(cls) -> OpenApiData:
        text = resources.files("tap_pipedrive.openapi").joinpath("pipedrive.json").read_text()
        doc = json.loads(text)
        return cls(streams=doc["streams"], token_costs=doc["token_costs"])


OPENAPI = OpenApiData.load()


def _redis_client(url: str) -> t.Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)


class PipedriveApi:
    """Everything a request needs, built once per tap run from the settings."""

    def __init__(self, config: Mapping[str, t.Any], metrics: TapMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or TapMetrics()
        self.auth: ApiTokenAuth | OAuthRefreshAuth = self._build_auth()
        self.account = account_key(
            str(config.get("api_url") or DEFAULT_API_URL),
            config.get("company_domain"),
            self.auth.credential_hint,
        )
        redis_url = config.get("redis_url")
        self.redis = _redis_client(redis_url) if redis_url else None
        store: CounterStore = RedisStore(self.redis) if self.redis is not None else MemoryStore()
        self.limiter = BurstLimiter(
            store, self.account, window_seconds=float(config.get("burst_window_seconds", 2))
        )
        self.budget = TokenBudget(
            store,
            self.account,
            max_share=float(config.get("max_budget_share", 1.0)),
            daily_budget=config.get("daily_token_budget"),
        )
        self.breaker = make_breaker(int(config.get("circuit_breaker_failures", 5)))
        self.cache = DictionaryCache(
            self.redis, self.account, int(config.get("cache_ttl_seconds", 3600))
        )
        self.session = PipedriveSession(self.limiter, self.budget, self.metrics)

    def _build_auth(self) -> ApiTokenAuth | OAuthRefreshAuth:
        cfg = self.config
        if cfg.get("refresh_token"):
            missing = [k for k in ("client_id", "client_secret") if not cfg.get(k)]
            if missing:
                msg = f"OAuth needs {', '.join(missing)} besides refresh_token."
                raise AuthenticationError(msg)
            return OAuthRefreshAuth(
                client_id=cfg["client_id"],
                client_secret=cfg["client_secret"],
                refresh_token=cfg["refresh_token"],
                token_url=cfg.get("oauth_token_url") or DEFAULT_TOKEN_URL,
                timeout=float(cfg.get("request_timeout", 300)),
            )
        if not cfg.get("api_token"):
            msg = "No credentials: set api_token, or client_id, client_secret and refresh_token."
            raise AuthenticationError(msg)
        return ApiTokenAuth(str(cfg["api_token"]))

    @cached_property
    def base_url(self) -> str:
        """OAuth's ``api_domain``, else ``https://<company_domain>.pipedrive.com``, else api_url."""
        api_url = str(self.config.get("api_url") or DEFAULT_API_URL).rstrip("/")
        if api_url == DEFAULT_API_URL:
            if self.auth.api_domain:
                return self.auth.api_domain
            domain = self.config.get("company_domain")
            if domain:
                return f"https://{domain}.pipedrive.com"
        return api_url

    def cost_of(self, method: str, path_template: str) -> int:
        return self.token_costs.get(f"{method} {path_template}", 0)

    @cached_property
    def token_costs(self) -> dict[str, int]:
        return OPENAPI.token_costs

    def guarded(
        self,
        send: t.Callable[[requests.PreparedRequest, t.Any], requests.Response],
        request: requests.PreparedRequest,
        context: t.Any,
        endpoint: str,
    ) -> requests.Response:
        """``send(request, context)`` through the circuit breaker, the request tagged with its
        endpoint and cost (see :mod:`tap_pipedrive.session`).

        ``send`` is the SDK's request call (auth, the session's send, ``validate_response``):
        the failures it raises, malformed bodies included, count towards the breaker.
        """
        tag_request(request, endpoint, self.cost_of("GET", endpoint))
        try:
            response: requests.Response = self.breaker.call(send, request, context)
            return response
        except pybreaker.CircuitBreakerError:
            msg = (
                f"Stopping: {self.breaker.fail_max} consecutive requests to Pipedrive failed "
                f"(last: GET {endpoint}); the circuit breaker is open. State was saved."
            )
            raise CircuitOpenError(msg) from None

    def check_response(
        self,
        response: requests.Response,
        *,
        validate: t.Callable[[dict[str, t.Any]], None] | None = None,
        decode: t.Callable[[bytes], dict[str, t.Any] | None] | None = None,
    ) -> None:
        """Raise the error class a response's outcome deserves (a stream's ``validate_response``).

        ``validate`` checks the parsed body (e.g. a list page must have a list); ``decode`` is
        the stream's own body decoder, if it has one (see
        :func:`~tap_pipedrive.pagination.response_body`).
        """
        endpoint = tag_of(response.request).endpoint
        status = response.status_code
        headers = response.headers
        if status == 429:
            self._raise_rate_limited(response, endpoint)
        if status == 401:
            if self.auth.on_unauthorized():
                msg = f"401 from GET {endpoint}: refreshed the OAuth access token, retrying"
                raise RetriableAPIError(msg, response)
            msg = (
                f"Pipedrive rejected the API token (401 Unauthorized) for GET {endpoint}: "
                "check the api_token setting (the token is not shown here)."
            )
            raise AuthenticationError(msg)
        if status == 403 and "html" in headers.get("content-type", ""):
            msg = (
                f"Stopping: Pipedrive's firewall blocked GET {endpoint} (403 page), which happens "
                "after repeated 429s; wait a few minutes before the next run. State was saved."
            )
            raise RunStopped(msg)
        if status == 403:
            msg = (
                f"Pipedrive refused GET {endpoint} (403 Forbidden): the credentials' user lacks "
                f"permission for it. {_error_text(response)}"
            )
            raise AuthenticationError(msg)
        if status >= 500 or status == 408:
            msg = f"{status} from GET {endpoint}: {_error_text(response)}"
            raise RetriableAPIError(msg, response)
        if status >= 400:
            msg = f"{status} from GET {endpoint}: {_error_text(response)}"
            raise GoneError(msg) if status in (404, 410) else FatalAPIError(msg)
        # Malformed bodies raise here, inside retry and breaker.
        body = response_body(response, decode)
        if validate is not None:
            validate(body)

    def _raise_rate_limited(self, response: requests.Response, endpoint: str) -> t.NoReturn:
        headers = response.headers
        daily_left = header_number(headers, "x-daily-ratelimit-token-remaining")
        text = _error_text(response).lower()
        if (daily_left is not None and daily_left <= 0) or "daily" in text or "budget" in text:
            self.metrics.rate_limited.labels("budget").inc()
            raise self.budget.exhausted(headers)
        self.metrics.rate_limited.labels("burst").inc()
        wait = retry_after_seconds(headers, default=2.0)
        self.limiter.block_for(wait)
        msg = f"429 burst limit on GET {endpoint}; waiting {wait:.1f}s"
        raise BurstLimitedError(msg, retry_after=wait, response=response)

    def close(self) -> None:
        self.session.close()
        if self.redis is not None:
            self.redis.close()


def _error_text(response: requests.Response) -> str:
    """The API's own error message, if the body has one (bodies never echo credentials)."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or "")[:200]
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("error", "error_info") if body.get(k)]
        return " ".join(parts)[:300]
    return ""
