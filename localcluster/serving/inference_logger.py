"""KServe-logger-style CloudEvents for each inference request and response.

KServe runs its logger in the agent sidecar (Go, ``pkg/logger``); locally the same events are
produced inside the predictor process by an ASGI middleware. Events go out in binary mode
(attributes as ``ce-*`` headers, the payload as the body) from a bounded queue drained by a few
worker tasks, so a slow or absent monitor never delays or fails a prediction: when the queue
is full the event is dropped and counted.

Differences from KServe's logger, on purpose: ``ce-id`` is the ``x-request-id`` header (KServe
reads ``Ce-Id`` or makes a UUID; the monitor pairs by ``X-Request-Id`` in ``ce-metadata``
either way). Like KServe's agent, the response event is sent only for status 200
(``pkg/logger/handler.go`` in kserve/kserve, see :mod:`contracts.mesh_metrics`): errors are
counted from ``istio_requests_total``, which the local router exports and the embedded
operator reads (``operators/backends/prometheus.py`` ``RouterCounts``), as a cluster's
operator reads it from Prometheus.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict

from contracts.headers import canonical
from localcluster.serving import constants as c

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class LoggerSettings(BaseModel):
    """Where and what to log; mirrors ``spec.predictor.logger`` plus our identity attributes."""

    model_config = ConfigDict(frozen=True)

    url: str
    mode: str = c.LOGGER_MODE_ALL
    inference_service: str
    namespace: str = "default"
    component: str = "predictor"
    endpoint: str = "default"
    model_version: str = ""
    mlmodel: str = ""
    source: str = "http://localhost/"
    # The monitor authenticates its ingest (services/monitor/auth): the local predictors send
    # the embedded token `kubeloop up` writes. (KServe's agent cannot: on a cluster the
    # NetworkPolicy guards the ingest port instead.)
    token_file: str = ""
    queue_size: int = 1000
    workers: int = 4
    timeout_s: float = 5.0


class LoggedExchange(BaseModel):
    """One finished inference call, as the middleware saw it."""

    request_id: str
    role: str
    content_type: str
    request_body: bytes
    response_body: bytes
    status: int
    latency_ms: float


class CloudEvent(BaseModel):
    """A binary-mode CloudEvent ready to POST: headers and body."""

    headers: dict[str, str]
    body: bytes


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def build_events(settings: LoggerSettings, exchange: LoggedExchange) -> list[CloudEvent]:
    """The request and/or response events for one exchange, per the logger mode."""
    # As KServe's logger.metadataHeaders would forward them.
    metadata = {canonical(c.REQUEST_ID_HEADER): [exchange.request_id]}
    if exchange.role:
        metadata[canonical(c.ROLE_HEADER)] = [exchange.role]
    common = {
        c.CE_ID_HEADER: exchange.request_id,
        c.CE_SPECVERSION_HEADER: c.CE_SPECVERSION,
        c.CE_SOURCE_HEADER: settings.source,
        c.CE_TIME_HEADER: _now_rfc3339(),
        c.CE_INFERENCESERVICE_HEADER: settings.inference_service,
        c.CE_NAMESPACE_HEADER: settings.namespace,
        c.CE_COMPONENT_HEADER: settings.component,
        c.CE_ENDPOINT_HEADER: settings.endpoint,
        c.CE_METADATA_HEADER: json.dumps(metadata),
        c.CE_MODEL_VERSION_HEADER: settings.model_version,
        "content-type": exchange.content_type or "application/json",
    }
    if settings.mlmodel:
        common[c.CE_MODEL_HEADER] = settings.mlmodel
    if exchange.role:
        common[c.CE_ROLE_HEADER] = exchange.role
    events: list[CloudEvent] = []
    if settings.mode in (c.LOGGER_MODE_ALL, c.LOGGER_MODE_REQUEST):
        headers = {**common, c.CE_TYPE_HEADER: c.CE_TYPE_REQUEST}
        events.append(CloudEvent(headers=headers, body=exchange.request_body))
    # KServe's agent queues the response event only when the status is 200.
    if settings.mode in (c.LOGGER_MODE_ALL, c.LOGGER_MODE_RESPONSE) and exchange.status == 200:
        headers = {
            **common,
            c.CE_TYPE_HEADER: c.CE_TYPE_RESPONSE,
            c.CE_STATUS_HEADER: str(exchange.status),
            c.CE_LATENCY_MS_HEADER: f"{exchange.latency_ms:.3f}",
        }
        events.append(CloudEvent(headers=headers, body=exchange.response_body))
    return events


class CloudEventSender:
    """Bounded queue + worker tasks POSTing events; never raises into the caller."""

    def __init__(self, settings: LoggerSettings) -> None:
        self.settings = settings
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._queue: asyncio.Queue[CloudEvent] = asyncio.Queue(maxsize=settings.queue_size)
        self._session: aiohttp.ClientSession | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._authorization = self._read_authorization()

    def _read_authorization(self) -> dict[str, str]:
        if not self.settings.token_file:
            return {}
        try:
            token = Path(self.settings.token_file).read_text().strip()
        except OSError as error:
            log.warning("monitor token file unreadable: %s", error)
            return {}
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _ensure_started(self) -> None:
        # Started lazily inside the server's running loop (uvicorn owns the loop).
        if self._workers:
            return
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._workers = [
            asyncio.create_task(self._drain()) for _ in range(max(1, self.settings.workers))
        ]

    def submit(self, exchange: LoggedExchange) -> None:
        self._ensure_started()
        for event in build_events(self.settings, exchange):
            try:
                self._queue.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped += 1

    async def _drain(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._post(event)
            finally:
                self._queue.task_done()

    async def _post(self, event: CloudEvent) -> None:
        assert self._session is not None
        try:
            headers = {**event.headers, **self._authorization}
            async with self._session.post(
                self.settings.url, data=event.body, headers=headers
            ) as resp:
                await resp.read()
                if resp.status == 401:
                    self._authorization = self._read_authorization()  # rotated: next event
                if resp.status >= 300:
                    self.failed += 1
                    log.warning("logger sink answered %s for %s", resp.status, event.headers)
                    return
            self.sent += 1
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.failed += 1
            log.warning("could not deliver inference log event to %s: %s", self.settings.url, exc)

    async def flush(self) -> None:
        """Wait until every queued event was attempted (used at shutdown and in tests)."""
        if self._workers:
            await self._queue.join()

    async def close(self) -> None:
        for task in self._workers:
            task.cancel()
        self._workers = []
        if self._session is not None:
            await self._session.close()
            self._session = None


def is_inference_path(method: str, path: str) -> bool:
    """v1 ``/v1/models/{name}:predict`` and v2 ``/v2/models/{name}[/versions/v]/infer``."""
    if method != "POST":
        return False
    return (path.startswith("/v1/models/") and path.endswith(":predict")) or (
        path.startswith("/v2/models/") and path.endswith("/infer")
    )


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


class InferenceLoggerMiddleware:
    """ASGI middleware: ensures an ``x-request-id`` and hands each exchange to the sender."""

    def __init__(self, app: ASGIApp, sender: CloudEventSender | None) -> None:
        self.app = app
        self.sender = sender

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_inference_path(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, c.REQUEST_ID_HEADER.encode()) or str(uuid.uuid4())
        if not _header(scope, c.REQUEST_ID_HEADER.encode()):
            # Downstream (KServe's latency log) reads the id from the headers too.
            scope["headers"] = [
                *scope.get("headers", []),
                (c.REQUEST_ID_HEADER.encode(), request_id.encode()),
            ]
        request_chunks: list[bytes] = []
        response_chunks: list[bytes] = []
        status = 500
        started = time.perf_counter()

        async def receive_and_keep() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_chunks.append(message.get("body", b""))
            return message

        async def send_and_keep(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((c.REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                response_chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive_and_keep, send_and_keep)
        finally:
            if self.sender is not None:
                self.sender.submit(
                    LoggedExchange(
                        request_id=request_id,
                        role=_header(scope, c.ROLE_HEADER.encode()),
                        content_type=_header(scope, b"content-type"),
                        request_body=b"".join(request_chunks),
                        response_body=b"".join(response_chunks),
                        status=status,
                        latency_ms=(time.perf_counter() - started) * 1000.0,
                    )
                )
