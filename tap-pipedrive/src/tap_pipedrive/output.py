"""Fast Singer output: orjson serialisation, records written in batches.

The SDK's default writer serialises with simplejson and flushes stdout after every message. This
writer collects RECORD messages (a deal is a few KB, larger than stdout's own buffer, so each
would otherwise be a write of its own) and writes them in batches of about
:data:`RECORD_BATCH_BYTES`. Every other message (STATE, SCHEMA, ACTIVATE_VERSION) first writes
the records collected before it, then itself, then flushes: records before a STATE message
always reach the pipe before it, so a killed run never leaves a state that covers records the
target did not get. The tap writes whatever is left when its sync ends, however it ends.
"""

from __future__ import annotations

import datetime as dt
import decimal
import sys
import typing as t

import orjson
from singer_sdk.singerlib.encoding.base import GenericSingerWriter
from singer_sdk.singerlib.messages import Message, StateMessage

_OPTIONS = orjson.OPT_APPEND_NEWLINE
#: Records are written once this many bytes of them are waiting.
RECORD_BATCH_BYTES = 512 * 1024


def _default(value: t.Any) -> t.Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    msg = f"Cannot serialise {type(value).__name__} to JSON"
    raise TypeError(msg)


class OrjsonSingerWriter(GenericSingerWriter[bytes, Message]):
    """Singer message writer used by the tap."""

    def __init__(self) -> None:
        super().__init__()
        self._records: list[bytes] = []
        self._records_size = 0

    def serialize_message(self, message: Message) -> bytes:
        if isinstance(message, StateMessage):
            # to_dict() deep-copies the whole state (dataclasses.asdict) for every STATE
            # message, one per page; the state is only read here.
            data: dict[str, t.Any] = {"type": "STATE", "value": message.value}
            return orjson.dumps(data, default=_default, option=_OPTIONS)
        return orjson.dumps(message.to_dict(), default=_default, option=_OPTIONS)

    def write_message(self, message: Message) -> None:
        self.write_records()
        self._write(self.format_message(message), flush=True)

    def write_record(
        self,
        stream: str,
        record: dict[str, t.Any],
        version: int | None,
        time_extracted: dt.datetime,
    ) -> None:
        """The hot path: one RECORD message, serialised straight from the dict."""
        message: dict[str, t.Any] = {"type": "RECORD", "stream": stream, "record": record}
        if version is not None:
            message["version"] = version
        message["time_extracted"] = time_extracted
        data = orjson.dumps(message, default=_default, option=_OPTIONS)
        self._records.append(data)
        self._records_size += len(data)
        if self._records_size >= RECORD_BATCH_BYTES:
            self.write_records()

    def write_records(self) -> None:
        """Write the records collected so far (without a flush)."""
        if self._records:
            data = b"".join(self._records)
            self._records.clear()
            self._records_size = 0
            self._write(data, flush=False)

    @staticmethod
    def _write(data: bytes, *, flush: bool) -> None:
        out = sys.stdout
        buffer = getattr(out, "buffer", None)
        if buffer is None:  # a text stream without a binary layer (e.g. captured output)
            out.write(data.decode())
            if flush:
                out.flush()
            return
        buffer.write(data)
        if flush:
            buffer.flush()
