"""MeltanoLabs target-postgres's TLS setting names, against the TLS server of rel_tls_server.py.

Users switching from MeltanoLabs target-postgres keep `ssl_enable`, `ssl_mode` and
`ssl_certificate_authority` (given as the certificate itself, as there). They must verify the
server as they did there: never ignored, never downgraded to `require`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rel_support import PluginRun, bookmark_state, record_msg, run_target, schema_msg
from rel_tls_server import Role, TlsPostgres

PROPS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}
LOAD = (
    schema_msg("tls_rows", PROPS)
    + record_msg("tls_rows", {"id": 1, "name": "one"})
    + record_msg("tls_rows", {"id": 2, "name": "two"})
    + bookmark_state("tls_rows", 2)
)


@pytest.fixture
def role(tls_postgres: TlsPostgres) -> Iterator[Role]:
    r = Role(tls_postgres, create_on_db=True)
    yield r
    r.drop()


def _run(role: Role, tmp_path: Path, url: str | None = None, **settings: Any) -> PluginRun:
    config = {"database_url": url or role.url(), "default_target_schema": role.schema, **settings}
    return run_target(config, LOAD, tmp_path)


def _verified_logins(role: Role) -> None:
    logins = role.logins()
    assert logins, "the target never logged in"
    assert all("SSL enabled" in entry for entry in logins), logins


def test_certificate_authority_given_as_text_verifies_the_server(
    role: Role, tmp_path: Path
) -> None:
    ca_text = role.server.certs.ca_cert.read_text()
    run = _run(
        role,
        tmp_path,
        ssl_enable="true",
        ssl_mode="verify-full",
        ssl_certificate_authority=ca_text.replace("\n", "\\n"),  # as from an environment variable
    )
    assert run.returncode == 0, run.err_text[-3000:]
    assert [(r["id"], r["name"]) for r in role.rows()] == [(1, "one"), (2, "two")]
    _verified_logins(role)


def test_wrong_certificate_authority_as_text_is_refused(role: Role, tmp_path: Path) -> None:
    run = _run(
        role,
        tmp_path,
        ssl_enable=True,
        ssl_certificate_authority=role.server.certs.wrong_ca_cert.read_text(),
    )
    assert run.returncode != 0
    assert "certificate verify failed" in run.err_text, run.err_text[-3000:]
    assert role.logins() == []


def test_ssl_mode_verify_full_is_not_downgraded_for_a_wrong_host_name(
    role: Role, tmp_path: Path
) -> None:
    # The right server under a name its certificate does not carry: only verify-full (not
    # require, not verify-ca) refuses it.
    url = role.url(host="pipeboard-wrong-name.invalid") + "?hostaddr=127.0.0.1"
    run = _run(
        role,
        tmp_path,
        url,
        ssl_enable=True,
        ssl_mode="verify-full",
        ssl_certificate_authority=str(role.server.certs.ca_cert),
    )
    assert run.returncode != 0
    assert "host name" in run.err_text or "hostname" in run.err_text, run.err_text[-3000:]
    assert role.logins() == []
