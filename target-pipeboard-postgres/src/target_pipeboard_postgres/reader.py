"""Reading Singer messages fast: orjson, and line numbers for errors.

orjson reads numbers as 64-bit integers or doubles (15-17 significant digits), as a tap that
parsed its API's JSON in Python already did. With ``exact_numbers`` every line is decoded with
exact decimals instead (several times slower).
"""

from __future__ import annotations

import contextlib
import decimal
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import IO, Any

import orjson
from singer_sdk.singerlib.encoding import SimpleSingerReader

from target_pipeboard_postgres.errors import MalformedLineError

_NUL_ESCAPE = "\\u0000"
_NUL_ESCAPE_BYTES = b"\\u0000"


class SingerLineReader(SimpleSingerReader):
    """Decodes each line once with orjson; remembers where in the input it is."""

    def __init__(self, *, exact_numbers: bool = False) -> None:
        super().__init__()
        self.exact_numbers = exact_numbers
        self.line_number = 0
        self.line_bytes = 0
        self.line_has_nul = False
        # Held while a message is handled, so another thread may act only between messages.
        self.busy: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()

    def deserialize_json(self, line: str | bytes) -> dict[str, Any]:
        """Decode one line; malformed JSON is an error naming the line."""
        try:
            if self.exact_numbers:
                message = json.loads(line, parse_float=decimal.Decimal)
            else:
                message = orjson.loads(line)
        except (orjson.JSONDecodeError, json.JSONDecodeError) as exc:
            raise MalformedLineError(self.line_number, f"not valid JSON ({exc})") from None
        if type(message) is not dict:
            raise MalformedLineError(self.line_number, "a Singer message must be a JSON object")
        return message

    def process_lines(
        self,
        file_input: IO[str] | None,
        callbacks: dict[str, Callable[[dict[str, Any]], None]],
    ) -> Counter[str]:
        """Dispatch every line to its message type's callback."""
        stats: dict[str, int] = defaultdict(int)
        source = file_input or sys.stdin
        # Bytes straight from the stream when there is one: orjson needs no decoded text.
        lines: Iterable[str | bytes] = getattr(source, "buffer", None) or source
        deserialize = self.deserialize_json
        busy = self.busy
        for line in lines:
            self.line_number += 1
            if not line or line.isspace():
                continue
            self.line_bytes = len(line)
            self.line_has_nul = (
                _NUL_ESCAPE_BYTES in line if type(line) is bytes else _NUL_ESCAPE in line
            )
            message = deserialize(line)
            kind = message.get("type")
            callback = callbacks.get(kind) if isinstance(kind, str) else None
            if callback is None:
                problem = (
                    "missing the `type` key" if kind is None else f"unknown message type {kind!r}"
                )
                raise MalformedLineError(self.line_number, problem)
            with busy:
                callback(message)
            stats[str(kind)] += 1
        return Counter(stats)
