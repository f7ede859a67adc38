"""Goals (active and inactive) and each goal's result over its own period."""

from __future__ import annotations

import datetime as dt
import typing as t

from typing_extensions import override

from tap_pipedrive.streams.bases import PartitionedStream, PerParentStream, RecordsUnderKeyStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class GoalsStream(PartitionedStream, RecordsUnderKeyStream):
    """``/goals/find`` lists active goals unless asked for the others: both are read."""

    name = "goals"
    refreshed_on_interval = True
    path = "/api/v1/goals/find"
    records_key = "goals"
    partition_key = "is_active"
    partition_values = ("true", "false")
    carried_keys = ("id", "duration")  # for goal_results

    @override
    def get_child_context(
        self, record: dict[str, t.Any], context: Context | None
    ) -> dict[str, t.Any]:
        duration = record.get("duration") or {}
        year = dt.datetime.now(dt.UTC).year
        return {
            "id": record["id"],
            "period_start": duration.get("start") or f"{year}-01-01",
            "period_end": duration.get("end") or f"{year}-12-31",
        }


class GoalResultsStream(PerParentStream):
    """A goal's progress over its whole period (one request per goal)."""

    name = "goal_results"
    path = "/api/v1/goals/{id}/results"
    parent_stream_type = GoalsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("goal_id", "period_start", "period_end")
    paginated = False
    parent_column = "goal_id"

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        params["period.start"] = (context or {}).get("period_start")
        params["period.end"] = (context or {}).get("period_end")
        return params

    @override
    def post_process(self, row: t.Any, context: Context | None = None) -> dict[str, t.Any] | None:
        if isinstance(row, dict):
            row.pop("goal", None)
            row["period_start"] = (context or {}).get("period_start")
            row["period_end"] = (context or {}).get("period_end")
        return super().post_process(row, context)
