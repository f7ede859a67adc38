"""Which deals the stage-change stream's incremental mode reads: the deal fields it needs
(:class:`DealHead`) and the gate it keeps in its state (:class:`IncrementalPlan`).

The deals list is read by ``update_time`` from the stream's own gate (``updated_since``,
inclusive, 1 request per 500 changed deals), and the per-deal endpoint is called only for deals
whose stage activity (``stage_change_time``, or ``add_time`` for a new deal) is after the gate.
A deal updated for any other reason (title, value, won/lost) costs nothing; with no stage change
since the last run there are zero per-deal calls. The gate advances only when a pass over the
list completes; an interrupted pass resumes from the last deal it finished (``resume_from`` and
the ids done in that second), with the gate unchanged, so no deal whose stage moved is lost by
resuming. Deals whose answer did not match the deal record are kept (a few fields each) and read
again at the next run. The backfill mode is :mod:`tap_pipedrive.backfill`.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass, field

from tap_pipedrive.timestamps import TimestampError, format_time, parse_time


class StageHistoryError(ValueError):
    """A per-deal response that cannot be read as stage history."""


def int_or_none(value: t.Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        msg = f"not an id: {value!r}"
        raise StageHistoryError(msg) from None


def stage_time(value: str) -> dt.datetime:
    """:func:`~tap_pipedrive.timestamps.parse_time` for stage-history data."""
    try:
        return parse_time(value)
    except TimestampError as exc:
        raise StageHistoryError(str(exc)) from None


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
            add_time = stage_time(str(record["add_time"]))
            update_time = stage_time(str(record.get("update_time") or record["add_time"]))
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
            stage_change_time=stage_time(str(change)) if change else None,
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
            gate=stage_time(gate) if gate else start_date,
            gate_ids={int(i) for i in saved.get("gate_ids", [])},
            resume_from=stage_time(resume) if resume else None,
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
