"""No secret in any output: the whole pipeline at DEBUG level, every byte scanned.

tap → target runs against the simulator and a Postgres server that really checks the
database password (the TLS test server), once with an API token and once with OAuth, plus the
failure paths (a wrong token, a wrong password). Every byte both plugins write (Singer
messages, state, logs, metrics) is searched for each secret, raw and in the encodings a
careless log line would carry (URL-encoded, base64, HTTP Basic).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from rel_figures import Figures
from rel_pipeline import Pipeline, PipelineRun
from rel_support import record_msg, run_target, schema_msg
from rel_tls_server import Role, TlsPostgres

API_TOKEN = f"pbSecretApiToken{uuid.uuid4().hex}"
DEBUG = {"LOGLEVEL": "DEBUG"}


def encodings(secret: str) -> set[str]:
    return {
        secret,
        quote(secret, safe=""),
        base64.b64encode(secret.encode()).decode(),
        base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
    }


def scan(output: bytes, secrets: Iterable[str], figures: Figures | None = None) -> list[str]:
    """The secrets (in any encoding) found in ``output``."""
    found = []
    for secret in secrets:
        for form in encodings(secret):
            if form.encode() in output:
                found.append(f"{secret[:6]}... as {form[:10]}...")
    if figures is not None:
        figures.add("secret_scans_bytes", len(output))
        figures.add("secrets_leaked", len(found))
    return found


def test_the_scan_finds_a_planted_secret_in_every_encoding() -> None:
    secret = "pb-Planted/Secret+Value="
    for form in encodings(secret):
        assert scan(b"log line: " + form.encode() + b" end", [secret]), form
    assert scan(b"nothing to see", [secret]) == []


@pytest.fixture
def sim(pipedrive_simulator_factory: Callable[..., Any]) -> Any:
    return pipedrive_simulator_factory(seed=7, deals=60, api_token=API_TOKEN)


@pytest.fixture
def db_role(tls_postgres: TlsPostgres) -> Iterator[Role]:
    r = Role(tls_postgres, create_on_db=True)
    yield r
    r.drop()


def target_config(role: Role) -> dict[str, Any]:
    # The password travels in the URL: the form most likely to be echoed in an error.
    return {
        "database_url": role.url()
        + f"?sslmode=verify-full&sslrootcert={role.server.certs.ca_cert}",
        "default_target_schema": role.schema,
    }


def base_tap_config(sim: Any) -> dict[str, Any]:
    return {"api_url": sim.base_url, "start_date": "2000-01-01T00:00:00Z", "page_size": 50}


def oauth_refresh_token(sim: Any) -> str:
    """Go through the simulator's OAuth consent: an authorization code for a refresh token."""
    answer = requests.post(
        f"{sim.base_url}/oauth/token",
        data={"grant_type": "authorization_code", "code": sim.oauth_code()},
        auth=(sim.oauth_client_id, sim.oauth_client_secret),
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["refresh_token"])


def issued_access_tokens(sim: Any) -> list[str]:
    # Access tokens exist only inside the tap and the simulator; read them from the latter.
    return list(sim.simulator.auth._access)


def assert_no_secret(run: PipelineRun, secrets: list[str], figures: Figures) -> None:
    leaks = scan(run.all_output(), secrets, figures)
    assert not leaks, f"secrets in the output: {leaks}"


def test_api_token_run_at_debug_level_leaks_nothing(
    sim: Any, db_role: Role, tmp_path: Path, figures: Figures
) -> None:
    pipeline = Pipeline(
        {**base_tap_config(sim), "api_token": API_TOKEN},
        target_config(db_role),
        tmp_path,
        env=DEBUG,
    )
    run = pipeline.run()
    assert run.ok, run.describe()
    assert b"DEBUG" in run.tap.stderr, "the tap did not log at debug level"
    assert b"DEBUG" in run.target.stderr, "the target did not log at debug level"
    assert len(db_role.rows("deals")) > 0
    assert_no_secret(run, [API_TOKEN, db_role.password, db_role.url()], figures)


def test_oauth_run_at_debug_level_leaks_nothing(
    sim: Any, db_role: Role, tmp_path: Path, figures: Figures
) -> None:
    refresh = oauth_refresh_token(sim)
    pipeline = Pipeline(
        {
            **base_tap_config(sim),
            "client_id": sim.oauth_client_id,
            "client_secret": sim.oauth_client_secret,
            "refresh_token": refresh,
            "oauth_token_url": f"{sim.base_url}/oauth/token",
        },
        target_config(db_role),
        tmp_path,
        env=DEBUG,
    )
    run = pipeline.run()
    assert run.ok, run.describe()
    access = issued_access_tokens(sim)
    assert len(access) >= 1, "the tap never obtained an access token"
    basic = f"{sim.oauth_client_id}:{sim.oauth_client_secret}"
    secrets = [sim.oauth_client_secret, refresh, basic, db_role.password, *access]
    assert_no_secret(run, secrets, figures)


def test_failures_at_debug_level_leak_nothing(
    sim: Any, db_role: Role, tmp_path: Path, figures: Figures
) -> None:
    wrong_token = f"pbWrongToken{uuid.uuid4().hex}"
    run = Pipeline(
        {**base_tap_config(sim), "api_token": wrong_token},
        target_config(db_role),
        tmp_path / "wrong-token",
        env=DEBUG,
    ).run()
    assert run.tap.returncode != 0, run.describe()
    assert "token" in run.tap.err_text.lower(), run.describe()
    assert_no_secret(run, [wrong_token, db_role.password], figures)

    # The target connects when the first batch is due: give it one, with a wrong password.
    wrong_password = f"pbWrongPassword{uuid.uuid4().hex}"
    bad_target = target_config(db_role)
    bad_target["database_url"] = bad_target["database_url"].replace(
        db_role.password, wrong_password
    )
    loaded = run_target(
        bad_target,
        schema_msg("s", {"id": {"type": "integer"}}) + record_msg("s", {"id": 1}),
        tmp_path,
        env=DEBUG,
    )
    assert loaded.returncode != 0
    assert "password authentication failed" in loaded.err_text, loaded.err_text[-3000:]
    leaks = scan(loaded.stdout + loaded.stderr, [wrong_password, db_role.password], figures)
    assert not leaks, f"secrets in the output: {leaks}"
