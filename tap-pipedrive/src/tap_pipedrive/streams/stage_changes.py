"""Deal stage changes: one record per stage change of a deal, its creation included.

Which endpoint (findings from ../shared/pipedrive-openapi and ../shared/pipedrive-recorded):

- ``GET /v1/deals/{id}/changelog`` (x-token-cost 20) lists changes of a deal's field values,
  ``stage_id`` and ``pipeline_id`` among them: ``field_key``, ``old_value``/``new_value`` (as
  strings), ``actor_user_id``, ``time``, ``change_source``; newest first; keyset pagination by
  ``cursor``/``limit`` with ``additional_data.next_cursor`` (``null`` on the last page). Entries
  carry no id. ``time`` is ``YYYY-MM-DD HH:MM:SS`` (UTC) in the spec's example and RFC 3339 in
  Pipedrive's other examples, so both are read.
- ``GET /v1/deals/{id}/flow`` (x-token-cost 40) lists every kind of update (notes, activities,
  mails, ``object: dealChange``); a ``dealChange`` has ``data.id``, ``field_key``, ``old_value``,
  ``new_value`` (numbers for stage ids), ``user_id``, ``log_time`` and ``additional_data``
  with ``old_value_formatted``/``new_value_formatted`` (stage names). ``items=dealChange``
  narrows it to field changes. Offset pagination under ``additional_data.pagination``
  (``start``, ``limit``, ``more_items_in_collection``, ``next_start``); the spec's schema puts
  those fields directly under ``additional_data``, its examples and real responses nest them.
  The real API answers some deals with ``200`` and ``"data": null`` (the cause of
  singer-io/tap-pipedrive issues #59 and #68); that is read as an empty page.
- Neither reports the deal's creation as a stage change (the flow has an ``add_time``
  ``dealChange`` on some accounts, not reliably): creation is built from the deal record itself
  (``add_time``, ``creator_user_id``, and the first move's old stage or the current stage).
- No recorded real response of either endpoint exists in ../shared/pipedrive-recorded, so the
  changelog's completeness for ``stage_id`` cannot be proven from data here. Both carry the same
  stage moves by design; the changelog costs half and pages up to 500 changes, so it is the
  default (``stage_history_source: changelog``) and the flow stays one setting away. Each deal's
  result is checked against the deal record (a deal with ``stage_change_time`` but no move, or
  whose last move is older than ``stage_change_time``, is held back and retried next run rather
  than written wrong).

Record ids do not depend on the endpoint (``<deal>:<epoch>:<from>:<to>``, creation
``<deal>:created``), so switching the source never duplicates rows; the flow's own event id is
kept in ``source_event_id``.

Which deals are read: see :mod:`tap_pipedrive.backfill` for the two modes (incremental: only
deals whose ``add_time`` or ``stage_change_time`` moved past the stream's gate; backfill: every
deal, resumable, budget-aware).
"""

from __future__ import annotations

import datetime as dt
import heapq
import typing as t
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError
from typing_extensions import override

from tap_pipedrive.api import OPENAPI
from tap_pipedrive.backfill import BackfillProgress
from tap_pipedrive.resilience import GoneError
from tap_pipedrive.sdk_seam import tap_of
from tap_pipedrive.stage_plan import (
    MAX_HELD_BACK,
    MODES,
    DealHead,
    IncrementalPlan,
    StageHistoryError,
    int_or_none,
)
from tap_pipedrive.stage_plan import stage_time as parse_time
from tap_pipedrive.streams.history_base import (
    INITIAL_DAYS,
    STATE_KEY_INCREMENTAL,
    HistoryStream,
)
from tap_pipedrive.timestamps import format_time
from tap_pipedrive.webhooks.feed import StageFeed, poll_due, stage_feed

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_pipedrive.tap import TapPipedrive

STREAM_NAME = "deal_stage_changes"
SOURCES = ("changelog", "flow")

SCHEMA = th.PropertiesList(
    th.Property("id", th.StringType, required=True, description="Stable event id."),
    th.Property("deal_id", th.IntegerType, required=True),
    th.Property("pipeline_id", th.IntegerType, description="Pipeline of the stage entered."),
    th.Property("from_stage_id", th.IntegerType, description="NULL for the deal's creation."),
    th.Property("from_pipeline_id", th.IntegerType),
    th.Property("to_stage_id", th.IntegerType, required=True),
    th.Property("changed_at", th.DateTimeType, required=True),
    th.Property("user_id", th.IntegerType),
    th.Property("source", th.StringType, description="creation, changelog, flow or webhook."),
    th.Property("source_event_id", th.IntegerType, description="The flow's event id."),
).to_dict()


@dataclass(frozen=True)
class StageMove:
    """One change of a deal's ``stage_id``."""

    changed_at: dt.datetime
    from_stage_id: int | None
    to_stage_id: int
    user_id: int | None
    source_event_id: int | None = None


def moves_from_changelog(items: Iterable[Mapping[str, t.Any]]) -> list[StageMove]:
    """Stage moves in a changelog page (any order; see :func:`in_time_order`)."""
    moves = []
    for item in items:
        if item.get("field_key") != "stage_id":
            continue
        to_stage = int_or_none(item.get("new_value"))
        if to_stage is None:
            continue
        moves.append(
            StageMove(
                changed_at=parse_time(str(item["time"])),
                from_stage_id=int_or_none(item.get("old_value")),
                to_stage_id=to_stage,
                user_id=int_or_none(item.get("actor_user_id")),
            )
        )
    return moves


def moves_from_flow(items: Iterable[Mapping[str, t.Any]]) -> list[StageMove]:
    """Stage moves in a flow page: ``dealChange`` objects on ``stage_id``."""
    moves = []
    for item in items:
        data = item.get("data") or {}
        if item.get("object") != "dealChange" or data.get("field_key") != "stage_id":
            continue
        to_stage = int_or_none(data.get("new_value"))
        if to_stage is None:
            continue
        when = data.get("log_time") or item.get("timestamp")
        moves.append(
            StageMove(
                changed_at=parse_time(str(when)),
                from_stage_id=int_or_none(data.get("old_value")),
                to_stage_id=to_stage,
                user_id=int_or_none(data.get("user_id")),
                source_event_id=int_or_none(data.get("id")),
            )
        )
    return moves


def in_time_order(moves_newest_first: list[StageMove]) -> list[StageMove]:
    """Oldest first; both endpoints list newest first, so same-second moves keep their order."""
    return sorted(reversed(moves_newest_first), key=lambda m: m.changed_at)


def history_is_consistent(deal: DealHead, moves: list[StageMove]) -> bool:
    """Whether the moves cover what the deal record says happened.

    A deal that changed stage must show a move no older than its ``stage_change_time``
    (a lagging or empty answer would otherwise be stored as the truth).
    """
    if deal.stage_change_time is None:
        return True
    if not moves:
        return False
    return moves[-1].changed_at >= deal.stage_change_time - dt.timedelta(seconds=1)


def records_for_deal(
    deal: DealHead,
    moves: list[StageMove],
    stage_pipelines: Mapping[int, int],
    source: str,
) -> list[dict[str, t.Any]]:
    """The deal's stage-change records, creation first, moves oldest first.

    Args:
        deal: the deal.
        moves: its stage moves, oldest first.
        stage_pipelines: stage id -> pipeline id.
        source: ``changelog`` or ``flow``.
    """

    def pipeline_of(stage: int | None) -> int | None:
        if stage is None:
            return None
        if stage in stage_pipelines:
            return stage_pipelines[stage]
        return deal.pipeline_id if stage == deal.stage_id else None

    first_stage = moves[0].from_stage_id if moves else deal.stage_id
    records = []
    if first_stage is not None:
        records.append(
            {
                "id": f"{deal.id}:created",
                "deal_id": deal.id,
                "pipeline_id": pipeline_of(first_stage),
                "from_stage_id": None,
                "from_pipeline_id": None,
                "to_stage_id": first_stage,
                "changed_at": format_time(deal.add_time),
                "user_id": deal.creator_user_id,
                "source": "creation",
                "source_event_id": None,
            }
        )
    for move in moves:
        stamp = int(move.changed_at.timestamp())
        records.append(
            {
                "id": f"{deal.id}:{stamp}:{move.from_stage_id or ''}:{move.to_stage_id}",
                "deal_id": deal.id,
                "pipeline_id": pipeline_of(move.to_stage_id),
                "from_stage_id": move.from_stage_id,
                "from_pipeline_id": pipeline_of(move.from_stage_id),
                "to_stage_id": move.to_stage_id,
                "changed_at": format_time(move.changed_at),
                "user_id": move.user_id,
                "source": source,
                "source_event_id": move.source_event_id,
            }
        )
    return records


# --- the stream ------------------------------------------------------------------------------

DEALS_PATH = "/api/v2/deals"
ARCHIVED_PATH = "/api/v2/deals/archived"
STAGES_PATH = "/api/v2/stages"
PER_DEAL_PATHS = {"changelog": "/api/v1/deals/{id}/changelog", "flow": "/api/v1/deals/{id}/flow"}
DEAL_STATUSES = "open,won,lost,deleted"
SKIPPED_PER_STATE = 500


def config_properties() -> list[th.Property[t.Any]]:
    """The tap settings of this stream, for the tap's ``config_jsonschema``."""
    return [
        th.Property(
            "stage_history_mode",
            th.StringType(allowed_values=list(MODES)),
            default="incremental",
            description="deal_stage_changes (and deal_changes, person_changes, "
            "organization_changes): 'incremental' reads the records that changed since the "
            "last run; 'backfill' reads every record's history over as many runs as the "
            "budget needs (use a separate job and state).",
        ),
        th.Property(
            "stage_history_initial_days",
            th.IntegerType,
            default=INITIAL_DAYS,
            description="deal_stage_changes, incremental mode: on a first run (no state), read "
            "the histories of deals that entered a stage in this many days before the newest "
            "deal update (older history is the backfill job's); null: every deal since "
            "start_date.",
        ),
        th.Property(
            "stage_history_source",
            th.StringType(allowed_values=list(SOURCES)),
            default="changelog",
            description="Per-deal endpoint: 'changelog' (20 tokens a page) or 'flow' (40).",
        ),
    ]


# Not an OpenAPI list: the base stream finds this stream's schema where it finds the others'.
OPENAPI.streams.setdefault(STREAM_NAME, {"version": "v2", "schema": SCHEMA})


class DealStageChangesStream(HistoryStream):
    """One record per stage change of a deal; the deal's creation enters its first stage."""

    name = STREAM_NAME
    path = DEALS_PATH
    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    entity = "deal"
    #: Which deals the incremental mode reads (deal_changes reads every updated deal).
    plan_type: t.ClassVar[type[IncrementalPlan]] = IncrementalPlan

    def __init__(self, tap: TapPipedrive) -> None:
        super().__init__(tap)
        self.mode = str(self.config.get("stage_history_mode") or "incremental")
        self.source = str(self.config.get("stage_history_source") or "changelog")
        if self.mode not in MODES:
            msg = f"stage_history_mode must be one of {MODES}, got {self.mode!r}"
            raise StageHistoryError(msg)
        if self.source not in SOURCES:
            msg = f"stage_history_source must be one of {SOURCES}, got {self.source!r}"
            raise StageHistoryError(msg)
        self._stage_pipelines: dict[int, int] | None = None
        # Incremental reading starts from changed deals: none changed, nothing to read.
        self.recents_item = "deal" if self.mode == "incremental" else None

    def _stage_pipeline_map(self) -> dict[int, int]:
        if self._stage_pipelines is None:
            rows = (row for _, page in self.pages(STAGES_PATH, {"limit": 500}) for row in page)
            self._stage_pipelines = {
                int(row["id"]): int(row["pipeline_id"]) for row in rows if row.get("pipeline_id")
            }
        return self._stage_pipelines

    def _moves(self, deal_id: int) -> list[StageMove] | None:
        """The deal's stage moves, oldest first; None when the deal is gone (404/410)."""
        endpoint = PER_DEAL_PATHS[self.source]
        if self.source == "flow":
            params: dict[str, t.Any] = {"limit": 500, "items": "dealChange"}
            parse = moves_from_flow
        else:
            params, parse = {"limit": 500}, moves_from_changelog
        moves: list[StageMove] = []
        items: list[dict[str, t.Any]] = []
        try:
            for _, page in self.pages(endpoint, params, record_id=deal_id):
                items.extend(page)
                moves.extend(parse(page))
        except GoneError:
            return None
        if self.source == "changelog":
            self.on_changelog(deal_id, items)
        return in_time_order(moves)

    def on_changelog(self, deal_id: int, items: list[dict[str, t.Any]]) -> None:
        """A deal's whole changelog was read: it also feeds ``deal_changes`` when selected
        (one call for both streams; see :mod:`tap_pipedrive.streams.changelogs`)."""
        changes = tap_of(self).streams.get("deal_changes")
        if changes is not None and changes is not self and changes.selected:
            t.cast("t.Any", changes).emit_shared(deal_id, items)

    def _shared_changes(self) -> t.Any:
        """``deal_changes`` when it reads this stream's changelogs in this run, else None."""
        changes = tap_of(self).streams.get("deal_changes")
        if changes is None or changes is self or not changes.selected:
            return None
        return changes if t.cast("t.Any", changes).shared() else None

    def feed_records(self, feed: StageFeed) -> t.Iterator[dict[str, t.Any]]:
        """The records of the webhook events (the deal changes' go to ``deal_changes``)."""
        yield from feed.records
        changes = self._shared_changes()
        if changes is not None:
            changes.emit_webhook(feed)

    def feed_explains(self, feed: StageFeed, deal: DealHead, gate: dt.datetime | None) -> bool:
        """Whether the webhook events make the deal's changelog call unneeded."""
        if not feed.explains(deal, gate):
            return False
        changes = self._shared_changes()
        return changes is None or bool(changes.webhook_explains(feed, deal, gate))

    def _deal_lists(self) -> list[str]:
        """The deal lists to read: active deals, and archived ones unless excluded."""
        if self.config.get("include_archived_deals", True):
            return [DEALS_PATH, ARCHIVED_PATH]
        return [DEALS_PATH]

    def _deals_of(
        self, path: str, params: dict[str, t.Any], cursor: str | None
    ) -> t.Iterator[tuple[str, str | None, DealHead]]:
        try:
            yield from self._deal_pages(path, params, cursor)
        except FatalAPIError as exc:
            if cursor is None or not str(exc).startswith("400 "):
                raise
            # A saved list position the API no longer accepts: list again from the start (the
            # backfill skips the deals it has done by id, so only list requests are repeated).
            self.logger.warning(
                "%s: saved position rejected (%s); listing from the start", path, exc
            )
            yield from self._deal_pages(path, params, None)

    def _deal_pages(
        self, path: str, params: dict[str, t.Any], cursor: str | None
    ) -> t.Iterator[tuple[str, str | None, DealHead]]:
        query = {"limit": 500, "status": DEAL_STATUSES, **params}
        for position, page in self.pages(path, query, start=cursor):  # resume at a saved cursor
            for row in page:
                yield path, position, DealHead.from_record(row)

    def _deals(
        self, sort_by: str, params: dict[str, t.Any], cursors: Mapping[str, str | None]
    ) -> t.Iterator[tuple[str, str | None, DealHead]]:
        """(list, its page's cursor, deal) over every deal list, merged in ``sort_by`` order."""
        query = {"sort_by": sort_by, "sort_direction": "asc", **params}
        lists = [self._deals_of(path, query, cursors.get(path)) for path in self._deal_lists()]

        def key(item: tuple[str, str | None, DealHead]) -> tuple[t.Any, int]:
            deal = item[2]
            return (deal.update_time if sort_by == "update_time" else 0, deal.id)

        return heapq.merge(*lists, key=key)

    # -- one deal ----------------------------------------------------------------------------

    def _deal_records(self, deal: DealHead) -> tuple[str, list[dict[str, t.Any]]]:
        """(outcome, records): outcome is ``done``, ``gone`` or ``held_back``."""
        moves = self._moves(deal.id)
        if moves is None:
            return "gone", []
        if not history_is_consistent(deal, moves):
            self.logger.warning(
                "deal %d: the %s has no stage move matching stage_change_time %s; "
                "holding it back for the next run",
                deal.id,
                self.source,
                deal.stage_change_time,
            )
            return "held_back", []
        return "done", records_for_deal(deal, moves, self._stage_pipeline_map(), self.source)

    # -- records -----------------------------------------------------------------------------

    @override
    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        if self.reconciling:
            # A reconciliation run retires vanished rows; stage changes never vanish, and its
            # separate state would otherwise start this stream's reading over.
            self.logger.info("deal_stage_changes: nothing to reconcile, skipped")
            return
        if self.mode == "backfill":
            yield from self._backfill()
            return
        feed = self.pipedrive_tap.change_feed
        held_back = (self.stream_state.get(STATE_KEY_INCREMENTAL) or {}).get("held_back")
        if feed is not None and feed.skips(self) and not held_back:
            self.logger.info("deal_stage_changes: /v1/recents lists no deal change; no request")
        else:
            yield from self._incremental()
        self.finish_change_feed()

    def _incremental(self) -> t.Iterator[dict[str, t.Any]]:
        def newest(query: dict[str, t.Any]) -> DealHead | None:
            first = next(self._deals_of(DEALS_PATH, query, None), None)
            return None if first is None else first[2]

        plan = self.start_plan(self.plan_type, newest)
        for held in list(plan.held_back.values()):
            deal = DealHead.from_record(held)
            outcome, records = self._deal_records(deal)
            yield from records
            if outcome != "held_back":
                plan.release(deal.id)
            self.save_state(STATE_KEY_INCREMENTAL, plan.to_state())
        fed = stage_feed(self)  # webhook events: their moves cost no per-deal request
        if fed is not None:
            yield from self.feed_records(fed[0])
            if not poll_due(self):
                fed[0].save(self.stream_state, fed[1], self.name)
                self.save_state(STATE_KEY_INCREMENTAL, plan.to_state())
                return
        since = plan.updated_since()
        params: dict[str, t.Any] = {}
        if since is not None:
            params["updated_since"] = format_time(since)
        fetched = listed = 0
        for _, _, deal in self._deals("update_time", params, {}):
            if plan.already_done(deal):
                continue
            read = plan.needs_history(deal) and not (
                fed and self.feed_explains(fed[0], deal, plan.gate)
            )
            if read:
                fetched += 1
                outcome, records = self._deal_records(deal)
                yield from records
                if outcome == "held_back" and not plan.hold_back(deal):
                    msg = f"more than {MAX_HELD_BACK} deals disagree with their {self.source}"
                    raise StageHistoryError(msg)
                if outcome != "held_back":
                    plan.release(deal.id)
            plan.done(deal)
            listed += 1
            # After every deal read (its records are out), and every so many deals skipped:
            # a resumed run re-lists at most that many deals, which costs no per-deal call.
            if read or listed % SKIPPED_PER_STATE == 0:
                self.save_state(STATE_KEY_INCREMENTAL, plan.to_state())
        plan.finish_pass()
        if fed is not None:
            fed[0].save(self.stream_state, fed[1], self.name)
        self.save_state(STATE_KEY_INCREMENTAL, plan.to_state())
        self.logger.info(
            "deal_stage_changes: %d deals read from the %s (%d requests), gate now %s",
            fetched,
            self.source,
            self.history_calls,
            plan.gate,
        )

    def _backfill(self) -> t.Iterator[dict[str, t.Any]]:
        progress = BackfillProgress.from_state(self.stream_state)
        was_complete = progress.complete
        yield from self.run_backfill(progress, "stage history backfill")
        if progress.complete and not was_complete:
            self.logger.info(
                "stage history backfill: complete; later runs of this job request nothing. %s",
                progress.handover(),
            )

    @override
    def backfill_listing(
        self, cursors: Mapping[str, str | None]
    ) -> t.Iterator[tuple[str, str | None, DealHead]]:
        return self._deals("id", {}, cursors)

    @override
    def backfill_read(self, record: DealHead) -> tuple[str, list[dict[str, t.Any]]]:
        return self._deal_records(record)

    @override
    def backfill_cost(self, *, list_page: bool) -> int:
        # A deal's call, the stage dictionary on the first, and a list page if it ends.
        stages = self.cost_of(STAGES_PATH) if self._stage_pipelines is None else 0
        page = self._list_cost() if list_page else 0
        return self.cost_of(PER_DEAL_PATHS[self.source]) + stages + page

    @override
    def backfill_count(self, progress: BackfillProgress) -> None:
        self._count_deals(progress, self._list_cost())

    def _list_cost(self) -> int:
        return max(self.cost_of(path) for path in self._deal_lists())

    def _count_deals(self, progress: BackfillProgress, list_cost: int) -> None:
        """Total deals, for progress (one list request per 500 deals, done once).

        Also notes the newest deal update (``as_of``, the API's clock): stage activity after
        it may come after the backfill read the deal, so it is the incremental mode's.
        """
        total = 0
        newest: dt.datetime | None = None
        for total, (_, _, deal) in enumerate(self._deals("id", {}, {}), start=1):
            newest = deal.update_time if newest is None else max(newest, deal.update_time)
            if total % 500 == 0 and not self.room_for(list_cost):
                break
        else:
            progress.total = total
        if progress.as_of is None and newest is not None:
            progress.as_of = format_time(newest)
