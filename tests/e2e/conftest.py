"""End-to-end fixtures: the Meltano project installed once per session, a runner that points it
at a simulator and a Postgres schema, and a real Prometheus Pushgateway.

The project is a copy of meltano.yml in a temporary directory with the plugin directories linked
in, so `meltano install` runs once per session (a few seconds with uv) and the tests never touch
the repository's own .meltano/.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import yaml
from psycopg import sql
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STATE_ID = "dev:tap-pipedrive-to-target-pipeboard-postgres"
RUN_TIMEOUT_S = 300
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def as_utc(value: Any) -> datetime:
    """A Pipedrive or Postgres timestamp as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def meltano_env(project: Path, extra: dict[str, str]) -> dict[str, str]:
    """A clean environment for a meltano subprocess: the venv first on PATH, no stray settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TAP_PIPEDRIVE", "TARGET_PIPEBOARD", "MELTANO_"))
    }
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_CLI_LOG_LEVEL": "warning",
            "MELTANO_DATABASE_URI": f"sqlite:///{project}/.meltano/meltano.db",
        }
    )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def clean_meltano_env() -> Callable[[Path, dict[str, str]], dict[str, str]]:
    """``meltano_env`` for tests that run their own commands in a project copy."""
    return meltano_env


@pytest.fixture(scope="session")
def meltano_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project with both plugins installed (once per test session)."""
    project = tmp_path_factory.mktemp("meltano-project")
    shutil.copy(ROOT / "meltano.yml", project / "meltano.yml")
    for name in ("tap-pipedrive", "target-pipeboard-postgres", "requirements"):
        (project / name).symlink_to(ROOT / name, target_is_directory=True)
    result = subprocess.run(
        ["meltano", "install"],
        cwd=project,
        env=meltano_env(project, {}),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return project


@dataclass
class Pipeline:
    """The Meltano project pointed at one simulator, one Postgres schema and one state backend."""

    project: Path
    simulator: Any
    database_url: str
    schema: str
    system_db: str
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return meltano_env(
            self.project,
            {
                "MELTANO_DATABASE_URI": self.system_db,
                "TAP_PIPEDRIVE_API_URL": self.simulator.base_url,
                "TAP_PIPEDRIVE_API_TOKEN": self.simulator.api_token,
                "TARGET_PIPEBOARD_POSTGRES_DATABASE_URL": self.database_url,
                "TARGET_PIPEBOARD_POSTGRES_DEFAULT_TARGET_SCHEMA": self.schema,
                **self.extra_env,
                **(extra or {}),
            },
        )

    def meltano(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        check: bool = True,
        environment: str = "dev",
    ) -> subprocess.CompletedProcess[str]:
        """Run ``meltano --environment=ENVIRONMENT ARGS`` in the project."""
        result = subprocess.run(
            ["meltano", f"--environment={environment}", *args],
            cwd=self.project,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        if check:
            output = f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
            assert result.returncode == 0, f"meltano {' '.join(args)} failed:\n{output}"
        return result

    def run(self, *extra_args: str, env: dict[str, str] | None = None) -> None:
        """``meltano run tap-pipedrive target-pipeboard-postgres`` (plus options)."""
        self.meltano("run", *extra_args, "tap-pipedrive", "target-pipeboard-postgres", env=env)

    def query(self, query: str | sql.Composable, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(query, params or None).fetchall()

    def table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    state_id = STATE_ID

    def truth(self, entity: str) -> dict[str, dict[str, Any]]:
        """The simulator's records of an entity by id (as text), as the tap's stream of that
        name holds them: the deals and leads streams also carry archived ones (flagged
        is_archived)."""
        records = self.simulator.truth(entity)
        if entity in {"deals", "leads"}:
            records = records + self.simulator.truth(f"archived_{entity}")
        return {str(record["id"]): record for record in records}

    def assert_no_duplicates(self, table: str) -> None:
        rows = self.query(
            sql.SQL("select id, count(*) from {} group by id having count(*) > 1").format(
                self.table(table)
            )
        )
        assert rows == [], f"{table}: duplicated ids {rows[:10]}"

    def assert_matches_truth(self, entity: str, *, exact: bool = True) -> None:
        """The table holds the simulator's records (all of them, and with ``exact`` nothing
        else), each once, with the simulator's update_time."""
        truth = self.truth(entity)
        stored = self.query(
            sql.SQL("select id::text, to_jsonb(t) ->> 'update_time' from {} t").format(
                self.table(entity)
            )
        )
        ids = {row[0] for row in stored}
        self.assert_no_duplicates(entity)
        if exact:
            assert ids == set(truth), f"{entity}: {len(ids)} rows, simulator has {len(truth)}"
        else:
            assert set(truth) <= ids, f"{entity}: missing {sorted(set(truth) - ids)[:10]}"
        for id_, update_time in stored:
            expected = truth.get(id_, {}).get("update_time")
            if expected and update_time:
                assert as_utc(update_time) == as_utc(expected), (entity, id_)

    def on_another_machine(self, directory: Path) -> Pipeline:
        """The same pipeline run from another checkout of the project (its own .meltano/, like
        another machine or pod); the plugin installations are linked, not reinstalled."""
        (directory / ".meltano").mkdir(parents=True)
        shutil.copy(self.project / "meltano.yml", directory / "meltano.yml")
        for name in ("tap-pipedrive", "target-pipeboard-postgres", "requirements"):
            (directory / name).symlink_to((self.project / name).resolve(), target_is_directory=True)
        for kind in ("extractors", "loaders"):
            (directory / ".meltano" / kind).symlink_to(self.project / ".meltano" / kind)
        return replace(self, project=directory, extra_env=dict(self.extra_env))

    def stored_state(self, state_id: str = STATE_ID) -> dict[str, Any] | None:
        """The completed state Meltano stored under ``state_id``, read straight from its system
        database (cheaper than a `meltano state get` per check)."""
        engine = create_engine(self.system_db)
        try:
            with engine.connect() as conn:
                row = conn.execute(
                    text("select completed_state from state where state_id = :id"),
                    {"id": state_id},
                ).first()
        finally:
            engine.dispose()
        if row is None or not row[0]:
            return None
        value = row[0]
        state: dict[str, Any] = value if isinstance(value, dict) else json.loads(value)
        return state

    def tamper(self, table: str) -> int:
        """Overwrite every title in Postgres: a change the tap cannot see, so only a real re-read
        from Pipedrive brings a title back. Returns the number of rows changed."""
        query = sql.SQL("update {} set title = 'tampered' returning id").format(self.table(table))
        return len(self.query(query))

    def tampered(self, table: str) -> set[str]:
        """Ids whose title is still the tampered one."""
        return {str(i) for i in self.ids(table, "title = 'tampered'")}

    def live_ids(self, table: str) -> set[str]:
        """Ids of rows not retired by ACTIVATE_VERSION (soft deletes set _sdc_deleted_at)."""
        columns = {
            row[0]
            for row in self.query(
                "select column_name from information_schema.columns"
                " where table_schema = %s and table_name = %s",
                self.schema,
                table,
            )
        }
        live = "_sdc_deleted_at is null" if "_sdc_deleted_at" in columns else "true"
        return {str(i) for i in self.ids(table, live)}

    def ids(self, table: str, where: str = "true") -> list[Any]:
        rows = self.query(
            sql.SQL("select id from {} where {} order by id").format(
                self.table(table), sql.SQL(where)
            )
        )
        return [row[0] for row in rows]


@pytest.fixture
def pipeline_factory(
    meltano_project: Path, postgres_url: str, pg_schema: str, tmp_path: Path
) -> Callable[..., Pipeline]:
    """``factory(simulator, system_db=None)``: a Pipeline on this test's schema; by default its
    state lives in its own SQLite system database."""

    def factory(simulator: Any, system_db: str | None = None) -> Pipeline:
        db = system_db or f"sqlite:///{tmp_path / f'meltano-{uuid.uuid4().hex[:6]}.db'}"
        return Pipeline(meltano_project, simulator, postgres_url, pg_schema, db)

    return factory


# The streams entity history is made of: the history tests select only these (the others prove
# nothing there and cost most of each run's time).
HISTORY_STREAM_NAMES = (
    "deals",
    "persons",
    "organizations",
    "stages",
    "pipelines",
    "deal_stage_changes",
    "deal_changes",
    "person_changes",
    "organization_changes",
)


@pytest.fixture
def history_streams() -> dict[str, str]:
    """The tap's environment selecting only the streams history is made of."""
    return {"TAP_PIPEDRIVE__SELECT_FILTER": json.dumps(list(HISTORY_STREAM_NAMES))}


@pytest.fixture
def events_schema(sibling_schema: Callable[[str], str]) -> str:
    """The webhook receiver's event-log schema of this test (dropped afterwards)."""
    return sibling_schema("events")


@pytest.fixture
def webhooks_pipeline_factory(
    pipeline_factory: Callable[..., Pipeline], postgres_url: str, events_schema: str
) -> Iterator[Callable[..., tuple[Pipeline, Any]]]:
    """``factory(simulator, **env) -> (pipeline, receiver)``: a Pipeline in webhooks mode (its
    extra environment ``env``), with `tap-pipedrive-webhooks serve` started on the test's event
    log and registered with the simulator (stopped afterwards)."""
    sys.path.insert(0, str(ROOT / "tap-pipedrive" / "tests"))
    from webhook_support import PASSWORD, USER, Receiver, receiver_command

    receivers: list[Any] = []

    def factory(simulator: Any, **env: str) -> tuple[Pipeline, Any]:
        pipeline = pipeline_factory(simulator)
        pipeline.extra_env.update(
            {
                "PIPEBOARD_WEBHOOK_DATABASE_URL": postgres_url,
                "TAP_PIPEDRIVE_WEBHOOK_SCHEMA": events_schema,
                **env,
            }
        )
        receiver = Receiver(postgres_url, events_schema).start()
        receivers.append(receiver)
        register = subprocess.run(
            [
                *receiver_command(),
                "register",
                "--api-url",
                simulator.base_url,
                "--api-token",
                simulator.api_token,
                "--subscription-url",
                receiver.url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                "PATH": "",
                "PIPEBOARD_WEBHOOK_USER": USER,
                "PIPEBOARD_WEBHOOK_PASSWORD": PASSWORD,
            },
        )
        assert register.returncode == 0, register.stderr
        return pipeline, receiver

    yield factory
    for receiver in receivers:
        receiver.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited with {process.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout_s} s")


@pytest.fixture
def utc() -> Callable[[Any], datetime]:
    """``utc(value)``: a Pipedrive or Postgres timestamp as an aware UTC datetime."""
    return as_utc


@pytest.fixture(scope="session")
def prometheus_binaries() -> None:
    """prometheus-pushgateway, prometheus/promtool and prometheus-alertmanager/amtool from
    Debian, installed by the project's own script when missing."""
    subprocess.run(["bash", str(ROOT / "scripts" / "install_test_services.sh")], check=True)


@contextmanager
def serving(args: list[str], log_path: Path, ready_url: str) -> Iterator[None]:
    """Run a service (``args``, output to ``log_path``) until the block ends, once
    ``ready_url`` answers 200."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_http(ready_url, process)
            yield
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def pushgateway(prometheus_binaries: None, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus Pushgateway on a free port, empty; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        "prometheus-pushgateway",
        f"--web.listen-address=127.0.0.1:{port}",
        # Debian's build persists to /var/lib/prometheus/pushgateway.data by default: every
        # test's gateway would start with the groups earlier tests pushed.
        "--persistence.file=",
    ]
    with serving(args, tmp_path / "pushgateway.log", f"{url}/-/ready"):
        yield url


@pytest.fixture
def start_prometheus(
    prometheus_binaries: None, pushgateway: str, tmp_path: Path
) -> Iterator[Callable[..., str]]:
    """``start(rule_files=None, alertmanager=None)``: Prometheus with the project's config,
    pointed at the test Pushgateway, scraping and evaluating every second; returns its URL.

    ``rule_files`` replace the project's alerts.yml (e.g. a copy with shorter ``for:``);
    ``alertmanager`` (a URL) replaces the project's Alertmanager, which is dropped without it.
    Stopped at the end of the test."""
    with ExitStack() as stack:

        def start(rule_files: list[Path] | None = None, alertmanager: str | None = None) -> str:
            config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
            config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
            config["rule_files"] = [
                str(path)
                for path in rule_files
                or [PROMETHEUS_CONFIG.parent / name for name in config["rule_files"]]
            ]
            # The Pushgateway job only (no webhook receiver runs here), pointed at the test's.
            (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "pushgateway"]
            job["static_configs"] = [{"targets": [pushgateway.removeprefix("http://")]}]
            config["scrape_configs"] = [job]
            (alertmanagers,) = config["alerting"]["alertmanagers"]
            if alertmanager:
                target = alertmanager.removeprefix("http://")
                alertmanagers["static_configs"] = [{"targets": [target]}]
            else:
                del config["alerting"]
            port = free_port()
            directory = tmp_path / f"prometheus-{port}"
            directory.mkdir()
            (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
            url = f"http://127.0.0.1:{port}"
            args = [
                "prometheus",
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ]
            stack.enter_context(serving(args, directory / "prometheus.log", f"{url}/-/ready"))
            return url

        yield start


@pytest.fixture
def prometheus(start_prometheus: Callable[..., str]) -> str:
    """Prometheus with the project's config and rules, pointed at the test Pushgateway,
    scraping fast (no Alertmanager)."""
    return start_prometheus()


@dataclass
class AlertReceiver:
    """A local HTTP server standing in for the Slack webhook: records what is posted to it."""

    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float
    ) -> dict[str, Any]:
        """The first post ``predicate`` accepts, waiting up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [post for post in list(self.posts) if predicate(post)]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"no matching post in {timeout_s} s: {self.posts}"
            time.sleep(0.2)


@pytest.fixture
def alert_receiver() -> Iterator[AlertReceiver]:
    """An HTTP server on a free port that answers every POST like Slack ("ok")."""
    receiver = AlertReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.posts.append({"path": self.path, **json.loads(body)})
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/test"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def alertmanager(
    prometheus_binaries: None, alert_receiver: AlertReceiver, tmp_path: Path
) -> Iterator[str]:
    """A real Alertmanager on a free port with the project's alertmanager.yml, its Slack
    webhook URL file pointing at ``alert_receiver`` and its group_wait and group_interval
    shortened to a second (an alert that joins a group later is posted a second later, not after
    five minutes); yields its URL."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    webhook_url = tmp_path / "slack_webhook_url"
    webhook_url.write_text(alert_receiver.url + "\n")
    for receiver in config["receivers"]:
        for slack in receiver["slack_configs"]:
            assert slack["api_url_file"].startswith("/run/secrets/")
            slack["api_url_file"] = str(webhook_url)
    config["route"].update({"group_wait": "1s", "group_interval": "1s"})
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config, allow_unicode=True))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        "prometheus-alertmanager",
        f"--config.file={tmp_path / 'alertmanager.yml'}",
        f"--storage.path={tmp_path / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # A single Alertmanager: no cluster port (the default 9094 would clash between tests).
        "--cluster.listen-address=",
    ]
    with serving(args, tmp_path / "alertmanager.log", f"{url}/-/ready"):
        yield url


@dataclass(frozen=True)
class SystemDatabase:
    """A Postgres database for Meltano's system database (state)."""

    libpq: str  # for psycopg
    uri: str  # MELTANO_DATABASE_URI: SQLAlchemy with the psycopg 3 driver


@pytest.fixture
def meltano_database(postgres_url: str) -> Iterator[SystemDatabase]:
    """A fresh Postgres database to hold Meltano's system database."""
    name = f"meltano_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    info = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(postgres_url).items()}
    info["dbname"] = name
    host = info.get("host", "")
    uri = URL.create(
        "postgresql+psycopg",
        username=info.get("user"),
        password=info.get("password") or None,
        host=None if host.startswith("/") else host,
        port=int(info["port"]) if info.get("port") else None,
        database=name,
        query={"host": host} if host.startswith("/") else {},
    )
    try:
        yield SystemDatabase(
            psycopg.conninfo.make_conninfo(**info), uri.render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
