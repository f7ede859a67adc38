"""SimulatorHandle: a running simulator and the controls tests use on it."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from pipedrive_simulator.changelog import events_of, record_at, records_at
from pipedrive_simulator.merges import merge_deal
from pipedrive_simulator.render import v2_record
from pipedrive_simulator.server import SimulatorHTTPServer, serve_in_thread
from pipedrive_simulator.simulator import Simulator
from pipedrive_simulator.timeutil import parse_query_time
from pipedrive_simulator.truth import truth


class SimulatorHandle:
    def __init__(
        self, simulator: Simulator, server: SimulatorHTTPServer, thread: threading.Thread
    ) -> None:
        self.simulator = simulator
        self._server = server
        self._thread = thread

    # -- connection facts --------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def api_token(self) -> str:
        return self.simulator.api_token

    @property
    def oauth_client_id(self) -> str:
        return self.simulator.auth.client_id

    @property
    def oauth_client_secret(self) -> str:
        return self.simulator.auth.client_secret

    def oauth_code(self, redirect_uri: str = "") -> str:
        """An authorization code, as the consent screen would hand one to a redirect URI."""
        return self.simulator.auth.issue_code(redirect_uri)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- ground truth ------------------------------------------------------------------------
    def truth(self, entity: str) -> list[dict[str, Any]]:
        return truth(self.simulator.account, entity, base_url=self.base_url)

    def truth_at(self, entity: str, at: str) -> list[dict[str, Any]]:
        """Every deal, person or organization as it was at ``at`` (RFC 3339)."""
        return records_at(self.simulator.account, entity, parse_query_time("at", at))

    def record_at(self, entity: str, id: int, at: str) -> dict[str, Any] | None:
        """One record (v2 shape) as it was at ``at``; None before its creation."""
        account = self.simulator.account
        rec = record_at(account, entity, id, parse_query_time("at", at))
        return None if rec is None else v2_record(account, entity, rec)

    def changelog(self, entity: str, id: int) -> list[dict[str, Any]]:
        """A record's logged changes, oldest first, typed as the record holds them."""
        return events_of(self.simulator.account, entity, id)

    def stage_history(self, deal_id: int) -> list[dict[str, Any]]:
        return self.simulator.account.stage_history(deal_id)

    # -- clock -------------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return self.simulator.clock.now

    def advance(self, seconds: float) -> datetime:
        return self.simulator.clock.advance(seconds)

    # -- mutations ---------------------------------------------------------------------------
    def create(self, entity: str, **fields: Any) -> dict[str, Any]:
        return self.simulator.mutator.create(entity, **fields)

    def update(self, entity: str, id: Any, **fields: Any) -> dict[str, Any]:
        return self.simulator.mutator.update(entity, id, **fields)

    def delete(self, entity: str, id: Any) -> None:
        self.simulator.mutator.delete(entity, id)

    def archive_deal(self, id: int) -> dict[str, Any]:
        return self.simulator.mutator.archive_deal(id)

    def move_deal(self, id: int, stage_id: int, user_id: int | None = None) -> dict[str, Any]:
        return self.simulator.mutator.move_deal(id, stage_id, user_id)

    def merge_deal(self, id: int, merge_with_id: int) -> dict[str, Any]:
        """Merge deal ``id`` into ``merge_with_id`` (see :mod:`pipedrive_simulator.merges`)."""
        return merge_deal(self.simulator.account, id, merge_with_id)

    def add_field(
        self, entity: str, name: str, field_type: str, options: list[str] | None = None
    ) -> str:
        return self.simulator.mutator.add_field(entity, name, field_type, options)

    def rename_field(self, entity: str, key: str, new_name: str) -> None:
        self.simulator.mutator.rename_field(entity, key, new_name)

    def delete_field(self, entity: str, key: str) -> None:
        self.simulator.mutator.delete_field(entity, key)

    def add_field_option(self, entity: str, key: str, label: str) -> int:
        return self.simulator.mutator.add_field_option(entity, key, label)

    def rename_field_option(self, entity: str, key: str, option_id: int, label: str) -> None:
        self.simulator.mutator.rename_field_option(entity, key, option_id, label)

    def delete_field_option(self, entity: str, key: str, option_id: int) -> None:
        self.simulator.mutator.delete_field_option(entity, key, option_id)

    def rename_stage(self, id: int, name: str) -> None:
        self.simulator.mutator.rename_stage(id, name)

    def add_stage(self, pipeline_id: int, name: str) -> int:
        return self.simulator.mutator.add_stage(pipeline_id, name)

    def random_changes(self, n: int, seed: int | None = None) -> dict[str, int]:
        return self.simulator.mutator.random_changes(n, seed)

    # -- faults and rate limits --------------------------------------------------------------
    def set_fault(
        self,
        kind: str,
        *,
        path: str | None = None,
        times: int | None = None,
        probability: float | None = None,
        delay: float | None = None,
    ) -> None:
        self.simulator.faults.add(
            kind, path=path, times=times, probability=probability, delay=delay
        )

    def clear_faults(self) -> None:
        self.simulator.faults.clear()

    def set_plan(self, name: str) -> None:
        self.simulator.ratelimit.set_plan(name)

    def set_budget_remaining(self, tokens: int) -> None:
        self.simulator.ratelimit.set_budget_remaining(tokens)

    # -- webhooks ----------------------------------------------------------------------------
    def webhook_switches(self, **switches: Any) -> None:
        """``fail``, ``fail_all``, ``stall``, ``duplicate``, ``omit_fields`` (see webhooks.py)."""
        self.simulator.webhooks.set_switches(switches)

    def webhook_report(self) -> dict[str, Any]:
        return self.simulator.webhooks.report()

    def drain_webhooks(self, timeout: float = 30.0) -> int:
        """Wait until the deliveries due now are sent; returns how many are still queued."""
        return self.simulator.webhooks.drain(timeout)

    # -- stats -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return self.simulator.stats.snapshot()

    def reset_stats(self) -> None:
        self.simulator.stats.reset()


def start(
    seed: int = 42,
    deals: int | None = None,
    plan: str = "unlimited",
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_token: str | None = None,
    **sizes: int | None,
) -> SimulatorHandle:
    """Start a simulator in a background thread; ``.stop()`` ends it."""
    simulator = Simulator(seed=seed, deals=deals, plan=plan, api_token=api_token, **sizes)
    server = SimulatorHTTPServer(simulator, host, port)
    return SimulatorHandle(simulator, server, serve_in_thread(server))
