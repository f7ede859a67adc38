"""`meltano run` at debug level leaks no secret: Meltano's own output and logs, the plugins'
output, and what Meltano stores in its system database are scanned for the API token and the
database password (raw, URL-encoded and base64)."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

API_TOKEN = f"pbE2eSecretToken{uuid.uuid4().hex}"
DB_PASSWORD = f"pbE2eSecretPw{uuid.uuid4().hex[:12]}"


def _forms(secret: str) -> set[bytes]:
    return {
        form.encode()
        for form in (
            secret,
            quote(secret, safe=""),
            base64.b64encode(secret.encode()).decode(),
            base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
        )
    }


def _with_password(url: str, password: str) -> str:
    # The test server trusts local connections, so the password is accepted and never checked:
    # it is there to be leaked, not to be needed.
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or "postgres"
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{netloc}"))


def test_meltano_run_at_debug_level_prints_no_secret(
    pipedrive_simulator_factory, pipeline_factory
) -> None:
    simulator = pipedrive_simulator_factory(seed=11, deals=40, api_token=API_TOKEN)
    pipeline = pipeline_factory(simulator)
    pipeline.database_url = _with_password(pipeline.database_url, DB_PASSWORD)
    debug = {"MELTANO_CLI_LOG_LEVEL": "debug", "LOGLEVEL": "DEBUG"}

    result = pipeline.meltano("run", "tap-pipedrive", "target-pipeboard-postgres", env=debug)
    failed = pipeline.meltano(
        "run",
        "tap-pipedrive",
        "target-pipeboard-postgres",
        env={**debug, "TAP_PIPEDRIVE_API_TOKEN": API_TOKEN[::-1] + "x"},
        check=False,
    )
    assert failed.returncode != 0  # the failure path (a rejected token) is scanned too

    outputs = [result.stdout, result.stderr, failed.stdout, failed.stderr]
    scanned = b"".join(text.encode() for text in outputs)
    assert b"DEBUG" in scanned.upper()  # really at debug level
    assert pipeline.ids("deals"), "the run loaded nothing"
    logs = pipeline.project / ".meltano" / "logs"
    if logs.exists():
        scanned += b"".join(path.read_bytes() for path in logs.rglob("*") if path.is_file())
    system_db = Path(pipeline.system_db.removeprefix("sqlite:///"))
    scanned += system_db.read_bytes()
    assert len(scanned) > 10_000, "too little output to prove anything"
    # Settings that are not secret do show (the scan looks where config values would leak).
    assert simulator.base_url.encode() in scanned

    for secret in (API_TOKEN, DB_PASSWORD, API_TOKEN[::-1] + "x"):
        leaked = [form[:12] for form in _forms(secret) if form in scanned]
        assert leaked == [], f"secret {secret[:8]}... found in the output as {leaked}"
