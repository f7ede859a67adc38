"""Compare rebuilt history in Postgres with the simulator's records as they were at a time.

The simulator's ``record_at`` gives a record in the API's v2 shape; the tap's own flattener turns
it into the row the tap would have emitted then (custom fields as readable columns, option
labels), and both sides are normalised to JSON-comparable values (times as epoch seconds,
numbers as floats). Singer metadata columns (``_sdc_*``) are left out: past versions carry the
current row's.
"""

from __future__ import annotations

import datetime as dt
import typing as t

import psycopg
from psycopg import sql
from tap_pipedrive.tap import TapPipedrive

ENTITIES = ("deals", "persons", "organizations")


def _norm(value: t.Any) -> t.Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in "T ":
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.timestamp()
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def flatteners(sim: t.Any) -> dict[str, t.Any]:
    """The tap's per-entity record builders (custom fields as its columns)."""
    tap = TapPipedrive(
        config={"api_url": sim.base_url, "api_token": sim.api_token}, parse_env_config=False
    )
    out = {}
    for entity in ENTITIES:
        stream = tap.streams[entity]
        out[entity] = stream._build_plain
    return out


def truth_rows(sim: t.Any, entity: str, at: str, flatten: t.Any) -> dict[int, dict[str, t.Any]]:
    rows = {}
    for record in sim.truth_at(entity, at):
        row = dict(record)
        if flatten is not None:
            flatten(row)
        rows[int(row["id"])] = row
    return rows


def as_of(
    conn: psycopg.Connection[t.Any], schema: str, table: str, at: str
) -> dict[int, dict[str, t.Any]]:
    """The rows of ``table`` (a history table) valid at ``at``: the documented as-of query."""
    found = conn.execute(
        sql.SQL(
            "SELECT to_jsonb(h) FROM {} h WHERE h._valid_from <= %s"
            " AND (h._valid_to IS NULL OR h._valid_to > %s)"
        ).format(sql.Identifier(schema, table)),
        (at, at),
    ).fetchall()
    return {int(doc["id"]): doc for (doc,) in found}


def differences(
    got: dict[int, dict[str, t.Any]],
    truth: dict[int, dict[str, t.Any]],
    loaded_ids: set[int],
) -> list[str]:
    """Every disagreement between the as-of rows and the truth, for records Postgres holds."""
    out = []
    expected = {i: r for i, r in truth.items() if i in loaded_ids}
    if set(got) != set(expected):
        out.append(
            f"ids differ: only rebuilt {sorted(set(got) - set(expected))[:10]}, only true "
            f"{sorted(set(expected) - set(got))[:10]}"
        )
    for ident in sorted(set(got) & set(expected)):
        row, true = got[ident], expected[ident]
        for column, value in row.items():
            if column.startswith(("_sdc_", "_valid_", "_is_current")) or column not in true:
                continue
            if _norm(value) != _norm(true[column]):
                out.append(f"{ident}.{column}: rebuilt {value!r}, true {true[column]!r}")
    return out
