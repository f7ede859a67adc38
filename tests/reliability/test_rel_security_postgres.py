"""TLS to Postgres and least privilege, against a second Postgres server made for the test.

The server (see rel_tls_server.py) has TLS on with a certificate signed by a CA the test made,
password logins only, and logs every login with its TLS status, so each test can see how the
target's own connections were made, not only whether it succeeded.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql
from rel_support import PluginRun, bookmark_state, record_msg, run_target, schema_msg
from rel_tls_server import Role, TlsPostgres

PROPS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}


def small_load(stream: str = "tls_rows") -> bytes:
    return (
        schema_msg(stream, PROPS)
        + record_msg(stream, {"id": 1, "name": "one"})
        + record_msg(stream, {"id": 2, "name": "two"})
        + bookmark_state(stream, 2)
    )


@pytest.fixture
def role(tls_postgres: TlsPostgres) -> Iterator[Role]:
    """The TLS tests' role: owns its schema and may create schemas (least privilege is below)."""
    r = Role(tls_postgres, create_on_db=True)
    yield r
    r.drop()


@pytest.fixture
def least_role(tls_postgres: TlsPostgres) -> Iterator[Role]:
    """Owns its schema and nothing else: no CREATE on the database."""
    r = Role(tls_postgres)
    yield r
    r.drop()


def _config(role: Role, url: str, **settings: Any) -> dict[str, Any]:
    return {"database_url": url, "default_target_schema": role.schema, **settings}


def assert_loaded(run: PluginRun, role: Role) -> None:
    assert run.returncode == 0, run.err_text[-3000:]
    assert [(r["id"], r["name"]) for r in role.rows()] == [(1, "one"), (2, "two")]
    assert run.states[-1] == {"bookmarks": {"tls_rows": {"position": 2}}}


def assert_all_logins(role: Role, *, tls: bool) -> None:
    logins = role.logins()
    assert logins, "the target never logged in"
    for entry in logins:
        assert ("SSL enabled" in entry) is tls, entry


def assert_refused(run: PluginRun, role: Role, *words: str) -> None:
    assert run.returncode != 0
    err = run.err_text
    assert role.password not in err
    assert role.password not in run.stdout.decode(errors="replace")
    assert any(w.lower() in err.lower() for w in words), err[-3000:]


def test_sslmode_require_setting_is_honoured(role: Role, tmp_path: Path) -> None:
    run = run_target(_config(role, role.url(), sslmode="require"), small_load(), tmp_path)
    assert_loaded(run, role)
    assert_all_logins(role, tls=True)


def test_verify_full_with_the_right_ca_connects(role: Role, tmp_path: Path) -> None:
    config = _config(
        role,
        role.url(),
        sslmode="verify-full",
        sslrootcert=str(role.server.certs.ca_cert),
    )
    assert_loaded(run_target(config, small_load(), tmp_path), role)
    assert_all_logins(role, tls=True)


def test_verify_full_in_the_url_is_honoured(role: Role, tmp_path: Path) -> None:
    url = role.url() + f"?sslmode=verify-full&sslrootcert={role.server.certs.ca_cert}"
    assert_loaded(run_target(_config(role, url), small_load(), tmp_path), role)
    assert_all_logins(role, tls=True)


def test_verify_full_refuses_a_server_signed_by_another_ca(role: Role, tmp_path: Path) -> None:
    config = _config(
        role,
        role.url(),
        sslmode="verify-full",
        sslrootcert=str(role.server.certs.wrong_ca_cert),
    )
    run = run_target(config, small_load(), tmp_path)
    assert_refused(run, role, "certificate verify failed", "certificate")
    assert role.logins() == []


def test_verify_full_refuses_a_wrong_host_name(role: Role, tmp_path: Path) -> None:
    # Reach the right server under a name its certificate does not carry.
    url = role.url(host="pipeboard-wrong-name.invalid") + "?hostaddr=127.0.0.1"
    config = _config(role, url, sslmode="verify-full", sslrootcert=str(role.server.certs.ca_cert))
    run = run_target(config, small_load(), tmp_path)
    assert_refused(run, role, "does not match host name", "host name", "hostname")
    assert role.logins() == []


@pytest.mark.parametrize(
    ("value", "tls"),
    [("true", True), ("false", False), ("FALSE", False)],
)
def test_ssl_enable_given_as_a_string_is_parsed(
    value: Any, tls: bool, role: Role, tmp_path: Path
) -> None:
    """A string "false" must not count as true (a non-empty string), nor "true" be ignored.

    libpq's own default (``prefer``) would use TLS anyway on this server, so the environment
    sets ``PGSSLMODE=disable``: only a real ``true`` may override it.
    """
    run = run_target(
        _config(role, role.url(), ssl_enable=value),
        small_load(),
        tmp_path,
        env={"PGSSLMODE": "disable"},
    )
    assert_loaded(run, role)
    assert_all_logins(role, tls=tls)


def test_ssl_enable_refuses_a_value_that_is_not_a_boolean(role: Role, tmp_path: Path) -> None:
    run = run_target(_config(role, role.url(), ssl_enable="sometimes"), small_load(), tmp_path)
    assert_refused(run, role, "ssl_enable")


def test_wrong_password_is_a_clear_error_without_the_password(role: Role, tmp_path: Path) -> None:
    wrong = f"Wrong-{uuid.uuid4().hex}"
    url = role.server.url(user=role.name, password=wrong)
    run = run_target(_config(role, url, sslmode="require"), small_load(), tmp_path)
    assert run.returncode != 0
    assert wrong not in run.err_text
    assert wrong not in run.stdout.decode(errors="replace")
    assert "password authentication failed" in run.err_text, run.err_text[-3000:]


# --- least privilege ---------------------------------------------------------------------------


def test_a_role_owning_only_its_schema_can_run_the_target(
    least_role: Role, tls_postgres: TlsPostgres, tmp_path: Path
) -> None:
    """The grants docs/security.md lists are enough: schema ownership, CONNECT and TEMP."""
    role = least_role
    with tls_postgres.admin_connect() as conn:
        attrs = conn.execute(
            "select rolsuper, rolcreatedb, rolcreaterole, "
            "has_database_privilege(%s, current_database(), 'CREATE'), "
            "has_schema_privilege(%s, 'public', 'CREATE') "
            "from pg_roles where rolname = %s",
            (role.name, role.name, role.name),
        ).fetchone()
    assert attrs == (False, False, False, False, False)

    url = role.url() + f"?sslmode=verify-full&sslrootcert={tls_postgres.certs.ca_cert}"
    config = _config(role, url, batch_size_rows=2, add_record_metadata=True)
    # First run creates the table; the second upserts and adds a column (schema evolution);
    # the third widens a column's type. All are things the target does with its schema only.
    first = small_load()
    second = (
        schema_msg("tls_rows", {**PROPS, "extra": {"type": ["integer", "null"]}})
        + record_msg("tls_rows", {"id": 2, "name": "two again", "extra": 5})
        + record_msg("tls_rows", {"id": 3, "name": "three", "extra": 6})
        + bookmark_state("tls_rows", 3)
    )
    third = (
        schema_msg("tls_rows", {**PROPS, "extra": {"type": ["string", "null"]}})
        + record_msg("tls_rows", {"id": 4, "name": "four", "extra": "text now"})
        + bookmark_state("tls_rows", 4)
    )
    for payload in (first, second, third):
        run = run_target(config, payload, tmp_path)
        assert run.returncode == 0, run.err_text[-3000:]
    rows = role.rows()
    assert [(r["id"], r["name"], r["extra"]) for r in rows] == [
        (1, "one", None),
        (2, "two again", "5"),
        (3, "three", "6"),
        (4, "four", "text now"),
    ]
    # Nothing was created outside the role's schema.
    with tls_postgres.admin_connect() as conn:
        outside = conn.execute(
            "select n.nspname, c.relname from pg_class c join pg_namespace n "
            "on n.oid = c.relnamespace join pg_roles r on r.oid = c.relowner "
            "where r.rolname = %s and n.nspname <> %s and n.nspname not like 'pg_temp%%' "
            "and n.nspname not like 'pg_toast%%'",
            (role.name, role.schema),
        ).fetchall()
    assert outside == []


def test_a_role_without_rights_on_the_schema_gets_a_clear_error(
    tls_postgres: TlsPostgres, tmp_path: Path
) -> None:
    stranger = Role(tls_postgres, owns_schema=False)
    try:
        with tls_postgres.admin_connect() as conn:
            conn.execute(sql.SQL("create schema {}").format(sql.Identifier(stranger.schema)))
        config = _config(stranger, stranger.url(), sslmode="require")
        run = run_target(config, small_load(), tmp_path)
        assert run.returncode != 0
        assert stranger.password not in run.err_text
        assert re.search(r"permission denied", run.err_text), run.err_text[-3000:]
        assert stranger.schema in run.err_text or "tls_rows" in run.err_text, run.err_text[-3000:]
    finally:
        stranger.drop()
