"""History mode: every version of a stream's records in ``<table>_history``, beside the table.

For each stream named in the ``history_streams`` setting (or every stream with ``"*"``), the
target keeps a table ``<table>_history``: the stream's columns plus ``_valid_from``
(timestamptz), ``_valid_to`` (timestamptz, NULL for the current version) and ``_is_current``
(boolean, true exactly when ``_valid_to`` is NULL); primary key (the stream's key,
``_valid_from``). It is a post-load expansion (:mod:`.post_load`): a batch's versions are
written in the batch's own transaction, so a crash leaves no gap and no duplicate.

The rules, for every record (a stream in history mode never has two records of one key in a
batch: the second starts the next batch, so versions never depend on where batches end):

- ``_valid_from`` is the record's replication-key value when the stream declares one
  (``bookmark_properties`` of its SCHEMA message) and it is a date-time (or date) column with a
  value; otherwise the load time (the batch transaction's start).
- A version is written only when the record's content differs from the version in effect at
  its ``_valid_from``: every column of the batch counts except the Singer metadata (``_sdc_*``).
- The version before the new one ends at the new one's ``_valid_from`` (``_valid_to``,
  ``_is_current`` false).
- Out of order (older than the current version): the version is inserted into its place in the
  chain: the version it falls in ends at its ``_valid_from``, and it ends where the next one
  starts. An as-of query at any time then gives what the source said was true at that time.
- Same instant (a ``_valid_from`` equal to an existing version's): the later record in the
  stream replaces that version's content.
- Deletes close the open version: a record with ``_sdc_deleted_at`` (soft or ``hard_delete``)
  at that time (the record's ``_valid_from`` if the column is not a timestamp), and rows retired
  by ACTIVATE_VERSION at the retirement's time. A record that comes back opens a new version.

Only ``load_method: upsert`` keeps history (an error at start otherwise). A stream named in the
setting without key properties is an error at its SCHEMA; with ``"*"`` such streams are loaded
without history (a warning says so). Schema evolution and renamed fields apply to the history
table as to the table: it is prepared by the same layout code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from singer_sdk import typing as th

from target_pipeboard_postgres import history_mode_sql as q
from target_pipeboard_postgres import identifiers
from target_pipeboard_postgres.errors import InvalidSettingError

if TYPE_CHECKING:
    from target_pipeboard_postgres.connector import TableLayout
    from target_pipeboard_postgres.post_load import LoadedBatch

LOGGER = logging.getLogger(__name__)

SETTING_NAME = "history_streams"
HISTORY_SUFFIX = "_history"
ALL_STREAMS = "*"
METADATA_PREFIX = "_sdc_"
DELETED_AT = "_sdc_deleted_at"
_TIME_TYPES = {"timestamptz", "timestamp", "date"}


def config_property() -> th.Property[Any]:
    """The ``history_streams`` property for the target's ``config_jsonschema``."""
    return th.Property(
        SETTING_NAME,
        th.ArrayType(th.StringType),
        description=(
            "Streams whose every version is kept in `<table>_history` (`_valid_from`, "
            '`_valid_to`, `_is_current`), or `["*"]` for all streams with keys. Needs '
            "`load_method: upsert`."
        ),
    )


def normalize(config: MutableMapping[str, Any]) -> None:
    """Before the SDK validates the config: a list given as text (an environment variable,
    ``'["deals"]'`` or ``deals,persons``) becomes a list."""
    value = config.get(SETTING_NAME)
    if isinstance(value, str):
        config[SETTING_NAME] = sorted(HistorySettings.from_config(value, "upsert").streams)


@dataclass(frozen=True)
class HistorySettings:
    """The ``history_streams`` setting: which streams keep history."""

    streams: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, value: Any, load_method: str | None) -> HistorySettings:
        """Parse the setting (a list of stream names, or its JSON text), naming what is wrong."""
        if value is None:
            return cls()
        if isinstance(value, str):
            text = value.strip()
            try:
                value = json.loads(text) if text.startswith("[") else text.split(",")
            except json.JSONDecodeError:
                raise InvalidSettingError(
                    SETTING_NAME, f"expected a list of stream names, got {value!r}"
                ) from None
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise InvalidSettingError(
                SETTING_NAME, f"expected a list of stream names, got {value!r}"
            )
        streams = frozenset(s.strip() for s in value if s.strip())
        if streams and (load_method or "upsert") != "upsert":
            raise InvalidSettingError(
                SETTING_NAME,
                f"history mode needs load_method `upsert`, got {load_method!r} "
                "(remove the streams from history_streams or load them with upsert)",
            )
        return cls(streams)

    @property
    def everything(self) -> bool:
        """Whether every stream with keys keeps history (``"*"``)."""
        return ALL_STREAMS in self.streams

    def named(self, stream: str) -> bool:
        """Whether the setting names ``stream`` itself (not only through ``"*"``)."""
        return stream in self.streams

    def applies(self, stream: str) -> bool:
        """Whether ``stream`` keeps history (if it has keys)."""
        return self.everything or stream in self.streams


def history_table(table: str) -> str:
    """The history table's name for a table."""
    return identifiers.derived_name(table, HISTORY_SUFFIX)


class HistoryMode:
    """The post-load expansion writing a stream's versions (see the module's rules)."""

    def __init__(
        self, layout: TableLayout, history: str, replication_key: str | None = None
    ) -> None:
        self.history = history
        self.keys = layout.key_columns
        column = layout.columns.get(replication_key) if replication_key else None
        time_typed = column is not None and layout.column_types.get(column) in _TIME_TYPES
        self.valid_from_column = column if time_typed else None

    def valid_from(self) -> sql.Composable:
        """``_valid_from`` of a batch row (alias ``n``)."""
        if self.valid_from_column is None:
            return sql.SQL("transaction_timestamp()")
        return sql.SQL("COALESCE({}::timestamptz, transaction_timestamp())").format(
            sql.Identifier("n", self.valid_from_column)
        )

    def after_load(self, conn: psycopg.Connection[Any], batch: LoadedBatch) -> None:
        """Write the batch's versions, in its transaction."""
        layout = batch.layout
        columns = list(batch.columns)
        content = {c: layout.column_types[c] for c in columns if not c.startswith(METADATA_PREFIX)}
        valid_from = self.valid_from()
        if DELETED_AT in columns:
            deleted: sql.Composable = sql.SQL("{} IS NOT NULL").format(
                sql.Identifier("n", DELETED_AT)
            )
            deleted_at: sql.Composable = valid_from
            if layout.column_types.get(DELETED_AT) in _TIME_TYPES:
                deleted_at = sql.SQL("COALESCE({}::timestamptz, {})").format(
                    sql.Identifier("n", DELETED_AT), valid_from
                )
        else:
            deleted, deleted_at = sql.SQL("FALSE"), valid_from
        schema, h, keys, source = batch.schema, self.history, self.keys, batch.source
        conn.execute(
            q.collect_versions(schema, h, source, keys, content, valid_from, deleted, deleted_at)
        )
        row = conn.execute(q.count_work()).fetchone()
        deletes, same_instant, ends_previous, new = row if row is not None else (0, 0, 0, 0)
        if deletes:
            conn.execute(q.close_deleted(schema, h, keys))
        if same_instant:
            conn.execute(q.replace_same_instant(schema, h, source, columns, keys))
        if ends_previous:
            conn.execute(q.close_previous(schema, h, keys))
        if new:
            conn.execute(q.insert_versions(schema, h, source, columns, keys))
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(q.VERSIONS)))

    def after_retire(
        self, conn: psycopg.Connection[Any], layout: TableLayout, table: str, version: int
    ) -> None:
        """Close the open versions of rows ACTIVATE_VERSION retired, in its transaction."""
        _ = version
        deleted_at = DELETED_AT if DELETED_AT in layout.column_types else None
        conn.execute(q.close_retired(layout.schema, self.history, table, self.keys, deleted_at))
