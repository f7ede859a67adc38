"""Fast Singer output: orjson serialisation, buffered stdout, records without per-record flush.

The SDK's default writer serialises with simplejson and flushes stdout after every message. This
writer flushes only after messages that matter for recovery (STATE, SCHEMA, ACTIVATE_VERSION):
records before a STATE message always reach the pipe before it, so a killed run never leaves a
state that covers records the target did not get.
"""

from __future__ import annotations

import datetime as dt
import decimal
import sys
import typing as t

import orjson
from singer_sdk.singerlib.encoding.base import GenericSingerWriter
from singer_sdk.singerlib.messages import Message

_OPTIONS = orjson.OPT_APPEND_NEWLINE


def _default(value: t.Any) -> t.Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    msg = f"Cannot serialise {type(value).__name__} to JSON"
    raise TypeError(msg)


class OrjsonSingerWriter(GenericSingerWriter[bytes, Message]):
    """Singer message writer used by the tap."""

    def serialize_message(self, message: Message) -> bytes:
        return orjson.dumps(message.to_dict(), default=_default, option=_OPTIONS)

    def write_message(self, message: Message) -> None:
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
        self._write(orjson.dumps(message, default=_default, option=_OPTIONS), flush=False)

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
