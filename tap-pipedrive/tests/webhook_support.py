"""Running the webhook receiver as its own process for tests (real HTTP, real Postgres)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import psycopg
import requests
from psycopg import sql

USER = "pipedrive-hooks"
PASSWORD = "correct horse battery staple"
EXAMPLES = Path(__file__).resolve().parents[2] / "vendor" / "pipedrive-webhooks" / "examples"


def receiver_command() -> list[str]:
    script = shutil.which("tap-pipedrive-webhooks", path=str(Path(sys.executable).parent))
    assert script is not None, "tap-pipedrive-webhooks is not installed in the venv"
    return [script]


class Receiver:
    """``tap-pipedrive-webhooks serve`` in a subprocess; ``url`` is its first printed line."""

    def __init__(self, database_url: str, schema: str, *extra: str, port: int = 0) -> None:
        self.database_url = database_url
        self.schema = schema
        self.extra = extra
        self.port = port
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.stderr_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"receiver-{schema}.log"

    def start(self) -> Receiver:
        env = {**os.environ, "PIPEBOARD_WEBHOOK_USER": USER, "PIPEBOARD_WEBHOOK_PASSWORD": PASSWORD}
        self._stderr = self.stderr_path.open("a")
        self.proc = subprocess.Popen(
            [
                *receiver_command(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--database-url",
                self.database_url,
                "--schema",
                self.schema,
                *self.extra,
            ],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url or self.logs()
        self.port = int(self.url.split(":")[2].split("/")[0])
        self.base = self.url.rsplit("/pipedrive/", 1)[0]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the receiver did not become healthy: {self.logs()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.kill()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        self._stderr.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""

    def post(
        self,
        body: bytes | dict[str, t.Any],
        auth: tuple[str, str] | None = (USER, PASSWORD),
        **kw: t.Any,
    ) -> requests.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return requests.post(
            self.url,
            data=data,
            auth=auth,
            headers={"content-type": "application/json"},
            timeout=10,
            **kw,
        )

    def metrics(self) -> dict[str, float]:
        text = requests.get(self.base + "/metrics", timeout=5).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out


def stored_events(database_url: str, schema: str) -> list[tuple[str, str, str, str]]:
    """(event_id, entity, action, entity_id) of every stored event, in log order."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT event_id, entity, action, entity_id FROM {}.events ORDER BY position"
            ).format(sql.Identifier(schema))
        ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def example(name: str) -> dict[str, t.Any]:
    loaded: dict[str, t.Any] = json.loads((EXAMPLES / name).read_text())
    return loaded
