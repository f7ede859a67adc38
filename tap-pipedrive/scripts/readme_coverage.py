"""Write the coverage table of README.md: object -> stream -> endpoint -> replication -> when an
incremental run reads it -> tokens per run for the demo account -> how deletes are seen.

Endpoints, replication and deletes come from the stream classes; the tokens are measured: the
tap reads the demo account (the simulator with the demo's seed) with every stream selected, once
from scratch and once more with nothing changed, and the simulator's per-endpoint counts are
summed per stream.

Usage: python scripts/readme_coverage.py [--check]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import typing as t
from collections import defaultdict
from pathlib import Path

import pipedrive_simulator
from tap_pipedrive.client import IncrementalStream, PipedriveStream
from tap_pipedrive.streams import OPT_IN_STREAM_TYPES, STREAM_TYPES
from tap_pipedrive.streams.bases import ChildRowsStream, PartitionedStream, PerParentStream
from tap_pipedrive.streams.fields import FieldsStream
from tap_pipedrive.tap import TapPipedrive

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- coverage:start -->", "<!-- coverage:end -->"
DEMO_SEED = 42  # scripts/demo.sh
# Streams whose cost the table states instead of measuring: the stage history also lists deals
# (which would blur the deals stream's count) and is budgeted by its own job.
RECENTS = "GET /v1/recents"
UNMEASURED = {
    "deal_stage_changes": "one request per changed deal (stage-history job)",
    "deal_changes": "one request per changed deal, shared with `deal_stage_changes` (history jobs)",
    "person_changes": "one request per changed person (history jobs)",
    "organization_changes": "one request per changed organization (history jobs)",
}

# What each stream holds, in a reader's words.
OBJECTS = {
    "deal_fields": "Deal fields",
    "person_fields": "Person fields",
    "organization_fields": "Organization fields",
    "product_fields": "Product fields",
    "activity_fields": "Activity fields",
    "project_fields": "Project fields",
    "users": "Users",
    "pipelines": "Pipelines",
    "stages": "Stages",
    "currencies": "Currencies",
    "activity_types": "Activity types",
    "deals": "Deals",
    "deal_products": "Deal line items",
    "persons": "Persons",
    "organizations": "Organizations",
    "activities": "Activities",
    "products": "Products",
    "leads": "Leads",
    "notes": "Notes",
    "files": "Files",
    "deal_stage_changes": "Deal stage history",
    "deal_changes": "Deal field changes (changelog)",
    "person_changes": "Person field changes (changelog)",
    "organization_changes": "Organization field changes (changelog)",
    "call_logs": "Call logs",
    "lead_labels": "Lead labels",
    "lead_sources": "Lead sources",
    "lead_fields": "Lead fields",
    "note_fields": "Note fields",
    "filters": "Filters",
    "goals": "Goals",
    "goal_results": "Goal results",
    "projects": "Projects",
    "project_boards": "Project boards",
    "project_phases": "Project phases",
    "project_templates": "Project templates",
    "tasks": "Tasks",
    "deal_installments": "Deal installments",
    "roles": "Roles",
    "role_assignments": "Role assignments",
    "role_settings": "Role settings",
    "permission_sets": "Permission sets",
    "permission_set_assignments": "Permission set assignments",
    "mail_threads": "Mail threads (the token user's mailbox)",
    "user_permissions": "User permissions",
    "person_emails": "Person e-mail addresses",
    "person_phones": "Person phone numbers",
    "organization_addresses": "Organization addresses",
    "activity_participants": "Activity participants",
    "activity_attendees": "Activity attendees",
    "lead_label_assignments": "Lead labels of each lead",
    "project_deals": "Deals of each project",
    "field_options": "Field options (every entity)",
    "person_followers": "Person followers",
    "organization_followers": "Organization followers",
    "product_followers": "Product followers",
    "product_variations": "Product variations",
    "deal_followers": "Deal followers",
    "deal_participants": "Deal participants",
    "deal_discounts": "Deal discounts",
    "organization_relationships": "Organization relationships (each side)",
    "mail_messages": "Mail messages, with from / to / cc / bcc",
}


def _endpoints(stream: PipedriveStream) -> list[str]:
    paths = [str(stream.path)] if stream.path else []
    archived = getattr(stream, "archived_path", None)
    if archived:
        paths.append(archived)
    if isinstance(stream, PartitionedStream) and stream.partition_paths:
        paths = list(dict.fromkeys(stream.partition_paths.values()))
    return paths


def _stat_key(path: str) -> str:
    return "GET " + (path[len("/api") :] if path.startswith("/api/v1/") else path)


def _endpoint_text(stream: PipedriveStream) -> str:
    if isinstance(stream, ChildRowsStream):
        parent = stream.parent_stream_type
        source = f"`{parent.name}.{stream.array}`" if parent else "the field definitions"
        return f"none: from {source}"
    text = ", ".join(f"`{p}`" for p in _endpoints(stream))
    if isinstance(stream, PerParentStream) and stream.parent_param is not None:
        text = text[:-1] + f"?{stream.parent_param}={{id}}`"
    if isinstance(stream, PartitionedStream) and not stream.partition_paths:
        values = ", ".join(str(v) for v in stream.partition_values)
        text += f" per `{stream.partition_key}` ({values})"
    if isinstance(stream, PerParentStream) and stream.parent_stream_type is not None:
        parent = stream.parent_stream_type
        changed = " changed since the bookmark" if issubclass(parent, IncrementalStream) else ""
        if stream.name == "mail_messages":
            changed = " updated since the last read"
        text += f", one request per `{parent.name}` record{changed}"
    if stream.name == "deal_stage_changes":
        return "`/api/v1/deals/{id}/changelog` (or `/flow`), per changed deal"
    if stream.name == "deal_changes":
        return "`/api/v1/deals/{id}/changelog`, per changed deal"
    changelog = getattr(stream, "changelog_path", None)
    if changelog:
        return f"`{changelog}`, per changed {getattr(stream, 'entity', 'record')}"
    if stream.name in {"deal_products", "deal_installments"}:
        text += ", 100 deals per request"
    return text


def _replication(stream: PipedriveStream) -> str:
    if isinstance(stream, ChildRowsStream):
        return "with its parent" if stream.parent_stream_type else "full (no request)"
    if isinstance(stream, IncrementalStream) or stream.replication_key:
        return f"incremental (`{stream.replication_key}`)"
    if stream.parent_stream_type is not None:
        return "with its parent"
    return "full"


def _when(stream: PipedriveStream) -> str:
    """When an incremental run reads the stream, hence how fresh it is (see change_feed)."""
    if isinstance(stream, ChildRowsStream) or stream.parent_stream_type is not None:
        return "with its parent"
    if isinstance(stream, FieldsStream):
        return (
            "every run; with Redis, every `refresh_interval_minutes` (default 12 h), one such "
            "list per run"
        )
    if stream.refreshed_on_interval:
        parts = stream.refresh_parts()
        if parts:
            return (
                "every `refresh_interval_minutes` (default 12 h), one such list per run, "
                f"one of its {len(parts)} parts ({', '.join(parts)}) at a time"
            )
        return "every `refresh_interval_minutes` (default 12 h), one such list per run"
    if stream.recents_item is not None:
        return f"when `/v1/recents` lists changed `{stream.recents_item}` items"
    return "every run (`/v1/recents` does not list it)"


def _deletes(stream: PipedriveStream) -> str:
    if isinstance(stream, ChildRowsStream) or getattr(stream, "replaces_children", False):
        return "child set: children missing from a parent read are retired"
    flags = " or ".join(f"`{k}={v!r}`" for k, v in stream.deleted_flags)
    if flags:
        return f"`_sdc_deleted_at` from {flags}; vanished rows: reconcile"
    return "reconcile"


def measure() -> tuple[dict[str, PipedriveStream], dict[str, int], dict[str, int]]:
    """The streams, and tokens per stream on the demo account: full sync, run with no change."""
    sim = pipedrive_simulator.start(seed=DEMO_SEED)
    try:
        config = {"api_url": sim.base_url, "api_token": sim.api_token}
        probe = TapPipedrive(config=config, parse_env_config=False)
        streams = {n: s for n, s in probe.streams.items() if isinstance(s, PipedriveStream)}
        catalog = probe.catalog_dict
        for entry in catalog["streams"]:
            for meta in entry["metadata"]:
                if meta["breadcrumb"] == []:
                    meta["metadata"]["selected"] = entry["tap_stream_id"] not in UNMEASURED
        state: dict[str, t.Any] = {}
        runs = []
        for _ in range(2):
            sim.reset_stats()
            with contextlib.redirect_stdout(io.StringIO()):
                tap = TapPipedrive(
                    config=config, catalog=catalog, state=state, parse_env_config=False
                )
                tap.sync_all()
            state = tap.state
            runs.append({k: v["tokens"] for k, v in sim.stats()["endpoints"].items()})
            sim.advance(600)
    finally:
        sim.stop()
    owner: dict[str, str] = {}
    for stream in streams.values():
        if not isinstance(stream, ChildRowsStream) and stream.name not in UNMEASURED:
            for path in _endpoints(stream):
                owner.setdefault(_stat_key(path), stream.name)
    per_run: list[dict[str, int]] = []
    for tokens in runs:
        totals: dict[str, int] = defaultdict(int)
        for endpoint, spent in tokens.items():
            if endpoint == RECENTS:
                continue  # the change detector's one call per run, no stream's
            if endpoint not in owner:
                msg = f"no stream reads {endpoint}"
                raise SystemExit(msg)
            totals[owner[endpoint]] += spent
        per_run.append(dict(totals))
    return streams, per_run[0], per_run[1]


def table() -> str:
    streams, full, again = measure()
    missing = [cls.name for cls in STREAM_TYPES if cls.name not in OBJECTS]
    if missing:
        msg = f"OBJECTS has no entry for stream(s) {', '.join(missing)}"
        raise SystemExit(msg)
    lines = [
        "| object | stream | endpoint | read | when read | tokens: full sync / no change | "
        "deletes |",
        "|---|---|---|---|---|---|---|",
    ]
    for cls in STREAM_TYPES:
        stream = streams[cls.name]
        opt_in = " (opt-in)" if cls in OPT_IN_STREAM_TYPES else ""
        tokens = UNMEASURED.get(cls.name) or f"{full.get(cls.name, 0)} / {again.get(cls.name, 0)}"
        lines.append(
            f"| {OBJECTS[cls.name]} | `{cls.name}`{opt_in} | {_endpoint_text(stream)} | "
            f"{_replication(stream)} | {_when(stream)} | {tokens} | {_deletes(stream)} |"
        )
    lines.append(f"| **total** | | | | | **{sum(full.values())} / {sum(again.values())}** | |")
    return "\n".join(lines)


def render(readme: str) -> str:
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), flags=re.S)
    if not pattern.search(readme):
        msg = f"README.md has no {START} ... {END} block"
        raise SystemExit(msg)
    text = table()
    return pattern.sub(lambda _: f"{START}\n{text}\n{END}", readme)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if README.md is stale")
    args = parser.parse_args()
    current = README.read_text()
    wanted = render(current)
    if args.check:
        if wanted != current:
            print("README.md coverage table is stale: run scripts/readme_coverage.py")
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
