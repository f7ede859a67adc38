"""Settings: connection choices, booleans given as strings, secrets kept out of messages,
the embedded server, Meltano's load-schema convention, and metrics pushed at the end of a run."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from target_pipeboard_postgres import embedded
from target_pipeboard_postgres.errors import (
    DatabaseUnavailableError,
    InvalidSettingError,
    MissingConnectionSettingsError,
)
from target_pipeboard_postgres.settings import (
    NUMBER_SETTINGS,
    as_bool,
    as_number,
    connection_spec,
    normalize,
    redact,
)
from target_pipeboard_postgres.target import TargetPipeboardPostgres

SCHEMA = (
    '{"type": "SCHEMA", "stream": "deals", "key_properties": ["id"], '
    '"schema": {"properties": {"id": {"type": "integer"}}}}\n'
)


def test_no_connection_settings_fail_with_the_settings_to_give():
    with pytest.raises(MissingConnectionSettingsError) as info:
        TargetPipeboardPostgres(config={"default_target_schema": "x"})
    assert "`database_url`" in str(info.value)
    assert "`host`" in str(info.value)


def test_no_connection_settings_on_the_command_line(tmp_path):
    config = tmp_path / "config.json"
    config.write_text("{}")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from target_pipeboard_postgres.target import TargetPipeboardPostgres as T; T.cli()",
            "--config",
            str(config),
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "No database connection configured" in result.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(True, True, id="bool-true"),
        pytest.param("true", True, id="str-true"),
        pytest.param("TRUE ", True, id="str-upper"),
        pytest.param("1", True, id="str-one"),
        pytest.param("false", False, id="str-false"),
        pytest.param("0", False, id="str-zero"),
        pytest.param(False, False, id="bool-false"),
    ],
)
def test_booleans_as_strings(value, expected):
    assert as_bool(value, "ssl_enable") is expected


def test_unclear_boolean_is_an_error():
    with pytest.raises(InvalidSettingError, match="ssl_enable"):
        as_bool("sometimes", "ssl_enable")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param({"ssl_enable": "true"}, {"sslmode": "require"}, id="ssl-enable-string"),
        pytest.param({"ssl_enable": "false"}, {}, id="ssl-disabled-string"),
        pytest.param(
            {
                "sslmode": "verify-full",
                "sslrootcert": "/ca.pem",
                "sslcert": "/c.pem",
                "sslkey": "/k",
            },
            {
                "sslmode": "verify-full",
                "sslrootcert": "/ca.pem",
                "sslcert": "/c.pem",
                "sslkey": "/k",
            },
            id="verify-full-with-certificates",
        ),
    ],
)
def test_ssl_settings_reach_libpq(config, expected):
    full = {"host": "db.example", "user": "loader", "password": "pw", "database": "crm", **config}
    normalize(full)
    params = conninfo_to_dict(connection_spec(full).conninfo)
    assert {k: v for k, v in params.items() if k.startswith("ssl")} == expected
    assert params["host"] == "db.example"
    assert params["port"] == "5432"
    assert params["dbname"] == "crm"


def test_database_url_takes_precedence_and_gets_ssl_options():
    spec = connection_spec(
        {"database_url": "postgresql://a:b@h:6543/d", "host": "other", "sslmode": "require"}
    )
    params = conninfo_to_dict(spec.conninfo)
    assert (params["host"], params["port"], params["sslmode"]) == ("h", "6543", "require")
    assert spec.display == "user=a password=*** dbname=d host=h port=6543 sslmode=require"


def test_host_without_user_or_database_is_named():
    with pytest.raises(InvalidSettingError, match="`user` and `database`"):
        connection_spec({"host": "h"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("postgresql://u:pw@h:5432/d", "postgresql://u:***@h:5432/d", id="uri"),
        pytest.param("postgres://u@h/d", "postgres://u@h/d", id="uri-without-password"),
        pytest.param("host=h password=pw user=u", "host=h password=*** user=u", id="conninfo"),
        pytest.param("host=h password='p w' user=u", "host=h password=*** user=u", id="quoted"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def test_meltano_load_schema_convention(run_target, rows, pg_schema, monkeypatch):
    monkeypatch.setenv("MELTANO_EXTRACT__LOAD_SCHEMA", pg_schema)
    run_target(
        SCHEMA + '{"type": "RECORD", "stream": "deals", "record": {"id": 7}}\n',
        default_target_schema="$MELTANO_EXTRACT__LOAD_SCHEMA",
    )
    assert rows("deals") == [(7,)]


def test_unset_load_schema_variable_is_an_error(target_config, monkeypatch):
    monkeypatch.delenv("MELTANO_EXTRACT__LOAD_SCHEMA", raising=False)
    with pytest.raises(InvalidSettingError, match="default_target_schema"):
        TargetPipeboardPostgres(
            config={**target_config, "default_target_schema": "$MELTANO_EXTRACT__LOAD_SCHEMA"}
        )


def test_hard_delete_false_as_a_string_soft_deletes(run_target, rows):
    run_target("deletes.singer", hard_delete="false")
    assert [r[0] for r in rows("persons", "id")] == [1, 2, 3]


def test_embedded_server_keeps_its_data_between_runs(monkeypatch):
    # a short directory: the server's unix socket path must stay under ~100 bytes
    base = Path("/tmp") / f"pbe-{uuid.uuid4().hex[:8]}"
    base.mkdir()
    monkeypatch.chdir(base)
    url = "embedded://pg"  # relative to the working directory
    try:
        for run, ident in enumerate((1, 2)):
            target = TargetPipeboardPostgres(
                config={"database_url": url, "default_target_schema": "crm"}
            )
            target.listen(
                io.StringIO(
                    SCHEMA
                    + f'{{"type": "RECORD", "stream": "deals", "record": {{"id": {ident}}}}}\n'
                )
            )
            with psycopg.connect(embedded.server_uri(str(base / "pg"))) as conn:
                landed = conn.execute("SELECT id FROM crm.deals ORDER BY id").fetchall()
            assert landed == [(i,) for i in range(1, run + 2)]
        assert (base / "pg" / "PG_VERSION").exists()
    finally:
        embedded.release("pg")
        embedded.release(str(base / "pg"))
        shutil.rmtree(base, ignore_errors=True)


class _Gateway(BaseHTTPRequestHandler):
    """Records pushes; answers the API v1 group listing with ``groups``."""

    received: ClassVar[list[tuple[str, str, bytes]]] = []
    groups: ClassVar[list[dict[str, object]]] = []

    def _store(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.command, unquote(self.path), body))
        self.send_response(200)
        self.end_headers()

    do_PUT = do_POST = _store

    def do_GET(self) -> None:
        self.received.append((self.command, self.path, b""))
        body = json.dumps({"status": "success", "data": self.groups}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _group(pipeline: str, last_success: float) -> dict[str, object]:
    labels = {"job": "target-pipeboard-postgres", "pipeline": pipeline}
    gauge = {"metrics": [{"labels": {**labels, "instance": ""}, "value": str(last_success)}]}
    return {"labels": labels, "pipeboard_target_last_success_timestamp_seconds": gauge}


@pytest.mark.parametrize(
    ("fails", "previous"),
    [(False, None), (True, 1_700_000_000.25), (True, None)],
    ids=["success", "failure", "failure-never-succeeded"],
)
def test_metrics_pushed_at_end_of_run(target_config, fails, previous, monkeypatch):
    monkeypatch.setenv("MELTANO_ENVIRONMENT", "prod")
    monkeypatch.setenv("MELTANO_EXTRACTOR_NAME", "tap-pipedrive")
    monkeypatch.setenv("MELTANO_RUN_STATE_ID_SUFFIX", "deals")
    _Gateway.received = []
    _Gateway.groups = [_group("prod:tap-pipedrive", 1_800_000_000)]
    if previous is not None:
        _Gateway.groups.append(_group("prod:tap-pipedrive:deals", previous))
    server = HTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = {**target_config, "pushgateway_url": f"http://127.0.0.1:{server.server_port}"}
        target = TargetPipeboardPostgres(config=config)
        text = SCHEMA + '{"type": "RECORD", "stream": "deals", "record": {"id": 1}}\n'
        if fails:
            text += "{broken\n"
            with pytest.raises(Exception, match="input line 3"):
                target.listen(io.StringIO(text))
        else:
            target.listen(io.StringIO(text))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    # A failed run first reads its group's last success back; a successful one need not.
    assert [method for method, _, _ in _Gateway.received] == (["GET", "PUT"] if fails else ["PUT"])
    _, path, body = _Gateway.received[-1]
    # The parallel pod's own group (job + pipeline), replaced as a whole.
    assert path == "/metrics/job/target-pipeboard-postgres/pipeline/prod:tap-pipedrive:deals"
    text_body = body.decode()
    assert "# TYPE pipeboard_target_columns_widened_total counter" in text_body
    # the good record before the broken line was still committed
    assert 'pipeboard_target_records_loaded_total{stream="deals"} 1.0' in text_body
    last_success = [
        line
        for line in text_body.splitlines()
        if line.startswith("pipeboard_target_last_success_timestamp_seconds ")
    ]
    if not fails:
        assert 'pipeboard_target_batch_rows_count{stream="deals"} 1.0' in text_body
        assert "pipeboard_target_batch_duration_seconds_bucket" in text_body
        (line,) = last_success
        assert float(line.split()[1]) > 1_700_000_000
    elif previous is not None:
        (line,) = last_success
        assert float(line.split()[1]) == previous
    else:
        assert last_success == []


CA_PEM = (
    "-----BEGIN CERTIFICATE-----\nMIIBfakeCAbody0123\nAAAAsecondline==\n-----END CERTIFICATE-----\n"
)
KEY_PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIGHfakeKEYbody456\nBBBBsecondline==\n-----END PRIVATE KEY-----\n"
)


def _ssl_params(config: dict[str, object]) -> dict[str, str]:
    full = {"host": "db.example", "user": "loader", "database": "crm", **config}
    normalize(full)
    params = conninfo_to_dict(connection_spec(full).conninfo)
    return {k: str(v) for k, v in params.items() if k.startswith("ssl")}


def test_meltanolabs_ssl_mode_is_never_downgraded_to_require():
    # the audit's case: MeltanoLabs users write ssl_enable + ssl_mode
    assert _ssl_params({"ssl_enable": "true", "ssl_mode": "verify-full"}) == {
        "sslmode": "verify-full"
    }
    assert _ssl_params({"ssl_mode": "verify-ca"}) == {"sslmode": "verify-ca"}


def test_meltanolabs_certificate_settings_as_paths(tmp_path):
    paths = {name: tmp_path / name for name in ("ca.crt", "client.crt", "client.key")}
    for path in paths.values():
        path.write_text("x")
    assert _ssl_params(
        {
            "ssl_enable": True,
            "ssl_mode": "verify-ca",
            "ssl_certificate_authority": str(paths["ca.crt"]),
            "ssl_client_certificate": str(paths["client.crt"]),
            "ssl_client_private_key": str(paths["client.key"]),
        }
    ) == {
        "sslmode": "verify-ca",
        "sslrootcert": str(paths["ca.crt"]),
        "sslcert": str(paths["client.crt"]),
        "sslkey": str(paths["client.key"]),
    }


@pytest.mark.parametrize(
    ("ca_text", "key_text"),
    [
        pytest.param(CA_PEM, KEY_PEM, id="pem"),
        pytest.param(CA_PEM.replace("\n", "\\n"), KEY_PEM.replace("\n", "\\n"), id="escaped"),
        pytest.param(CA_PEM.replace("\n", " "), KEY_PEM.replace("\n", " "), id="one-line"),
    ],
)
def test_meltanolabs_certificate_contents_are_written_to_private_files(ca_text, key_text):
    params = _ssl_params(
        {
            "ssl_enable": True,
            "ssl_certificate_authority": ca_text,
            "ssl_client_private_key": key_text,
        }
    )
    # a CA without a mode means verify-full, as in MeltanoLabs target-postgres
    assert params["sslmode"] == "verify-full"
    ca, key = Path(params["sslrootcert"]), Path(params["sslkey"])
    assert ca.read_text() == CA_PEM
    assert key.read_text() == KEY_PEM
    assert key.stat().st_mode & 0o777 == 0o600  # libpq refuses a key others can read
    assert ca.parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        pytest.param({"sslmode": "require", "ssl_mode": "verify-full"}, "ssl_mode", id="modes"),
        pytest.param(
            {"sslrootcert": "/a.pem", "ssl_certificate_authority": CA_PEM},
            "ssl_certificate_authority",
            id="ca",
        ),
        pytest.param({"ssl_mode": "verify-everything"}, "ssl_mode", id="unknown-mode"),
        pytest.param(
            {"ssl_client_private_key": "/no/such/key-file"}, "ssl_client_private_key", id="no-file"
        ),
        pytest.param(
            {"ssl_certificate_authority": "-----BEGIN CERTIFICATE----- cut"},
            "ssl_certificate_authority",
            id="truncated-pem",
        ),
    ],
)
def test_unusable_tls_settings_are_refused(config, setting):
    with pytest.raises(InvalidSettingError, match=f"`{setting}`") as info:
        _ssl_params(config)
    assert "/no/such/key-file" not in str(info.value)  # a key setting's value is never echoed


def test_ssl_mode_alias_reaches_the_server(target_config):
    # The test server has TLS off: with ssl_mode ignored (libpq's default `prefer`) this run
    # would connect; verify-full must be refused before any login.
    target = TargetPipeboardPostgres(
        config={**target_config, "ssl_enable": True, "ssl_mode": "verify-full"}
    )
    with pytest.raises(DatabaseUnavailableError, match="SSL"):
        target.listen(io.StringIO(SCHEMA))


def test_ssl_enable_alone_warns_that_the_server_is_not_verified(target_config, caplog):
    with caplog.at_level("WARNING", logger="target-pipeboard-postgres"):
        TargetPipeboardPostgres(config={**target_config, "ssl_enable": "true"})
        TargetPipeboardPostgres(config={**target_config, "ssl_enable": True, "sslmode": "require"})
    warnings = [r.getMessage() for r in caplog.records if "not verified" in r.getMessage()]
    assert len(warnings) == 1
    assert "sslmode=require" in warnings[0]


@pytest.mark.parametrize("value", [0, -1, "soon", True])
def test_batch_wait_limit_must_be_a_positive_number(value):
    with pytest.raises(InvalidSettingError, match="batch_wait_limit_seconds"):
        normalize({"batch_wait_limit_seconds": value})


def test_every_number_setting_is_coerced():
    assert NUMBER_SETTINGS == ("batch_wait_limit_seconds",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("5", 5.0, id="whole"),
        pytest.param(" 0.5 ", 0.5, id="fraction-padded"),
        pytest.param("2.5e1", 25.0, id="exponent"),
        pytest.param(7, 7, id="number-untouched"),
    ],
)
def test_numbers_given_as_strings_become_numbers(value, expected):
    config = {"batch_wait_limit_seconds": value}
    normalize(config)
    assert config["batch_wait_limit_seconds"] == expected
    assert type(config["batch_wait_limit_seconds"]) is type(expected)


@pytest.mark.parametrize("value", ["soon", "", "5s", "1,5", "NaN", "inf", "1e999"])
def test_a_number_setting_that_is_not_a_number_is_named(value):
    with pytest.raises(InvalidSettingError) as info:
        as_number(value, "batch_wait_limit_seconds")
    message = f"Setting `batch_wait_limit_seconds`: expected a number, got {value!r}"
    assert str(info.value) == message
    assert info.value.errors == [message]


def test_the_target_converts_numbers_before_the_sdk_validates_them():
    # No connection is made at start: a URL of a server that does not exist is enough.
    config = {"database_url": "postgresql://u@127.0.0.1:9/db", "batch_wait_limit_seconds": "5"}
    target = TargetPipeboardPostgres(config=config)
    assert target.config["batch_wait_limit_seconds"] == 5.0
    assert target.ledger.wait_limit == 5.0


def test_the_target_names_a_number_setting_that_is_not_a_number():
    config = {"database_url": "postgresql://u@127.0.0.1:9/db", "batch_wait_limit_seconds": "5s"}
    with pytest.raises(InvalidSettingError, match="`batch_wait_limit_seconds`: expected a number"):
        TargetPipeboardPostgres(config=config)
