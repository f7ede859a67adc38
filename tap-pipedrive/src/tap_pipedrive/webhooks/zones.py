"""Time zones of time and time-range custom fields, learned from the records the tap writes.

A webhook carries a time custom field as ``{"type": "time", "value": ..., "timezone_id": ...}``
and a time range as ``{"type": "timerange", "from": ..., "until": ...}``: no zone name, and for
a range no zone at all, while the record polling gives carries both (``timezone_id``,
``timezone_name``). Rather than fetch every such record by id, the tap remembers, in the event
log's schema, what the records it wrote said:

- ``time_zones``: ``timezone_id`` -> ``timezone_name`` (Pipedrive's pair, the same in every
  record: learned from any record with a time or time-range value);
- ``time_ranges``: per stream, record and time-range field, the range and its zone as the tap
  last wrote them (an empty field too).

A time value from a webhook is complete when its zone id is known. A time range is complete
when the record's remembered range has the same start and end and no event of the record read
in this run lists the field in ``previous`` (a change of the zone changes the field, so
Pipedrive lists it; a field set from empty is not listed, but then the remembered range is
empty and does not match). Anything else is fetched by id, as before.

What the memory cannot see: a change of a range's zone alone whose event Pipedrive dropped (a
ban) while a later event of the same record arrived; that record keeps the old zone until it is
next read (a fetch, a poll, the weekly ``reconcile``).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from tap_pipedrive.custom_fields import CustomField

ZONED_TYPES = frozenset({"time", "timerange"})
#: Learned rows buffered before they are written (a full read flushes every this many).
FLUSH_EVERY = 5_000

#: (start, end, timezone_id, timezone_name) of a range as last written; all None: empty.
Range = tuple[t.Any, t.Any, t.Any, t.Any]


class Incomplete(Exception):
    """A payload that lacks something the record needs (fetched from the API instead)."""


def ddl(schema: str) -> list[sql.Composed]:
    s = sql.Identifier(schema)
    return [
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.time_zones ("
            " timezone_id bigint PRIMARY KEY,"
            " timezone_name text NOT NULL,"
            " learned_at timestamptz NOT NULL DEFAULT now())"
        ).format(s),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.time_ranges ("
            " stream text NOT NULL,"
            " record_id bigint NOT NULL,"
            " field_key text NOT NULL,"
            " range_start text,"
            " range_end text,"
            " timezone_id bigint,"
            " timezone_name text,"
            " learned_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (stream, record_id, field_key))"
        ).format(s),
    ]


def _columns(f: CustomField) -> dict[str, str]:
    """Part (``value``/``start``, ``end``, ``timezone_id``, ``timezone_name``) -> column."""
    return {sub: column for sub, column, _ in f.parts}


def _zone_id(value: t.Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


@dataclass
class Zones:
    """What the run knows of time zones when it turns webhook payloads into records."""

    #: timezone_id -> timezone_name.
    names: dict[int, str] = field(default_factory=dict)
    #: (record id, field key) -> the range as last written.
    ranges: dict[tuple[int, str], Range] = field(default_factory=dict)
    #: record id -> keys of the custom fields this run's events list in ``previous``; None: the
    #: record was created in this run's events (nothing remembered of it counts).
    changed: dict[int, set[str] | None] = field(default_factory=dict)
    #: Keys of the fields whose zone columns are selected (the others need no zone).
    zoned: frozenset[str] = frozenset()
    #: Keys of the time-range fields whose every column is selected (the memory is kept whole).
    remembered: frozenset[str] = frozenset()

    def note_event(self, record_id: int, action: str, previous: t.Any) -> None:
        """Count one event of a record read this run (call for every event, oldest first)."""
        if action == "create":
            self.changed[record_id] = None
            return
        listed = self.changed.setdefault(record_id, set())
        if listed is None or action != "change" or not isinstance(previous, dict):
            return
        custom = previous.get("custom_fields")
        if isinstance(custom, dict):
            listed.update(str(k) for k in custom)

    def time(self, f: CustomField, value: dict[str, t.Any]) -> dict[str, t.Any]:
        zone = _zone_id(value.get("timezone_id"))
        name = self.names.get(zone) if zone is not None else None
        if name is None and f.key in self.zoned:
            raise Incomplete(f.key)
        return {"value": value["value"], "timezone_id": zone, "timezone_name": name}

    def timerange(
        self, f: CustomField, value: dict[str, t.Any], record_id: int | None
    ) -> dict[str, t.Any]:
        start, end = value["from"], value["until"]
        if f.key not in self.zoned:
            return {"start": start, "end": end, "timezone_id": None, "timezone_name": None}
        if record_id is None or f.key not in self.remembered:
            raise Incomplete(f.key)
        listed = self.changed.get(record_id, set())
        if listed is None or f.key in listed:
            raise Incomplete(f.key)
        known = self.ranges.get((record_id, f.key))
        if known is None or known[0] != start or known[1] != end or known[3] is None:
            raise Incomplete(f.key)
        return {"start": start, "end": end, "timezone_id": known[2], "timezone_name": known[3]}


class ZoneMemory:
    """The learned zones of one stream: read before its events, written as records are."""

    def __init__(
        self,
        url: str,
        schema: str,
        stream: str,
        fields: t.Sequence[CustomField],
        selected: t.Collection[str],
    ) -> None:
        self.url = url
        self.schema = schema
        self.stream = stream
        self.fields = [f for f in fields if f.field_type in ZONED_TYPES]
        columns = {f.key: _columns(f) for f in self.fields}
        self.zoned = frozenset(
            f.key
            for f in self.fields
            if {columns[f.key]["timezone_id"], columns[f.key]["timezone_name"]} & set(selected)
        )
        self.remembered = frozenset(
            f.key
            for f in self.fields
            if f.field_type == "timerange" and set(columns[f.key].values()) <= set(selected)
        )
        self._learn = [
            (f.key, f.field_type == "timerange" and f.key in self.remembered, columns[f.key])
            for f in self.fields
            if f.key in self.zoned
        ]
        self._names: dict[int, str] = {}
        self._ranges: dict[tuple[int, str], Range] = {}
        self._ready = False

    @property
    def enabled(self) -> bool:
        return bool(self._learn)

    def learn(self, record: t.Mapping[str, t.Any]) -> None:
        """Remember the zones of a record as it is written."""
        ident = _zone_id(record.get("id"))
        if ident is None:
            return
        for key, is_range, cols in self._learn:
            zone = _zone_id(record.get(cols["timezone_id"]))
            name = record.get(cols["timezone_name"])
            if zone is not None and isinstance(name, str) and name:
                self._names[zone] = name
            if is_range:
                self._ranges[(ident, key)] = (
                    record.get(cols["start"]),
                    record.get(cols["end"]),
                    zone,
                    name if isinstance(name, str) else None,
                )
        if len(self._ranges) >= FLUSH_EVERY:
            self.flush()

    def zones(self, record_ids: t.Collection[int]) -> Zones:
        """What is known for ``record_ids`` (what this run learned included)."""
        self.flush()
        zones = Zones(zoned=self.zoned, remembered=self.remembered)
        if not self.enabled:
            return zones
        s = sql.Identifier(self.schema)
        with psycopg.connect(self.url, autocommit=True) as conn:
            if not self._ensure(conn):
                return zones
            rows = conn.execute(
                sql.SQL("SELECT timezone_id, timezone_name FROM {}.time_zones").format(s)
            ).fetchall()
            zones.names = {int(r[0]): str(r[1]) for r in rows}
            if self.remembered and record_ids:
                rows = conn.execute(
                    sql.SQL(
                        "SELECT record_id, field_key, range_start, range_end, timezone_id,"
                        " timezone_name FROM {}.time_ranges"
                        " WHERE stream = %s AND record_id = ANY(%s) AND field_key = ANY(%s)"
                    ).format(s),
                    (self.stream, list(record_ids), sorted(self.remembered)),
                ).fetchall()
                zones.ranges = {(int(r[0]), str(r[1])): (r[2], r[3], r[4], r[5]) for r in rows}
        return zones

    def flush(self) -> None:
        """Write what was learned since the last flush."""
        if not self._names and not self._ranges:
            return
        names, ranges = self._names, self._ranges
        self._names, self._ranges = {}, {}
        s = sql.Identifier(self.schema)
        with psycopg.connect(self.url, autocommit=True) as conn:
            if not self._ensure(conn):
                return
            with conn.transaction():
                if names:
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {}.time_zones (timezone_id, timezone_name)"
                            " SELECT * FROM unnest(%s::bigint[], %s::text[])"
                            " ON CONFLICT (timezone_id) DO UPDATE"
                            " SET timezone_name = excluded.timezone_name, learned_at = now()"
                            " WHERE {}.time_zones.timezone_name <> excluded.timezone_name"
                        ).format(s, s),
                        (list(names), list(names.values())),
                    )
                if ranges:
                    keys = list(ranges)
                    values = [ranges[k] for k in keys]
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {}.time_ranges (stream, record_id, field_key,"
                            " range_start, range_end, timezone_id, timezone_name)"
                            " SELECT %s, * FROM unnest(%s::bigint[], %s::text[], %s::text[],"
                            " %s::text[], %s::bigint[], %s::text[])"
                            " ON CONFLICT (stream, record_id, field_key) DO UPDATE SET"
                            " range_start = excluded.range_start, range_end = excluded.range_end,"
                            " timezone_id = excluded.timezone_id,"
                            " timezone_name = excluded.timezone_name, learned_at = now()"
                        ).format(s),
                        (
                            self.stream,
                            [k[0] for k in keys],
                            [k[1] for k in keys],
                            [_text(v[0]) for v in values],
                            [_text(v[1]) for v in values],
                            [v[2] for v in values],
                            [v[3] for v in values],
                        ),
                    )

    def _ensure(self, conn: psycopg.Connection[t.Any]) -> bool:
        """The tables exist (made here if the receiver's schema is there)."""
        if self._ready:
            return True
        row = conn.execute(
            "SELECT to_regclass(%s)", (f"{sql.Identifier(self.schema).as_string(conn)}.events",)
        ).fetchone()
        if row is None or row[0] is None:
            return False
        for statement in ddl(self.schema):
            conn.execute(statement)
        self._ready = True
        return True


def _text(value: t.Any) -> str | None:
    return None if value is None else str(value)
