"""The HTTP layer: a threading HTTP/1.1 server (keep-alive) in front of a Simulator."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from pipedrive_simulator.protocol import Request
from pipedrive_simulator.simulator import Simulator

MAX_BODY = 10 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The headers and the body are written separately: with Nagle's algorithm the body waits for
    # the client's delayed ACK of the headers (about 40 ms a response on Linux).
    disable_nagle_algorithm = True
    server: SimulatorHTTPServer

    def version_string(self) -> str:
        return "pipedrive-simulator"

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header comes from the simulated clock, as the real API's Date and its record
        # times come from one clock (clients use it as the API's "now", e.g. for /v1/recents).
        if timestamp is None:
            return format_datetime(self.server.simulator.clock.now, usegmt=True)
        return super().date_time_string(timestamp)

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet: tests and benchmarks would drown in access logs

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        host = (
            self.headers.get("host")
            or f"{self.server.server_address[0]!s}:{self.server.server_address[1]}"
        )
        req = Request(
            method=self.command,
            path=parts.path,
            query=_query(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            base_url=f"http://{host}",
        )
        outcome = self.server.simulator.handle(req)
        if outcome.delay:
            time.sleep(outcome.delay)
        if outcome.reset_connection or outcome.response is None:
            # Close without an answer; SO_LINGER 0 makes it a TCP reset.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            return
        resp = outcome.response
        self.send_response(resp.status)
        self.send_header("content-type", resp.content_type)
        self.send_header("content-length", str(len(resp.body)))
        self.send_header("x-correlation-id", str(uuid.uuid4()))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


def _query(raw: str) -> dict[str, str]:
    """Query parameters; a repeated one (``deal_ids=1&deal_ids=2``, the OpenAPI form style for
    arrays) becomes the comma-separated form (``1,2``) that is accepted as well."""
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    return query


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, simulator: Simulator, host: str, port: int) -> None:
        self.simulator = simulator
        super().__init__((host, port), _Handler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


def serve_in_thread(server: SimulatorHTTPServer) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return thread
