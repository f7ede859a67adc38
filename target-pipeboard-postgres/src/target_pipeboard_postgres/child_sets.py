"""Child sets: streams whose records are the complete set of children of each parent sent.

A stream whose SCHEMA message carries ``"x-replace-children-of": ["person_id"]`` (the parent's
key properties, which must be part of the stream's key) promises that, for every parent it sends
a record of in a batch, the batch holds all of that parent's current children. Once the batch is
merged, the parent's rows whose key is not in the batch are retired: soft-deleted
(``_sdc_deleted_at`` set), or deleted with ``hard_delete``. So a removed e-mail address of a
person disappears at the next run that sends the person. A parent left with no children is sent
as one record marked deleted (``_sdc_deleted_at`` set), which retires the rest too.

The SQL is built here and executed in the batch's own transaction, as a post-load expansion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from target_pipeboard_postgres.connector import TableLayout
    from target_pipeboard_postgres.post_load import LoadedBatch

ANNOTATION = "x-replace-children-of"
DELETED_AT = "_sdc_deleted_at"


def parent_properties(schema: Mapping[str, Any], key_properties: Sequence[str]) -> list[str]:
    """The parent key properties a stream's schema declares ([] if it is no child set).

    Raises ValueError naming the problem when the annotation is not a list of key properties.
    """
    declared = schema.get(ANNOTATION)
    if declared is None:
        return []
    if (
        not isinstance(declared, list)
        or not declared
        or not all(isinstance(p, str) and p in key_properties for p in declared)
    ):
        msg = (
            f"{ANNOTATION} must be a non-empty list of the stream's key properties "
            f"({', '.join(key_properties) or 'none'}), got {declared!r}"
        )
        raise ValueError(msg)
    return list(declared)


def retire_sql(
    schema: str,
    table: str,
    stage: sql.Composable,
    parent_columns: Sequence[str],
    key_columns: Sequence[str],
    *,
    hard_delete: bool,
) -> sql.Composed:
    """Retire the rows of the staged parents whose key the stage does not hold."""
    target = sql.Identifier(schema, table)
    parents = sql.SQL(", ").join(sql.Identifier("t", c) for c in parent_columns)
    staged_parents = sql.SQL(", ").join(sql.Identifier(c) for c in parent_columns)
    same_key = sql.SQL(" AND ").join(
        sql.SQL("{} IS NOT DISTINCT FROM {}").format(sql.Identifier("s", c), sql.Identifier("t", c))
        for c in key_columns
    )
    where = sql.SQL(
        "({parents}) IN (SELECT DISTINCT {staged} FROM {stage}) "
        "AND NOT EXISTS (SELECT 1 FROM {stage} AS s WHERE {same})"
    ).format(parents=parents, staged=staged_parents, stage=stage, same=same_key)
    if hard_delete:
        return sql.SQL("DELETE FROM {t} AS t WHERE {w}").format(t=target, w=where)
    return sql.SQL("UPDATE {t} AS t SET {d} = now() WHERE {d} IS NULL AND {w}").format(
        t=target, d=sql.Identifier(DELETED_AT), w=where
    )


class ChildSetRetirement:
    """The post-load expansion retiring a child set's missing children (see :mod:`.post_load`).

    A child set's batches are always staged (the sink asks for de-duplication), so
    ``batch.source`` is the staging table holding exactly the batch's keys.
    """

    def __init__(self, parent_properties: Sequence[str], *, hard_delete: bool) -> None:
        self.parent_properties = list(parent_properties)
        self.hard_delete = hard_delete

    def after_load(self, conn: psycopg.Connection[Any], batch: LoadedBatch) -> None:
        """Retire the staged parents' rows whose key the batch does not hold."""
        if not batch.upserted:
            return
        layout = batch.layout
        conn.execute(
            retire_sql(
                batch.schema,
                batch.table,
                batch.source,
                [layout.columns[p] for p in self.parent_properties],
                layout.key_columns,
                hard_delete=self.hard_delete,
            )
        )

    def after_retire(
        self, conn: psycopg.Connection[Any], layout: TableLayout, table: str, version: int
    ) -> None:
        """Nothing: ACTIVATE_VERSION retires whole versions, children included."""
        _ = conn, layout, table, version
