"""Helpers for the tap's tests: run the tap in-process against the simulator, read its output."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tap_pipedrive.tap import TapPipedrive

# Importlib import mode does not put test directories on sys.path; helper modules live here.
sys.path.insert(0, str(Path(__file__).parent))

FAST_RETRIES = {
    "retry_initial_wait_seconds": 0.01,
    "retry_max_wait_seconds": 0.05,
}


@dataclass
class TapRun:
    """The Singer messages one run wrote, and the error it stopped with (if any)."""

    messages: list[dict[str, t.Any]]
    error: BaseException | None = None
    tap: TapPipedrive | None = field(default=None, repr=False)

    def records(self, stream: str) -> list[dict[str, t.Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def ids(self, stream: str, key: str = "id") -> list[t.Any]:
        return [r[key] for r in self.records(stream)]

    def schema(self, stream: str) -> dict[str, t.Any]:
        return next(m for m in self.messages if m["type"] == "SCHEMA" and m["stream"] == stream)[
            "schema"
        ]

    @property
    def state(self) -> dict[str, t.Any]:
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return states[-1] if states else {}

    def types(self, kind: str) -> list[dict[str, t.Any]]:
        return [m for m in self.messages if m["type"] == kind]


def sim_config(sim: t.Any, **overrides: t.Any) -> dict[str, t.Any]:
    return {"api_url": sim.base_url, "api_token": sim.api_token, **FAST_RETRIES, **overrides}


def run_tap(
    config: dict[str, t.Any],
    state: dict[str, t.Any] | None = None,
    catalog: dict[str, t.Any] | None = None,
) -> TapRun:
    """Run a whole sync in this process; errors are returned, not raised."""
    out = io.StringIO()
    error: BaseException | None = None
    tap: TapPipedrive | None = None
    with contextlib.redirect_stdout(out):
        try:
            tap = TapPipedrive(config=config, state=state, catalog=catalog, parse_env_config=False)
            tap.sync_all()
        except Exception as exc:  # the test inspects it
            error = exc
    messages = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return TapRun(messages=messages, error=error, tap=tap)


def select_only(config: dict[str, t.Any], streams: t.Iterable[str]) -> dict[str, t.Any]:
    """A catalog (from discovery) with only ``streams`` selected."""
    wanted = set(streams)
    tap = TapPipedrive(config=config, parse_env_config=False)
    catalog = tap.catalog_dict
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in wanted
    return catalog


@pytest.fixture
def run() -> t.Callable[..., TapRun]:
    """``run(config, state=None, catalog=None) -> TapRun``."""
    return run_tap


@pytest.fixture
def config_for() -> t.Callable[..., dict[str, t.Any]]:
    """``config_for(sim, **overrides)``: settings pointing the tap at a simulator."""
    return sim_config


@pytest.fixture
def catalog_with() -> t.Callable[..., dict[str, t.Any]]:
    """``catalog_with(config, streams)``: the discovered catalog with only ``streams`` selected."""
    return select_only
