"""The commit ledger on its own: which STATE it lets out, and when (no database)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from target_pipeboard_postgres.commit_ledger import CommitLedger


class Ledger:
    """A ledger with its output captured and a drain that commits nothing by itself."""

    def __init__(self, wait_limit: float = 30.0) -> None:
        self.written: list[dict[str, Any]] = []
        self.drains = 0
        self.ledger = CommitLedger(
            wait_limit=wait_limit, write_state=self.written.append, drain_all=self._drain
        )

    def _drain(self) -> None:
        self.drains += 1


def test_state_waits_for_the_batches_before_it_and_follows_each_commit():
    t = Ledger()
    ledger = t.ledger
    first = ledger.batch_started(ledger.record_arrived())
    ledger.record_arrived()
    ledger.state_received({"n": 2})
    second = ledger.batch_started(ledger.record_arrived())
    ledger.state_received({"n": 3})
    assert t.written == []  # both batches open
    ledger.load(first, lambda: None)
    ledger.wait()
    assert t.written == [{"n": 2}]  # the second batch still holds {"n": 3}
    ledger.load(second, lambda: None)
    ledger.wait()
    assert t.written == [{"n": 2}, {"n": 3}]
    ledger.close()


def test_a_failed_batch_holds_every_later_state_and_its_error_reaches_the_caller():
    t = Ledger()
    ledger = t.ledger
    batch = ledger.batch_started(ledger.record_arrived())

    def fail() -> None:
        raise RuntimeError("batch failed")

    ledger.load(batch, fail)
    with pytest.raises(RuntimeError, match="batch failed"):
        ledger.wait()
    ledger.record_arrived()
    ledger.state_received({"n": 2})
    ledger.release_state()
    assert t.written == []
    ledger.close()


def test_an_overwrite_hold_lasts_until_the_swap():
    t = Ledger()
    ledger = t.ledger
    assert ledger.start_overwrite("s", "t") is True
    assert ledger.start_overwrite("s", "t") is False  # the shadow is emptied once per run
    seq = ledger.record_arrived()
    batch = ledger.batch_started(seq)
    ledger.hold_until_swap("s", "t", seq)
    ledger.state_received({"n": 1})
    ledger.load(batch, lambda: None)
    ledger.wait()
    assert t.written == []  # committed to the shadow, not yet in the table
    ledger.swapped("s", "t")
    ledger.release_state()
    assert t.written == [{"n": 1}]
    ledger.close()


def test_the_watcher_drains_an_idle_old_batch_and_only_then():
    t = Ledger(wait_limit=0.2)
    ledger = t.ledger
    ledger.start_watch()
    try:
        time.sleep(0.4)
        assert t.drains == 0  # nothing buffered, nothing to drain
        ledger.batch_started(ledger.record_arrived())
        deadline = time.monotonic() + 5
        while t.drains == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert t.drains >= 1
    finally:
        ledger.close()


def test_an_error_of_an_idle_drain_is_raised_at_the_next_message():
    failing = threading.Event()

    def drain() -> None:
        failing.set()
        raise RuntimeError("idle drain failed")

    ledger = CommitLedger(wait_limit=0.1, write_state=lambda _: None, drain_all=drain)
    ledger.start_watch()
    try:
        ledger.batch_started(ledger.record_arrived())
        assert failing.wait(5)
        time.sleep(0.05)
        with pytest.raises(RuntimeError, match="idle drain failed"):
            ledger.drain_if_stale()
    finally:
        ledger.close()
