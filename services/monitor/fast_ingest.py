"""A lean HTTP/1.1 listener that only takes CloudEvents POSTs, for high event rates.

aiohttp spends ~100 µs of CPU per request on routing, request and response objects; this
protocol parses with httptools (llhttp, C) and answers from bytes, ~20 µs. It shares
``handle_ingest`` with the aiohttp route, so behaviour is identical; it is optional
(``--ingest-port``) and the aiohttp port keeps accepting events too.

A 200 is written only once what it acknowledges is committed: events wait for the service's
group commit, feedback for its labels' commit (it is taken here too, through the same handler
as the API port). Replies wait in a per-connection queue, in request order (HTTP/1.1
pipelining), so a quick 4xx never overtakes an earlier 200 still waiting for its commit.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections import deque
from collections.abc import Coroutine
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

import httptools

from services.monitor.auth.core import classify
from services.monitor.ingest import (
    ACCEPTED,
    NOT_DURABLE,
    error_body,
    handle_ingest,
    needs_commit,
)

if TYPE_CHECKING:
    from services.monitor.service import MonitorService

INGEST_PATHS = (b"/", b"/v1/events")
FEEDBACK_PATH = re.compile(rb"^/v1/models/([^/]{1,253})/([^/]{1,253})/feedback$")
#: Replies waiting on one connection before it stops reading (pipelined feedback).
_MAX_QUEUED_REPLIES = 64
Reply = tuple[int, bytes]
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Held:
    """A 200 waiting in the outbox for the commit of what it acknowledges."""

    __slots__ = ("reply", "ready")

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.ready = False


def _response(status: int, body: bytes, keep_alive: bool) -> bytes:
    if body is ACCEPTED and status == 200:  # nearly every reply: its bytes are made once
        return _ACCEPTED_KEEP_ALIVE if keep_alive else _ACCEPTED_CLOSE
    return _build_response(status, body, keep_alive)


def _build_response(status: int, body: bytes, keep_alive: bool) -> bytes:
    reason = HTTPStatus(status).phrase
    connection = b"keep-alive" if keep_alive else b"close"
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: "
    ).encode()
    return head + connection + b"\r\n\r\n" + body


_ACCEPTED_KEEP_ALIVE = _build_response(200, ACCEPTED, keep_alive=True)
_ACCEPTED_CLOSE = _build_response(200, ACCEPTED, keep_alive=False)


@functools.lru_cache(maxsize=256)
def _header_name(raw: bytes) -> str:
    """A header's name as the headers' key. Cached: a sender sends the same few names on every
    event (bounded, so a client inventing names cannot grow it)."""
    return raw.decode("latin-1").lower()


class IngestProtocol(asyncio.Protocol):
    """One connection; handles pipelined requests in order."""

    def __init__(self, service: MonitorService, connections: set[asyncio.Transport]) -> None:
        self._service = service
        self._connections = connections
        self._max_body = service.settings.limits.max_body_bytes
        # httptools calls on_header once per header (~14 per logged event): a dict's own
        # __setitem__ takes them without a Python frame each (a repeated name: the last
        # wins, as before). httptools looks the callback up once, when the parser is made.
        self._raw: dict[bytes, bytes] = {}
        self.on_header = self._raw.__setitem__
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        # Replies in request order: (the reply, a 200 held for its commit, or a future of the
        # reply, and keep-alive).
        self._outbox: deque[tuple[Reply | _Held | asyncio.Future[Reply], bool]] = deque()
        self._paused = False
        # The 200s waiting for one commit, and the service's commit generation they were
        # registered under: one commit callback per connection and commit, not per reply.
        self._held: list[_Held] = []
        self._held_generation = -1
        # The Authorization header this connection presented last that the service admitted
        # as its own token: the token is fixed for the process's life, so the same header is
        # admitted again without re-parsing it (a logger sends it on every event).
        self._admitted: str | None = None
        # Set for every message by on_headers_complete, which always precedes its dispatch.
        self._headers: dict[str, str] = {}
        self._url = b""
        self._body: list[bytes] = []
        self._size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self._transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._connections.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish(400, error_body("bad_request", "protocol upgrades are not supported"))
        except httptools.HttpParserError as error:
            self._finish(400, error_body("bad_request", f"malformed HTTP: {error}"))

    def _finish(self, status: int, body: bytes) -> None:
        if self._transport is not None:
            self._transport.write(_response(status, body, keep_alive=False))
            self._transport.close()

    # httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._raw.clear()
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_headers_complete(self) -> None:
        # Names from a small cache, values decoded in one call (a logged event has ~14
        # headers: three method calls each cost more than the rest of the parsing).
        # llhttp refuses NUL in header names and values, so it separates them safely.
        raw = self._raw
        values = b"\0".join(raw.values()).decode("latin-1").split("\0")
        if raw and len(values) == len(raw):
            self._headers = dict(zip(map(_header_name, raw), values, strict=True))
        else:  # no headers (or a NUL got through after all): one header at a time
            self._headers = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in raw.items()
            }
        expect = self._headers.get("expect")
        if expect is not None and expect.lower() == "100-continue" and self._transport:
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size <= self._max_body:
            self._body.append(body)

    def on_message_complete(self) -> None:
        keep_alive = self._parser.should_keep_alive()
        dispatched = self._dispatch()
        reply: Reply | _Held | asyncio.Future[Reply]
        if not isinstance(dispatched, tuple):
            reply = asyncio.ensure_future(dispatched)
            reply.add_done_callback(self._pump)
        elif needs_commit(dispatched[0]):
            reply = self._after_commit(dispatched)
        else:
            reply = dispatched
        self._outbox.append((reply, keep_alive))
        if len(self._outbox) >= _MAX_QUEUED_REPLIES and self._transport is not None:
            self._transport.pause_reading()  # bounded memory under deep pipelining
            self._paused = True
        if not isinstance(reply, _Held):  # a held 200 is written by its commit's _pump
            self._pump()

    def _after_commit(self, reply: Reply) -> _Held:
        """The reply, held until the events it acknowledges are committed (503 if they never
        are)."""
        held = _Held(reply)
        service = self._service
        if self._held and self._held_generation == service.commit_generation:
            self._held.append(held)  # the same commit answers it: registered already
            return held
        batch = self._held = [held]
        self._held_generation = service.commit_generation
        service.on_durable(lambda committed: self._committed(batch, committed))
        return held

    def _committed(self, batch: list[_Held], committed: bool) -> None:
        for held in batch:
            if not committed:
                held.reply = NOT_DURABLE
            held.ready = True
        if self._held is batch:
            self._held = []
        self._pump()

    def _pump(self, _: object = None) -> None:
        """Write the replies at the head of the queue that are ready."""
        outbox = self._outbox
        while outbox:
            reply, keep_alive = outbox[0]
            if isinstance(reply, _Held):
                if not reply.ready:
                    return
                reply = reply.reply
            elif not isinstance(reply, tuple):
                if not reply.done():
                    return
                failed = reply.cancelled() or reply.exception() is not None
                reply = (500, error_body("internal", "no reply")) if failed else reply.result()
            outbox.popleft()
            self._send(reply, keep_alive)
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    def _send(self, reply: Reply, keep_alive: bool) -> None:
        status, body = reply
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_response(status, body, keep_alive))
            if not keep_alive:
                self._transport.close()

    def _dispatch(self) -> Reply | Coroutine[Any, Any, Reply]:
        url = self._url
        path = url.split(b"?", 1)[0] if b"?" in url else url
        # Events first: the feedback pattern is matched only for paths that are not theirs.
        feedback = None if path in INGEST_PATHS else FEEDBACK_PATH.match(path)
        if feedback is not None:
            if self._parser.get_method() != b"POST":
                return 405, error_body("method_not_allowed", "feedback is POSTed")
            content_type = self._headers.get("content-type", "").split(";", 1)[0].strip().lower()
            body = b"".join(self._body) if self._size <= self._max_body else None
            namespace, name = (part.decode("latin-1") for part in feedback.groups())
            return self._feedback(path, namespace, name, content_type, body)
        if path not in INGEST_PATHS:
            return 404, error_body("not_found", "this port only takes CloudEvents at POST /")
        if self._parser.get_method() != b"POST":
            return 405, error_body("method_not_allowed", "CloudEvents are POSTed")
        content_type = self._headers.get("content-type", "")
        if content_type != "application/json":  # what loggers send: nothing to normalise
            content_type = content_type.split(";", 1)[0].strip().lower()
        body = b"".join(self._body) if self._size <= self._max_body else None
        # Ingest is decided without a review (the embedded token, or the NetworkPolicy's word
        # for configured models), so the fast path stays synchronous.
        auth = self._service.auth
        header = self._headers.get("authorization")
        if header is not None and header == self._admitted:
            return handle_ingest(self._service, self._headers, content_type, body, False)
        access = classify("POST", path.decode("latin-1"))
        verdict = auth.check_now(access, header, self._peer())
        if verdict is None:
            return self._reviewed_ingest(access, header, content_type, body)
        if not verdict.allowed:
            return verdict.status, error_body(verdict.reason, verdict.message)
        anonymous = auth.is_anonymous_ingest(header)
        if not anonymous and auth.enabled:
            self._admitted = header  # the embedded token: the same answer every time
        return handle_ingest(self._service, self._headers, content_type, body, anonymous)

    def _peer(self) -> str:
        peer = self._transport.get_extra_info("peername") if self._transport else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else ""

    async def _reviewed_ingest(
        self, access: Any, header: str | None, content_type: str, body: bytes | None
    ) -> Reply:
        verdict = await self._service.auth.check(access, header, self._peer())
        if not verdict.allowed:
            return verdict.status, error_body(verdict.reason, verdict.message)
        reply = handle_ingest(self._service, self._headers, content_type, body)
        if needs_commit(reply[0]) and not await self._service.durable():
            return NOT_DURABLE
        return reply

    async def _feedback(
        self, path: bytes, namespace: str, name: str, content_type: str, body: bytes | None
    ) -> Reply:
        """Labels, once the sender may send them for this model (SAR ``create`` on
        ``mlmodels/feedback`` in its namespace, or the embedded token)."""
        access = classify("POST", path.decode("latin-1"))
        header = self._headers.get("authorization")
        verdict = await self._service.auth.check(access, header, self._peer())
        if not verdict.allowed:
            return verdict.status, error_body(verdict.reason, verdict.message)
        return await self._service.outcomes.handle(
            namespace, name, self._headers, content_type, body
        )


class IngestListener:
    """The listening socket plus its open connections, so stopping closes both."""

    def __init__(self, server: asyncio.Server, connections: set[asyncio.Transport]) -> None:
        self.server = server
        self._connections = connections

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        self.server.close()
        for transport in list(self._connections):
            transport.close()
        self._connections.clear()


async def start_ingest_listener(service: MonitorService, host: str, port: int) -> IngestListener:
    loop = asyncio.get_running_loop()
    connections: set[asyncio.Transport] = set()
    server = await loop.create_server(lambda: IngestProtocol(service, connections), host, port)
    return IngestListener(server, connections)
