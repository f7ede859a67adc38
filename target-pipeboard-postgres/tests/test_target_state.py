"""STATE timing, checked by feeding a running target line by line and reading its stdout;
and kill -9 mid-load followed by a rerun from the last emitted state."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

SCHEMA = {
    "type": "SCHEMA",
    "stream": "deals",
    "key_properties": ["id"],
    "schema": {
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "n": {"type": "integer"},
        }
    },
}


def record(i: int, n: int = 0) -> str:
    return json.dumps(
        {"type": "RECORD", "stream": "deals", "record": {"id": i, "title": f"deal {i}", "n": n}}
    )


def state(position: int) -> str:
    return json.dumps({"type": "STATE", "value": {"position": position}})


class RunningTarget:
    """The target as a subprocess, with its stdout read on a thread."""

    def __init__(self, config: dict[str, Any], tmp_path: Path) -> None:
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from target_pipeboard_postgres.target import "
                "TargetPipeboardPostgres as T; T.cli()",
                "--config",
                str(config_path),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __enter__(self) -> RunningTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def send(self, *lines: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("".join(line + "\n" for line in lines))
        self.proc.stdin.flush()

    def next_state(self, timeout: float = 20) -> dict[str, Any]:
        return json.loads(self.lines.get(timeout=timeout))

    def no_state(self, wait: float = 0.5) -> bool:
        try:
            self.lines.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def finish(self) -> list[dict[str, Any]]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0
        self._reader.join(timeout=10)
        out = []
        while not self.lines.empty():
            out.append(json.loads(self.lines.get()))
        return out


def test_state_follows_each_commit_not_the_end_of_the_stream(target_config, tmp_path, rows):
    with RunningTarget({**target_config, "batch_size_rows": 3}, tmp_path) as target:
        target.send(json.dumps(SCHEMA), record(1), record(2), record(3), state(3))
        # the batch of 3 committed before the STATE arrived: it is emitted at once
        assert target.next_state() == {"position": 3}
        assert rows("deals", "id") == [(1,), (2,), (3,)]
        target.send(record(4), state(4))
        assert target.no_state()  # record 4 is not committed yet
        target.send(record(5), record(6))  # fills the batch: 4..6 commit, state 4 is released
        assert target.next_state() == {"position": 4}
        target.send(record(7), state(7))
        assert target.no_state()
        assert target.finish() == [{"position": 7}]
    assert len(rows("deals", "id")) == 7


def test_state_waits_for_every_stream_it_covers(target_config, tmp_path):
    other = dict(SCHEMA, stream="persons")
    with RunningTarget({**target_config, "batch_size_rows": 2}, tmp_path) as target:
        person = json.dumps(
            {"type": "RECORD", "stream": "persons", "record": {"id": 1, "title": "p", "n": 0}}
        )
        target.send(json.dumps(SCHEMA), json.dumps(other), person, record(1), state(1))
        assert target.no_state()
        target.send(record(2))  # deals commit, but the person before the state is still pending
        assert target.no_state()
        target.send(person.replace('"id": 1', '"id": 2'))  # persons commit: state 1 is covered
        assert target.next_state() == {"position": 1}
        assert target.finish() == []


def test_state_leaves_within_the_wait_limit_while_input_trickles(target_config, tmp_path, rows):
    config = {**target_config, "batch_size_rows": 1000, "batch_wait_limit_seconds": 1}
    with RunningTarget(config, tmp_path) as target:
        target.send(json.dumps(SCHEMA), state(0))
        assert target.next_state() == {"position": 0}  # started, table created
        target.send(record(1), state(1))
        sent = time.monotonic()
        # the batch is far from full and the tap says nothing more: the STATE still leaves
        assert target.next_state(timeout=5) == {"position": 1}
        assert 0.9 <= time.monotonic() - sent < 2.5
        assert target.proc.poll() is None  # before the end of the input
        assert rows("deals", "id") == [(1,)]
        # a record every 0.3 s, a STATE after each: none waits much longer than the limit
        for i in range(2, 8):
            target.send(record(i), state(i))
            time.sleep(0.3)
        emitted: list[int] = []
        deadline = time.monotonic() + 3
        while not emitted or emitted[-1] != 7:
            emitted.append(
                target.next_state(timeout=max(0.01, deadline - time.monotonic()))["position"]
            )
        assert target.proc.poll() is None
        assert emitted == sorted(emitted)
        assert target.finish() == []
    assert len(rows("deals", "id")) == 7


def test_batch_failing_in_an_idle_commit_stops_the_run_and_holds_its_state(
    target_config, tmp_path, rows
):
    config = {**target_config, "batch_size_rows": 1000, "batch_wait_limit_seconds": 0.5}
    bad = json.dumps(
        {"type": "RECORD", "stream": "deals", "record": {"id": 2, "title": "x", "n": "abc"}}
    )
    with RunningTarget(config, tmp_path) as target:
        target.send(json.dumps(SCHEMA), record(1), state(1))
        assert target.next_state(timeout=5) == {"position": 1}
        target.send(bad, state(2))  # line 4: committed while idle, and it fails
        assert target.no_state(wait=2)
        target.send(record(3), state(3))
        assert target.proc.stdin is not None
        target.proc.stdin.close()
        assert target.proc.wait(timeout=30) != 0
        assert target.no_state(wait=0.2)
    assert rows("deals", "id") == [(1,)]


@pytest.mark.parametrize("kill_after_states", [1, 4])
def test_kill_9_mid_load_then_rerun_loses_and_duplicates_nothing(
    target_config, tmp_path, rows, kill_after_states
):
    total = 3000

    def tap(start: int, version: int) -> list[str]:
        out = [json.dumps(SCHEMA)]
        for i in range(start + 1, total + 1):
            out.append(record(i, version))
            if i % 250 == 0:
                out.append(state(i))
        return out

    lines = tap(0, 1)
    emitted: list[dict[str, Any]] = []
    sent = 0
    with RunningTarget({**target_config, "batch_size_rows": 200}, tmp_path) as target:
        while len(emitted) < kill_after_states:
            target.send(*lines[sent : sent + 100])
            sent += 100
            try:
                while True:
                    emitted.append(json.loads(target.lines.get(timeout=0.05)))
            except queue.Empty:
                pass
        target.send(*lines[sent : sent + 150])  # more input in flight when the kill lands
        os.kill(target.proc.pid, signal.SIGKILL)
        target.proc.wait()
    bookmark = emitted[-1]["position"]
    landed = rows("deals", "id")
    assert len(landed) >= bookmark  # everything the state covered is committed
    # rerun from the bookmark, as an orchestrator would
    with RunningTarget({**target_config, "batch_size_rows": 200}, tmp_path) as rerun:
        rerun.send(*tap(bookmark, 2))
        final_states = rerun.finish()
    assert final_states[-1] == {"position": total}
    ids = [r[0] for r in rows("deals", "id")]
    assert ids == list(range(1, total + 1))
    # rows up to the bookmark came from the first run, the rest from the rerun
    versions = dict(rows("deals", "id, n"))
    assert {versions[i] for i in range(1, bookmark + 1)} == {1}
    assert {versions[i] for i in range(bookmark + 1, total + 1)} == {2}


def shadow_rows(db: psycopg.Connection[Any], schema: str) -> list[tuple[Any, ...]]:
    """The ids in the overwrite shadow of `deals` ([] while it does not exist)."""
    name = sql.Identifier(schema, "deals__pb_overwrite")
    if db.execute("SELECT to_regclass(%s)", (name.as_string(db),)).fetchone() == (None,):
        return []
    return db.execute(sql.SQL("SELECT id FROM {} ORDER BY id").format(name)).fetchall()


def test_sigterm_commits_what_it_has_but_never_swaps_a_partial_overwrite(
    target_config, tmp_path, rows, db, pg_schema
):
    with RunningTarget({**target_config, "batch_size_rows": 2}, tmp_path) as first:
        first.send(json.dumps(SCHEMA), record(1), record(2))
        assert first.finish() == []
    config = {**target_config, "batch_size_rows": 2, "load_method": "overwrite"}
    with RunningTarget(config, tmp_path) as target:
        target.send(json.dumps(SCHEMA), record(7), record(8), state(8), record(9), state(9))
        deadline = time.monotonic() + 20
        while not shadow_rows(db, pg_schema) and time.monotonic() < deadline:
            time.sleep(0.05)
        # 7 and 8 are committed, but only to the shadow: a STATE now would let a rerun skip
        # records the table never got
        assert shadow_rows(db, pg_schema) == [(7,), (8,)]
        assert target.no_state(wait=1)
        target.proc.send_signal(signal.SIGTERM)
        target.proc.wait(timeout=30)
        assert target.no_state(wait=0.2)
    # record 9 was committed to the shadow table on the way out, the table kept its rows
    assert rows("deals", "id") == [(1,), (2,)]
    assert rows("deals__pb_overwrite", "id") == [(7,), (8,), (9,)]
    # the rerun starts from an empty shadow: the table gets exactly its records
    with RunningTarget(config, tmp_path) as rerun:
        rerun.send(json.dumps(SCHEMA), record(7), record(8), state(8))
        assert rerun.no_state(wait=1.5)
        assert rerun.finish() == [{"position": 8}]
    assert rows("deals", "id") == [(7,), (8,)]
