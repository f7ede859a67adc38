"""The HTTP Basic credentials Pipedrive sends with each webhook (receiver and registration).

From ``PIPEBOARD_WEBHOOK_USER`` / ``PIPEBOARD_WEBHOOK_PASSWORD``, or, for secrets mounted as
files, ``PIPEBOARD_WEBHOOK_USER_FILE`` / ``PIPEBOARD_WEBHOOK_PASSWORD_FILE`` (the variable wins
when both are set). Values are never logged nor put in error messages.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

USER_VAR = "PIPEBOARD_WEBHOOK_USER"
PASSWORD_VAR = "PIPEBOARD_WEBHOOK_PASSWORD"  # noqa: S105 - a variable name


class CredentialsError(Exception):
    """The credentials are not configured (the message names the variables, not values)."""


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str

    def __repr__(self) -> str:  # never show the password
        return "Credentials(user=***, password=***)"

    def accepts(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries these credentials (constant time)."""
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        ok_user = hmac.compare_digest(user, self.user.encode())
        ok_password = hmac.compare_digest(password, self.password.encode())
        return ok_user and ok_password


def _value(name: str, environ: Mapping[str, str]) -> str | None:
    value = environ.get(name)
    if value:
        return value
    path = environ.get(f"{name}_FILE")
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        msg = f"{name}_FILE names a file that cannot be read ({exc.strerror})"
        raise CredentialsError(msg) from None
    return text or None


def load(environ: Mapping[str, str] = os.environ) -> Credentials:
    user = _value(USER_VAR, environ)
    password = _value(PASSWORD_VAR, environ)
    missing = [n for n, v in ((USER_VAR, user), (PASSWORD_VAR, password)) if not v]
    if missing or user is None or password is None:
        names = " and ".join(f"{n} (or {n}_FILE)" for n in missing)
        msg = f"set {names}: Pipedrive sends these HTTP Basic credentials with every webhook"
        raise CredentialsError(msg)
    if ":" in user:
        msg = f"{USER_VAR} must not contain ':' (HTTP Basic separates user and password by it)"
        raise CredentialsError(msg)
    return Credentials(user, password)
