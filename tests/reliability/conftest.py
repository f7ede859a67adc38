"""Fixtures of the reliability and security suite."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Importlib import mode does not put test directories on sys.path; the suite's helper
# modules (rel_*.py, never collected as tests) live beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from rel_figures import Figures, markdown_table, save
from rel_tls_server import TlsPostgres, start_tls_postgres

_FIGURES = Figures()


@pytest.fixture(scope="session")
def figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Figures]:
    """The session's reliability figures; written as JSON when the session ends."""
    yield _FIGURES
    target = os.environ.get("PIPEBOARD_RELIABILITY_FIGURES")
    path = Path(target) if target else tmp_path_factory.getbasetemp() / "reliability-figures.json"
    save(_FIGURES, path)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES.counts or _FIGURES.faults:
        terminalreporter.section("Pipeboard reliability figures")
        terminalreporter.write_line(markdown_table(_FIGURES.as_json()))


@pytest.fixture
def target_config(postgres_url: str, pg_schema: str) -> Callable[..., dict[str, Any]]:
    """The target's config for the test's fresh schema, with any overrides."""

    def make(**overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "database_url": postgres_url,
            "default_target_schema": pg_schema,
        }
        config.update(overrides)
        return config

    return make


TLS_SUPERUSER_PASSWORD = "pb-Superuser-Pw-7d1e"


@pytest.fixture(scope="session")
def tls_postgres() -> Iterator[TlsPostgres]:
    """A second Postgres server made for the session: TLS on, password logins only."""
    server = start_tls_postgres(TLS_SUPERUSER_PASSWORD)
    try:
        yield server
    finally:
        server.stop()
