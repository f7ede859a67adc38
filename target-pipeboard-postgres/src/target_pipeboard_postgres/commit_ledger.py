"""The commit ledger: which records are committed, and so which STATE may go to stdout.

Everything the rule "STATE only after commit" needs lives here:

- sequence numbers: every RECORD gets the next number (:meth:`CommitLedger.record_arrived`); a
  STATE received after record ``n`` covers records ``1..n`` (:class:`~.state.StateGate`);
- open batches: a sink reports a batch started (its first record), then hands the batch to
  :meth:`CommitLedger.load`, which runs it on the loader thread (one batch loads while the next
  is read) and notes it committed or failed;
- holds: an ``overwrite`` table's records are not in the table before its swap commits
  (:meth:`hold_until_swap` / :meth:`swapped`); a failed batch holds every STATE after it;
- the release: after every commit, the newest STATE whose records are all committed is written;
- the batch-age watcher: a thread that, while the input is idle, commits batches that waited
  longer than ``batch_wait_limit_seconds``; an error it meets is raised in the main thread at
  its next message (the deferred error).

Sinks know only this object; the target feeds it messages and gives it the one action it
cannot take itself (``drain_all``: commit every buffered batch).
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from target_pipeboard_postgres.state import StateGate

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Batch:
    """An open batch: buffered by a sink, or loading; closed once committed or failed."""

    first_seq: int  # number of its first record
    started: float  # time.monotonic() of its first record
    loading: bool = field(default=False)


class BackgroundLoader:
    """One thread that loads one batch at a time while the main thread reads the next."""

    def __init__(self) -> None:
        self._worker: ThreadPoolExecutor | None = None
        self._in_flight: Future[None] | None = None
        self._thread = threading.local()

    def on_loader_thread(self) -> bool:
        """Whether the caller is the loading job itself."""
        return bool(getattr(self._thread, "active", False))

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` in the background, after the previous one finished."""
        self.wait()

        def run() -> None:
            self._thread.active = True
            try:
                job()
            finally:
                self._thread.active = False

        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeboard-load")
        self._in_flight = self._worker.submit(run)

    def idle(self) -> bool:
        """Whether no batch is loading and none has failed unnoticed (its error not raised)."""
        in_flight = self._in_flight
        return in_flight is None or (in_flight.done() and in_flight.exception() is None)

    def wait(self) -> None:
        """Wait for the batch loading in the background; its error is raised here."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def wait_unless_loading(self) -> None:
        """Before using the connection: wait for the batch, unless called from its job."""
        if not self.on_loader_thread():
            self.wait()

    def close(self) -> None:
        """Wait for the last batch (its error only logged) and stop the thread."""
        try:
            self.wait()
        except Exception:
            logger.exception("A batch failed while the target was stopping")
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None


class CommitLedger:
    """Owns sequence numbers, open batches, holds, the STATE release and the batch-age watch."""

    def __init__(
        self,
        *,
        wait_limit: float,
        write_state: Callable[[dict[str, Any]], None],
        drain_all: Callable[[], None],
    ) -> None:
        self.wait_limit = wait_limit
        self._write_state = write_state
        self._drain_all = drain_all
        self.seq = 0
        self.input_complete = False
        self.loader = BackgroundLoader()
        self._gate = StateGate()
        self._open: set[Batch] = set()
        self._failed_seq: int | None = None
        self._state_lock = threading.Lock()
        # `overwrite`: tables whose shadow this run has emptied, and the first record of each
        # whose swap is still to come (no STATE may pass it before the swap).
        self._overwrites_started: set[tuple[str, str]] = set()
        self._swap_holds: dict[tuple[str, str], int] = {}
        # Batch age: when the oldest buffered batch may have waited `batch_wait_limit_seconds`.
        self._age_deadline = math.inf
        self._stale = False
        self.busy = threading.RLock()  # held while a message is handled or an idle drain runs
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._deferred_error: BaseException | None = None

    # Input

    def record_arrived(self) -> int:
        """Number the next RECORD."""
        self.seq += 1
        return self.seq

    def state_received(self, value: dict[str, Any]) -> None:
        """A STATE arrived: it covers every record so far; emit whatever is now committed."""
        self._gate.received(self.seq, value)
        if self._stale or time.monotonic() >= self._age_deadline:
            self._drain_stale()
        self.release_state()

    # Batches (reported by sinks)

    def batch_started(self, first_seq: int) -> Batch:
        """A sink buffered the first record (number ``first_seq``) of a batch."""
        now = time.monotonic()
        if self._age_deadline == math.inf:
            self._age_deadline = now + self.wait_limit
        batch = Batch(first_seq, now)
        self._open.add(batch)
        return batch

    def load(self, batch: Batch, job: Callable[[], None]) -> None:
        """Run ``job`` (the batch's transaction) on the loader thread; note how it ended.

        Until the job committed, the batch's records count as uncommitted (also when a
        termination signal interrupts the caller); a failed batch holds every later STATE.
        """
        self.loader.wait()  # the previous batch, so the one in flight is this one
        batch.loading = True

        def run() -> None:
            try:
                job()
            except BaseException:
                self._failed(batch)
                raise
            self._open.discard(batch)
            self.release_state()

        self.loader.submit(run)

    def _failed(self, batch: Batch) -> None:
        # Whatever is salvaged afterwards, no STATE may pass this batch's records.
        seq = batch.first_seq
        if self._failed_seq is None or seq < self._failed_seq:
            self._failed_seq = seq
        self._open.discard(batch)

    def wait(self) -> None:
        """Wait for the batch loading in the background (its error is raised here)."""
        self.loader.wait()

    # `overwrite`: each run fills an empty shadow, swapped in at the end

    def start_overwrite(self, schema: str, table: str) -> bool:
        """Whether this is the run's first setup of ``table`` (its shadow must be emptied)."""
        if (schema, table) in self._overwrites_started:
            return False
        self._overwrites_started.add((schema, table))
        return True

    def hold_until_swap(self, schema: str, table: str, seq: int) -> None:
        """Record ``seq`` went to a shadow: no STATE may pass it until the swap commits.

        Rows in a shadow are not in the table yet, and a rerun empties the shadow: a STATE
        emitted before the swap would let the rerun skip records the table never got.
        """
        self._swap_holds.setdefault((schema, table), seq)

    def swapped(self, schema: str, table: str) -> None:
        """The shadow of ``table`` replaced its contents."""
        self._swap_holds.pop((schema, table), None)

    # State after commit

    def _oldest_uncommitted(self) -> int | None:
        oldest: int | None = self._failed_seq
        for held in list(self._swap_holds.values()):
            if oldest is None or held < oldest:
                oldest = held
        for batch in list(self._open):
            if oldest is None or batch.first_seq < oldest:
                oldest = batch.first_seq
        return oldest

    def release_state(self) -> None:
        """Emit the newest STATE whose records are all committed (called after each commit)."""
        with self._state_lock:
            state = self._gate.release(self._oldest_uncommitted())
            if state is not None:
                self._write_state(copy.deepcopy(state))

    # Batch age: a trickle of input still commits (and lets STATE out) within a bound

    def drain_if_stale(self) -> None:
        """Between messages: commit the buffered batches if the watcher found them too old."""
        if self._stale:
            self._drain_stale()

    def raise_deferred(self) -> None:
        """Raise the error an idle drain met, if any."""
        if self._deferred_error is not None:
            error, self._deferred_error = self._deferred_error, None
            raise error

    def _drain_stale(self) -> None:
        """Commit every buffered batch once the oldest has waited `batch_wait_limit_seconds`."""
        self._stale = False
        self.raise_deferred()
        starts = [batch.started for batch in list(self._open) if not batch.loading]
        if not starts:
            self._age_deadline = math.inf
            return
        oldest = min(starts)
        if time.monotonic() - oldest < self.wait_limit:
            self._age_deadline = oldest + self.wait_limit
            return
        self._age_deadline = math.inf
        logger.info(
            "Committing the buffered batches: the oldest waited longer than %ss "
            "(batch_wait_limit_seconds).",
            self.wait_limit,
        )
        self._drain_all()

    def _watch_batch_age(self) -> None:
        """While the input is idle, commit batches that waited too long (a thread)."""
        poll = min(1.0, max(0.05, self.wait_limit / 4))
        while not self._watch_stop.wait(poll):
            if time.monotonic() < self._age_deadline:
                continue
            self._stale = True  # the main thread drains at its next message, if it comes first
            # Only when no batch is loading, so an earlier batch's error stays the main thread's.
            if not self.loader.idle():
                continue
            if not self.busy.acquire(timeout=poll):
                continue
            try:
                if self._stale:
                    self._drain_stale()
            except BaseException as exc:  # raised in the main thread at its next message
                self._deferred_error = exc
                self._stale = True
                return
            finally:
                self.busy.release()

    def start_watch(self) -> None:
        """Start the batch-age watcher thread."""
        self._watch_stop.clear()
        self._watcher = threading.Thread(
            target=self._watch_batch_age, name="pipeboard-batch-age", daemon=True
        )
        self._watcher.start()

    def stop_watch(self) -> None:
        """Stop the watcher (no idle drain runs after this returns)."""
        self._watch_stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join()
        self._watcher = None

    def close(self) -> None:
        """Stop the watcher and the loader thread (the last batch's error is only logged)."""
        self.stop_watch()
        self.loader.close()
