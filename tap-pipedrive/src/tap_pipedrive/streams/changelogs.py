"""The changelogs as streams: ``deal_changes``, ``person_changes``, ``organization_changes``.

One record per field change (see :mod:`tap_pipedrive.changelog_records` for its shape), from
``GET /v1/{deals|persons|organizations}/{id}/changelog`` (20 tokens a page of up to 500
changes).

**Deals** share their calls with ``deal_stage_changes``: the stage stream already reads each
changed deal's changelog, so when both streams are selected (and ``stage_history_source`` is
``changelog``) that one call feeds both streams and ``deal_changes`` requests nothing of its own.
Selected alone (or with the flow as the stage source), ``deal_changes`` reads the changelogs
itself with the stage stream's machinery (same deals, same modes, same state shape under its
own bookmark).

**Persons and organizations** are read like stage history: in the incremental mode only the
records whose ``update_time`` moved past the stream's gate (one list request per 500 changed
records, then one changelog request per changed record); in the backfill mode every record's
whole changelog, once, resumable. Both modes stop cleanly before a request would cross
``max_budget_share`` of the daily budget, with the state saved where the next run continues.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from collections.abc import Mapping

from typing_extensions import override

from tap_pipedrive.api import OPENAPI
from tap_pipedrive.backfill import (
    BackfillProgress,
    DealHead,
    IncrementalPlan,
    format_time,
)
from tap_pipedrive.changelog_records import ChangeTyper, change_records, schema
from tap_pipedrive.client import PipedriveStream
from tap_pipedrive.resilience import GoneError
from tap_pipedrive.sdk_seam import streams_built, tap_of, write_schema
from tap_pipedrive.streams.history_base import STATE_KEY_INCREMENTAL, HistoryStream
from tap_pipedrive.streams.stage_changes import SKIPPED_PER_STATE, DealStageChangesStream
from tap_pipedrive.webhooks.changes import ChangeFeed, change_feed
from tap_pipedrive.webhooks.feed import (
    CHANGE_OBJECTS,
    POSITION_KEY,
    StageFeed,
    poll_due,
    reader_for,
)

if t.TYPE_CHECKING:
    from singer_sdk import Stream
    from singer_sdk.helpers.types import Context

    from tap_pipedrive.tap import TapPipedrive
    from tap_pipedrive.webhooks.events import EventReader

PAGE = 500
STAGE_STREAM = "deal_stage_changes"
DEAL_CHANGES = "deal_changes"

for _name, _id_key in (
    (DEAL_CHANGES, "deal_id"),
    ("person_changes", "person_id"),
    ("organization_changes", "organization_id"),
):
    # Not OpenAPI lists: the base stream finds these schemas where it finds the others'.
    OPENAPI.streams.setdefault(_name, {"version": "v1", "schema": schema(_id_key)})


def typer_for(tap: TapPipedrive, entity_stream: str, entity: str) -> ChangeTyper:
    """Columns as the entity's own stream names them (earlier runs' custom-field names kept)."""
    stream = streams_built(tap).get(entity_stream)
    fields = (
        stream.custom_fields
        if isinstance(stream, PipedriveStream)
        else tap.custom_fields(entity_stream, entity)
    )
    properties = OPENAPI.streams[entity_stream]["schema"]["properties"]
    return ChangeTyper(entity_stream, properties, fields)


class _ChangeRecords:
    """What the change streams share: their typer and their writing."""

    _typer: ChangeTyper | None = None
    entity_stream: t.ClassVar[str]
    entity: t.ClassVar[str]
    id_key: t.ClassVar[str]

    def typer(self) -> ChangeTyper:
        if self._typer is None:
            tap = t.cast("TapPipedrive", tap_of(t.cast("Stream", self)))
            self._typer = typer_for(tap, self.entity_stream, self.entity)
        return self._typer


class UpdatedDealsPlan(IncrementalPlan):
    """Every deal updated after the gate has changes to read, not only those that moved."""

    @override
    def needs_history(self, deal: DealHead) -> bool:
        if deal.id in self.held_back or self.gate is None:
            return True
        if deal.update_time > self.gate:
            return True
        return deal.update_time == self.gate and deal.id not in self.gate_ids


class DealChangesStream(_ChangeRecords, DealStageChangesStream):
    """One record per field change of a deal."""

    name = DEAL_CHANGES
    plan_type = UpdatedDealsPlan
    entity_stream = "deals"
    entity = "deal"
    id_key = "deal_id"

    def __init__(self, tap: TapPipedrive) -> None:
        super().__init__(tap)
        self.source = "changelog"  # the flow lists custom-field changes only on request
        self._items: list[dict[str, t.Any]] = []
        self._schema_sent = False
        self.shared_deals = 0
        self.webhook_records = 0
        self._webhook: tuple[StageFeed, ChangeFeed] | None = None

    def shared(self) -> bool:
        """Whether ``deal_stage_changes`` reads the changelogs for this stream in this run."""
        stage = tap_of(self).streams.get(STAGE_STREAM)
        return (
            isinstance(stage, DealStageChangesStream)
            and stage.selected
            and stage.source == "changelog"
            and not stage.reconciling
        )

    @override
    def on_changelog(self, deal_id: int, items: list[dict[str, t.Any]]) -> None:
        self._items = items

    @override
    def _deal_records(self, deal: DealHead) -> tuple[str, list[dict[str, t.Any]]]:
        self._items = []
        outcome, _ = super()._deal_records(deal)
        if outcome != "done":
            return outcome, []
        return outcome, change_records(self.typer(), self.id_key, deal.id, self._items)

    def emit_shared(self, deal_id: int, items: list[dict[str, t.Any]]) -> None:
        """Write the change records of a changelog the stage stream has read."""
        if not self._schema_sent:
            write_schema(self)
            self._schema_sent = True
        self.shared_deals += 1
        for record in change_records(self.typer(), self.id_key, deal_id, items):
            self.write_record(record)

    def webhook_changes(self, feed: StageFeed) -> ChangeFeed:
        """The change records of the deal events the stage feed read (made once per feed)."""
        if self._webhook is None or self._webhook[0] is not feed:
            self._webhook = (feed, change_feed(feed.events, self.typer(), self.id_key))
        return self._webhook[1]

    def emit_webhook(self, feed: StageFeed) -> None:
        """Write the change records of the deal events ``deal_stage_changes`` read."""
        records = self.webhook_changes(feed).records
        if records and not self._schema_sent:
            write_schema(self)
            self._schema_sent = True
        for record in records:
            self.write_record(record)
        self.webhook_records += len(records)

    def webhook_explains(self, feed: StageFeed, deal: DealHead, gate: dt.datetime | None) -> bool:
        return self.webhook_changes(feed).explains(deal, gate)

    @override
    def feed_records(self, feed: StageFeed) -> t.Iterator[dict[str, t.Any]]:
        records = self.webhook_changes(feed).records
        self.webhook_records += len(records)
        yield from records

    @override
    def feed_explains(self, feed: StageFeed, deal: DealHead, gate: dt.datetime | None) -> bool:
        return self.webhook_explains(feed, deal, gate)

    @override
    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        if self.shared():
            self.logger.info(
                "deal_changes: read with deal_stage_changes from the same changelog calls "
                "(%d deals, no request of its own) and %d records from webhook events",
                self.shared_deals,
                self.webhook_records,
            )
            return
        yield from super().get_records(context)


class ContactChangesStream(_ChangeRecords, HistoryStream):
    """One record per field change of a person or an organization."""

    list_path: t.ClassVar[str]
    changelog_path: t.ClassVar[str]

    def __init__(self, tap: TapPipedrive) -> None:
        super().__init__(tap)
        self.path = self.list_path
        self.mode = str(self.config.get("stage_history_mode") or "incremental")
        self._read_to_the_end = False

    def _records_of(
        self, query: dict[str, t.Any], cursor: str | None = None
    ) -> t.Iterator[tuple[str | None, DealHead]]:
        params = {"limit": PAGE, **query}
        for position, page in self.pages(self.list_path, params, start=cursor):
            for row in page:
                yield position, head(row)

    def _changes(self, ident: int) -> list[dict[str, t.Any]] | None:
        """The record's change records, oldest first; None when it is gone (404/410)."""
        items: list[dict[str, t.Any]] = []
        try:
            for _, page in self.pages(self.changelog_path, {"limit": PAGE}, record_id=ident):
                items.extend(page)
        except GoneError:
            return None
        return change_records(self.typer(), self.id_key, ident, items)

    # -- records -----------------------------------------------------------------------------

    @override
    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        if self.reconciling:
            self.logger.info("%s: nothing to reconcile, skipped", self.name)
            return
        if self.mode == "backfill":
            yield from self._backfill()
            return
        fed = self._webhook_feed()
        if fed is not None:
            # Webhook events: their changes cost no request.
            yield from fed[0].records
            if not poll_due(self):
                self._save_position(*fed)
                return
        feed = self.pipedrive_tap.change_feed
        if feed is not None and feed.skips(self):
            # /v1/recents listed no change of the entity: no changed record, no request.
            self.finish_change_feed()
            if fed is not None:
                self._save_position(*fed)
            return
        yield from self._incremental(fed[0] if fed is not None else None)
        if self._read_to_the_end:
            self.finish_change_feed()
            if fed is not None:
                self._save_position(*fed)

    def _webhook_feed(self) -> tuple[ChangeFeed, EventReader] | None:
        """The change records of the webhook events stored since the stream's position (None
        when webhooks are off)."""
        reader = reader_for(self.config)
        obj = CHANGE_OBJECTS.get(self.name)
        if reader is None or obj is None:
            return None
        events = reader.read([obj], int(self.stream_state.get(POSITION_KEY) or 0))
        fed = change_feed(events, self.typer(), self.id_key)
        if events:
            self.logger.info(
                "%s: %d records from %d %s webhook events",
                self.name,
                len(fed.records),
                len(events),
                obj,
            )
        return fed, reader

    def _save_position(self, fed: ChangeFeed, reader: EventReader) -> None:
        """Past the events read (only once every record they leave unexplained was read: a
        run stopped by the budget reads them again, their records keep their ids)."""
        if fed.position:
            self.stream_state[POSITION_KEY] = fed.position
            reader.record_position(self.name, fed.position)
            self.write_checkpoint()

    def _incremental(self, webhook: ChangeFeed | None = None) -> t.Iterator[dict[str, t.Any]]:
        def newest(query: dict[str, t.Any]) -> DealHead | None:
            first = next(self._records_of(query), None)
            return None if first is None else first[1]

        plan = self.start_plan(IncrementalPlan, newest)
        cost = self.cost_of(self.changelog_path)
        list_cost = self.cost_of(self.list_path)
        for held in list(plan.held_back.values()):
            changes = self._changes(int(held["id"]))
            yield from changes or []
            plan.release(int(held["id"]))
            self.save_state(STATE_KEY_INCREMENTAL, plan.to_state())
        since = plan.updated_since()
        query: dict[str, t.Any] = {"sort_by": "update_time", "sort_direction": "asc"}
        if since is not None:
            query["updated_since"] = format_time(since)
        read = listed = explained = 0
        stopped = False
        for _, record in self._records_of(query):
            if plan.already_done(record):
                continue
            wanted = plan.needs_history(record)
            if wanted and webhook is not None and webhook.explains(record, plan.gate):
                wanted = False  # every change since the gate came with the webhook events
                explained += 1
            if wanted:
                if not self.room_for(cost + (list_cost if listed % PAGE == PAGE - 1 else 0)):
                    self.logger.info(
                        self.stop_message(
                            self.name,
                            cost,
                            f"{self.entity}s updated from {format_time(record.update_time)} on",
                        )
                    )
                    stopped = True
                    break
                read += 1
                yield from self._changes(record.id) or []
            plan.done(record)
            listed += 1
            if wanted or listed % SKIPPED_PER_STATE == 0:
                self.save_state(STATE_KEY_INCREMENTAL, plan.to_state())
        if not stopped:
            plan.finish_pass()
        self._read_to_the_end = not stopped
        self.save_state(STATE_KEY_INCREMENTAL, plan.to_state())
        self.logger.info(
            "%s: %d %ss read from their changelogs (%d requests), %d explained by webhook "
            "events, gate now %s",
            self.name,
            read,
            self.entity,
            self.history_calls,
            explained,
            plan.gate,
        )

    def _backfill(self) -> t.Iterator[dict[str, t.Any]]:
        progress = ContactBackfill.from_state(self.stream_state)
        progress.unit = f"{self.entity}s"
        progress.label = f"{self.entity} history backfill"
        yield from self.run_backfill(progress, self.name)

    @override
    def backfill_listing(
        self, cursors: Mapping[str, str | None]
    ) -> t.Iterator[tuple[str, str | None, DealHead]]:
        query = {"sort_by": "id", "sort_direction": "asc"}
        for token, record in self._records_of(query, cursors.get(self.list_path)):
            yield self.list_path, token, record

    @override
    def backfill_read(self, record: DealHead) -> tuple[str, list[dict[str, t.Any]]]:
        changes = self._changes(record.id)
        return ("gone", []) if changes is None else ("done", changes)

    @override
    def backfill_cost(self, *, list_page: bool) -> int:
        page = self.cost_of(self.list_path) if list_page else 0
        return self.cost_of(self.changelog_path) + page

    @override
    def backfill_count(self, progress: BackfillProgress) -> None:
        total = 0
        newest: dt.datetime | None = None
        for _, record in self._records_of({}):
            total += 1
            newest = record.update_time if newest is None else max(newest, record.update_time)
        progress.total = total
        if progress.as_of is None and newest is not None:
            progress.as_of = format_time(newest)


class ContactBackfill(BackfillProgress):
    """The backfill's progress, worded for persons or organizations."""


def head(row: Mapping[str, t.Any]) -> DealHead:
    """What the plan needs of a person or organization: its id and times.

    The plan reads a record when its latest activity passed the gate; for these records that
    is any update, so ``update_time`` stands where a deal has its ``stage_change_time``.
    """
    record = DealHead.from_record(row)
    return DealHead(
        id=record.id,
        add_time=record.add_time,
        update_time=record.update_time,
        stage_id=None,
        pipeline_id=None,
        stage_change_time=record.update_time,
        creator_user_id=None,
    )


class PersonChangesStream(ContactChangesStream):
    name = "person_changes"
    entity_stream = "persons"
    entity = "person"
    recents_item = "person"
    id_key = "person_id"
    list_path = "/api/v2/persons"
    changelog_path = "/api/v1/persons/{id}/changelog"


class OrganizationChangesStream(ContactChangesStream):
    name = "organization_changes"
    entity_stream = "organizations"
    entity = "organization"
    recents_item = "organization"
    id_key = "organization_id"
    list_path = "/api/v2/organizations"
    changelog_path = "/api/v1/organizations/{id}/changelog"
