"""Post-load expansions: work done inside a batch's transaction, once its rows are in place.

An expansion (stage history's queue, history mode) sees each loaded batch through
:class:`LoadedBatch` and runs its statements on the batch's connection, in the batch's open
transaction: what it writes commits with the batch or not at all, so a crash between the load
and the expansion cannot lose or repeat anything. The load path knows nothing else about it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import psycopg
from psycopg import sql as pgsql

if TYPE_CHECKING:
    from target_pipeboard_postgres.connector import TableLayout


@dataclass
class LoadedBatch:
    """One batch, loaded but not yet committed."""

    stream: str
    layout: TableLayout
    table: str  # the table loaded (the stream's table, or an `overwrite` shadow)
    columns: Sequence[str]  # the batch's columns
    upserted: bool  # rows were upserted by key (else appended)
    _source: Callable[[], pgsql.Composable] = field(repr=False)

    @property
    def schema(self) -> str:
        """The Postgres schema of the table."""
        return self.layout.schema

    @cached_property
    def source(self) -> pgsql.Composable:
        """A relation (usable after FROM) holding the batch's rows, one per key when upserted.

        The staging table when there was one (rows marked deleted included), else the table's
        rows with the batch's keys, or the whole table for appends.
        """
        return self._source()


class PostLoadExpansion(Protocol):
    """Something derived from each batch inside its transaction."""

    def after_load(self, conn: psycopg.Connection[Any], batch: LoadedBatch) -> None:
        """Runs in the batch's transaction once its rows are in ``batch.table``."""

    def after_retire(
        self, conn: psycopg.Connection[Any], layout: TableLayout, table: str, version: int
    ) -> None:
        """Runs in the ACTIVATE_VERSION transaction once rows of older versions are retired."""
