"""Timestamp formats the Pipedrive API uses, and parsing of the ones it accepts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# Internally every timestamp is an RFC 3339 UTC string without fractions ("2026-01-02T03:04:05Z"):
# such strings sort lexicographically in time order, so indexes compare strings, not datetimes.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
)


def to_rfc3339(moment: datetime) -> str:
    """The v2 format: ``2026-01-02T03:04:05Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_v1(text: str | None) -> str | None:
    """The v1 format of an internal timestamp: ``2026-01-02 03:04:05`` (UTC)."""
    if text is None:
        return None
    return f"{text[:10]} {text[11:19]}"


_DAYS: dict[int, str] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_epoch(seconds: float) -> str:
    """Epoch seconds as internal RFC 3339 UTC (hot path: sort indexes over millions of ids)."""
    day, rem = divmod(int(seconds), 86400)
    prefix = _DAYS.get(day)
    if prefix is None:
        prefix = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")
        _DAYS[day] = prefix
    hour, rem = divmod(rem, 3600)
    minute, second = divmod(rem, 60)
    return f"{prefix}T{hour:02d}:{minute:02d}:{second:02d}Z"


def parse_query_time(name: str, text: str) -> str:
    """Parse an ``updated_since``-style parameter as the v2 API does.

    RFC 3339 with whole seconds only; the real API rejects fractional seconds with a 400.
    Returns the internal UTC form. Raises ValueError with the reason.
    """
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(f"{name} must be an RFC 3339 timestamp such as 2025-01-01T10:20:00Z")
    if match.group(7):
        raise ValueError(f"{name} must not contain fractional seconds")
    zone = match.group(8)
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    base = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        base -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return to_rfc3339(base)


def parse_v1_time(name: str, text: str) -> str:
    """Parse a v1 ``YYYY-MM-DD HH:MM:SS`` (UTC) parameter into the internal form."""
    try:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{name} must be in the format YYYY-MM-DD HH:MM:SS") from None
    return to_rfc3339(moment)
