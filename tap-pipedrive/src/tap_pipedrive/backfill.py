"""The stage-change stream's backfill mode (``stage_history_mode: backfill``): its progress.

The incremental mode (the default) is :mod:`tap_pipedrive.stage_plan`.

``backfill`` (a separate Meltano job). Every deal, by ascending id, whatever its age: the state
remembers the last deal done (and the list cursor of its page), so each run continues where
the previous one stopped; before each per-deal call the run checks that it stays within the
configured share of the daily token budget, and stops cleanly (exit 0, state saved) when the
next deal would cross it. Deals removed or merged meanwhile (404/410) are counted and skipped.
Deals whose answer disagreed with the deal record are kept in the state and read again first
thing in each later run (given up, by id, after ``MAX_BACKFILL_RETRIES`` runs); the backfill
is complete only when the lists were read to their end and no deal waits for a retry. A
complete backfill stays complete: its runs make no API call and only log that it is done
(deals created or moved after it started are the incremental mode's); starting over takes an
empty state. Progress is logged and kept in the state: deals done / total, tokens spent, runs
so far and an estimate of the runs left.
"""

from __future__ import annotations

import datetime as dt
import math
import typing as t
from dataclasses import dataclass, field

from tap_pipedrive.stage_plan import (
    MAX_HELD_BACK,
    MODES,
    DealHead,
    IncrementalPlan,
    StageHistoryError,
    int_or_none,
)
from tap_pipedrive.stage_plan import stage_time as parse_time
from tap_pipedrive.timestamps import format_time

# Imported from here by earlier code; they live in stage_plan and timestamps.
__all__ = [
    "MAX_BACKFILL_RETRIES",
    "MAX_HELD_BACK",
    "MODES",
    "BackfillProgress",
    "DealHead",
    "IncrementalPlan",
    "StageHistoryError",
    "format_time",
    "int_or_none",
    "parse_time",
]

MAX_BACKFILL_RETRIES = 3  # later runs that read a held-back deal again before giving it up


@dataclass
class BackfillProgress:
    """The backfill mode's state: where it is, what it spent, what is left.

    A backfill is complete once every deal was listed and read (or found gone, or given up
    after :data:`MAX_BACKFILL_RETRIES` inconsistent answers). A complete backfill stays
    complete: running it again changes nothing and calls nothing; starting over is a new state
    (``meltano state clear`` or ``meltano run --full-refresh``).
    """

    after_id: int = 0
    page_cursors: dict[str, str | None] = field(default_factory=dict)
    done: int = 0
    gone: int = 0
    # Deals whose answer disagreed with the deal record: compact deal records (DealHead.to_state)
    # with the number of retries so far; each later run reads them again first.
    held_back: list[dict[str, t.Any]] = field(default_factory=list)
    given_up: list[int] = field(default_factory=list)
    total: int | None = None
    # How the log lines name the job and what it reads (not kept in the state).
    label = "stage history backfill"
    unit = "deals"
    tokens: int = 0
    deal_tokens: int = 0
    runs: int = 0
    started_at: str | None = None
    # The newest deal update when the backfill first listed the deals (the API's clock).
    as_of: str | None = None
    listed_at: str | None = None
    completed_at: str | None = None

    @classmethod
    def from_state(cls, state: t.Mapping[str, t.Any] | None) -> BackfillProgress:
        """Read the stream state's ``backfill`` entry."""
        saved = dict((state or {}).get("backfill") or {})
        if not isinstance(saved.get("held_back", []), list):
            # Earlier versions kept only a count: those deals cannot be named any more.
            saved.pop("held_back")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in saved.items() if k in known})

    def to_state(self) -> dict[str, t.Any]:
        """The stream-state entry."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @property
    def complete(self) -> bool:
        """Every deal has been read."""
        return self.completed_at is not None

    @property
    def listed(self) -> bool:
        """The deal lists were read to their end (held-back deals may still wait)."""
        return self.listed_at is not None or self.complete

    @property
    def handled(self) -> int:
        """Deals listed and dealt with: read, gone, held back for a retry or given up."""
        return self.done + self.gone + len(self.held_back) + len(self.given_up)

    @property
    def activity_since(self) -> str | None:
        """From when stage activity is the incremental mode's: it may postdate the read."""
        return self.as_of or self.started_at

    def start_run(self, now: dt.datetime) -> None:
        """Count a run (a complete backfill has none: see :meth:`complete_message`)."""
        self.runs += 1
        self.started_at = self.started_at or format_time(now)

    def finish_listing(self, now: dt.datetime) -> None:
        """The lists were read to their end."""
        self.listed_at = format_time(now)
        self.total = self.handled
        self.page_cursors = {}

    def finish(self, now: dt.datetime) -> bool:
        """Mark the backfill complete if it is: listed, and no deal waits for a retry."""
        if self.listed and not self.held_back:
            self.completed_at = self.completed_at or format_time(now)
        return self.complete

    def record_deal(self, deal: DealHead, tokens: int, outcome: str) -> None:
        """One listed deal handled: ``done``, ``gone`` or ``held_back``."""
        self.after_id = max(self.after_id, deal.id)
        self.deal_tokens += tokens
        if outcome == "gone":
            self.gone += 1
        elif outcome == "held_back":
            if len(self.held_back) >= MAX_HELD_BACK:
                msg = f"more than {MAX_HELD_BACK} deals disagree with their stage history"
                raise StageHistoryError(msg)
            self.held_back.append({**deal.to_state(), "retries": 0})
        else:
            self.done += 1

    def record_retry(self, deal_id: int, tokens: int, outcome: str) -> bool:
        """A held-back deal read again; True when it is given up (still inconsistent)."""
        self.deal_tokens += tokens
        entry = next(held for held in self.held_back if int(held["id"]) == deal_id)
        if outcome == "held_back":
            entry["retries"] = int(entry.get("retries", 0)) + 1
            if entry["retries"] < MAX_BACKFILL_RETRIES:
                return False
            self.given_up.append(deal_id)
        elif outcome == "gone":
            self.gone += 1
        else:
            self.done += 1
        self.held_back.remove(entry)
        return outcome == "held_back"

    def runs_left(self, tokens_per_run: int | None) -> int | None:
        """Runs still needed at the average cost per deal so far, or None when unknown."""
        if self.complete:
            return 0
        if self.listed:
            return 1  # the held-back deals' retries
        handled = self.handled
        if self.total is None or not tokens_per_run or handled == 0:
            return None
        remaining = max(0, self.total - handled) + len(self.held_back)
        return max(1, math.ceil(remaining * (self.deal_tokens / handled) / tokens_per_run))

    def summary(self, tokens_this_run: int, tokens_per_run: int | None) -> str:
        """One log line a user can act on."""
        handled = self.handled
        total = "?" if self.total is None else str(self.total)
        share = f" ({100 * handled / self.total:.1f}%)" if self.total else ""
        left = self.runs_left(tokens_per_run)
        estimate = (
            "complete"
            if self.complete
            else ("runs left unknown" if left is None else f"about {left} more run(s)")
        )
        given_up = (
            f"; {len(self.given_up)} given up after {MAX_BACKFILL_RETRIES} retries "
            f"(deal ids {_ids(self.given_up)})"
            if self.given_up
            else ""
        )
        return (
            f"{self.label}: {handled}/{total} {self.unit}{share}; {self.gone} removed or "
            f"merged (404/410) skipped; {len(self.held_back)} held back (read again next "
            f"run){given_up}; {tokens_this_run} tokens this run, {self.tokens} in {self.runs} "
            f"run(s); {estimate}"
        )

    def complete_message(self) -> str:
        """What a run of a complete backfill logs instead of calling the API."""
        given_up = (
            f", {len(self.given_up)} given up (deal ids {_ids(self.given_up)})"
            if self.given_up
            else ""
        )
        return (
            f"{self.label}: complete since {self.completed_at} ({self.done} {self.unit} "
            f"read, {self.gone} removed or merged{given_up}; {self.tokens} tokens in "
            f"{self.runs} run(s)); nothing to do: no deal list or per-deal requests. "
            f"{self.handover()}"
        )

    def handover(self) -> str:
        """Who reads what the backfill does not, and how to start over."""
        return (
            f"Stage changes after {self.activity_since} (deals created or moved since the "
            "backfill began) are for the incremental mode to read (stage_history_mode: "
            "incremental, the regular sync), which must have run since then or read that far "
            "back on its first run (stage_history_initial_days). To read every deal again, "
            "run this job from an empty state: meltano state clear <its state ID>, or meltano "
            "run --full-refresh."
        )


def _ids(ids: list[int], shown: int = 20) -> str:
    text = ", ".join(str(i) for i in ids[:shown])
    return f"{text}, ..." if len(ids) > shown else text
