"""The Pipedrive tap: settings, discovery (custom fields from the account) and the run."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import math
import re
import typing as t
from collections.abc import MutableMapping
from functools import cached_property

from singer_sdk import Stream
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from typing_extensions import override

from tap_pipedrive.api import DEFAULT_API_URL, OPENAPI, PipedriveApi
from tap_pipedrive.auth import DEFAULT_TOKEN_URL
from tap_pipedrive.base_stream import PipedriveStream
from tap_pipedrive.change_feed import (
    DEFAULT_REFRESH_MINUTES,
    ChangeFeed,
    explain_with_events,
    plan_change_feed,
    plan_refresh,
)
from tap_pipedrive.custom_fields import (
    CustomField,
    keep_known_columns,
    plan_custom_fields,
    restore_annotations,
)
from tap_pipedrive.incremental import IncrementalStream
from tap_pipedrive.metrics import default_pipeline
from tap_pipedrive.output import OrjsonSingerWriter
from tap_pipedrive.sdk_seam import SeamTap, streams_built
from tap_pipedrive.streams import (
    FIELD_STREAM_TYPES,
    OPT_IN_STREAM_TYPES,
    STREAM_TYPES,
    FieldsStream,
)
from tap_pipedrive.streams.recents import RecentsRequest
from tap_pipedrive.streams.stage_changes import config_properties as stage_history_settings
from tap_pipedrive.webhooks.feed import STREAM_OBJECTS, poll_due, reader_for

COLUMN_MAP_KEY = "custom_field_columns"

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "api_token",
        th.StringType,
        secret=True,
        description="Pipedrive API token, sent in the x-api-token header (never in URLs).",
    ),
    th.Property(
        "client_id",
        th.StringType,
        description="OAuth app client id (with client_secret and "
        "refresh_token, instead of api_token).",
    ),
    th.Property("client_secret", th.StringType, secret=True, description="OAuth client secret."),
    th.Property(
        "refresh_token",
        th.StringType,
        secret=True,
        description="OAuth refresh token; access tokens are refreshed automatically and "
        "requests go to the api_domain Pipedrive returns.",
    ),
    th.Property(
        "oauth_token_url",
        th.StringType,
        default=DEFAULT_TOKEN_URL,
        description="OAuth token endpoint.",
    ),
    th.Property(
        "api_url",
        th.StringType,
        default=DEFAULT_API_URL,
        description="Base URL of the Pipedrive API (paths /api/v2/... and /api/v1/... hang off "
        "it).",
    ),
    th.Property(
        "company_domain",
        th.StringType,
        description="Company subdomain (<company_domain>.pipedrive.com); used as the API host "
        "when api_url is the default, and to name the account in Redis keys.",
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        description="Earliest update_time to extract on a first run (all history if unset).",
    ),
    th.Property(
        "request_timeout",
        th.IntegerType,
        default=300,
        description="Seconds to wait for a response before retrying.",
    ),
    th.Property("user_agent", th.StringType, description="User-Agent header of every request."),
    th.Property(
        "redis_url",
        th.StringType,
        secret=True,
        description="Redis URL; shares the burst limiter and token count between parallel "
        "runs for one account and caches dictionaries. Optional.",
    ),
    th.Property(
        "cache_ttl_seconds",
        th.IntegerType,
        default=3600,
        description="How long field definitions, users, pipelines and stages stay cached in "
        "Redis (0 disables the cache).",
    ),
    th.Property(
        "max_budget_share",
        th.NumberType,
        default=1.0,
        description="Share (0-1] of the daily token budget one run may spend before it stops "
        "cleanly with its state saved.",
    ),
    th.Property(
        "daily_token_budget",
        th.IntegerType,
        description="Daily token budget, if the API does not report it in "
        "x-daily-ratelimit-token-limit.",
    ),
    th.Property(
        "burst_window_seconds",
        th.NumberType,
        default=2,
        description="Length of the burst rate-limit window the x-ratelimit-limit applies to.",
    ),
    th.Property(
        "custom_field_names",
        th.StringType,
        default="readable",
        allowed_values=["readable", "hash"],
        description="Custom-field columns: 'readable' snake_case names, or the raw 40-character "
        "'hash' keys.",
    ),
    th.Property(
        "reconcile",
        th.BooleanType,
        default=False,
        description="Reconciliation run: read every stream in full and send ACTIVATE_VERSION so "
        "the target retires rows that vanished from Pipedrive.",
    ),
    th.Property(
        "use_recents",
        th.BooleanType,
        default=True,
        description="Cheap polling: an incremental run first asks /v1/recents (20 tokens) which "
        "item types changed and makes no request for the streams whose type did not; false "
        "polls every stream every run.",
    ),
    th.Property(
        "refresh_interval_minutes",
        th.IntegerType,
        default=DEFAULT_REFRESH_MINUTES,
        description="What neither /v1/recents nor the webhooks say changed (lead labels and "
        "sources, lead and note fields, currencies, goals, projects and their boards, phases, "
        "templates and tasks, roles, permission sets, call logs, mail threads) is re-read at "
        "most this often, one such list per run (mail threads one folder, goals and projects "
        "one part per run), the one read longest ago; with the Redis cache, each entity's field "
        "definitions are re-read on the same interval, sharing those re-reads (a new custom "
        "field becomes a column at the run after). 0 re-reads the lists every run.",
    ),
    th.Property(
        "include_archived_deals",
        th.BooleanType,
        default=True,
        description="Also read archived deals (flagged is_archived).",
    ),
    th.Property(
        "page_size",
        th.IntegerType,
        default=500,
        description="Records per request (the API maximum, 500, is the cheapest).",
    ),
    th.Property(
        "max_retries",
        th.IntegerType,
        default=8,
        description="Retries of a failed request (5xx, timeouts, connection errors, malformed "
        "bodies).",
    ),
    th.Property(
        "retry_initial_wait_seconds",
        th.NumberType,
        default=1.0,
        description="First retry wait; doubles per attempt, with full jitter.",
    ),
    th.Property(
        "retry_max_wait_seconds",
        th.NumberType,
        default=60.0,
        description="Longest wait between retries.",
    ),
    th.Property(
        "circuit_breaker_failures",
        th.IntegerType,
        default=5,
        description="Consecutive failed requests after which the run stops.",
    ),
    th.Property(
        "pushgateway_url",
        th.StringType,
        description="Prometheus Pushgateway to push the run's metrics to (job tap-pipedrive), "
        "also when the run fails.",
    ),
    th.Property(
        "metrics_pipeline",
        th.StringType,
        description="The `pipeline` label of the pushed metrics (their Pushgateway group). "
        "Default: `<environment>:<extractor>[:<state ID suffix>]` from the variables `meltano "
        "run` sets (MELTANO_ENVIRONMENT, MELTANO_EXTRACTOR_NAME, MELTANO_RUN_STATE_ID_SUFFIX), "
        "or `standalone` outside Meltano.",
    ),
    *stage_history_settings(),
    th.Property(
        "webhook_database_url",
        th.StringType,
        secret=True,
        description="Postgres URL of the webhook receiver's event log (`tap-pipedrive-webhooks "
        "serve`). When set, each run first turns the events stored since its bookmark into "
        "records: deletes and stage changes at zero tokens, changed records from the payload "
        "(or fetched by id, 100 per request).",
    ),
    th.Property(
        "webhook_poll_every_runs",
        th.IntegerType,
        default=72,
        description="Webhooks mode: every Nth run is the safety net (default 72: every 6 hours "
        "at a 5-minute schedule): one /v1/recents call lists what changed since the last one; "
        "streams whose every listed change a stored event holds make no request, the others "
        "poll (catching events Pipedrive dropped, e.g. while it banned the receiver), leads are "
        "read, and the lists on refresh_interval_minutes that are due. The runs between read "
        "only the stored events and cost no tokens but for payloads fetched by id. 1: every run.",
    ),
    th.Property(
        "webhook_schema",
        th.StringType,
        default="pipeboard_webhooks",
        description="Schema of the receiver's event log.",
    ),
    th.Property(
        "progress_interval_seconds",
        # Whole seconds: Meltano 4.4 cannot pass a `decimal` setting given as an environment
        # variable (it fails to write the plugin's config), and this one is set per deployment.
        th.IntegerType,
        default=30,
        description="Seconds between progress log lines of a long extraction (records so far, "
        "rate, and an ETA for reads in update-time order); 0 logs every page.",
    ),
).to_dict()


# A decimal number as written in an environment variable: 0.5, 60, .25, 1e-3 (no nan, inf, 1_000).
_NUMERIC_STRING = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def number_settings(schema: t.Mapping[str, t.Any]) -> tuple[str, ...]:
    """The settings of a config schema whose values are numbers (not integers)."""
    names = []
    for name, prop in schema["properties"].items():
        types = prop.get("type") or []
        types = [types] if isinstance(types, str) else list(types)
        if "number" in types and "string" not in types:
            names.append(name)
    return tuple(names)


def coerce_numbers(config: MutableMapping[str, t.Any], names: t.Iterable[str]) -> None:
    """Turn number settings given as numeric strings into numbers, in place.

    meltano.yml declares number settings `kind: string` (Meltano 4.4 cannot pass a `decimal`
    setting that comes from an environment variable; see scripts/meltano_settings.py), so
    Meltano passes them on as strings, as the SDK's own `--config=ENV` parsing does.
    """
    for name in names:
        value = config.get(name)
        if not isinstance(value, str):
            continue
        text = value.strip()
        number = float(text) if _NUMERIC_STRING.fullmatch(text) else math.nan
        if not math.isfinite(number):
            msg = f"Setting `{name}`: expected a number, got {value!r}"
            raise ConfigValidationError(msg, errors=[msg])
        config[name] = number


class TapPipedrive(SeamTap):
    """Pipedrive CRM → Singer."""

    name = "tap-pipedrive"
    config_jsonschema = CONFIG_SCHEMA
    message_writer_class = OrjsonSingerWriter

    def __init__(self, *args: t.Any, state: t.Any = None, **kwargs: t.Any) -> None:
        # Discovery needs the previous run's custom-field columns before the SDK loads state.
        self._initial_state: dict[str, t.Any] = state if isinstance(state, dict) else {}
        self._field_streams: dict[str, FieldsStream] = {}
        catalog = kwargs.get("catalog")
        if isinstance(catalog, dict):
            kwargs["catalog"] = self._keep_known_columns(catalog)
        super().__init__(*args, state=state, **kwargs)
        self.install_state_writer(self._before_state)
        #: What /v1/recents said at the start of the sync (None: not asked yet, or reconcile).
        self.change_feed: ChangeFeed | None = None

    @override
    def prepare_config(self, config: dict[str, t.Any]) -> None:
        # The one place config is coerced: after the SDK has merged files and environment
        # variables, before it checks the values against the schema.
        coerce_numbers(config, number_settings(self.config_jsonschema))

    def _before_state(self) -> None:
        self._settle_boundaries()
        # The records a state covers go out before it, even when an unchanged state is skipped.
        self._write_pending_records()

    def _write_pending_records(self) -> None:
        if isinstance(self.message_writer, OrjsonSingerWriter):
            self.message_writer.write_records()

    def _settle_boundaries(self) -> None:
        for stream in streams_built(self).values():
            if isinstance(stream, IncrementalStream):
                stream.settle_boundary()

    def _keep_known_columns(self, catalog: dict[str, t.Any]) -> dict[str, t.Any]:
        bookmarks = self._initial_state.get("bookmarks") or {}
        for entry in catalog.get("streams", []):
            known = (bookmarks.get(entry.get("tap_stream_id")) or {}).get(COLUMN_MAP_KEY)
            if known:
                keep_known_columns(entry, known)
        return catalog

    @cached_property
    def api(self) -> PipedriveApi:
        return PipedriveApi(self.config)

    def field_stream(self, entity: str) -> FieldsStream:
        if entity not in self._field_streams:
            cls = next(c for c in FIELD_STREAM_TYPES if c.entity == entity)
            self._field_streams[entity] = cls(self)
        return self._field_streams[entity]

    def custom_fields(self, stream_name: str, entity: str) -> list[CustomField]:
        """The custom fields of ``entity`` as columns of ``stream_name`` (earlier runs' names
        kept); leads carry the deal fields."""
        standard = set(OPENAPI.streams[stream_name]["schema"]["properties"]) | {"_sdc_deleted_at"}
        bookmarks = self._initial_state.get("bookmarks") or {}
        known = (bookmarks.get(stream_name) or {}).get(COLUMN_MAP_KEY) or {}
        return plan_custom_fields(
            self.field_stream(entity).definitions(),
            reserved=standard,
            known=known,
            raw_keys=self.config.get("custom_field_names") == "hash",
        )

    @property
    @override
    def catalog_dict(self) -> dict[str, t.Any]:
        catalog = super().catalog_dict
        for entry in catalog.get("streams", []):
            stream = self.streams.get(entry["tap_stream_id"])
            if stream is not None:
                restore_annotations(entry["schema"], stream.schema)
        return catalog

    @override
    def discover_streams(self) -> t.Sequence[Stream]:
        streams: list[Stream] = []
        for cls in STREAM_TYPES:
            entity = getattr(cls, "entity", None)
            if isinstance(entity, str) and issubclass(cls, FieldsStream):
                streams.append(self.field_stream(entity))
            else:
                stream = cls(self)
                if cls in OPT_IN_STREAM_TYPES:
                    stream.selected_by_default = False
                streams.append(stream)
        return streams

    def _remember_columns(self) -> None:
        """Keep each stream's hash -> column mapping in state for later runs."""
        for stream in self.streams.values():
            fields = getattr(stream, "custom_fields", None)
            if fields:
                mapping = dict(stream.stream_state.get(COLUMN_MAP_KEY) or {})
                mapping.update({f.key: f.column for f in fields})
                stream.stream_state[COLUMN_MAP_KEY] = mapping

    @override
    def around_sync(self, sync: t.Callable[[], None]) -> None:
        """State on a clean stop, metrics push on success and failure, around the SDK's sync."""
        metrics = self.api.metrics
        # Every page parses into thousands of new dicts, each a tick of the cyclic garbage
        # collector, whose full passes would walk everything start-up built (modules, schemas,
        # catalog) again and again: a tenth of a sync's CPU. Freezing keeps those passes to
        # the objects of the sync itself; records are freed by reference counting anyway.
        gc.freeze()
        try:
            self._remember_columns()
            self.change_feed = self._plan_change_feed()
            sync()
            metrics.mark_success()
        except Exception:
            # Every record emitted so far is covered by this state (bookmarks advance only with
            # emitted records), so the next run resumes here instead of starting over.
            self.state_writer.write_state(self.state)
            raise
        finally:
            gc.unfreeze()
            self._write_pending_records()
            self._push_metrics()
            self.api.close()

    def _plan_change_feed(self) -> ChangeFeed | None:
        """Ask /v1/recents which covered streams changed, and decide which streams on an
        interval are due (see change_feed); ``None`` on a reconciliation, which reads all."""
        if self.config.get("reconcile"):
            return None
        selected = [
            s
            for s in self.streams.values()
            if isinstance(s, PipedriveStream) and s.selected and s.parent_stream_type is None
        ]
        session = self.api.session
        log = logging.getLogger("tap-pipedrive")

        def fetch(since: dt.datetime, items: list[str]) -> dict[str, t.Any]:
            return RecentsRequest(self, since, items).fetch()

        def clock() -> dt.datetime | None:
            return session.first_answer_at

        webhooks = reader_for(self.config)
        polled = selected
        if webhooks is not None:
            # Webhooks mode: recents is the safety net of the runs that poll (see change_feed).
            polled = [s for s in selected if s.recents_item is None or poll_due(s)]
        safety_net = webhooks is None or any(s.recents_item for s in polled)
        if not self.config.get("use_recents", True):
            feed = ChangeFeed(clock=clock, reason="use_recents is false")
        elif not safety_net:
            feed = ChangeFeed(clock=clock, reason="webhooks mode, no safety-net poll this run")
        else:
            feed = plan_change_feed(polled, fetch=fetch, clock=clock)
        if feed.changed is None:
            log.info("Change feed (/v1/recents) not used: %s; every stream is read.", feed.reason)
        else:
            log.info(
                "Change feed (/v1/recents): changed item types %s; no request for %s.",
                sorted(feed.changed) or "none",
                ", ".join(feed.skipped) or "no stream",
            )
        minutes = int(self.config.get("refresh_interval_minutes", DEFAULT_REFRESH_MINUTES))
        # The API's clock once it has answered (recents), else this machine's. Webhooks mode
        # re-reads the lists with its safety net, all those due at once; the runs between
        # make no request to learn the time by.
        now = session.first_answer_at or dt.datetime.now(dt.UTC)
        interval = dt.timedelta(minutes=minutes)
        # Field definitions taken from the cache share the re-reads (see streams.fields).
        cached_fields = {f.name: f for f in self._field_streams.values() if f.from_cache}
        others = {name: f.cached_read_at for name, f in cached_fields.items()}
        if webhooks is None:
            plan_refresh(feed, selected, interval=interval, now=now, others=others)
        else:
            plan_refresh(
                feed,
                selected,
                interval=interval,
                now=now if safety_net else None,
                per_run=None,
                others=others,
            )
        for name in feed.refreshing:
            if name in cached_fields:
                cached_fields[name].refresh()
        if webhooks is not None:
            explain_with_events(
                feed,
                polled,
                fed_items=STREAM_OBJECTS.values(),
                latest=webhooks.latest_times,
                poll_at_least_every=interval,
            )
            if feed.explained:
                log.info(
                    "Safety-net poll: the stored webhook events hold every %s change recents "
                    "lists; no request for %s.",
                    ", ".join(sorted(feed.explained)),
                    ", ".join(feed.skipped) or "no stream",
                )
        if feed.not_due or feed.refreshing:
            log.info(
                "Re-read every %d minutes: %s this run; not due: %s.",
                minutes,
                ", ".join(feed.refreshing) or "none",
                ", ".join(sorted(feed.not_due)) or "none",
            )
        return feed

    def _push_metrics(self) -> None:
        url = self.config.get("pushgateway_url")
        if not url:
            return
        pipeline = self.config.get("metrics_pipeline") or default_pipeline()
        try:
            self.api.metrics.push(url, pipeline)
        except OSError as exc:
            logging.getLogger("tap-pipedrive").warning("Could not push metrics to %s: %s", url, exc)


if __name__ == "__main__":
    TapPipedrive.cli()
