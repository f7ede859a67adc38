"""Pipedrive's timestamps: RFC 3339 (API v2) or ``YYYY-MM-DD HH:MM:SS`` in UTC (API v1)."""

from __future__ import annotations

import datetime as dt


class TimestampError(ValueError):
    """A value that is not a Pipedrive time."""


def parse_time(value: str) -> dt.datetime:
    """Pipedrive times: RFC 3339 (v2) or ``YYYY-MM-DD HH:MM:SS`` in UTC (v1).

    Raises:
        TimestampError: ``value`` is not a time.
    """
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        msg = f"not a Pipedrive time: {value!r}"
        raise TimestampError(msg) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def parse_update_time(value: object) -> dt.datetime | None:
    """A record's time as :func:`parse_time` reads it, or ``None`` when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except TimestampError:
        return None


def format_time(value: dt.datetime) -> str:
    """RFC 3339 in UTC with ``Z``, second precision."""
    return value.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
