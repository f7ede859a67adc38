"""Stream shapes beyond a plain list, as attributes on :class:`PipedriveStream`:

- :class:`PartitionedStream`: one list read per value of a parameter (mail folders) or per path
  (live and archived projects), each a partition of the stream's state.
- :class:`PerParentStream`: one request per record of a parent stream (``/roles/{id}/...``);
  an object answer is one record, a list answer is its items; the parent's id is added.
- :class:`ChildRowsStream`: rows from an array of the parent's records (no request at all),
  sent as the complete set of each parent's children (see ``x-replace-children-of`` in the
  target's README): a parent whose array is empty is sent as one row marked deleted.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from typing_extensions import override

from tap_pipedrive.client import DELETED_AT, PipedriveStream
from tap_pipedrive.pagination import response_body
from tap_pipedrive.resilience import GoneError
from tap_pipedrive.sdk_seam import sync_children

if t.TYPE_CHECKING:
    import requests
    from singer_sdk import Stream
    from singer_sdk.helpers.types import Context

#: Parent records whose children are sent in one child sync.
CHILD_BATCH = 500
REPLACE_CHILDREN_OF = "x-replace-children-of"


class PartitionedStream(PipedriveStream):
    """One read per partition: ``{partition_key: value}`` sent as a query parameter, or the
    path of ``partition_paths[value]`` when given."""

    partition_key: t.ClassVar[str]
    partition_values: t.ClassVar[tuple[t.Any, ...]]
    partition_paths: t.ClassVar[dict[t.Any, str] | None] = None

    @property
    @override
    def partitions(self) -> list[dict[str, t.Any]] | None:
        return [{self.partition_key: value} for value in self.partition_values]

    @override
    def refresh_parts(self) -> tuple[str, ...]:
        """On an interval, each partition is a re-read of its own (mail folders, active and
        inactive goals, live and archived projects): one per run."""
        if not self.refreshed_on_interval:
            return ()
        return tuple(str(v) for v in self.partition_values)

    @override
    def endpoint_for(self, context: Context | None) -> str:
        if self.partition_paths is not None and context:
            return self.partition_paths[context[self.partition_key]]
        return super().endpoint_for(context)

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        if self.partition_paths is None and context:
            params[self.partition_key] = context[self.partition_key]
        return params


class RecordsUnderKeyStream(PipedriveStream):
    """A list answered as ``{"data": {records_key: [...]}}`` (``/goals/find``)."""

    records_key: t.ClassVar[str]
    paginated = False
    deleted_flags = ()

    @override
    def parse_response(self, response: requests.Response) -> t.Iterable[dict[str, t.Any]]:
        data = response_body(response).get("data") or {}
        rows = data.get(self.records_key) or []
        self.api.metrics.records_extracted.labels(self.name).inc(len(rows))
        return list(rows)


class PerParentStream(PipedriveStream):
    """Requests ``path`` (with ``{id}``, or with the id as ``parent_param``) once per parent
    record. A parent gone meanwhile (404/410) has no rows.

    With ``replaces_children``, the rows of one parent are its complete set, keyed by the
    parent's id and the position (``x-replace-children-of``, as :class:`ChildRowsStream`): a
    parent read again whose set is now empty is sent as one row marked deleted, so the target
    retires what it had."""

    @classmethod
    def table(cls, *rows: tuple[t.Any, ...]) -> dict[str, type[PerParentStream]]:
        """Per-parent streams as data, one row each: (stream, parent stream, primary keys[,
        paginated]). The path is the parent's, the parent's id and the stream name's last word
        (``role_settings`` of roles: ``/api/v1/roles/{id}/settings``); a first key other than
        ``id`` is the parent's id, added to each record."""
        types: dict[str, type[PerParentStream]] = {}
        for name, parent, keys, *paginated in rows:
            types[name] = cls.kind(
                name,
                path=f"{parent.path}/{{id}}/{name.rsplit('_', 1)[-1]}",
                parent_stream_type=parent,
                primary_keys=keys,
                parent_column=None if keys[0] == "id" else keys[0],
                paginated=paginated[0] if paginated else True,
            )
        return types

    @classmethod
    def child_sets(cls, *rows: tuple[t.Any, ...]) -> dict[str, type[PerParentStream]]:
        """Per-parent child sets as data, one row each: (stream, parent stream, the column of
        the parent's id, path[, other attributes]); each keyed by the parent's id and the
        item's position, each changed parent's rows replacing its earlier ones."""
        types: dict[str, type[PerParentStream]] = {}
        for name, parent, column, path, *attributes in rows:
            types[name] = cls.kind(
                name,
                path=path,
                parent_stream_type=parent,
                primary_keys=(column, "position"),
                parent_column=column,
                replaces_children=True,
                **(attributes[0] if attributes else {}),
            )
        return types

    #: Column of the parent's id added to each record (when the API leaves it out).
    parent_column: t.ClassVar[str | None] = None
    #: Query parameter carrying the parent's id, for a path without ``{id}``.
    parent_param: t.ClassVar[str | None] = None
    replaces_children: t.ClassVar[bool] = False
    state_partitioning_keys: t.ClassVar[list[str]] = []
    deleted_flags: t.ClassVar[tuple[tuple[str, t.Any], ...]] = ()

    @override
    def _build_schema(self, base: dict[str, t.Any]) -> dict[str, t.Any]:
        schema = super()._build_schema(base)
        if self.replaces_children:
            schema[REPLACE_CHILDREN_OF] = [self.parent_column]
        return schema

    @override
    def restore_schema_annotations(self, schema: dict[str, t.Any]) -> None:
        super().restore_schema_annotations(schema)
        if self.replaces_children:
            schema[REPLACE_CHILDREN_OF] = [self.parent_column]

    @override
    def get_url(self, context: Context | None) -> str:
        ident = str((context or {}).get("id", ""))
        return f"{self.url_base}{self.endpoint_for(context).replace('{id}', ident)}"

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        if self.parent_param is not None:
            params[self.parent_param] = (context or {}).get("id")
        return params

    @override
    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        ident = (context or {}).get("id")
        if ident is None:
            return  # a context for other children of the parent (a batch of child rows)
        position = 0
        try:
            for row in super().get_records(context):
                if self.replaces_children and isinstance(row, dict):
                    row["position"] = position
                    row[DELETED_AT] = None
                position += 1
                yield row
        except GoneError:
            self.logger.info("%s: parent %s is gone (404), no rows", self.name, ident)
            return
        if self.replaces_children and position == 0 and (context or {}).get("mark_empty"):
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            yield {str(self.parent_column): ident, "position": 0, DELETED_AT: stamp}

    @property
    def _typed_pages(self) -> None:
        # Plain JSON rows: the parent's id is added to each (see post_process).
        return None

    @override
    def post_process(self, row: t.Any, context: Context | None = None) -> dict[str, t.Any] | None:
        deleted = row.get(DELETED_AT) if isinstance(row, dict) else None
        if self.parent_column is not None and isinstance(row, dict):
            row[self.parent_column] = (context or {}).get("id")
        record = super().post_process(row, context)
        if record is not None and deleted is not None:
            record[DELETED_AT] = deleted  # an empty set's marker
        return record


class ChildRowsStream(PipedriveStream):
    """Rows of ``array`` of each parent record, keyed by the parent's key and position."""

    @classmethod
    def table(cls, *rows: tuple[t.Any, ...]) -> dict[str, type[ChildRowsStream]]:
        """Child-row streams as data, one row each: (stream, parent stream, the parents' array,
        the column of the parent's id[, the column of a scalar item]); each keyed by the
        parent's id and the item's position."""
        types: dict[str, type[ChildRowsStream]] = {}
        for name, parent, array, column, *value in rows:
            types[name] = cls.kind(
                name,
                parent_stream_type=parent,
                primary_keys=(column, "position"),
                array=array,
                parent_column=column,
                value_column=value[0] if value else None,
            )
        return types

    #: The parent records' property holding the children (an array, or one object).
    array: t.ClassVar[str]
    #: The child rows' column for the parent's ``id``.
    parent_column: t.ClassVar[str]
    #: For arrays of scalars: the column of the value.
    value_column: t.ClassVar[str | None] = None
    state_partitioning_keys: t.ClassVar[list[str]] = []
    deleted_flags = ()

    @property
    def parent_keys(self) -> tuple[str, ...]:
        """The key of a child set: the primary key without the position."""
        return tuple(self.primary_keys[:-1])

    @override
    def _build_schema(self, base: dict[str, t.Any]) -> dict[str, t.Any]:
        schema = super()._build_schema(base)
        schema[REPLACE_CHILDREN_OF] = list(self.parent_keys)
        return schema

    @override
    def restore_schema_annotations(self, schema: dict[str, t.Any]) -> None:
        super().restore_schema_annotations(schema)
        schema[REPLACE_CHILDREN_OF] = list(self.parent_keys)

    def rows_of(
        self, parent: dict[str, t.Any], keys: dict[str, t.Any], *, mark_empty: bool = True
    ) -> list[dict[str, t.Any]]:
        """The complete child set of one parent (a deleted marker row when it is empty and
        ``mark_empty``: a first read has no earlier children to retire)."""
        items = parent.get(self.array)
        if isinstance(items, dict):
            items = [items]
        rows: list[dict[str, t.Any]] = []
        for position, item in enumerate(items or ()):
            if isinstance(item, dict):
                row = {**item, **keys, "position": position, DELETED_AT: None}
            else:
                row = {**keys, "position": position, self.value_column or "value": item}
                row[DELETED_AT] = None
            rows.append(row)
        if not rows and mark_empty:
            # The parent's own update time (when it lost its last child, or later), else now.
            stamp = parent.get("update_time") or dt.datetime.now(dt.UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            rows.append({**keys, "position": 0, DELETED_AT: stamp})
        return rows

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        #: The parents of the batch being synced, handed over by the parent stream (they are not
        #: put in the context, which the SDK logs with every child sync).
        self.parents: list[dict[str, t.Any]] = []

    @override
    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        mark_empty = bool((context or {}).get("mark_empty", True))
        parents, self.parents = self.parents, []
        for parent in parents:
            keys = {self.parent_column: parent.get("id")}
            yield from self.rows_of(parent, keys, mark_empty=mark_empty)

    @property
    @override
    def emit_activate_version_messages(self) -> bool:
        # Children are retired per parent (child sets), not by table versions.
        return False

    @override
    def post_process(self, row: t.Any, context: Context | None = None) -> dict[str, t.Any] | None:
        self._keep_selected(row)
        return dict(row)


class ChildRowsParent(PipedriveStream):
    """A parent of :class:`ChildRowsStream` streams: its records' arrays are handed to the
    children in batches of :data:`CHILD_BATCH` parents (one child sync per batch).

    A parent class carries ``id`` and the arrays (``carried_keys``), so the children get them
    even when the parent stream itself or those properties are not selected."""

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending_parents: list[dict[str, t.Any]] = []
        self._mark_empty = False
        self._batches = 0

    def _child_rows_wanted(self) -> list[ChildRowsStream]:
        return [c for c in self.child_streams if isinstance(c, ChildRowsStream) and c.selected]

    def _per_record_wanted(self) -> bool:
        return any(
            isinstance(c, PerParentStream) and (c.selected or c.has_selected_descendents)
            for c in self.child_streams
        )

    def per_record_context(
        self, record: dict[str, t.Any], context: Context | None
    ) -> dict[str, t.Any] | None:
        """The context of one record's per-record children (none for a deleted record)."""
        if record.get(DELETED_AT) or record.get("id") is None:
            return None
        return {"id": record["id"], "mark_empty": self.reads_changes(context)}

    def carry_for_children(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        """What of a record the children need (its id and their arrays)."""
        keep = {"id": record.get("id"), "update_time": record.get("update_time")}
        for child in self._child_rows_wanted():
            keep[child.array] = record.get(child.array)
        return keep

    @override
    def generate_child_contexts(
        self, record: dict[str, t.Any], context: Context | None
    ) -> t.Iterable[Context | None]:
        if self._per_record_wanted():
            own = self.per_record_context(record, context)
            if own is not None:
                yield own
        if not self._child_rows_wanted():
            return
        self._pending_parents.append(self.carry_for_children(record))
        self._mark_empty = self._mark_empty or self.reads_changes(context)
        if len(self._pending_parents) >= CHILD_BATCH:
            yield self._take_batch()

    def reads_changes(self, context: Context | None) -> bool:
        """Whether parents read now may have had children before: not on the first read of an
        incremental stream (no bookmark), so that read sends no empty-set markers."""
        since = getattr(self, "updated_since", None)
        return since is None or self.reconciling or since(context) is not None

    def _take_batch(self) -> dict[str, t.Any]:
        batch, self._pending_parents = self._pending_parents, []
        mark_empty, self._mark_empty = self._mark_empty, False
        for child in self._child_rows_wanted():
            child.parents = batch
        self._batches += 1
        return {"parent_batch": self._batches, "mark_empty": mark_empty}

    def send_pending_children(self) -> None:
        """Sync the children of the parents read since the last batch."""
        if self._pending_parents:
            sync_children(self, self._take_batch())

    @override
    def finish_full_read(self) -> None:
        self.send_pending_children()
        super().finish_full_read()

    @override
    def syncs_child(self, child: Stream, context: Context | None) -> bool:
        # A batch of child rows goes to the child-row streams, a record's id to the per-record
        # streams: each child is synced only with the contexts meant for it.
        return context_for(child, context)

    @override
    def before_state_message(self) -> None:
        # A bookmark never passes a parent whose children are still pending: they are sent
        # first (also when a run stops early, e.g. at its budget or record limit).
        self.send_pending_children()


def context_for(child: t.Any, context: Context | None) -> bool:
    """Whether a child sync context is meant for ``child``: a batch of parents for the child
    row streams, one record's id for the per-record streams, anything else for the rest."""
    ctx = context or {}
    if isinstance(child, ChildRowsStream):
        return "parent_batch" in ctx
    if isinstance(child, PerParentStream):
        return "id" in ctx
    return "parent_batch" not in ctx and "id" not in ctx
