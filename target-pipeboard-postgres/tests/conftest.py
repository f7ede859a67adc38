"""Fixtures for the target's tests: a config for a fresh schema, a runner, row readers."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from target_pipeboard_postgres.target import TargetPipeboardPostgres

SCENARIOS = Path(__file__).parent / "scenarios"


@pytest.fixture
def target_config(postgres_url: str, pg_schema: str) -> dict[str, Any]:
    """Settings loading into the test's own schema."""
    return {"database_url": postgres_url, "default_target_schema": pg_schema}


@pytest.fixture
def run_target(
    target_config: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> Callable[..., list[dict[str, Any]]]:
    """Run the target in-process on a scenario file or text; return the STATE lines emitted."""

    def run(source: str | Path, **overrides: Any) -> list[dict[str, Any]]:
        text = (
            (SCENARIOS / source).read_text()
            if isinstance(source, Path) or source.endswith(".singer")
            else source
        )
        config = {**target_config, **overrides}
        capsys.readouterr()
        target = TargetPipeboardPostgres(config=config)
        target.listen(io.StringIO(text))
        out = capsys.readouterr().out
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    return run


@pytest.fixture
def db(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection for checking what landed."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn


@pytest.fixture
def rows(db: psycopg.Connection[Any], pg_schema: str) -> Callable[..., list[tuple[Any, ...]]]:
    """All rows of a table in the test schema, ordered by the given columns."""

    def fetch(table: str, columns: str = "*", order: str = "1") -> list[tuple[Any, ...]]:
        query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
            sql.SQL(columns), sql.Identifier(pg_schema, table), sql.SQL(order)
        )
        return db.execute(query).fetchall()

    return fetch


@pytest.fixture
def column_types(db: psycopg.Connection[Any], pg_schema: str) -> Callable[[str], dict[str, str]]:
    """Column name -> Postgres type of a table in the test schema."""

    def fetch(table: str) -> dict[str, str]:
        result = db.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            (pg_schema, table),
        ).fetchall()
        return dict(result)

    return fetch
