"""Settings: the config schema, boolean and number coercion, and the connection they describe.

Names follow the existing target-postgres plugins where the concept is the same
(`database_url`, `host`/`port`/`user`/`password`/`database`, `default_target_schema`,
`batch_size_rows`, `batch_wait_limit_seconds`, `load_method`, `hard_delete`,
`add_record_metadata`, `ssl_enable`), plus libpq's own names for TLS (`sslmode`, `sslrootcert`,
`sslcert`, `sslkey`) and, as aliases of those, MeltanoLabs target-postgres's (`ssl_mode`,
`ssl_certificate_authority`, `ssl_client_certificate`, `ssl_client_private_key`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo
from singer_sdk import typing as th

from target_pipeboard_postgres import tls
from target_pipeboard_postgres.errors import InvalidSettingError, MissingConnectionSettingsError

EMBEDDED_SCHEME = "embedded://"
LOAD_METHODS = ("upsert", "append-only", "overwrite")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_BATCH_SIZE_ROWS = 10_000
DEFAULT_BATCH_SIZE_BYTES = 64 * 1024 * 1024
DEFAULT_BATCH_WAIT_LIMIT = 30.0
# MeltanoLabs target-postgres's TLS settings -> the libpq names this target uses. The
# certificate ones may hold the certificate itself instead of a path (written to a file).
TLS_ALIASES = {
    "ssl_mode": "sslmode",
    "ssl_certificate_authority": "sslrootcert",
    "ssl_client_certificate": "sslcert",
    "ssl_client_private_key": "sslkey",
}

# Booleans may arrive as strings (environment variables, some orchestrators): accept both,
# and refuse anything that is not clearly true or false instead of guessing.
BOOLEAN_SETTINGS = (
    "hard_delete",
    "add_record_metadata",
    "validate_records",
    "ssl_enable",
    "process_activate_version_messages",
    "exact_numbers",
    "data_quality",
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
        "ssl_mode",
        th.StringType,
        allowed_values=list(SSL_MODES),
        description=(
            "Alias of sslmode (the MeltanoLabs target-postgres name); applies with or without "
            "ssl_enable."
        ),
    ),
    th.Property(
        "ssl_certificate_authority",
        th.StringType,
        description=(
            "Alias of sslrootcert (MeltanoLabs name): a path, or the CA certificate itself "
            "(PEM). Without sslmode/ssl_mode it means sslmode=verify-full, as there."
        ),
    ),
    th.Property(
        "ssl_client_certificate",
        th.StringType,
        description="Alias of sslcert (MeltanoLabs name): a path, or the certificate (PEM).",
    ),
    th.Property(
        "ssl_client_private_key",
        th.StringType,
        secret=True,
        description="Alias of sslkey (MeltanoLabs name): a path, or the private key (PEM).",
    ),
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
        "batch_wait_limit_seconds",
        th.NumberType,
        default=DEFAULT_BATCH_WAIT_LIMIT,
        description=(
            "Maximum seconds a record waits in a batch that is not full: then every buffered "
            "batch is committed and the STATE they cover is emitted, also while the input is "
            "idle."
        ),
    ),
    _flag(
        "data_quality",
        "Measure each stream's data quality (rows inserted/updated/unchanged/retired, NULL "
        "share per column, values changed or refused, duplicate keys, columns added or "
        "widened, freshness lag) into `_pipeboard_quality` and the pushed metrics.",
        default=True,
    ),
    th.Property(
        "pushgateway_url",
        th.StringType,
        description=(
            "Prometheus Pushgateway URL; the run's metrics are pushed there at its end "
            "(also when it fails), job `target-pipeboard-postgres`."
        ),
    ),
    th.Property(
        "metrics_pipeline",
        th.StringType,
        description=(
            "The `pipeline` label of the pushed metrics (their Pushgateway group). Default: "
            "`<environment>:<extractor>[:<state ID suffix>]` from the variables `meltano run` "
            "sets (MELTANO_ENVIRONMENT, MELTANO_EXTRACTOR_NAME, MELTANO_RUN_STATE_ID_SUFFIX), "
            "or `standalone` outside Meltano."
        ),
    ),
).to_dict()


def _types(prop: Mapping[str, Any]) -> list[str]:
    types = prop.get("type") or []
    return [types] if isinstance(types, str) else list(types)


# Numbers may arrive as strings too: meltano.yml declares them `kind: string`, because Meltano
# 4.4 cannot pass a `decimal` setting that comes from an environment variable (see
# scripts/meltano_settings.py). Every number-typed setting of the schema, so none is missed.
NUMBER_SETTINGS = tuple(
    name
    for name, prop in CONFIG_SCHEMA["properties"].items()
    if "number" in _types(prop) and "string" not in _types(prop)
)
# A decimal number as written in an environment variable: 0.5, 60, .25, 1e-3 (no nan, inf, 1_000).
_NUMERIC_STRING = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def as_number(value: Any, setting: str) -> Any:
    """A number setting's value, a numeric string converted; other values are left as they are
    (for the schema, or the checks below, to judge)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    number = float(text) if _NUMERIC_STRING.fullmatch(text) else math.nan
    if not math.isfinite(number):
        raise InvalidSettingError(setting, f"expected a number, got {value!r}")
    return number


def as_bool(value: Any, setting: str) -> bool:
    """A boolean setting's value, given as a boolean or as a string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidSettingError(setting, f"expected true or false, got {value!r}")


def normalize(config: MutableMapping[str, Any]) -> None:
    """Coerce boolean and number settings in place, check enumerations, expand the target
    schema. The target calls it before the SDK validates the config against the schema."""
    for name in BOOLEAN_SETTINGS:
        if name in config and config[name] is not None:
            config[name] = as_bool(config[name], name)
    for name in NUMBER_SETTINGS:
        if name in config and config[name] is not None:
            config[name] = as_number(config[name], name)
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
    wait = config.get("batch_wait_limit_seconds")
    if wait is not None and (
        isinstance(wait, bool) or not isinstance(wait, int | float | Decimal) or not wait > 0
    ):
        raise InvalidSettingError(
            "batch_wait_limit_seconds", f"expected a positive number, got {wait!r}"
        )


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


def _tls_setting(config: Mapping[str, Any], alias: str) -> str | None:
    """A libpq TLS option from its own name or its MeltanoLabs alias (never both, differing)."""
    name = TLS_ALIASES[alias]
    own, other = config.get(name), config.get(alias)
    if own and other and own != other:
        raise InvalidSettingError(alias, f"conflicts with `{name}`: give one of the two")
    if other and not own and alias != "ssl_mode":
        return tls.certificate_file(alias, str(other), private=alias == "ssl_client_private_key")
    value = own or other
    return str(value) if value else None


def _ssl_options(config: Mapping[str, Any]) -> dict[str, str]:
    options: dict[str, str] = {}
    mode = _tls_setting(config, "ssl_mode")
    if mode is not None and mode not in SSL_MODES:
        raise InvalidSettingError("ssl_mode", f"expected one of {SSL_MODES}, got {mode!r}")
    if mode:
        options["sslmode"] = mode
    elif config.get("ssl_certificate_authority"):
        options["sslmode"] = "verify-full"  # MeltanoLabs' default with a CA: never less
    elif config.get("ssl_enable"):
        options["sslmode"] = "require"
    for alias in ("ssl_certificate_authority", "ssl_client_certificate", "ssl_client_private_key"):
        value = _tls_setting(config, alias)
        if value:
            options[TLS_ALIASES[alias]] = value
    return options


def unverified_tls_warning(config: Mapping[str, Any]) -> str | None:
    """A warning when `ssl_enable` alone gives TLS without verifying the server."""
    chosen = (config.get(name) for name in ("sslmode", "ssl_mode", "ssl_certificate_authority"))
    if not config.get("ssl_enable") or any(chosen):
        return None
    return (
        "ssl_enable without sslmode uses sslmode=require: the connection is encrypted but the "
        "server is not verified (MeltanoLabs target-postgres defaults to verify-full). Set "
        "sslmode: verify-full and sslrootcert (or ssl_certificate_authority) to verify it."
    )


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
