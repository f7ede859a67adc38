"""The request and response objects handlers work with (independent of the HTTP server)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from pipedrive_simulator.errors import bad_request


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)
    base_url: str = ""

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise bad_request("request body is not valid JSON") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    @classmethod
    def json(cls, doc: Any, status: int = 200) -> Response:
        return cls(status=status, body=orjson.dumps(doc))
