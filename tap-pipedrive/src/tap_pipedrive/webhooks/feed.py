"""The tap's side of the change feed: stored webhook events become records at no API cost.

With ``webhook_database_url`` set, each incremental stream that has a webhook object reads,
before its poll, the events stored since the position in its state (``webhook_position``):

- the latest event per record wins; a create or change whose ``data`` holds every selected
  column (custom fields converted from the webhook shape, e.g. ``{"type": "enum", "id": 3}``
  -> ``3``; time and time-range zones from what earlier records said, :mod:`.zones`) is
  emitted as it is; the others are fetched by id from the stream's own v2 list (``ids``, 100
  per request), never one request per record;
- a delete becomes the record's last state (``previous``) flagged deleted, so it carries
  ``_sdc_deleted_at`` (the delete of a merge, with ``meta.merged_to_id``, too; the survivor's
  change event updates the survivor);
- records are emitted before the poll, so the poll's newer reads land last; the bookmark of
  the poll is not moved by them (the feed has its own position).

``deal_stage_changes`` reads deal events with a ``stage_id`` in ``previous`` (moves) and deal
creations, emits their records directly and skips the changelog request for every deal whose
stage facts the events cover. ``deal_changes``, ``person_changes`` and ``organization_changes``
turn each change event's ``previous`` into change records (:mod:`.changes`) and skip the
changelog request of every record whose changes the events cover.

What can still be missed: events Pipedrive drops while it bans the receiver (30 minutes after
10 failed first deliveries) or after it deleted the webhook. Changes then arrive with the next
poll; deletes of entities whose lists hide deleted records arrive only with ``reconcile``.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass

from tap_pipedrive.api import OPENAPI
from tap_pipedrive.backfill import DealHead, format_time
from tap_pipedrive.custom_fields import CustomField
from tap_pipedrive.sdk_seam import send_with_retries
from tap_pipedrive.webhooks.events import DEFAULT_SCHEMA, EventReader, StoredEvent
from tap_pipedrive.webhooks.zones import Incomplete, ZoneMemory, Zones

if t.TYPE_CHECKING:
    from tap_pipedrive.client import PipedriveStream

SETTING = "webhook_database_url"
SCHEMA_SETTING = "webhook_schema"
POLL_SETTING = "webhook_poll_every_runs"
POSITION_KEY = "webhook_position"
RUNS_KEY = "webhook_runs"
IDS_PER_REQUEST = 100
#: Streams fed by webhook events (their lists take ``ids``) -> webhook event object.
STREAM_OBJECTS = {
    "deals": "deal",
    "persons": "person",
    "organizations": "organization",
    "products": "product",
    "activities": "activity",
}
#: Change streams fed by webhook events' ``previous`` -> webhook event object.
CHANGE_OBJECTS = {
    "deal_changes": "deal",
    "person_changes": "person",
    "organization_changes": "organization",
}
#: Keys a v2 list sends only when asked (``include_fields``) or only on some plans ("Only
#: available in Growth and above plans"): a payload without them is still complete, as a
#: polled row without them is (tests check this against the vendored spec).
OPTIONAL_KEYS: dict[str, frozenset[str]] = {
    "deals": frozenset(
        [
            "next_activity_id",
            "last_activity_id",
            "first_won_time",
            "products_count",
            "files_count",
            "notes_count",
            "followers_count",
            "email_messages_count",
            "activities_count",
            "done_activities_count",
            "undone_activities_count",
            "participants_count",
            "last_incoming_mail_time",
            "last_outgoing_mail_time",
            "smart_bcc_email",
            "source_lead_id",
            "acv",
            "arr",
            "mrr",
        ]
    ),
    "persons": frozenset(
        [
            "next_activity_id",
            "last_activity_id",
            "open_deals_count",
            "related_open_deals_count",
            "closed_deals_count",
            "related_closed_deals_count",
            "participant_open_deals_count",
            "participant_closed_deals_count",
            "email_messages_count",
            "activities_count",
            "done_activities_count",
            "undone_activities_count",
            "files_count",
            "notes_count",
            "followers_count",
            "won_deals_count",
            "related_won_deals_count",
            "lost_deals_count",
            "related_lost_deals_count",
            "last_incoming_mail_time",
            "last_outgoing_mail_time",
            "marketing_status",
            "doi_status",
            "smart_bcc_email",
        ]
    ),
    "organizations": frozenset(
        [
            "next_activity_id",
            "last_activity_id",
            "open_deals_count",
            "related_open_deals_count",
            "closed_deals_count",
            "related_closed_deals_count",
            "email_messages_count",
            "people_count",
            "activities_count",
            "done_activities_count",
            "undone_activities_count",
            "files_count",
            "notes_count",
            "followers_count",
            "won_deals_count",
            "related_won_deals_count",
            "lost_deals_count",
            "related_lost_deals_count",
            "smart_bcc_email",
        ]
    ),
    "products": frozenset(),
    "activities": frozenset({"attendees"}),
}
#: (property, value) set on a record's last state to mark it deleted.
DELETED_VALUES: dict[str, dict[str, t.Any]] = {
    "deals": {"is_deleted": True, "status": "deleted"},
}


def reader_for(config: t.Mapping[str, t.Any]) -> EventReader | None:
    url = config.get(SETTING)
    if not url:
        return None
    return EventReader(str(url), str(config.get(SCHEMA_SETTING) or DEFAULT_SCHEMA))


def rest_custom_value(
    field: CustomField, value: t.Any, zones: Zones | None = None, record_id: int | None = None
) -> t.Any:
    """A webhook custom-field value in the REST v2 shape (time zones from ``zones``)."""
    if not isinstance(value, dict):
        raise Incomplete(field.key)
    kind = field.field_type
    try:
        if kind in ("enum", "user", "org", "people", "deal", "stage"):
            return value["id"]
        if kind == "set":
            return [item["id"] for item in value["values"]]
        if kind == "monetary":
            return {"value": value["value"], "currency": value["currency"]}
        if kind == "daterange":
            return {"start": value["from"], "end": value["until"]}
        if kind == "address":
            return {k: v for k, v in value.items() if k != "type"}
        if kind in ("time", "timerange"):
            # The webhook has no timezone_name (a range not even the id), which the record
            # carries: known from the records written before, or fetched.
            if zones is None:
                raise Incomplete(field.key)
            if kind == "time":
                return zones.time(field, value)
            return zones.timerange(field, value, record_id)
        return value["value"]
    except (KeyError, TypeError):
        raise Incomplete(field.key) from None


def rest_row(
    obj: t.Mapping[str, t.Any],
    keys: t.Collection[str],
    fields: t.Sequence[CustomField],
    optional: t.Collection[str] = frozenset(),
    zones: Zones | None = None,
) -> dict[str, t.Any]:
    """The REST v2 row of a webhook object; :class:`Incomplete` when a key is missing."""
    row: dict[str, t.Any] = {}
    for key in keys:
        if key in obj:
            row[key] = obj[key]
        elif key not in optional:
            raise Incomplete(key)
    if fields:
        given = obj.get("custom_fields") or {}
        if not isinstance(given, dict):
            raise Incomplete("custom_fields")
        record_id = _id(obj.get("id"))
        row["custom_fields"] = {
            f.key: (
                rest_custom_value(f, given[f.key], zones, record_id)
                if given.get(f.key) is not None
                else None
            )
            for f in fields
        }
    return row


def deleted_row(
    stream_name: str,
    obj: t.Mapping[str, t.Any],
    keys: t.Collection[str],
    fields: t.Sequence[CustomField],
    when: dt.datetime,
    zones: Zones | None = None,
) -> dict[str, t.Any]:
    """The last state of a deleted record, flagged deleted at the event's time. Missing
    columns are left empty (a deleted record cannot be listed by id)."""
    partial = {k: obj[k] for k in keys if k in obj}
    try:
        row = rest_row(obj, keys, fields, OPTIONAL_KEYS.get(stream_name, frozenset()), zones)
    except Incomplete:
        row = partial
        if fields:
            row["custom_fields"] = {f.key: None for f in fields}
    row.update(DELETED_VALUES.get(stream_name, {"is_deleted": True}))
    row["update_time"] = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return row


@dataclass
class FeedResult:
    emitted: int = 0
    fetched: int = 0
    requests: int = 0


def api_keys(stream: PipedriveStream) -> list[str]:
    """The API keys behind the stream's selected columns (custom fields aside)."""
    props = OPENAPI.streams[stream.name]["schema"]["properties"]
    selected = stream._selected_properties
    keys = [k for k in props if k != "custom_fields" and k in selected]
    if "id" not in keys:
        keys.insert(0, "id")
    if "update_time" in props and "update_time" not in keys:
        keys.append("update_time")
    return keys


def poll_due(stream: PipedriveStream) -> bool:
    """Whether this run polls the stream (every ``webhook_poll_every_runs``-th run, the first
    one included); decided once per stream and run, counted in the stream's state."""
    due = stream.__dict__.get("_webhook_poll_due")
    if due is None:
        every = max(1, int(stream.config.get(POLL_SETTING) or 1))
        runs = int(stream.stream_state.get(RUNS_KEY) or 0)
        due = stream.reconciling or runs % every == 0
        stream.stream_state[RUNS_KEY] = runs + 1
        stream.__dict__["_webhook_poll_due"] = due
        if not due:
            stream.logger.info(
                "%s: webhooks mode, no poll this run (run %d of every %d)",
                stream.name,
                runs % every + 1,
                every,
            )
    return bool(due)


def consume(stream: PipedriveStream) -> FeedResult | None:
    """Emit the stream's records from the events stored since its position."""
    obj = STREAM_OBJECTS.get(stream.name)
    reader = reader_for(stream.config)
    if obj is None or reader is None or stream.reconciling:
        return None
    state = stream.stream_state
    after = int(state.get(POSITION_KEY) or 0)
    events = reader.read([obj], after)
    result = FeedResult()
    if not events:
        return result
    latest: dict[str, StoredEvent] = {}
    for stored in events:
        latest[stored.event.entity_id] = stored
    keys = api_keys(stream)
    fields = stream.custom_fields
    memory = zone_memory(stream)
    zones = None
    if memory is not None:
        record_ids = [i for i in map(_id, latest) if i is not None]
        zones = memory.zones(record_ids)
        for stored in events:
            ident = _id(stored.event.entity_id)
            if ident is not None:
                zones.note_event(ident, stored.event.action, stored.event.body.get("previous"))
    rows: list[dict[str, t.Any]] = []
    to_fetch: list[int] = []
    for stored in sorted(latest.values(), key=lambda s: s.position):
        event = stored.event
        if event.action == "delete":
            last = event.body.get("previous") or {}
            rows.append(deleted_row(stream.name, last, keys, fields, event.event_time, zones))
            continue
        try:
            data = event.body.get("data") or {}
            row = rest_row(data, keys, fields, OPTIONAL_KEYS[stream.name], zones)
            # A key the list sends only when asked or on other plans: empty, as polled.
            rows.append({**dict.fromkeys(keys), **row})
        except Incomplete:
            to_fetch.append(int(event.entity_id))
    from tap_pipedrive.client import PipedriveStream as Base

    for row in rows:
        record = Base.post_process(stream, row, None)
        if record is not None:
            stream.write_record(record)
            result.emitted += 1
    for start in range(0, len(to_fetch), IDS_PER_REQUEST):
        batch = to_fetch[start : start + IDS_PER_REQUEST]
        for fetched_row in fetch_by_ids(stream, batch, result):
            record = Base.post_process(stream, fetched_row, None)
            if record is not None:
                stream.write_record(record)
                result.emitted += 1
                result.fetched += 1
    if memory is not None:
        memory.flush()  # what these records say, remembered before the position moves
    position = events[-1].position
    state[POSITION_KEY] = position
    reader.record_position(stream.name, position)
    stream.logger.info(
        "%s: %d records from %d webhook events (%d fetched by id in %d requests), position %d",
        stream.name,
        result.emitted,
        len(events),
        result.fetched,
        result.requests,
        position,
    )
    return result


def zone_memory(stream: PipedriveStream) -> ZoneMemory | None:
    """The stream's learned time zones (webhooks mode, a fed stream with time or time-range
    custom fields whose zone columns are selected); built once per stream and run."""
    if "_webhook_zones" not in stream.__dict__:
        memory = None
        url = stream.config.get(SETTING)
        if url and stream.name in STREAM_OBJECTS:
            schema = str(stream.config.get(SCHEMA_SETTING) or DEFAULT_SCHEMA)
            found = ZoneMemory(
                str(url), schema, stream.name, stream.custom_fields, stream._selected_properties
            )
            memory = found if found.enabled else None
        stream.__dict__["_webhook_zones"] = memory
    return t.cast("ZoneMemory | None", stream.__dict__["_webhook_zones"])


def fetch_by_ids(stream: PipedriveStream, ids: list[int], result: FeedResult) -> list[t.Any]:
    """Rows of ``ids`` from the stream's list endpoints (archived deals from theirs)."""
    paths = [str(stream.path)]
    archived = getattr(stream, "archived_path", None)
    if archived and stream.config.get(getattr(stream, "archived_setting", "") or "", True):
        paths.append(str(archived))
    rows: list[t.Any] = []
    wanted = set(ids)
    for path in paths:
        if not wanted:
            break
        params: dict[str, t.Any] = {**stream.extra_params}
        params["ids"] = ",".join(str(i) for i in sorted(wanted))
        params["limit"] = IDS_PER_REQUEST
        prepared = stream.build_prepared_request(
            method="GET", url=f"{stream.url_base}{path}", params=params, headers=stream.http_headers
        )
        context = {"is_archived": True} if path == archived else None
        response = send_with_retries(stream, prepared, context)
        result.requests += 1
        for row in stream.parse_response(response):
            ident = stream.row_value(row, "id") if not isinstance(row, dict) else row.get("id")
            if ident in wanted:
                wanted.discard(ident)
                rows.append(row)
    return rows


# -- deal_stage_changes ------------------------------------------------------------------------


@dataclass
class StageFeed:
    """Stage-change records from deal events, and which deals they fully explain."""

    records: list[dict[str, t.Any]]
    moved_at: dict[int, dt.datetime]
    created: set[int]
    position: int
    events: t.Sequence[StoredEvent] = ()  # the deal events read (deal_changes reads them too)

    def explains(self, deal: DealHead, gate: dt.datetime | None) -> bool:
        """Whether the events hold every stage fact of ``deal`` after ``gate`` (so its
        changelog need not be read)."""
        if gate is None:
            return False
        if deal.stage_change_time is not None and deal.stage_change_time > gate:
            moved = self.moved_at.get(deal.id)
            if moved is None or moved < deal.stage_change_time - dt.timedelta(seconds=1):
                return False
        return deal.add_time <= gate or deal.id in self.created

    def save(self, state: dict[str, t.Any], reader: EventReader, consumer: str) -> None:
        if self.position:
            state[POSITION_KEY] = self.position
            reader.record_position(consumer, self.position)


def _id(value: t.Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _time(value: t.Any, fallback: dt.datetime) -> dt.datetime:
    if isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return fallback
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return fallback


def stage_records(events: t.Sequence[StoredEvent]) -> StageFeed:
    """Creation and move records (``source`` ``webhook``) from deal events, oldest first."""
    feed = StageFeed([], {}, set(), events[-1].position if events else 0, events)
    for stored in events:
        event = stored.event
        data = event.body.get("data") or {}
        previous = event.body.get("previous") or {}
        deal_id = _id(event.entity_id)
        if deal_id is None:
            continue
        user_id = _id(event.body.get("meta", {}).get("user_id"))
        if event.action == "create" and _id(data.get("stage_id")) is not None:
            feed.created.add(deal_id)
            feed.records.append(
                {
                    "id": f"{deal_id}:created",
                    "deal_id": deal_id,
                    "pipeline_id": _id(data.get("pipeline_id")),
                    "from_stage_id": None,
                    "from_pipeline_id": None,
                    "to_stage_id": _id(data.get("stage_id")),
                    "changed_at": format_time(_time(data.get("add_time"), event.event_time)),
                    "user_id": _id(data.get("creator_user_id")) or user_id,
                    "source": "webhook",
                    "source_event_id": None,
                }
            )
        elif event.action == "change" and "stage_id" in previous:
            to_stage = _id(data.get("stage_id"))
            if to_stage is None:
                continue
            when = _time(data.get("stage_change_time"), event.event_time)
            from_stage = _id(previous.get("stage_id"))
            pipeline = _id(data.get("pipeline_id"))
            feed.moved_at[deal_id] = max(when, feed.moved_at.get(deal_id, when))
            feed.records.append(
                {
                    "id": f"{deal_id}:{int(when.timestamp())}:{from_stage or ''}:{to_stage}",
                    "deal_id": deal_id,
                    "pipeline_id": pipeline,
                    "from_stage_id": from_stage,
                    "from_pipeline_id": _id(previous.get("pipeline_id", pipeline)),
                    "to_stage_id": to_stage,
                    "changed_at": format_time(when),
                    "user_id": user_id,
                    "source": "webhook",
                    "source_event_id": None,
                }
            )
    return feed


def stage_feed(stream: PipedriveStream) -> tuple[StageFeed, EventReader] | None:
    """The deal events stored since the stage-change stream's position (None when off)."""
    reader = reader_for(stream.config)
    if reader is None or stream.reconciling:
        return None
    events = reader.read(["deal"], int(stream.stream_state.get(POSITION_KEY) or 0))
    feed = stage_records(events)
    if events:
        stream.logger.info(
            "deal_stage_changes: %d records from %d deal webhook events",
            len(feed.records),
            len(events),
        )
    return feed, reader
