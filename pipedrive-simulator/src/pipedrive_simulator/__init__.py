"""A local Pipedrive API simulator: a real HTTP server for tests, the demo and benchmarks."""

from pipedrive_simulator.handle import SimulatorHandle, start

__all__ = ["SimulatorHandle", "start"]
