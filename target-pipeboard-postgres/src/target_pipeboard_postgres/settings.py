"""Settings: the config schema, boolean coercion, and the connection they describe.

Names follow the existing target-postgres plugins where the concept is the same
(`database_url`, `host`/`port`/`user`/`password`/`database`, `default_target_schema`,
`batch_size_rows`, `load_method`, `hard_delete`, `add_record_metadata`, `ssl_enable`), plus
libpq's own names for TLS (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo
from singer_sdk import typing as th

from target_pipeboard_postgres.errors import InvalidSettingError, MissingConnectionSettingsError

EMBEDDED_SCHEME = "embedded://"
LOAD_METHODS = ("upsert", "append-only", "overwrite")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_BATCH_SIZE_ROWS = 10_000
DEFAULT_BATCH_SIZE_BYTES = 64 * 1024 * 1024

# Booleans may arrive as strings (environment variables, some orchestrators): accept both,
# and refuse anything that is not clearly true or false instead of guessing.
BOOLEAN_SETTINGS = (
    "hard_delete",
    "add_record_metadata",
    "validate_records",
    "ssl_enable",
    "process_activate_version_messages",
    "exact_numbers",
)
_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0", ""}


def _flag(name: str, description: str, *, default: bool = False) -> th.Property[Any]:
    return th.Property(
        name,
        th.CustomType({"type": ["boolean", "string"]}),
        default=default,
        description=description + " Accepts true/false, also as a string.",
    )


CONFIG_SCHEMA: dict[str, Any] = th.PropertiesList(
    th.Property(
        "database_url",
        th.StringType,
        secret=True,
        description=(
            "libpq connection URI (postgresql://user:password@host:5432/db?sslmode=require), "
            "or embedded://<directory> to run an embedded PostgreSQL server whose data is "
            "kept in that directory (needs the `embedded` extra). Takes precedence over "
            "host/port/user/password/database."
        ),
    ),
    th.Property("host", th.StringType, description="Database host (when no database_url)."),
    th.Property("port", th.IntegerType, default=5432, description="Database port."),
    th.Property("user", th.StringType, description="Database user."),
    th.Property("password", th.StringType, secret=True, description="Database password."),
    th.Property("database", th.StringType, description="Database name."),
    th.Property(
        "default_target_schema",
        th.StringType,
        description=(
            "Schema every stream loads into; `$MELTANO_EXTRACT__LOAD_SCHEMA` (or any "
            "`$VAR`) is expanded from the environment. Without it, a stream named "
            "`<schema>-<table>` loads into `<schema>`, any other into `public`."
        ),
    ),
    th.Property(
        "sslmode",
        th.StringType,
        allowed_values=list(SSL_MODES),
        description="libpq sslmode. Overrides ssl_enable.",
    ),
    _flag("ssl_enable", "Use TLS (sslmode=require unless sslmode is given)."),
    th.Property("sslrootcert", th.StringType, description="Path of the CA certificate file."),
    th.Property("sslcert", th.StringType, description="Path of the client certificate file."),
    th.Property("sslkey", th.StringType, description="Path of the client private key file."),
    th.Property(
        "load_method",
        th.StringType,
        default="upsert",
        allowed_values=list(LOAD_METHODS),
        description=(
            "`upsert`: insert new rows and update existing ones by primary key (streams "
            "without keys append). `append-only`: insert every record. `overwrite`: replace "
            "the table's contents with this run's records atomically at the end of the run."
        ),
    ),
    _flag(
        "hard_delete",
        "Delete rows instead of soft-deleting them (`_sdc_deleted_at`) on ACTIVATE_VERSION "
        "and for records carrying `_sdc_deleted_at`.",
    ),
    _flag("add_record_metadata", "Add the `_sdc_*` metadata columns."),
    _flag(
        "validate_records",
        "Validate every record against its JSON schema before loading (slow; values that do "
        "not fit their column are reported by the database either way).",
    ),
    _flag(
        "process_activate_version_messages",
        "Act on ACTIVATE_VERSION messages.",
        default=True,
    ),
    _flag(
        "exact_numbers",
        "Decode numbers as exact decimals instead of 64-bit integers/doubles (slower; for taps "
        "that emit numbers with more than 15 significant digits).",
    ),
    th.Property(
        "batch_size_rows",
        th.IntegerType,
        default=DEFAULT_BATCH_SIZE_ROWS,
        description="Maximum rows per batch (one transaction each).",
    ),
    th.Property(
        "batch_size_bytes",
        th.IntegerType,
        default=DEFAULT_BATCH_SIZE_BYTES,
        description="Maximum input bytes per batch, so memory stays flat for wide records.",
    ),
    th.Property(
        "pushgateway_url",
        th.StringType,
        description=(
            "Prometheus Pushgateway URL; the run's metrics are pushed there at its end "
            "(also when it fails), job `target-pipeboard-postgres`."
        ),
    ),
).to_dict()


def as_bool(value: Any, setting: str) -> bool:
    """A boolean setting's value, given as a boolean or as a string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidSettingError(setting, f"expected true or false, got {value!r}")


def normalize(config: MutableMapping[str, Any]) -> None:
    """Coerce boolean settings in place, check enumerations, expand the target schema."""
    for name in BOOLEAN_SETTINGS:
        if name in config and config[name] is not None:
            config[name] = as_bool(config[name], name)
    method = config.get("load_method") or "upsert"
    if method not in LOAD_METHODS:
        raise InvalidSettingError("load_method", f"expected one of {LOAD_METHODS}, got {method!r}")
    config["load_method"] = method
    schema = config.get("default_target_schema")
    if isinstance(schema, str) and "$" in schema:
        expanded = os.path.expandvars(schema)
        if "$" in expanded or not expanded.strip():
            raise InvalidSettingError(
                "default_target_schema",
                f"{schema!r} refers to an environment variable that is not set",
            )
        config["default_target_schema"] = expanded
    for name in ("batch_size_rows", "batch_size_bytes"):
        value = config.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise InvalidSettingError(name, f"expected a positive integer, got {value!r}")


_PASSWORD_IN_CONNINFO = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with passwords in URIs, conninfo strings and ``secrets`` masked."""

    def _uri(match: re.Match[str]) -> str:
        parts = urlsplit(match.group(0))
        if parts.password is None:
            return match.group(0)
        host = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))

    text = re.sub(r"postgres(?:ql)?(?:\+\w+)?://[^\s'\"]+", _uri, text)
    text = _PASSWORD_IN_CONNINFO.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class ConnectionSpec:
    """Where to connect: a libpq conninfo, or an embedded server's data directory."""

    conninfo: str
    embedded_dir: str | None = None

    @property
    def password(self) -> str:
        """The password in the conninfo (to redact from messages), or ''."""
        if self.embedded_dir is not None:
            return ""
        try:
            return str(conninfo_to_dict(self.conninfo).get("password") or "")
        except Exception:  # a malformed conninfo has no password to hide
            return ""

    @property
    def display(self) -> str:
        """A description safe for logs and errors."""
        if self.embedded_dir is not None:
            return f"{EMBEDDED_SCHEME}{self.embedded_dir}"
        return redact(self.conninfo)


def _ssl_options(config: Mapping[str, Any]) -> dict[str, str]:
    options: dict[str, str] = {}
    mode = config.get("sslmode")
    if mode:
        options["sslmode"] = str(mode)
    elif config.get("ssl_enable"):
        options["sslmode"] = "require"
    for name in ("sslrootcert", "sslcert", "sslkey"):
        if config.get(name):
            options[name] = str(config[name])
    return options


def connection_spec(config: Mapping[str, Any]) -> ConnectionSpec:
    """The connection the settings describe; no settings at all is an error, never a default."""
    url = config.get("database_url")
    if isinstance(url, str) and url.strip():
        url = url.strip()
        if url.startswith(EMBEDDED_SCHEME):
            directory = url[len(EMBEDDED_SCHEME) :]
            if not directory:
                raise InvalidSettingError(
                    "database_url", "embedded:// needs a directory, e.g. embedded://.meltano/pg"
                )
            return ConnectionSpec(conninfo="", embedded_dir=directory)
        try:
            conninfo = make_conninfo(url, **_ssl_options(config))
        except Exception as exc:  # psycopg.ProgrammingError on a malformed URI
            raise InvalidSettingError(
                "database_url", f"not a valid libpq connection URI ({redact(str(exc))})"
            ) from None
        return ConnectionSpec(conninfo=conninfo)
    if config.get("host"):
        missing = [name for name in ("user", "database") if not config.get(name)]
        if missing:
            raise InvalidSettingError(
                "host", f"with `host`, also give {' and '.join(f'`{m}`' for m in missing)}"
            )
        params: dict[str, Any] = {
            "host": config["host"],
            "port": config.get("port") or 5432,
            "user": config["user"],
            "dbname": config["database"],
        }
        if config.get("password"):
            params["password"] = config["password"]
        return ConnectionSpec(conninfo=make_conninfo("", **params, **_ssl_options(config)))
    raise MissingConnectionSettingsError
