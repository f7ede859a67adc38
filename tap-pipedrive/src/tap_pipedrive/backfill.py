"""Which deals the stage-change stream reads, and the progress it keeps in its state.

Two modes (tap setting ``stage_history_mode``):

``incremental`` (default). The deals list is read by ``update_time`` from the stream's own gate
(``updated_since``, inclusive, 1 request per 500 changed deals), and the per-deal endpoint is
called only for deals whose stage activity (``stage_change_time``, or ``add_time`` for a new
deal) is after the gate. A deal updated for any other reason (title, value, won/lost) costs
nothing; with no stage change since the last run there are zero per-deal calls. The gate
advances only when a pass over the list completes; an interrupted pass resumes from the last
deal it finished (``resume_from`` and the ids done in that second), with the gate unchanged, so
no deal whose stage moved is lost by resuming. Deals whose answer did not match the deal record
are kept (a few fields each) and read again at the next run.

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
from collections.abc import Mapping
from dataclasses import dataclass, field


class StageHistoryError(ValueError):
    """A per-deal response that cannot be read as stage history."""


def parse_time(value: str) -> dt.datetime:
    """Pipedrive times: RFC 3339 (v2) or ``YYYY-MM-DD HH:MM:SS`` in UTC (v1)."""
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        msg = f"not a Pipedrive time: {value!r}"
        raise StageHistoryError(msg) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def format_time(value: dt.datetime) -> str:
    """RFC 3339 in UTC with ``Z``, second precision."""
    return value.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def int_or_none(value: t.Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        msg = f"not an id: {value!r}"
        raise StageHistoryError(msg) from None


@dataclass(frozen=True)
class DealHead:
    """What the stream needs of a deal record (v2 shape)."""

    id: int
    add_time: dt.datetime
    update_time: dt.datetime
    stage_id: int | None
    pipeline_id: int | None
    stage_change_time: dt.datetime | None
    creator_user_id: int | None

    @classmethod
    def from_record(cls, record: Mapping[str, t.Any]) -> DealHead:
        """Read a deal from the v2 list (or from the stream's saved state)."""
        try:
            add_time = parse_time(str(record["add_time"]))
            update_time = parse_time(str(record.get("update_time") or record["add_time"]))
            deal_id = int(record["id"])
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"deal record lacks id/add_time/update_time: {exc}"
            raise StageHistoryError(msg) from None
        change = record.get("stage_change_time")
        return cls(
            id=deal_id,
            add_time=add_time,
            update_time=update_time,
            stage_id=int_or_none(record.get("stage_id")),
            pipeline_id=int_or_none(record.get("pipeline_id")),
            stage_change_time=parse_time(str(change)) if change else None,
            creator_user_id=int_or_none(record.get("creator_user_id")),
        )

    def to_state(self) -> dict[str, t.Any]:
        """A compact form for the stream state (deals held back for the next run)."""
        return {
            "id": self.id,
            "add_time": format_time(self.add_time),
            "update_time": format_time(self.update_time),
            "stage_id": self.stage_id,
            "pipeline_id": self.pipeline_id,
            "stage_change_time": format_time(self.stage_change_time)
            if self.stage_change_time
            else None,
            "creator_user_id": self.creator_user_id,
        }

    @property
    def stage_activity(self) -> dt.datetime:
        """The latest time the deal entered a stage (creation counts)."""
        if self.stage_change_time and self.stage_change_time > self.add_time:
            return self.stage_change_time
        return self.add_time


MODES = ("incremental", "backfill")
MAX_HELD_BACK = 1000  # deals kept in state for a retry; more means the source is broken
MAX_BACKFILL_RETRIES = 3  # later runs that read a held-back deal again before giving it up


@dataclass
class IncrementalPlan:
    """The incremental mode's state and decisions."""

    gate: dt.datetime | None = None
    gate_ids: set[int] = field(default_factory=set)
    resume_from: dt.datetime | None = None
    resume_ids: set[int] = field(default_factory=set)
    held_back: dict[int, dict[str, t.Any]] = field(default_factory=dict)

    @classmethod
    def from_state(
        cls, state: t.Mapping[str, t.Any] | None, start_date: dt.datetime | None
    ) -> IncrementalPlan:
        """Read the stream state; a first run starts its gate at ``start_date`` (or the start)."""
        saved = (state or {}).get("stage_changes") or {}
        gate = saved.get("gate")
        resume = saved.get("resume_from")
        return cls(
            gate=parse_time(gate) if gate else start_date,
            gate_ids={int(i) for i in saved.get("gate_ids", [])},
            resume_from=parse_time(resume) if resume else None,
            resume_ids={int(i) for i in saved.get("resume_ids", [])},
            held_back={int(d["id"]): dict(d) for d in saved.get("held_back", [])},
        )

    def to_state(self) -> dict[str, t.Any]:
        """The stream-state entry."""
        return {
            "gate": format_time(self.gate) if self.gate else None,
            "gate_ids": sorted(self.gate_ids),
            "resume_from": format_time(self.resume_from) if self.resume_from else None,
            "resume_ids": sorted(self.resume_ids),
            "held_back": [self.held_back[k] for k in sorted(self.held_back)],
        }

    def updated_since(self) -> dt.datetime | None:
        """Where the deals list starts (inclusive)."""
        return self.resume_from or self.gate

    def already_done(self, deal: DealHead) -> bool:
        """Listed again at the inclusive boundary of an interrupted pass."""
        return deal.update_time == self.resume_from and deal.id in self.resume_ids

    def needs_history(self, deal: DealHead) -> bool:
        """Whether the deal entered a stage after the gate."""
        if deal.id in self.held_back:
            return True
        if self.gate is None:
            return True
        activity = deal.stage_activity
        if activity > self.gate:
            return True
        return activity == self.gate and deal.id not in self.gate_ids

    def done(self, deal: DealHead) -> None:
        """The deal is handled (read, skipped or held back) for this pass."""
        if deal.update_time != self.resume_from:
            self.resume_from = deal.update_time
            self.resume_ids = set()
        self.resume_ids.add(deal.id)

    def hold_back(self, deal: DealHead) -> bool:
        """Keep a deal for the next run; False when too many are held back already."""
        if deal.id not in self.held_back and len(self.held_back) >= MAX_HELD_BACK:
            return False
        self.held_back[deal.id] = deal.to_state()
        return True

    def release(self, deal_id: int) -> None:
        """A held-back deal was read successfully (or is gone)."""
        self.held_back.pop(deal_id, None)

    def finish_pass(self) -> None:
        """The list was read to its end: the gate moves to the newest deal seen."""
        if self.resume_from is not None and (self.gate is None or self.resume_from >= self.gate):
            if self.resume_from != self.gate:
                self.gate_ids = set()
            self.gate = self.resume_from
            self.gate_ids |= self.resume_ids
        self.resume_from = None
        self.resume_ids = set()


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
