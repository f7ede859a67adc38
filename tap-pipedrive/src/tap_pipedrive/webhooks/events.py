"""The event log in Postgres: what the receiver writes and the tap reads.

One table per deployment, ``<schema>.events`` (schema ``pipeboard_webhooks`` by default):
``position`` (bigserial, the log position a tap run bookmarks), ``event_id`` (``meta.id``,
unique: Pipedrive's retries and replays are stored once), ``entity``, ``action``,
``entity_id``, ``event_time`` (``meta.timestamp``), ``received_at`` and the whole ``body``.
``<schema>.consumers`` holds how far each tap stream has read (for the "oldest unconsumed
event" metric; the tap's own state is what it resumes from).

Positions come from a sequence, so a transaction that commits late can leave a lower position
visible after higher ones. Readers therefore take only events stored more than
``SETTLE_SECONDS`` ago (the receiver's transactions last milliseconds).
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

DEFAULT_SCHEMA = "pipeboard_webhooks"
SETTLE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Event:
    """One webhook v2 event as the receiver accepted it."""

    event_id: str
    entity: str
    action: str
    entity_id: str
    event_time: dt.datetime
    attempt: int | None
    body: dict[str, t.Any]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    position: int
    event: Event


def ddl(schema: str) -> list[sql.Composed]:
    s = sql.Identifier(schema)
    return [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(s),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.events ("
            " position bigserial PRIMARY KEY,"
            " event_id text NOT NULL UNIQUE,"
            " entity text NOT NULL,"
            " action text NOT NULL,"
            " entity_id text NOT NULL,"
            " event_time timestamptz NOT NULL,"
            " received_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
            " attempt integer,"
            " body jsonb NOT NULL)"
        ).format(s),
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS events_entity_position ON {}.events (entity, position)"
        ).format(s),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.consumers ("
            " consumer text PRIMARY KEY,"
            " position bigint NOT NULL,"
            " updated_at timestamptz NOT NULL DEFAULT now())"
        ).format(s),
    ]


def insert_batch(schema: str) -> sql.Composed:
    """Insert many events in one statement; returns the ids stored (the others were there)."""
    return sql.SQL(
        "INSERT INTO {}.events (event_id, entity, action, entity_id, event_time, attempt, body)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[],"
        " %s::timestamptz[], %s::integer[], %s::jsonb[])"
        " ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    ).format(sql.Identifier(schema))


def batch_params(events: t.Sequence[Event]) -> tuple[list[t.Any], ...]:
    return (
        [e.event_id for e in events],
        [e.entity for e in events],
        [e.action for e in events],
        [e.entity_id for e in events],
        [e.event_time for e in events],
        [e.attempt for e in events],
        [Jsonb(e.body) for e in events],
    )


def oldest_unconsumed_age(schema: str) -> sql.Composed:
    """Seconds since the oldest event no consumer has read yet was received (0 if none)."""
    s = sql.Identifier(schema)
    return sql.SQL(
        "SELECT coalesce(extract(epoch FROM now() - min(received_at)), 0) FROM {}.events"
        " WHERE position > coalesce((SELECT min(position) FROM {}.consumers), 0)"
    ).format(s, s)


class EventReader:
    """The tap's side: events of some entities after a position, oldest first."""

    def __init__(self, url: str, schema: str = DEFAULT_SCHEMA) -> None:
        self.url = url
        self.schema = schema

    def read(
        self, entities: t.Collection[str], after: int, limit: int = 100_000
    ) -> list[StoredEvent]:
        s = sql.Identifier(self.schema)
        query = sql.SQL(
            "SELECT position, event_id, entity, action, entity_id, event_time, attempt, body"
            " FROM {}.events WHERE entity = ANY(%s) AND position > %s"
            " AND received_at < clock_timestamp() - make_interval(secs => %s)"
            " ORDER BY position LIMIT %s"
        ).format(s)
        with psycopg.connect(self.url, autocommit=True) as conn:
            if not self._exists(conn):
                return []
            rows = conn.execute(query, (list(entities), after, SETTLE_SECONDS, limit)).fetchall()
        return [
            StoredEvent(int(r[0]), Event(r[1], r[2], r[3], r[4], r[5], r[6], r[7])) for r in rows
        ]

    def latest_times(
        self, entities: t.Collection[str], since: dt.datetime
    ) -> dict[tuple[str, str], dt.datetime]:
        """(entity, entity id) -> the time of its latest stored event at or after ``since``
        (the safety-net poll checks recents' list against it, see change_feed)."""
        query = sql.SQL(
            "SELECT entity, entity_id, max(event_time) FROM {}.events"
            " WHERE entity = ANY(%s) AND event_time >= %s GROUP BY entity, entity_id"
        ).format(sql.Identifier(self.schema))
        with psycopg.connect(self.url, autocommit=True) as conn:
            if not self._exists(conn):
                return {}
            rows = conn.execute(query, (list(entities), since)).fetchall()
        return {(str(r[0]), str(r[1])): r[2] for r in rows}

    def record_position(self, consumer: str, position: int) -> None:
        query = sql.SQL(
            "INSERT INTO {}.consumers (consumer, position) VALUES (%s, %s)"
            " ON CONFLICT (consumer) DO UPDATE SET position = greatest("
            "{}.consumers.position, excluded.position), updated_at = now()"
        ).format(sql.Identifier(self.schema), sql.Identifier(self.schema))
        with psycopg.connect(self.url, autocommit=True) as conn:
            if self._exists(conn):
                conn.execute(query, (consumer, position))

    def _exists(self, conn: psycopg.Connection[t.Any]) -> bool:
        row = conn.execute(
            "SELECT to_regclass(%s)",
            (f"{psycopg.sql.Identifier(self.schema).as_string(conn)}.events",),
        ).fetchone()
        return row is not None and row[0] is not None
