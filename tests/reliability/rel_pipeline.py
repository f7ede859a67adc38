"""Running tap → target as Meltano does, and checking what landed against the simulator's truth.

``run_pipeline`` starts the two console scripts with the tap's stdout piped into the target's
stdin, hands the tap the state the target last emitted (as ``meltano run`` does from its state
backend), and collects every byte both processes wrote.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from rel_support import (
    TAP,
    TARGET,
    PluginRun,
    StreamedProcess,
    fetch_rows,
    plugin_command,
    plugin_env,
    tables,
    write_config,
)

# Every stream a default tap run syncs and the simulator can tell the truth of.
STREAMS = (
    "deals",
    "persons",
    "organizations",
    "activities",
    "products",
    "deal_products",
    "leads",
    "notes",
    "users",
    "pipelines",
    "stages",
    "files",
    "activity_types",
    "currencies",
    "deal_fields",
    "person_fields",
    "organization_fields",
    "product_fields",
    "activity_fields",
)


@dataclass
class PipelineRun:
    tap: PluginRun
    target: PluginRun
    tap_killed: bool = False

    @property
    def state(self) -> dict[str, Any] | None:
        states = self.target.states
        return states[-1] if states else None

    @property
    def ok(self) -> bool:
        return self.tap.returncode == 0 and self.target.returncode == 0

    def all_output(self) -> bytes:
        return self.tap.stdout + self.tap.stderr + self.target.stdout + self.target.stderr

    def describe(self) -> str:
        return (
            f"tap exit {self.tap.returncode}, target exit {self.target.returncode}\n"
            f"--- tap stderr (tail) ---\n{self.tap.err_text[-3000:]}\n"
            f"--- target stderr (tail) ---\n{self.target.err_text[-3000:]}"
        )


@dataclass
class Pipeline:
    """One tap config + one target config; runs carry the state forward like Meltano."""

    tap_config: dict[str, Any]
    target_config: dict[str, Any]
    directory: Path
    env: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] | None = None
    runs: int = 0

    def run(
        self,
        *,
        during: Callable[[subprocess.Popen[bytes], StreamedProcess], None] | None = None,
        timeout: float = 90,
    ) -> PipelineRun:
        self.runs += 1
        workdir = self.directory / f"run{self.runs}"
        workdir.mkdir(parents=True, exist_ok=True)
        tap_cfg = write_config(workdir, "tap-config.json", self.tap_config)
        target_cfg = write_config(workdir, "target-config.json", self.target_config)
        tap_argv = [*plugin_command(TAP), "--config", str(tap_cfg)]
        if self.state is not None:
            state_file = workdir / "state.json"
            state_file.write_text(json.dumps(self.state))
            tap_argv += ["--state", str(state_file)]
        tap_stderr = (workdir / "tap.stderr").open("w+b")
        tap = subprocess.Popen(
            tap_argv, stdout=subprocess.PIPE, stderr=tap_stderr, env=plugin_env(self.env)
        )
        # Tee the tap's stdout so the test can see the Singer messages the target was given.
        tap_out: list[bytes] = []
        read_end, write_end = _pipe()
        tee = threading.Thread(target=_tee, args=(tap.stdout, write_end, tap_out), daemon=True)
        tee.start()
        target = StreamedProcess.start(
            [*plugin_command(TARGET), "--config", str(target_cfg)],
            env=self.env,
            stdin=read_end,
        )
        read_end.close()
        timed_out = False
        try:
            if during is not None:
                during(tap, target)
            tap.wait(timeout=timeout)
            target.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            for proc in (tap, target.proc):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        killed = tap.returncode == -signal.SIGKILL and not timed_out
        tee.join(timeout=10)
        if tap.stdout is not None:
            tap.stdout.close()
        target_run = target.finish(timeout=10)
        tap_stderr.seek(0)
        tap_run = PluginRun(tap.returncode, b"".join(tap_out), tap_stderr.read())
        tap_stderr.close()
        if timed_out:
            hung = PipelineRun(tap_run, target_run)
            raise AssertionError(f"the pipeline hung for {timeout} s\n{hung.describe()}")
        result = PipelineRun(tap_run, target_run, tap_killed=killed)
        if result.state is not None:
            self.state = result.state
        return result


def _pipe() -> tuple[Any, Any]:
    import os

    r, w = os.pipe()
    return os.fdopen(r, "rb", buffering=0), os.fdopen(w, "wb", buffering=0)


def _tee(source: Any, sink: Any, copy: list[bytes]) -> None:
    """Copy the tap's stdout to the target; if the target died, keep draining the tap."""
    target_alive = True
    try:
        for chunk in iter(lambda: source.read1(65536), b""):
            copy.append(chunk)
            if target_alive:
                try:
                    sink.write(chunk)
                except BrokenPipeError:
                    target_alive = False
    finally:
        with contextlib.suppress(BrokenPipeError):
            sink.close()


# --- comparing with the truth -----------------------------------------------------------------


def _instant(value: Any) -> Any:
    """Timestamps from the API (v1 'YYYY-MM-DD HH:MM:SS', v2 RFC 3339) and Postgres, comparable."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T":
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
        except ValueError:
            return value
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return value


def primary_key(url: str, schema: str, table: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select a.attname from pg_index i join pg_attribute a "
            "on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
            "where i.indrelid = %s::regclass and i.indisprimary order by a.attnum",
            (f'"{schema}"."{table}"',),
        ).fetchall()
    return [r[0] for r in rows]


@dataclass
class StreamDiff:
    stream: str
    expected: int
    stored: int
    lost: list[Any]
    duplicated: list[Any]
    extra: list[Any]
    stale: list[Any]

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.extra or self.stale)


def stream_truth(truth: Callable[[str], list[dict[str, Any]]], stream: str) -> list[dict[str, Any]]:
    """The simulator's records of what a stream's table must hold."""
    if stream in {"deals", "leads"}:
        # Archived deals and leads land in their tables, flagged.
        return truth(stream) + truth(f"archived_{stream}")
    if stream == "deal_products":
        # The simulator also lists line items of deals purged long ago, which no API request
        # can reach (line items are read per deal); only those of readable deals count.
        readable = {d["id"] for d in stream_truth(truth, "deals")}
        return [r for r in truth("deal_products") if r.get("deal_id") in readable]
    return truth(stream)


def snapshot_ids(
    truth: Callable[[str], list[dict[str, Any]]], streams: Iterable[str] = STREAMS
) -> dict[str, set[tuple[str, ...]]]:
    """stream -> the id keys the simulator has now (to tell later which records vanished)."""
    return {s: {(str(r.get("id")),) for r in stream_truth(truth, s)} for s in streams}


def diff_with_truth(
    truth: Callable[[str], list[dict[str, Any]]],
    url: str,
    schema: str,
    streams: Iterable[str] = STREAMS,
    vanished_since: Mapping[str, set[tuple[str, ...]]] | None = None,
) -> list[StreamDiff]:
    """Each stream's table against the simulator's records: by key, and by update_time.

    ``vanished_since``: a ``snapshot_ids`` taken before changes. Records deleted in Pipedrive
    since then may stay in a table: only deals announce their deletion to an incremental run;
    the reconciliation run retires the rest (docs/reliability.md).
    """
    present = set(tables(url, schema))
    current = snapshot_ids(truth, streams) if vanished_since else {}

    def vanished(stream: str) -> set[tuple[str, ...]]:
        if not vanished_since:
            return set()
        return vanished_since.get(stream, set()) - current.get(stream, set())

    diffs = []
    for stream in streams:
        expected = stream_truth(truth, stream)
        if stream not in present:
            diffs.append(
                StreamDiff(
                    stream, len(expected), 0, [r.get("id") for r in expected][:5], [], [], []
                )
            )
            continue
        keys = primary_key(url, schema, stream) or ["id"]
        rows = fetch_rows(url, schema, stream)

        def key_of(record: Mapping[str, Any], keys: list[str] = keys) -> tuple[Any, ...]:
            return tuple(str(record.get(k)) for k in keys)

        counts = Counter(key_of(r) for r in rows)
        stored = {key_of(r): r for r in rows}
        wanted = {key_of(r): r for r in expected}
        stale = [
            k
            for k, rec in wanted.items()
            if k in stored
            and "update_time" in rec
            and "update_time" in stored[k]
            and _instant(rec["update_time"]) != _instant(stored[k]["update_time"])
        ]
        diffs.append(
            StreamDiff(
                stream,
                len(wanted),
                len(rows),
                lost=sorted(set(wanted) - set(stored))[:20],
                duplicated=[k for k, n in counts.items() if n > 1][:20],
                extra=sorted(set(stored) - set(wanted) - vanished(stream))[:20],
                stale=stale[:20],
            )
        )
    return diffs


def assert_matches_truth(
    truth: Callable[[str], list[dict[str, Any]]],
    url: str,
    schema: str,
    figures: Any,
    streams: Iterable[str] = STREAMS,
    vanished_since: Mapping[str, set[tuple[str, ...]]] | None = None,
) -> None:
    diffs = diff_with_truth(truth, url, schema, streams, vanished_since)
    for d in diffs:
        figures.add("rows_checked", d.expected)
        figures.add("rows_lost", len(d.lost))
        figures.add("rows_duplicated", len(d.duplicated))
    bad = [d for d in diffs if not d.clean]
    assert not bad, "\n".join(
        f"{d.stream}: expected {d.expected}, stored {d.stored}, lost {d.lost}, "
        f"duplicated {d.duplicated}, extra {d.extra}, stale {d.stale}"
        for d in bad
    )


def bookmarks(state: Mapping[str, Any] | None) -> dict[str, Any]:
    """stream -> replication_key_value from a Singer SDK state (partitions ignored)."""
    out: dict[str, Any] = {}
    for stream, entry in ((state or {}).get("bookmarks") or {}).items():
        if isinstance(entry, dict) and entry.get("replication_key_value") is not None:
            out[stream] = entry["replication_key_value"]
    return out


def assert_state_not_ahead(
    truth: Callable[[str], list[dict[str, Any]]],
    url: str,
    schema: str,
    state: Mapping[str, Any] | None,
) -> None:
    """Every record at or before a stream's bookmark is stored: the state is a true resume point."""
    present = set(tables(url, schema))
    for stream, mark in bookmarks(state).items():
        if stream not in STREAMS:
            continue
        covered = [
            r
            for r in stream_truth(truth, stream)
            if "update_time" in r and _instant(r["update_time"]) <= _instant(mark)
        ]
        if not covered:
            continue
        assert stream in present, f"state has a bookmark for {stream} but no table exists"
        keys = primary_key(url, schema, stream) or ["id"]

        def key_of(record: Mapping[str, Any], keys: list[str] = keys) -> tuple[str, ...]:
            return tuple(str(record.get(k)) for k in keys)

        stored = {key_of(r) for r in fetch_rows(url, schema, stream)}
        missing = [r.get("id") for r in covered if key_of(r) not in stored]
        assert not missing, (
            f"{stream}: bookmark {mark} is ahead of the data; missing {missing[:10]}"
        )
