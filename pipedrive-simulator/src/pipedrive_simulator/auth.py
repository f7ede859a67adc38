"""API-token and OAuth2 authentication (authorization-code and refresh-token grants)."""

from __future__ import annotations

import base64
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode

from pipedrive_simulator.clock import SimClock
from pipedrive_simulator.errors import ApiError
from pipedrive_simulator.protocol import Request, Response

ACCESS_TOKEN_SECONDS = 3599
SCOPE = (
    "base,deals:read,contacts:read,activities:read,products:read,users:read,leads:read,"
    "recents:read,admin"
)


@dataclass(frozen=True)
class Principal:
    kind: str  # "api_token" | "oauth"
    token: str


@dataclass
class _Grant:
    access_token: str
    refresh_token: str
    expires_at: datetime


class Auth:
    def __init__(self, clock: SimClock, api_token: str, client_id: str, client_secret: str) -> None:
        self.clock = clock
        self.api_token = api_token
        self.client_id = client_id
        self.client_secret = client_secret
        self._lock = threading.Lock()
        self._codes: dict[str, str] = {}  # code -> redirect_uri
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}

    # -- checking requests -------------------------------------------------------------------
    def authenticate(self, req: Request) -> Principal:
        header = req.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
            with self._lock:
                grant = self._access.get(token)
            if grant is None or grant.expires_at <= self.clock.now:
                raise ApiError(401, "Unauthorized", "The access token is invalid or has expired")
            return Principal("oauth", token)
        token = req.headers.get("x-api-token") or req.query.get("api_token") or ""
        if not token:
            raise ApiError(401, "You need to be authorized to make this request.")
        if not secrets.compare_digest(token, self.api_token):
            raise ApiError(401, "unauthorized access")
        return Principal("api_token", token)

    # -- OAuth2 ------------------------------------------------------------------------------
    def issue_code(self, redirect_uri: str = "") -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = redirect_uri
        return code

    def authorize(self, req: Request) -> Response:
        """GET /oauth/authorize: the user always consents; redirect back with a code."""
        if req.query.get("client_id") != self.client_id:
            raise ApiError(400, "invalid client_id")
        redirect_uri = req.query.get("redirect_uri", "")
        code = self.issue_code(redirect_uri)
        params = {"code": code}
        if "state" in req.query:
            params["state"] = req.query["state"]
        location = f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(params)}"
        return Response(status=302, headers={"location": location}, content_type="text/plain")

    def token(self, req: Request) -> Response:
        """POST /oauth/token with HTTP Basic client credentials."""
        self._check_client(req.headers.get("authorization", ""))
        form = dict(parse_qsl(req.body.decode("utf-8", "replace")))
        grant_type = form.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                code = form.get("code", "")
                redirect_uri = self._codes.pop(code, None)
                if redirect_uri is None:
                    return _oauth_error("invalid_grant", "Invalid authorization code")
                if redirect_uri and form.get("redirect_uri") != redirect_uri:
                    return _oauth_error("invalid_grant", "redirect_uri does not match")
                grant = self._new_grant(secrets.token_urlsafe(32))
            elif grant_type == "refresh_token":
                old = self._refresh.get(form.get("refresh_token", ""))
                if old is None:
                    return _oauth_error("invalid_grant", "Invalid refresh token")
                self._access.pop(old.access_token, None)
                grant = self._new_grant(old.refresh_token)
            else:
                return _oauth_error(
                    "unsupported_grant_type",
                    "grant_type must be authorization_code or refresh_token",
                )
        return Response.json(
            {
                "access_token": grant.access_token,
                "token_type": "Bearer",
                "refresh_token": grant.refresh_token,
                "scope": SCOPE,
                "expires_in": ACCESS_TOKEN_SECONDS,
                "api_domain": req.base_url,
            }
        )

    def _new_grant(self, refresh_token: str) -> _Grant:
        grant = _Grant(
            access_token=f"v1:{secrets.token_urlsafe(32)}",
            refresh_token=refresh_token,
            expires_at=self.clock.now + timedelta(seconds=ACCESS_TOKEN_SECONDS),
        )
        self._access[grant.access_token] = grant
        self._refresh[refresh_token] = grant
        return grant

    def _check_client(self, header: str) -> None:
        if not header.lower().startswith("basic "):
            raise ApiError(401, "Client authentication (HTTP Basic) is required")
        try:
            decoded = base64.b64decode(header[6:].strip()).decode()
        except (ValueError, UnicodeDecodeError):
            raise ApiError(401, "Malformed Basic credentials") from None
        client_id, _, secret = decoded.partition(":")
        if not (
            secrets.compare_digest(client_id, self.client_id)
            and secrets.compare_digest(secret, self.client_secret)
        ):
            raise ApiError(401, "Invalid client credentials")


def _oauth_error(code: str, description: str) -> Response:
    return Response.json(
        {"success": False, "error": code, "error_description": description}, status=400
    )
