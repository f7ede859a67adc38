"""A throw-away Postgres server with TLS on and password authentication, for the security tests.

The server uses the system's PostgreSQL binaries (``pg_ctl``/``initdb``), because the embedded
``pgserver`` wheel is built without OpenSSL. Certificates are made here with ``cryptography``:
a test CA, a server certificate for ``localhost``/``127.0.0.1`` signed by it, and an unrelated
"wrong" CA to prove that verification really happens.
"""

from __future__ import annotations

import datetime as dt
import glob
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from psycopg import sql
from rel_support import fetch_rows

SUPERUSER = "pgadmin"


def _pg_bindir() -> Path:
    """The directory of a PostgreSQL installation built with OpenSSL."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        candidates.append(Path(os.path.realpath(pg_ctl)).parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    raise RuntimeError(
        "the TLS tests need PostgreSQL server binaries built with OpenSSL "
        "(Debian/Ubuntu: apt-get install postgresql); none found on PATH or in /usr/lib/postgresql"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class CertificateFiles:
    ca_cert: Path
    wrong_ca_cert: Path
    server_cert: Path
    server_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


def _self_signed_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_certificates(directory: Path) -> CertificateFiles:
    """A CA, a server certificate it signed (localhost, 127.0.0.1) and an unrelated CA."""
    ca_key, ca_cert = _self_signed_ca("pipeboard test CA")
    _, wrong_ca = _self_signed_ca("pipeboard unrelated CA")
    server_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files = CertificateFiles(
        ca_cert=directory / "ca.crt",
        wrong_ca_cert=directory / "wrong-ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
    )
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.wrong_ca_cert.write_bytes(wrong_ca.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, files.server_key)
    return files


@dataclass
class TlsPostgres:
    """A running server: TLS on, every TCP login by password (scram-sha-256)."""

    port: int
    superuser_password: str
    certs: CertificateFiles
    data_dir: Path
    _bindir: Path
    _run_as: str | None

    def url(
        self,
        *,
        user: str = SUPERUSER,
        password: str | None = None,
        host: str = "127.0.0.1",
        database: str = "postgres",
    ) -> str:
        secret = self.superuser_password if password is None else password
        return f"postgresql://{user}:{secret}@{host}:{self.port}/{database}"

    def admin_connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            self.url(), sslmode="verify-full", sslrootcert=str(self.certs.ca_cert), autocommit=True
        )

    def log_text(self) -> str:
        return (self.data_dir.parent / "log").read_text(errors="replace")

    def restart(self) -> None:
        """A fast restart (``pg_ctl restart -m fast``): every session is cut, then it is back."""
        subprocess.run(
            [
                str(self._bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.data_dir.parent / "log"),
                "-m",
                "fast",
                "-w",
                "restart",
            ],
            capture_output=True,
            check=True,
            user=self._run_as,
        )

    def stop(self) -> None:
        subprocess.run(
            [str(self._bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
            user=self._run_as,
        )
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def _service_user() -> str | None:
    """Postgres refuses to run as root; pick an unprivileged system user when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run a test server")


def start_tls_postgres(superuser_password: str) -> TlsPostgres:
    bindir = _pg_bindir()
    run_as = _service_user()
    # Short path: the Unix socket lives here and socket paths are limited to ~100 bytes.
    root = Path(tempfile.mkdtemp(prefix="pbtls-", dir="/tmp"))
    data_dir = root / "data"
    certs_dir = root / "certs"
    certs_dir.mkdir()
    certs = make_certificates(certs_dir)
    pwfile = root / "pw"
    pwfile.write_text(superuser_password)
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        for path in (root, certs_dir, pwfile, *certs_dir.iterdir()):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(certs.server_key, 0o600)
    subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        ],
        capture_output=True,
        check=True,
        user=run_as,
    )
    port = _free_port()
    with (data_dir / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n".join(
                [
                    "listen_addresses = '127.0.0.1'",
                    f"port = {port}",
                    f"unix_socket_directories = '{root}'",
                    "ssl = on",
                    f"ssl_cert_file = '{certs.server_cert}'",
                    f"ssl_key_file = '{certs.server_key}'",
                    "fsync = off",
                    "shared_buffers = 16MB",
                    "max_connections = 30",
                    # The tests read the log to see whether each login used TLS.
                    "log_connections = on",
                    "",
                ]
            )
        )
    subprocess.run(
        [str(bindir / "pg_ctl"), "-D", str(data_dir), "-l", str(root / "log"), "-w", "start"],
        capture_output=True,
        check=True,
        user=run_as,
    )
    server = TlsPostgres(port, superuser_password, certs, data_dir, bindir, run_as)
    deadline = time.monotonic() + 20
    while True:
        try:
            server.admin_connect().close()
            return server
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.2)


class Role:
    """A login role with its own schema on the TLS server, dropped afterwards."""

    def __init__(
        self, server: TlsPostgres, *, owns_schema: bool = True, create_on_db: bool = False
    ) -> None:
        self.name = f"pb_{uuid.uuid4().hex[:10]}"
        self.password = f"Pw-{uuid.uuid4().hex}"
        self.schema = f"{self.name}_data"
        self.server = server
        with server.admin_connect() as conn:
            conn.execute(
                sql.SQL(
                    "create role {} login password {} nosuperuser nocreatedb nocreaterole"
                ).format(sql.Identifier(self.name), sql.Literal(self.password))
            )
            if create_on_db:
                conn.execute(
                    sql.SQL("grant create on database postgres to {}").format(
                        sql.Identifier(self.name)
                    )
                )
            if owns_schema:
                conn.execute(
                    sql.SQL("create schema {} authorization {}").format(
                        sql.Identifier(self.schema), sql.Identifier(self.name)
                    )
                )

    def url(self, **kwargs: Any) -> str:
        return self.server.url(user=self.name, password=self.password, **kwargs)

    def drop(self) -> None:
        with self.server.admin_connect() as conn:
            conn.execute(
                sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(self.schema))
            )
            conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(self.name)))
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(self.name)))

    def logins(self) -> list[str]:
        """The server's log lines for this role's logins."""
        return [
            line
            for line in self.server.log_text().splitlines()
            if "connection authorized" in line and f"user={self.name} " in line
        ]

    def admin_url(self) -> str:
        """The superuser's URL, verifying the server (for the tests' own reads)."""
        return self.server.url() + f"?sslrootcert={self.server.certs.ca_cert}&sslmode=verify-full"

    def rows(self, table: str = "tls_rows") -> list[dict[str, Any]]:
        return fetch_rows(self.admin_url(), self.schema, table, order_by="id")
