"""Point a fresh Metabase at the schema Pipeboard loads (run once by docker-compose.yml).

Metabase keeps its configuration in its own database, not in files, so this script uses its API:
finish the first-run setup (admin account) if needed, then add the Pipeboard Postgres database
restricted to the loaded schema, unless a database of that name already exists.

Settings (environment variables): MB_URL, MB_ADMIN_EMAIL, MB_ADMIN_PASSWORD, PIPEBOARD_DB_HOST,
PIPEBOARD_DB_PORT, PIPEBOARD_DB_NAME, PIPEBOARD_DB_USER, PIPEBOARD_DB_PASSWORD, PIPEBOARD_SCHEMA.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import requests

DATABASE_NAME = "Pipeboard (Pipedrive)"
TIMEOUT = 30


def database_payload(env: Mapping[str, str]) -> dict[str, Any]:
    """The Metabase database definition for the Pipeboard schema."""
    return {
        "engine": "postgres",
        "name": DATABASE_NAME,
        "details": {
            "host": env["PIPEBOARD_DB_HOST"],
            "port": int(env.get("PIPEBOARD_DB_PORT", "5432")),
            "dbname": env["PIPEBOARD_DB_NAME"],
            "user": env["PIPEBOARD_DB_USER"],
            "password": env["PIPEBOARD_DB_PASSWORD"],
            "schema-filters-type": "inclusion",
            "schema-filters-patterns": env.get("PIPEBOARD_SCHEMA", "pipedrive"),
            "ssl": False,
        },
        "is_full_sync": True,
    }


def _wait_until_healthy(session: requests.Session, url: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if session.get(f"{url}/api/health", timeout=5).json().get("status") == "ok":
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(5)
    raise SystemExit(f"Metabase at {url} did not become healthy within {deadline_s:.0f} s")


def configure(env: Mapping[str, str], session: requests.Session) -> str:
    """Set Metabase up and add the Pipeboard database; returns what was done."""
    url = env.get("MB_URL", "http://metabase:3000").rstrip("/")
    _wait_until_healthy(session, url, float(env.get("MB_WAIT_SECONDS", "600")))
    admin = {"email": env["MB_ADMIN_EMAIL"], "password": env["MB_ADMIN_PASSWORD"]}
    properties = session.get(f"{url}/api/session/properties", timeout=TIMEOUT).json()
    if properties.get("setup-token"):
        setup = {
            "token": properties["setup-token"],
            "user": {**admin, "first_name": "Pipeboard", "last_name": "Admin"},
            "prefs": {"site_name": "Pipeboard", "allow_tracking": False},
        }
        session.post(f"{url}/api/setup", json=setup, timeout=TIMEOUT).raise_for_status()
    login = session.post(
        f"{url}/api/session",
        json={"username": admin["email"], "password": admin["password"]},
        timeout=TIMEOUT,
    )
    login.raise_for_status()
    session.headers["X-Metabase-Session"] = login.json()["id"]
    existing = session.get(f"{url}/api/database", timeout=TIMEOUT).json()
    databases = existing.get("data", existing) if isinstance(existing, dict) else existing
    if any(db.get("name") == DATABASE_NAME for db in databases):
        return f"Metabase already has {DATABASE_NAME!r}"
    response = session.post(f"{url}/api/database", json=database_payload(env), timeout=TIMEOUT)
    response.raise_for_status()
    return f"added {DATABASE_NAME!r} (schema {env.get('PIPEBOARD_SCHEMA', 'pipedrive')}) to {url}"


def main() -> int:
    """Command line entry point."""
    missing = [
        name
        for name in (
            "MB_ADMIN_EMAIL",
            "MB_ADMIN_PASSWORD",
            "PIPEBOARD_DB_HOST",
            "PIPEBOARD_DB_NAME",
            "PIPEBOARD_DB_USER",
            "PIPEBOARD_DB_PASSWORD",
        )
        if not os.environ.get(name)
    ]
    if missing:
        print(f"setup_metabase: missing environment variables: {', '.join(missing)}")
        return 2
    with requests.Session() as session:
        print(configure(os.environ, session))
    return 0


if __name__ == "__main__":
    sys.exit(main())
