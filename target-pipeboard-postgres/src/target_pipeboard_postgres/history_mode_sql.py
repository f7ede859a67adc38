"""SQL of history mode (see :mod:`.history_mode`). Nothing here executes anything.

A batch's versions go through a temporary table ``pb_versions`` (dropped at commit): one row per
key of the batch with its ``_valid_from``, whether it is a delete, and where it falls in the
key's chain of versions (the version before it, whether that one has the same content, and the
start of the version after it). The values themselves are read from the batch's rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from psycopg import sql

from target_pipeboard_postgres import identifiers

VALID_FROM = "_valid_from"
VALID_TO = "_valid_to"
IS_CURRENT = "_is_current"
HISTORY_COLUMNS = ((VALID_FROM, "timestamptz"), (VALID_TO, "timestamptz"), (IS_CURRENT, "boolean"))
VERSIONS = "pb_versions"
# Types without an equality operator: compared through a type that has one.
_COMPARED_AS = {"json": "jsonb", "xml": "text", "point": "text", "box": "text", "path": "text"}
_COMPARED_AS.update({"line": "text", "lseg": "text", "polygon": "text", "circle": "text"})


def _ident(schema: str, table: str) -> sql.Identifier:
    return sql.Identifier(schema, table)


def _cols(columns: Sequence[str], alias: str | None = None) -> sql.Composed:
    if alias is None:
        return sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    return sql.SQL(", ").join(sql.Identifier(alias, c) for c in columns)


def _keys_match(keys: Sequence[str], left: str, right: str) -> sql.Composed:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(left, k), sql.Identifier(right, k)) for k in keys
    )


def _comparable(alias: str, column: str, column_type: str) -> sql.Composable:
    cast = _COMPARED_AS.get(column_type)
    ident = sql.Identifier(alias, column)
    # Safe: `cast` is one of the constant type names above.
    return sql.SQL("{}::{}").format(ident, sql.SQL(cast)) if cast else ident


def _same_content(content: Mapping[str, str], left: str, right: str) -> sql.Composable:
    if not content:
        return sql.SQL("TRUE")
    return sql.SQL("ROW({}) IS NOT DISTINCT FROM ROW({})").format(
        sql.SQL(", ").join(_comparable(left, c, t) for c, t in content.items()),
        sql.SQL(", ").join(_comparable(right, c, t) for c, t in content.items()),
    )


def current_index(history: str) -> str:
    """The name of the history table's unique index of open versions."""
    return identifiers.derived_name(history, "_current")


def create_history_table(
    schema: str, history: str, like: str, keys: Sequence[str]
) -> list[sql.Composed]:
    """The history table shaped like the current one, its key (keys..., ``_valid_from``) and a
    unique index allowing one open version per key."""
    return [
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {h} (LIKE {t} INCLUDING DEFAULTS, "
            "{vf} timestamptz NOT NULL, {vt} timestamptz, {cur} boolean NOT NULL DEFAULT TRUE, "
            "PRIMARY KEY ({pk}))"
        ).format(
            h=_ident(schema, history),
            t=_ident(schema, like),
            vf=sql.Identifier(VALID_FROM),
            vt=sql.Identifier(VALID_TO),
            cur=sql.Identifier(IS_CURRENT),
            pk=_cols([*keys, VALID_FROM]),
        ),
        sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {i} ON {h} ({k}) WHERE {vt} IS NULL").format(
            i=sql.Identifier(current_index(history)),
            h=_ident(schema, history),
            k=_cols(keys),
            vt=sql.Identifier(VALID_TO),
        ),
    ]


def collect_versions(
    schema: str,
    history: str,
    source: sql.Composable,
    keys: Sequence[str],
    content: Mapping[str, str],
    valid_from: sql.Composable,
    deleted: sql.Composable,
    deleted_at: sql.Composable,
) -> sql.Composed:
    """Fill ``pb_versions`` from the batch's rows (``source``, aliased ``n``): per key, its
    ``_valid_from`` and where it falls in the key's chain (values stay in ``source``).

    ``valid_from``, ``deleted`` and ``deleted_at`` are expressions over ``n``. The version
    before a row is the key's latest with ``_valid_from`` at or before the row's.
    """
    h = _ident(schema, history)
    return sql.SQL(
        "CREATE TEMPORARY TABLE {v} ON COMMIT DROP AS "
        "SELECT {nkeys}, CASE WHEN {deleted} THEN {deleted_at} ELSE {vf} END AS {VF}, "
        "{deleted} AS _deleted, p.{VF} AS _p_from, p.{VT} AS _p_to, "
        "(p.{VF} IS NOT NULL AND {same}) AS _same, "
        "(SELECT min(x.{VF}) FROM {h} x WHERE {xkeys} AND x.{VF} > {vf}) AS _next_from "
        "FROM (SELECT * FROM {source}) n "
        "LEFT JOIN LATERAL (SELECT * FROM {h} p WHERE {pkeys} AND p.{VF} <= {vf} "
        "ORDER BY p.{VF} DESC LIMIT 1) p ON TRUE"
    ).format(
        v=sql.Identifier(VERSIONS),
        nkeys=_cols(keys, "n"),
        deleted=deleted,
        deleted_at=deleted_at,
        vf=valid_from,
        VF=sql.Identifier(VALID_FROM),
        VT=sql.Identifier(VALID_TO),
        same=_same_content(content, "p", "n"),
        h=h,
        xkeys=_keys_match(keys, "x", "n"),
        source=source,
        pkeys=_keys_match(keys, "p", "n"),
    )


# A row of pb_versions (alias v) that starts a new version: not a delete, not unchanged from the
# version in effect at its time, and not at the same instant as an existing version (replaced).
_NEW_VERSION = sql.SQL(
    "NOT v._deleted AND (v._p_from IS NULL OR (v._p_from < v.{VF} "
    "AND NOT (v._same AND (v._p_to IS NULL OR v._p_to > v.{VF}))))"
).format(VF=sql.Identifier(VALID_FROM))
# ... whose version before it is still in effect at its time (and so must end there).
_ENDS_PREVIOUS = sql.SQL(
    "{new} AND v._p_from IS NOT NULL AND (v._p_to IS NULL OR v._p_to > v.{VF})"
).format(new=_NEW_VERSION, VF=sql.Identifier(VALID_FROM))
# A changed row at the instant of an existing version.
_SAME_INSTANT = sql.SQL("NOT v._deleted AND v._p_from = v.{VF} AND NOT v._same").format(
    VF=sql.Identifier(VALID_FROM)
)


def count_work() -> sql.Composed:
    """How many rows of ``pb_versions`` each step concerns (deletes, same instant, previous
    versions to end, new versions): steps with none are skipped."""
    return sql.SQL(
        "SELECT count(*) FILTER (WHERE v._deleted), count(*) FILTER (WHERE {same}), "
        "count(*) FILTER (WHERE {ends}), count(*) FILTER (WHERE {new}) FROM {v} v"
    ).format(same=_SAME_INSTANT, ends=_ENDS_PREVIOUS, new=_NEW_VERSION, v=sql.Identifier(VERSIONS))


def close_deleted(schema: str, history: str, keys: Sequence[str]) -> sql.Composed:
    """Deletes close the key's open version (at the delete's time, never before it opened)."""
    return sql.SQL(
        "UPDATE {h} h SET {VT} = GREATEST(h.{VF}, v.{VF}), {CUR} = FALSE FROM {v} v "
        "WHERE v._deleted AND {k} AND h.{VT} IS NULL"
    ).format(
        h=_ident(schema, history),
        v=sql.Identifier(VERSIONS),
        k=_keys_match(keys, "h", "v"),
        VF=sql.Identifier(VALID_FROM),
        VT=sql.Identifier(VALID_TO),
        CUR=sql.Identifier(IS_CURRENT),
    )


def replace_same_instant(
    schema: str,
    history: str,
    source: sql.Composable,
    columns: Sequence[str],
    keys: Sequence[str],
) -> sql.Composed:
    """A changed version with the ``_valid_from`` of an existing one replaces its content."""
    return sql.SQL(
        "UPDATE {h} h SET {sets} FROM {v} v JOIN (SELECT * FROM {source}) n ON {vn} "
        "WHERE {same} AND {k} AND h.{VF} = v.{VF}"
    ).format(
        h=_ident(schema, history),
        sets=sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Identifier("n", c)) for c in columns
        ),
        v=sql.Identifier(VERSIONS),
        source=source,
        vn=_keys_match(keys, "v", "n"),
        same=_SAME_INSTANT,
        k=_keys_match(keys, "h", "v"),
        VF=sql.Identifier(VALID_FROM),
    )


def close_previous(schema: str, history: str, keys: Sequence[str]) -> sql.Composed:
    """The version before a new one ends where the new one starts."""
    return sql.SQL(
        "UPDATE {h} h SET {VT} = v.{VF}, {CUR} = FALSE FROM {v} v WHERE {ends} "
        "AND {k} AND h.{VF} = v._p_from"
    ).format(
        h=_ident(schema, history),
        v=sql.Identifier(VERSIONS),
        ends=_ENDS_PREVIOUS,
        k=_keys_match(keys, "h", "v"),
        VF=sql.Identifier(VALID_FROM),
        VT=sql.Identifier(VALID_TO),
        CUR=sql.Identifier(IS_CURRENT),
    )


def insert_versions(
    schema: str,
    history: str,
    source: sql.Composable,
    columns: Sequence[str],
    keys: Sequence[str],
) -> sql.Composed:
    """New versions; each ends where the chain continued after it (open if nothing did)."""
    ends = sql.SQL("CASE WHEN v._p_to > v.{VF} THEN v._p_to ELSE v._next_from END").format(
        VF=sql.Identifier(VALID_FROM)
    )
    return sql.SQL(
        "INSERT INTO {h} ({cols}, {VF}, {VT}, {CUR}) "
        "SELECT {ncols}, v.{VF}, {ends}, ({ends}) IS NULL "
        "FROM {v} v JOIN (SELECT * FROM {source}) n ON {vn} WHERE {new}"
    ).format(
        h=_ident(schema, history),
        cols=_cols(columns),
        ncols=_cols(columns, "n"),
        ends=ends,
        v=sql.Identifier(VERSIONS),
        source=source,
        vn=_keys_match(keys, "v", "n"),
        new=_NEW_VERSION,
        VF=sql.Identifier(VALID_FROM),
        VT=sql.Identifier(VALID_TO),
        CUR=sql.Identifier(IS_CURRENT),
    )


def close_retired(
    schema: str, history: str, table: str, keys: Sequence[str], deleted_at: str | None
) -> sql.Composed:
    """After ACTIVATE_VERSION: open versions of keys no longer live in the table are closed."""
    live: sql.Composable = sql.SQL("")
    if deleted_at is not None:
        live = sql.SQL(" AND t.{} IS NULL").format(sql.Identifier(deleted_at))
    return sql.SQL(
        "UPDATE {h} h SET {VT} = GREATEST(h.{VF}, transaction_timestamp()), {CUR} = FALSE "
        "WHERE h.{VT} IS NULL AND NOT EXISTS (SELECT 1 FROM {t} t WHERE {k}{live})"
    ).format(
        h=_ident(schema, history),
        t=_ident(schema, table),
        k=_keys_match(keys, "t", "h"),
        live=live,
        VF=sql.Identifier(VALID_FROM),
        VT=sql.Identifier(VALID_TO),
        CUR=sql.Identifier(IS_CURRENT),
    )
