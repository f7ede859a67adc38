"""Helpers shared by the reliability suite: Singer messages, running the plugins, reading Postgres.

Everything here runs the real console scripts of the installed plugins in subprocesses, so
the tests exercise exactly what ``meltano run`` starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

BIN_DIR = Path(sys.executable).parent
TARGET = "target-pipeboard-postgres"
TAP = "tap-pipedrive"


def plugin_command(name: str) -> list[str]:
    exe = BIN_DIR / name
    if not exe.exists():
        raise RuntimeError(f"{name} is not installed in {BIN_DIR}; run `make setup`")
    return [str(exe)]


# --- Singer messages ------------------------------------------------------------------------


def line(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode() + b"\n"


def schema_msg(
    stream: str, properties: Mapping[str, Any], key_properties: Iterable[str] = ("id",)
) -> bytes:
    return line(
        {
            "type": "SCHEMA",
            "stream": stream,
            "schema": {"type": "object", "properties": dict(properties)},
            "key_properties": list(key_properties),
        }
    )


def record_msg(stream: str, record: Mapping[str, Any]) -> bytes:
    return line({"type": "RECORD", "stream": stream, "record": dict(record)})


def state_msg(value: Mapping[str, Any]) -> bytes:
    return line({"type": "STATE", "value": dict(value)})


def bookmark_state(stream: str, position: int) -> bytes:
    """A STATE message saying the tap has emitted everything up to ``position``."""
    return state_msg({"bookmarks": {stream: {"position": position}}})


# --- running plugins ------------------------------------------------------------------------


@dataclass
class PluginRun:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def messages(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.stdout.splitlines():
            if raw.strip():
                out.append(json.loads(raw))
        return out

    @property
    def states(self) -> list[dict[str, Any]]:
        """STATE values in order: a tap's STATE messages, or a target's bare state lines."""
        out = []
        for m in self.messages:
            if m.get("type") == "STATE" and "value" in m:
                out.append(m["value"])
            elif "type" not in m:
                out.append(m)
        return out

    @property
    def err_text(self) -> str:
        return self.stderr.decode(errors="replace")


def write_config(directory: Path, name: str, config: Mapping[str, Any]) -> Path:
    path = directory / name
    path.write_text(json.dumps(dict(config)))
    return path


def plugin_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Keep the children's warnings from becoming errors the way pytest's own are.
    env.pop("PYTHONWARNINGS", None)
    env.update(extra or {})
    return env


def run_target(
    config: Mapping[str, Any],
    stdin: bytes,
    directory: Path,
    *,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
) -> PluginRun:
    cfg = write_config(directory, "target-config.json", config)
    proc = subprocess.run(
        [*plugin_command(TARGET), "--config", str(cfg)],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env=plugin_env(env),
        check=False,
    )
    return PluginRun(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class StreamedProcess:
    """A plugin subprocess whose stdout is collected line by line as it arrives."""

    proc: subprocess.Popen[bytes]
    stdout_lines: list[bytes] = field(default_factory=list)
    stderr_chunks: list[bytes] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(
        cls, argv: list[str], *, env: Mapping[str, str] | None = None, stdin: Any = None
    ) -> StreamedProcess:
        """Start ``argv``; its stdin is a pipe the caller writes, or ``stdin`` when given."""
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is None else stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=plugin_env(env),
        )
        self = cls(proc)
        assert proc.stdout is not None
        assert proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(proc.stdout, self.stdout_lines, True)),
            threading.Thread(target=self._pump, args=(proc.stderr, self.stderr_chunks, False)),
        ]
        for t in self._threads:
            t.daemon = True
            t.start()
        return self

    @staticmethod
    def _pump(stream: Any, sink: list[bytes], by_line: bool) -> None:
        if by_line:
            for raw in iter(stream.readline, b""):
                sink.append(raw)
        else:
            for chunk in iter(lambda: stream.read(65536), b""):
                sink.append(chunk)

    def finish(self, timeout: float = 120) -> PluginRun:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return PluginRun(
            self.proc.returncode, b"".join(self.stdout_lines), b"".join(self.stderr_chunks)
        )


def kill_target_mid_load(
    config_file: Path,
    lines: Iterable[bytes],
    committed_past: Callable[[Mapping[str, Any]], bool],
    extra_wait: float,
) -> tuple[bool, PluginRun]:
    """Feed ``lines`` to the target with its stdin left open (the load cannot end), wait until
    a STATE it emitted is ``committed_past`` the wanted point, wait ``extra_wait`` seconds more
    and SIGKILL it. Returns whether it was still running at the kill, and the run."""
    run = StreamedProcess.start([*plugin_command(TARGET), "--config", str(config_file)])
    stdin = run.proc.stdin
    assert stdin is not None
    payload = b"".join(lines)

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            stdin.write(payload)
            stdin.flush()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()

    def reached() -> bool:
        states = [json.loads(raw) for raw in list(run.stdout_lines) if raw.strip()]
        return any(committed_past(state) for state in states)

    deadline = time.monotonic() + 60
    while not reached():
        assert run.proc.poll() is None, b"".join(run.stderr_chunks).decode()[-3000:]
        assert time.monotonic() < deadline, "the target committed nothing in 60 s"
        time.sleep(0.001)
    time.sleep(extra_wait)
    alive = run.proc.poll() is None
    os.kill(run.proc.pid, signal.SIGKILL)
    result = run.finish()
    writer.join(timeout=10)
    return alive, result


# --- reading Postgres -----------------------------------------------------------------------


def tables(url: str, schema: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select table_name from information_schema.tables where table_schema = %s "
            "order by table_name",
            (schema,),
        ).fetchall()
    return [r[0] for r in rows]


def columns(url: str, schema: str, table: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            (schema, table),
        ).fetchall()
    return {r[0]: r[1] for r in rows}


def fetch_rows(
    url: str, schema: str, table: str, order_by: str | None = None
) -> list[dict[str, Any]]:
    query = sql.SQL("select * from {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    if order_by:
        query += sql.SQL(" order by {}").format(sql.Identifier(order_by))
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(query).fetchall())


def user_columns(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row without the target's ``_sdc_*`` metadata columns."""
    return {k: v for k, v in row.items() if not k.startswith("_sdc_")}
