"""What the history streams share: list records, then read a history endpoint per record.

``deal_stage_changes`` (:mod:`tap_pipedrive.streams.stage_changes`) and the changelog streams
(:mod:`tap_pipedrive.streams.changelogs`) list deals, persons or organizations and read one
history endpoint (``/v1/deals/{id}/changelog``, ``/flow`` ...) per listed record. Their requests
take the path every stream's do: the SDK's ``request_records`` with this stream's paginator,
``get_url_params``, ``request_decorator`` and ``validate_response``; the only difference is
that a page comes out as one item (its position and its items, see :meth:`HistoryStream.pages`)
because a reader needs each page's position to resume a list, and a history's pages are read
whole. Their checkpoints go through :meth:`PipedriveStream.write_checkpoint`.
"""

from __future__ import annotations

import abc
import datetime as dt
import typing as t
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

import requests
from typing_extensions import override

from tap_pipedrive.backfill import MAX_BACKFILL_RETRIES, BackfillProgress
from tap_pipedrive.client import PipedriveStream
from tap_pipedrive.pagination import EnvelopePaginator, response_body
from tap_pipedrive.session import tag_of
from tap_pipedrive.stage_plan import DealHead, IncrementalPlan, StageHistoryError, stage_time

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context
    from singer_sdk.pagination import BaseAPIPaginator

#: The incremental mode's state key (the name is the stage history's, the first such stream).
STATE_KEY_INCREMENTAL = "stage_changes"
#: The backfill's state key.
STATE_KEY_BACKFILL = "backfill"
#: A first incremental run reads the histories of records active this many days before the
#: newest update (``stage_history_initial_days``).
INITIAL_DAYS = 30

#: Where a request's page position goes: v2 lists and changelogs take a cursor, the flow an
#: offset (``start``).
_POSITION_PARAMS = ("cursor", "start")


def page_items(body: Mapping[str, t.Any]) -> list[dict[str, t.Any]]:
    """A page's ``data`` list; ``null`` data (the flow's quirk) is an empty page."""
    data = body.get("data")
    if data is None:
        return []
    if not isinstance(data, list):
        msg = f"'data' is a {type(data).__name__}, expected a list"
        raise StageHistoryError(msg)
    return data


def sent_position(response: requests.Response) -> str | int | None:
    """The page position a request was sent with (``None``: the first page)."""
    query = parse_qs(urlsplit(str(response.request.url)).query)
    if "cursor" in query:
        return query["cursor"][0]
    if "start" in query:
        return int(query["start"][0])
    return None


class BudgetStop(Exception):  # control flow, never leaves the stream
    """A read reached the run's share of the daily budget."""

    def __init__(self, cost: int) -> None:
        super().__init__(cost)
        self.cost = cost  # what the next record would have needed


class HistoryStream(PipedriveStream):
    """A stream that lists records and reads a history endpoint per record.

    A request's context names its ``endpoint`` (a path template; ``{id}`` is a history
    endpoint, filled from ``record_id``), its ``query`` and the list position to ``start`` at.
    """

    replication_key = "changed_at"
    is_sorted = False
    deleted_flags = ()
    #: What one history belongs to, for messages ("deal", "person", "organization").
    entity: t.ClassVar[str]
    #: The history endpoint read per record, for messages (``changelog`` or ``flow``).
    source = "changelog"
    #: History requests of this run (one per page).
    history_calls = 0

    # A change never disappears: no reconciliation, never ACTIVATE_VERSION.
    @property
    @override
    def replication_method(self) -> str:
        return "INCREMENTAL"

    @property
    @override
    def emit_activate_version_messages(self) -> bool:
        return False

    # -- requests ----------------------------------------------------------------------------

    @override
    def endpoint_for(self, context: Context | None) -> str:
        return str((context or {}).get("endpoint") or self.path)

    @override
    def get_url(self, context: Context | None) -> str:
        endpoint = self.endpoint_for(context)
        ident = (context or {}).get("record_id")
        if ident is not None:
            endpoint = endpoint.replace("{id}", str(int(ident)))
        return f"{self.url_base}{endpoint}"

    @override
    def get_new_paginator(self) -> BaseAPIPaginator[t.Any]:
        return EnvelopePaginator()

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        context = context or {}
        params = dict(context.get("query") or {})
        position = next_page_token if next_page_token is not None else context.get("start")
        if position is not None:
            params[_POSITION_PARAMS[isinstance(position, int)]] = position
        return params

    @override
    def validate_response(self, response: requests.Response) -> None:
        # A history answer with ``null`` data is not retried: the real flow endpoint sends it
        # for some deals every time. It reads as "no changes" (a deal whose record says it
        # moved is then held back for the next run); list pages must carry a list.
        listing = "{id}" not in tag_of(response.request).endpoint
        self.api.check_response(response, validate=self.validate_body if listing else None)

    @override
    def parse_response(self, response: requests.Response) -> t.Iterable[dict[str, t.Any]]:
        # One item per page (so an empty page is an item too): where it starts, what it holds.
        self._extracted_at = dt.datetime.now(dt.UTC)
        return [{"position": sent_position(response), "items": page_items(response_body(response))}]

    def pages(
        self,
        endpoint: str,
        query: Mapping[str, t.Any],
        *,
        record_id: int | None = None,
        start: str | None = None,
    ) -> t.Iterator[tuple[t.Any, list[dict[str, t.Any]]]]:
        """(position of the page, its items) for each page of ``endpoint``.

        Args:
            endpoint: the path template.
            query: the query parameters of every page.
            record_id: the record whose history ``endpoint`` is (``{id}``).
            start: a saved list position to resume at (``None``: the first page).
        """
        context: dict[str, t.Any] = {"endpoint": endpoint, "query": dict(query)}
        if record_id is not None:
            context["record_id"] = record_id
        if start is not None:
            context["start"] = start
        for page in self.request_records(context):
            if record_id is not None:
                self.history_calls += 1
            yield page["position"], page["items"]

    # -- the budget --------------------------------------------------------------------------

    def cost_of(self, endpoint: str) -> int:
        """Tokens one GET of ``endpoint`` costs."""
        return self.api.cost_of("GET", endpoint)

    def room_for(self, cost: int) -> bool:
        """Whether this run may still spend ``cost`` tokens (its budget share, the day's)."""
        budget = self.api.budget
        cap = budget.run_cap
        if cap is not None and budget.spent_this_run + cost > cap:
            return False
        return budget.remaining is None or budget.remaining >= cost

    def stop_message(self, label: str, cost: int, where: str) -> str:
        """Why a run stops before the next record's ``cost`` tokens, and where it resumes."""
        budget = self.api.budget
        cap = budget.run_cap
        if cap is not None and budget.spent_this_run + cost > cap:
            reason = (
                f"max_budget_share={self.config.get('max_budget_share', 1.0)} of the daily "
                f"budget ({budget.daily_limit} tokens) lets this run spend {cap}; it has spent "
                f"{budget.spent_this_run} and the next {self.entity} needs up to {cost}"
            )
        else:
            reason = (
                f"Pipedrive reports {budget.remaining} tokens left today and the next "
                f"{self.entity} needs up to {cost}"
            )
        return (
            f"{label}: stopping cleanly: {reason}. State saved; the next run continues "
            f"where this one stopped ({where})."
        )

    def start_plan(
        self,
        plan_type: type[IncrementalPlan],
        newest: t.Callable[[dict[str, t.Any]], DealHead | None],
    ) -> IncrementalPlan:
        """The incremental mode's plan from the state; on a first run (no state), its gate.

        A first run reads recent activity only: from ``stage_history_initial_days`` before the
        newest update (``newest`` lists it, given the query of a one-record list), not before
        ``start_date``. A backfill kept in the same state reads each record once: activity
        after it started may have come after it read the record, so it is this mode's to read.
        """
        start = self.config.get("start_date")
        start_date = stage_time(str(start)) if start else None
        plan = plan_type.from_state(self.stream_state, start_date)
        if self.stream_state.get(STATE_KEY_INCREMENTAL):
            return plan
        plan.gate = start_date
        days = self.config.get("stage_history_initial_days", INITIAL_DAYS)
        if days is not None:
            query = {"sort_by": "update_time", "sort_direction": "desc", "limit": 1}
            last = newest(query)
            if last is not None:
                gate = last.update_time - dt.timedelta(days=int(days))
                plan.gate = max(gate, start_date) if start_date else gate
        backfill_start = BackfillProgress.from_state(self.stream_state).activity_since
        if backfill_start and plan.gate is not None:
            plan.gate = min(plan.gate, stage_time(backfill_start))
        return plan

    def save_state(self, key: str, value: dict[str, t.Any]) -> None:
        """Keep ``value`` under ``key`` in the stream's state and write the state now."""
        self.stream_state[key] = value
        self.write_checkpoint()

    # -- the backfill: every record's history once, in id order, across runs ----------------

    @abc.abstractmethod
    def backfill_listing(
        self, cursors: Mapping[str, str | None]
    ) -> t.Iterator[tuple[str, str | None, DealHead]]:
        """(list path, its page's cursor, record) of every record in id order, each list
        resumed at its saved cursor."""

    @abc.abstractmethod
    def backfill_read(self, record: DealHead) -> tuple[str, list[dict[str, t.Any]]]:
        """(outcome, change records) of one record: ``done``, ``gone`` or ``held_back``."""

    @abc.abstractmethod
    def backfill_cost(self, *, list_page: bool) -> int:
        """Tokens the next record may cost (with the list page it may end, if ``list_page``)."""

    @abc.abstractmethod
    def backfill_count(self, progress: BackfillProgress) -> None:
        """Note the records' total and the newest update (``as_of``) in ``progress``."""

    def run_backfill(self, progress: BackfillProgress, label: str) -> t.Iterator[dict[str, t.Any]]:
        """One run of the backfill: the records held back by an earlier run, then the lists
        from where the last run stopped, until done or until the next record's cost does not
        fit the budget. The progress is saved after every record; ``label`` names the
        backfill in messages."""
        if progress.complete:
            # A job that runs "until done": once done, its runs cost nothing at all.
            self.logger.info(progress.complete_message())
            return
        progress.start_run(dt.datetime.now(dt.UTC))
        budget = self.api.budget
        spent_before, tokens_before = budget.spent_this_run, progress.tokens

        def save() -> None:
            progress.tokens = tokens_before + budget.spent_this_run - spent_before
            self.save_state(STATE_KEY_BACKFILL, progress.to_state())

        def read(
            record: DealHead, *, list_page: bool
        ) -> t.Generator[dict[str, t.Any], None, tuple[str, int]]:
            cost = self.backfill_cost(list_page=list_page)
            if not self.room_for(cost):
                raise BudgetStop(cost)
            before = budget.spent_this_run
            outcome, records = self.backfill_read(record)
            yield from records
            return outcome, budget.spent_this_run - before

        try:
            if progress.total is None and not progress.listed:
                self.backfill_count(progress)
            save()
            # Records held back by an earlier run first: the backfill is not done without them.
            for held in list(progress.held_back):
                record = DealHead.from_record(held)
                outcome, spent = yield from read(record, list_page=False)
                if progress.record_retry(record.id, spent, outcome):
                    self.logger.warning(
                        "%s %d: the %s still disagrees with the %s record after %d retries; "
                        "given up (listed under given_up in the backfill state)",
                        self.entity,
                        record.id,
                        self.source,
                        self.entity,
                        MAX_BACKFILL_RETRIES,
                    )
                save()
            if not progress.listed:
                for path, token, record in self.backfill_listing(progress.page_cursors):
                    if record.id <= progress.after_id:
                        continue
                    outcome, spent = yield from read(record, list_page=True)
                    progress.page_cursors[path] = token
                    progress.record_deal(record, spent, outcome)
                    save()
                progress.finish_listing(dt.datetime.now(dt.UTC))
            progress.finish(dt.datetime.now(dt.UTC))
        except BudgetStop as stop:
            self.logger.info(
                self.stop_message(label, stop.cost, f"after {self.entity} {progress.after_id}")
            )
        save()
        self.logger.info(progress.summary(budget.spent_this_run - spent_before, budget.run_cap))
