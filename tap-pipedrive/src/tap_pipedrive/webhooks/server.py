"""The receiver: a Starlette app that stores each webhook v2 event in Postgres before its 2xx.

- ``POST /pipedrive/webhooks``: HTTP Basic auth first (401, nothing read nor stored); then the
  body (at most ``max_body_bytes``: 413), checked to be one v2 event (400 with the reason);
  then stored (``meta.id`` unique, so a retry or replay is acknowledged and stored once) and
  committed before the answer: ``200 {"status": "stored"|"duplicate"}``. Events for objects
  the tap does not read are acknowledged (``"ignored"``, counted) and not stored, so Pipedrive
  neither retries nor bans. A database that cannot be reached gets 503 (Pipedrive retries).
- Concurrent events are committed together (one transaction per batch: group commit), which
  keeps commits durable without one fsync per event.
- ``GET /healthz``: 200 when the database answers, 503 otherwise.
- ``GET /metrics``: Prometheus text (received, stored, duplicates, rejected by reason,
  ignored, oldest unconsumed event age, acknowledgement latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import typing as t
from collections.abc import AsyncIterator
from dataclasses import dataclass

import psycopg
import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tap_pipedrive.webhooks.credentials import Credentials
from tap_pipedrive.webhooks.events import (
    DEFAULT_SCHEMA,
    Event,
    batch_params,
    ddl,
    insert_batch,
    oldest_unconsumed_age,
)
from tap_pipedrive.webhooks.payload import TAP_OBJECTS, Rejected, parse

EVENTS_PATH = "/pipedrive/webhooks"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH = 500

log = structlog.get_logger("tap_pipedrive.webhooks")


@dataclass(frozen=True)
class ReceiverConfig:
    database_url: str
    credentials: Credentials
    schema: str = DEFAULT_SCHEMA
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        prefix = "pipeboard_webhook"
        self.received = Counter(
            f"{prefix}_events_received", "Requests to the events endpoint.", registry=self.registry
        )
        self.stored = Counter(
            f"{prefix}_events_stored", "Events committed to Postgres.", registry=self.registry
        )
        self.duplicates = Counter(
            f"{prefix}_events_duplicate",
            "Events acknowledged that were stored already (retries, replays).",
            registry=self.registry,
        )
        self.rejected = Counter(
            f"{prefix}_events_rejected",
            "Requests answered 4xx/5xx, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.ignored = Counter(
            f"{prefix}_events_ignored",
            "Events acknowledged and not stored (objects the tap does not read).",
            ["entity"],
            registry=self.registry,
        )
        self.oldest_unconsumed = Gauge(
            f"{prefix}_oldest_unconsumed_event_age_seconds",
            "Age of the oldest stored event no tap run has read yet.",
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            f"{prefix}_ack_seconds",
            "Time from request to acknowledgement.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )


class DatabaseUnavailable(Exception):
    pass


class Writer:
    """One Postgres connection; events queued by requests are committed in batches."""

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = schema
        self._conn: psycopg.AsyncConnection[t.Any] | None = None
        self._lock = asyncio.Lock()
        self._queue: asyncio.Queue[tuple[Event, asyncio.Future[bool]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._insert = insert_batch(schema)

    async def start(self) -> None:
        with contextlib.suppress(DatabaseUnavailable):
            await self._connection()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close()

    async def _connection(self) -> psycopg.AsyncConnection[t.Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = await psycopg.AsyncConnection.connect(self.url, connect_timeout=5)
            async with conn.transaction():
                for statement in ddl(self.schema):
                    await conn.execute(statement)
        except psycopg.Error as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None
        self._conn = conn
        return conn

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = None

    async def store(self, event: Event) -> bool:
        """Commit ``event``; True if stored now, False if it was stored before."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put((event, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                stored = await self._commit([e for e, _ in batch])
            except DatabaseUnavailable as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(DatabaseUnavailable(str(exc)))
                continue
            for event, future in batch:
                fresh = event.event_id in stored
                stored.discard(event.event_id)  # a second copy in the same batch: duplicate
                if not future.done():
                    future.set_result(fresh)

    async def _commit(self, events: list[Event]) -> set[str]:
        async with self._lock:
            conn = await self._connection()
            try:
                async with conn.transaction():
                    cur = await conn.execute(self._insert, batch_params(events))
                    rows = await cur.fetchall()
            except psycopg.Error as exc:
                await self._drop()
                raise DatabaseUnavailable(type(exc).__name__) from None
        return {str(r[0]) for r in rows}

    async def scalar(self, query: t.Any) -> t.Any:
        async with self._lock:
            conn = await self._connection()
            try:
                async with conn.transaction():
                    cur = await conn.execute(query)
                    row = await cur.fetchone()
            except psycopg.Error as exc:
                await self._drop()
                raise DatabaseUnavailable(type(exc).__name__) from None
        return None if row is None else row[0]


def create_app(config: ReceiverConfig) -> Starlette:
    metrics = Metrics()
    writer = Writer(config.database_url, config.schema)

    def reject(status: int, reason: str, detail: str, **fields: t.Any) -> Response:
        metrics.rejected.labels(reason).inc()
        log.warning("webhook_rejected", reason=reason, detail=detail, status=status, **fields)
        headers = {"www-authenticate": 'Basic realm="pipeboard"'} if status == 401 else None
        return JSONResponse(
            {"status": "rejected", "reason": reason, "detail": detail}, status, headers=headers
        )

    async def receive(request: Request) -> Response:
        started = time.perf_counter()
        metrics.received.inc()
        client = request.client.host if request.client else None
        try:
            return await _receive(request, client)
        finally:
            metrics.ack_seconds.observe(time.perf_counter() - started)

    async def _receive(request: Request, client: str | None) -> Response:
        if not config.credentials.accepts(request.headers.get("authorization")):
            return reject(
                401, "unauthorized", "missing or wrong HTTP Basic credentials", client=client
            )
        limit = config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return reject(413, "too_large", f"the body is larger than {limit} bytes", client=client)
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return reject(
                        413, "too_large", f"the body is larger than {limit} bytes", client=client
                    )
                chunks.append(chunk)
        except ClientDisconnect:
            return reject(400, "truncated", "the client went away before the body ended")
        body = b"".join(chunks)
        try:
            event = parse(body)
        except Rejected as exc:
            return reject(400, exc.reason, exc.detail, client=client)
        if b"\\u0000" in body:
            return reject(400, "unstorable", "the body holds a NUL character (\\u0000)")
        if event.entity not in TAP_OBJECTS:
            metrics.ignored.labels(event.entity[:40]).inc()
            log.info("webhook_ignored", entity=event.entity, event_id=event.event_id)
            return JSONResponse({"status": "ignored", "reason": "object not read by the tap"})
        try:
            fresh = await writer.store(event)
        except DatabaseUnavailable as exc:
            return reject(503, "database_unavailable", f"the event was not stored ({exc})")
        fields = {
            "event_id": event.event_id,
            "entity": event.entity,
            "action": event.action,
            "entity_id": event.entity_id,
            "attempt": event.attempt,
        }
        if fresh:
            metrics.stored.inc()
            log.info("webhook_stored", **fields)
            return JSONResponse({"status": "stored"})
        metrics.duplicates.inc()
        log.info("webhook_duplicate", **fields)
        return JSONResponse({"status": "duplicate"})

    async def healthz(request: Request) -> Response:
        try:
            await writer.scalar("SELECT 1")
        except DatabaseUnavailable:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ok"})

    async def metrics_page(request: Request) -> Response:
        with contextlib.suppress(DatabaseUnavailable):
            age = await writer.scalar(oldest_unconsumed_age(config.schema))
            metrics.oldest_unconsumed.set(float(age or 0))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await writer.start()
        log.info("receiver_started", schema=config.schema, path=EVENTS_PATH)
        yield
        await writer.stop()

    app = Starlette(
        routes=[
            Route(EVENTS_PATH, receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_page, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    return app
