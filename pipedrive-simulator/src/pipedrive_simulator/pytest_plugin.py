"""pytest fixtures that start the simulator on an ephemeral port (registered via pytest11)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipedrive_simulator.handle import SimulatorHandle, start

SimulatorFactory = Callable[..., SimulatorHandle]


@pytest.fixture
def pipedrive_simulator_factory() -> Iterator[SimulatorFactory]:
    """``factory(seed=42, deals=None, plan="unlimited", **sizes)`` starts a simulator."""
    handles: list[SimulatorHandle] = []

    def factory(
        seed: int = 42, deals: int | None = None, plan: str = "unlimited", **sizes: Any
    ) -> SimulatorHandle:
        handle = start(seed=seed, deals=deals, plan=plan, **sizes)
        handles.append(handle)
        return handle

    yield factory
    for handle in handles:
        handle.stop()


@pytest.fixture
def pipedrive_simulator(pipedrive_simulator_factory: SimulatorFactory) -> SimulatorHandle:
    """A simulator with the default account (a realistic small company), plan unlimited."""
    return pipedrive_simulator_factory()
