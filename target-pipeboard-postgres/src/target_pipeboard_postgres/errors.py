"""Errors the target raises, each naming what was wrong and where."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from singer_sdk.exceptions import (
    ConfigValidationError,
    FatalSyncError,
    MissingKeyPropertiesError,
    RecordsWithoutSchemaException,
)
from singer_sdk.singerlib.exceptions import InvalidInputLine


def _where(stream: str | None, line: int | None) -> str:
    parts = []
    if stream is not None:
        parts.append(f"stream '{stream}'")
    if line is not None:
        parts.append(f"input line {line}")
    return ", ".join(parts)


class MissingConnectionSettingsError(ConfigValidationError):
    """No database was configured."""

    def __init__(self) -> None:
        msg = (
            "No database connection configured. Give either `database_url` (a libpq URI such "
            "as postgresql://user:password@host:5432/db, or embedded://<directory> for an "
            "embedded PostgreSQL server kept in that directory) or `host` with `user` and "
            "`database` (optional: `port`, `password`)."
        )
        super().__init__(msg, errors=[msg])


class InvalidSettingError(ConfigValidationError):
    """A setting has a value the target cannot use."""

    def __init__(self, setting: str, problem: str) -> None:
        msg = f"Setting `{setting}`: {problem}"
        super().__init__(msg, errors=[msg])


class MalformedLineError(InvalidInputLine):
    """An input line is not a valid Singer message."""

    def __init__(self, line: int, problem: str, stream: str | None = None) -> None:
        self.line = line
        self.stream = stream
        super().__init__(f"Malformed input ({_where(stream, line)}): {problem}")


class RecordBeforeSchemaError(RecordsWithoutSchemaException):
    """A RECORD arrived for a stream whose SCHEMA has not been seen."""

    def __init__(self, stream: str, line: int | None) -> None:
        self.stream = stream
        self.line = line
        super().__init__(
            f"A RECORD for stream '{stream}' (input line {line}) arrived before any SCHEMA "
            "message for that stream; a tap must send the stream's SCHEMA first."
        )


class RecordMissingKeyError(MissingKeyPropertiesError):
    """A record lacks one of its stream's key properties."""

    def __init__(self, stream: str, line: int | None, missing: list[str]) -> None:
        self.stream = stream
        self.line = line
        super().__init__(
            f"Record in {_where(stream, line)} is missing key propert"
            f"{'y' if len(missing) == 1 else 'ies'} {', '.join(repr(m) for m in missing)}."
        )


class SchemaError(InvalidInputLine):
    """A SCHEMA message the target cannot load."""

    def __init__(self, stream: str | None, line: int | None, problem: str) -> None:
        self.stream = stream
        self.line = line
        super().__init__(f"Invalid SCHEMA ({_where(stream, line)}): {problem}")


# The problem a sink gives for any psycopg OperationalError while loading a batch. Postgres
# also reports server-side failures with a live connection as OperationalError (SQLSTATE
# classes 53 "insufficient resources", 54, 55, 57, 58): those get their real cause instead.
_LOST_CONNECTION = "lost the database connection ("
_CONNECTION_SQLSTATES = ("08", "57P")  # connection exceptions; server shutting down or starting
_SQLSTATE_CAUSES = {
    "53100": "the database server's disk is full",
    "53200": "the database server is out of memory",
    "53300": "the database server has too many connections",
    "53": "the database server is out of resources",
}


def _batch_problem(problem: str) -> str:
    """``problem``, unless it blames a lost connection for a server error with a live one."""
    handled = sys.exc_info()[1]  # the database error the caller is handling, if any
    state = getattr(handled, "sqlstate", None)
    if not (problem.startswith(_LOST_CONNECTION) and problem.endswith(")")):
        return problem
    if not isinstance(state, str) or state.startswith(_CONNECTION_SQLSTATES):
        return problem
    cause = _SQLSTATE_CAUSES.get(state) or _SQLSTATE_CAUSES.get(state[:2])
    detail = problem[len(_LOST_CONNECTION) : -1]
    return f"{cause or 'the database server failed the batch'} (SQLSTATE {state}): {detail}"


class BatchLoadError(FatalSyncError):
    """Loading a batch failed; earlier batches stay committed."""

    def __init__(
        self,
        stream: str,
        problem: str,
        *,
        line: int | None = None,
        lines: tuple[int, int] | None = None,
    ) -> None:
        self.stream = stream
        self.line = line
        problem = _batch_problem(problem)
        where = _where(stream, line)
        if line is None and lines is not None:
            where += f", input lines {lines[0]}-{lines[1]}"
        super().__init__(
            f"Loading {where} failed: {problem}. Batches committed before this one stay "
            "committed and their state was emitted; run again to continue."
        )


class DatabaseUnavailableError(FatalSyncError):
    """The database cannot be reached."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"Cannot connect to PostgreSQL at {where}: {problem}")


class TableSetupError(FatalSyncError):
    """Creating or evolving a stream's table failed."""

    def __init__(self, stream: str, table: str, problem: str, line: int | None = None) -> None:
        self.stream = stream
        self.line = line
        super().__init__(
            f"Preparing table {table} for {_where(stream, line)} failed: {problem}. "
            "Batches committed before stay committed and their state was emitted."
        )


class StreamNameClashError(InvalidInputLine):
    """Two streams of one run would load into the same table."""

    def __init__(self, stream: str, other: str, table: str, line: int | None) -> None:
        self.stream = stream
        self.line = line
        super().__init__(
            f"Streams '{other}' and '{stream}' ({_where(None, line)}) both map to table "
            f"{table}; rename one of them (e.g. with stream_maps) so their rows are not merged."
        )


class TableKeyChangedError(TableSetupError):
    """An existing table's key is not the stream's key; the target never changes a key.

    Upserting by a key the table does not have would update (and, for a child set, retire) the
    wrong rows, so the table is left as it was, and no row of the stream is loaded.
    """

    def __init__(
        self,
        stream: str,
        table: str,
        table_key: Sequence[str],
        stream_key: Sequence[str],
        *,
        line: int | None = None,
        history: str | None = None,
        is_history: bool = False,
    ) -> None:
        self.table = table
        self.table_key = list(table_key)
        self.stream_key = list(stream_key)
        have = f"({', '.join(table_key)}{', _valid_from' if is_history else ''})"
        wanted = (
            f"the stream's key properties are now ({', '.join(stream_key)})"
            if stream_key
            else "the stream now has no key properties"
        )
        if is_history:
            drop = f"drop the history table {table} (or rename it, to keep its versions)"
        elif history is not None:
            drop = (
                f"drop the table {table} and its history table {history}, if any (or rename "
                "them, to keep their rows)"
            )
        else:
            drop = f"drop the table {table} (or rename it, to keep its rows)"
        problem = (
            f"the table's key is {have}, but {wanted}. The target never changes an existing "
            "table's key, and loading by another key would update or retire the wrong rows, "
            f"so the table was left as it was. To load the stream with its new key, {drop} "
            "and read the stream again from the start (e.g. `meltano run --full-refresh`, or "
            "the tap without its state): the target then creates it with the new key"
        )
        super().__init__(stream, table, problem, line)
