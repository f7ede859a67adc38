"""Creating, listing and removing Pipeboard's webhooks in Pipedrive (``/v1/webhooks``).

One version 2.0 webhook per event object the tap reads (``event_action`` ``*``), all sending to
one subscription URL with the receiver's HTTP Basic credentials, named ``pipeboard <object>``.
Registering again creates only what is missing; removing deletes only webhooks named so (and,
when a URL is given, sending to it). The API token goes in a header and is never printed.
"""

from __future__ import annotations

import ipaddress
import typing as t
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from tap_pipedrive.webhooks.credentials import Credentials
from tap_pipedrive.webhooks.payload import TAP_OBJECTS

NAME_PREFIX = "pipeboard "
MAX_PER_USER = 40
PUBLIC_URL_RULE = (
    "Pipedrive delivers only to a full, publicly reachable URL that does not redirect and is not "
    "a Pipedrive API URL: run the receiver behind a TLS reverse proxy and register the proxy's "
    "public https URL (the first line `tap-pipedrive-webhooks serve --public-url ...` prints)"
)
LIMIT_RULE = (
    f"Pipedrive allows {MAX_PER_USER} webhooks per user; Pipeboard needs one per object "
    f"({len(TAP_OBJECTS)}): remove unused webhooks (Settings > Tools and apps > Webhooks) or "
    "register with another user's token"
)
ADMIN_RULE = (
    "webhook events are filtered by the webhook user's permissions: register with an admin "
    "user's API token (or --user-id of an admin) to receive every change"
)


class RegistrationError(Exception):
    """A failure explained in Pipedrive's terms (never containing the API token)."""


@dataclass(frozen=True)
class Outcome:
    hook: dict[str, t.Any]
    status: str  # "created", "exists", "removed"


class WebhookApi:
    def __init__(self, api_url: str, api_token: str, timeout: float = 30.0) -> None:
        self.base = api_url.rstrip("/")
        self._token = api_token
        self.session = requests.Session()
        self.session.headers["x-api-token"] = api_token
        self.timeout = timeout

    def _call(self, method: str, path: str, **kwargs: t.Any) -> requests.Response:
        url = f"{self.base}/v1{path}"
        try:
            return self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            msg = f"{method} {url} failed: {type(exc).__name__}"
            raise RegistrationError(self._scrub(msg)) from None

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _fail(self, what: str, resp: requests.Response) -> RegistrationError:
        try:
            body = resp.json()
        except ValueError:
            body = {}
        detail = body.get("errors") or body.get("error") or resp.reason
        msg = f"{what}: HTTP {resp.status_code} {detail}"
        if resp.status_code == 401:
            msg += " (the API token is not valid for this company)"
        elif resp.status_code == 403:
            msg += f" ({ADMIN_RULE})"
        elif resp.status_code == 400 and "subscription_url" in str(detail):
            msg += f". {PUBLIC_URL_RULE}"
        elif resp.status_code == 400 and "40" in str(detail):
            msg += f". {LIMIT_RULE}"
        return RegistrationError(self._scrub(msg))

    def hooks(self) -> list[dict[str, t.Any]]:
        resp = self._call("GET", "/webhooks")
        if resp.status_code != 200:
            raise self._fail("listing webhooks", resp)
        return list(resp.json().get("data") or [])

    def create(self, body: dict[str, t.Any]) -> dict[str, t.Any]:
        resp = self._call("POST", "/webhooks", json=body)
        if resp.status_code not in (200, 201):
            raise self._fail(f"creating the {body['event_object']} webhook", resp)
        return dict(resp.json()["data"])

    def delete(self, ident: int) -> None:
        resp = self._call("DELETE", f"/webhooks/{ident}")
        if resp.status_code not in (200, 404):
            raise self._fail(f"deleting webhook {ident}", resp)

    def current_user(self) -> dict[str, t.Any] | None:
        resp = self._call("GET", "/users/me")
        return dict(resp.json().get("data") or {}) if resp.status_code == 200 else None


def ours(hook: dict[str, t.Any], subscription_url: str | None = None) -> bool:
    if not str(hook.get("name") or "").startswith(NAME_PREFIX):
        return False
    return subscription_url is None or hook.get("subscription_url") == subscription_url


def url_problem(url: str) -> str | None:
    """Why Pipedrive would not deliver to ``url`` (None when it looks public)."""
    host = urlsplit(url).hostname
    if not host:
        return f"{url!r} has no host"
    if host == "localhost" or host.endswith(".local"):
        return f"{host} is not reachable from the internet"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_private or address.is_loopback or address.is_link_local:
        return f"{host} is a private address"
    return None


def register(
    api: WebhookApi,
    subscription_url: str,
    credentials: Credentials,
    user_id: int | None = None,
    objects: t.Sequence[str] = TAP_OBJECTS,
) -> list[Outcome]:
    parts = urlsplit(subscription_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = f"{subscription_url!r} is not a full http(s) URL. {PUBLIC_URL_RULE}"
        raise RegistrationError(msg)
    existing = [h for h in api.hooks() if not h.get("remove_time")]
    have = {
        h["event_object"]
        for h in existing
        if ours(h, subscription_url) and h.get("event_action") == "*" and h.get("version") == "2.0"
    }
    missing = [o for o in objects if o not in have]
    if len(existing) + len(missing) > MAX_PER_USER:
        msg = f"{len(existing)} webhooks exist and {len(missing)} more are needed. {LIMIT_RULE}"
        raise RegistrationError(msg)
    outcomes = [
        Outcome(h, "exists")
        for h in existing
        if ours(h, subscription_url) and h.get("event_object") in have
    ]
    for obj in missing:
        body: dict[str, t.Any] = {
            "subscription_url": subscription_url,
            "event_action": "*",
            "event_object": obj,
            "name": f"{NAME_PREFIX}{obj}",
            "version": "2.0",
            "http_auth_user": credentials.user,
            "http_auth_password": credentials.password,
        }
        if user_id is not None:
            body["user_id"] = user_id
        outcomes.append(Outcome(api.create(body), "created"))
    return outcomes


def remove(api: WebhookApi, subscription_url: str | None = None) -> list[Outcome]:
    removed = []
    for hook in api.hooks():
        if ours(hook, subscription_url) and not hook.get("remove_time"):
            api.delete(int(hook["id"]))
            removed.append(Outcome(hook, "removed"))
    return removed


def describe(outcome: Outcome) -> str:
    """One line per webhook; credentials are not shown."""
    h = outcome.hook
    return (
        f"{outcome.status:8} id={h.get('id')} object={h.get('event_object')} "
        f"action={h.get('event_action')} version={h.get('version')} "
        f"url={h.get('subscription_url')} last_status={h.get('last_http_status')}"
    )
