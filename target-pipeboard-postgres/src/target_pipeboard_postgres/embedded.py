"""The embedded PostgreSQL server (``database_url: embedded://<directory>``).

Chosen explicitly in config, never as a fallback. The server's data lives in the directory
(relative paths are taken from the working directory) and is kept between runs; the server
runs while a process uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from target_pipeboard_postgres.errors import InvalidSettingError

_SERVERS: dict[Path, Any] = {}


def resolve_directory(directory: str) -> Path:
    """The absolute data directory for an ``embedded://`` URL's path."""
    return Path(directory).expanduser().resolve()


def server_uri(directory: str) -> str:
    """Start (or reuse) the embedded server for ``directory`` and return its libpq URI."""
    path = resolve_directory(directory)
    server = _SERVERS.get(path)
    if server is None:
        try:
            import pgserver
        except ImportError:
            raise InvalidSettingError(
                "database_url",
                "embedded:// needs the optional dependency: "
                "pip install 'target-pipeboard-postgres[embedded]'",
            ) from None
        path.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(path, cleanup_mode="stop")  # type: ignore[attr-defined]
        _SERVERS[path] = server
    return str(server.get_uri())


def release(directory: str) -> None:
    """Drop this process's handle on the embedded server (it stops when no process uses it)."""
    server = _SERVERS.pop(resolve_directory(directory), None)
    if server is not None:
        server.cleanup()
