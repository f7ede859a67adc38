"""Authentication: an API token in the ``x-api-token`` header, or OAuth2 with refresh.

Credentials only ever travel in headers (never in URLs), so they cannot leak into logs that
print request paths.
"""

from __future__ import annotations

import threading
import time
import typing as t

import requests
from requests.auth import AuthBase
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from tap_pipedrive.resilience import AuthenticationError

DEFAULT_TOKEN_URL = "https://oauth.pipedrive.com/oauth/token"  # noqa: S105 - a URL


class ApiTokenAuth(AuthBase):
    """Sends the company's API token in the ``x-api-token`` header."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["x-api-token"] = self._token
        return request

    def on_unauthorized(self) -> bool:
        """An API token cannot be refreshed: the caller must fail."""
        return False

    @property
    def api_domain(self) -> str | None:
        return None

    @property
    def credential_hint(self) -> str:
        return self._token


class _TransientOAuthError(Exception):
    pass


class OAuthRefreshAuth(AuthBase):
    """OAuth2 bearer tokens, refreshed with the refresh token before they expire or on 401.

    Pipedrive's token response names the company's ``api_domain``; requests go there.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        token_url: str = DEFAULT_TOKEN_URL,
        timeout: float = 30,
        session: requests.Session | None = None,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._token_url = token_url
        self._timeout = timeout
        self._session = session or requests.Session()
        self._access_token: str | None = None
        self._expires_at = 0.0
        self._api_domain: str | None = None
        self._lock = threading.Lock()
        self.refresh_count = 0

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        with self._lock:
            if self._access_token is None or time.time() >= self._expires_at - 60:
                self._refresh()
        request.headers["Authorization"] = f"Bearer {self._access_token}"
        return request

    def on_unauthorized(self) -> bool:
        """Refresh after a 401 (revoked or expired early); True when the caller may retry."""
        with self._lock:
            self._refresh()
        return True

    @property
    def api_domain(self) -> str | None:
        with self._lock:
            if self._access_token is None:
                self._refresh()
        return self._api_domain

    @property
    def credential_hint(self) -> str:
        return f"{self._client_id}:{self._refresh_token}"

    def _refresh(self) -> None:
        payload = self._post_refresh()
        token = payload.get("access_token")
        if not token:
            msg = "Pipedrive OAuth refresh answered without an access_token."
            raise AuthenticationError(msg)
        self._access_token = str(token)
        self._expires_at = time.time() + float(payload.get("expires_in") or 3600)
        # Pipedrive may rotate the refresh token; keep the newest for later refreshes.
        self._refresh_token = str(payload.get("refresh_token") or self._refresh_token)
        domain = payload.get("api_domain")
        self._api_domain = str(domain).rstrip("/") if domain else self._api_domain
        self.refresh_count += 1

    @retry(
        retry=retry_if_exception_type(
            (_TransientOAuthError, requests.ConnectionError, requests.Timeout)
        ),
        stop=stop_after_attempt(4),
        wait=wait_exponential_jitter(multiplier=0.2, max=5),
        reraise=True,
    )
    def _post_refresh(self) -> dict[str, t.Any]:
        response = self._session.post(
            self._token_url,
            data={"grant_type": "refresh_token", "refresh_token": self._refresh_token},
            auth=(self._client_id, self._client_secret),
            timeout=self._timeout,
        )
        if response.status_code >= 500:
            raise _TransientOAuthError(str(response.status_code))
        if response.status_code != 200:
            msg = (
                f"Pipedrive OAuth refresh was rejected ({response.status_code}): check "
                "client_id, client_secret and refresh_token."
            )
            raise AuthenticationError(msg)
        return t.cast("dict[str, t.Any]", response.json())
