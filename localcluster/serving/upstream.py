"""A lean keep-alive HTTP/1.1 client for the router's upstream calls: asyncio + httptools.

Why not aiohttp's ClientSession: on a proxied request its request/response objects, connector
bookkeeping and per-request task cost several times what the routing does (profiling showed
``ClientSession._request`` and the connection pool dominating the router's CPU). Here a
request is one ``transport.write`` of bytes built in one go, its response is parsed by llhttp
(C) and handed over with its header lines as the bytes they arrived as (``http1``: no Python
callback per header), and a finished connection goes back onto its origin's idle stack.

What it keeps from the session it replaces: keep-alive reuse, a bound on open connections
(requests beyond it wait for one), a total timeout per request, bodies delimited by
Content-Length, chunked encoding or the connection's close, interim (1xx) answers skipped,
and one retry on a fresh connection when a reused one turns out to have been closed by the
upstream before it answered anything (the keep-alive race every pooling client has). The
answer goes to a callback rather than a future: no future, task or timer per request (one
sweep a second enforces the timeouts).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools

from localcluster.serving import http1
from localcluster.serving.http1 import Headers

_FRAMING = http1.lines_named({"content-length", "transfer-encoding"})


class UpstreamResponse:
    __slots__ = ("status", "fields", "body")

    def __init__(self, status: int, fields: bytes, body: bytes) -> None:
        self.status = status
        self.fields = fields  # the header lines as received (an http1 field block)
        self.body = body

    @property
    def headers(self) -> Headers:
        """As received: names in their original case, repeats kept."""
        return http1.parse_fields(self.fields)


class UpstreamError(ConnectionError):
    """The upstream could not be reached or broke the exchange off."""


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int
    prefix: str  # a path prefix of the destination URL ("" for a bare origin)
    # What the pool keys its idle connections by: a str hashes in C (its hash is cached),
    # where the dataclass's own __hash__ is Python code run twice per request.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = f"{self.scheme}://{self.host}:{self.port}{self.prefix}"
        object.__setattr__(self, "key", key)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def parse_origin(url: str) -> Origin:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"upstream URL {url!r} is not an http(s) URL with a host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Origin(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


#: Called once with the answer, or with the error (OSError, TimeoutError, UpstreamError).
Callback = Callable[[UpstreamResponse | BaseException], None]


class _Exchange:
    """One request in flight: what to send again on a stale connection, whom to tell."""

    __slots__ = ("origin", "data", "head_only", "callback", "deadline", "done")

    def __init__(
        self, origin: Origin, data: bytes, head_only: bool, callback: Callback, deadline: float
    ) -> None:
        self.origin = origin
        self.data = data
        self.head_only = head_only
        self.callback = callback
        self.deadline = deadline
        self.done = False

    def finish(self, outcome: UpstreamResponse | BaseException) -> None:
        if not self.done:
            self.done = True
            self.callback(outcome)


class _Connection(asyncio.Protocol):
    """One upstream connection: one exchange at a time."""

    def __init__(self, pool: UpstreamPool, origin: Origin) -> None:
        self._pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.exchange: _Exchange | None = None
        self._raw = b""  # what has come of the response until its head is whole
        self._fields = b""
        self._body: list[bytes] = []
        self._received = False
        self._headers_done = False
        self._complete = False
        self.reused = False
        self.closed = False

    # asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._received = True
        if not self._headers_done:
            self._raw = self._raw + data if self._raw else data
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self.abort(UpstreamError(f"malformed response: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        exchange, self.exchange = self.exchange, None
        if exchange is None or exchange.done:
            return
        # A body delimited by the close (no Content-Length, not chunked) ends here; llhttp
        # only knows that once told, which httptools cannot do: finish it ourselves.
        if self._headers_done and not self._complete and self._delimited_by_close():
            self.exchange = exchange
            self._resolve(keep_alive=False)
        elif not self._received and self.reused:
            self._pool.retry(exchange)  # the keep-alive race: send it on a fresh connection
        else:
            exchange.finish(UpstreamError(f"the upstream closed the connection ({exc})"))

    # httptools callbacks ---------------------------------------------------------------

    def on_headers_complete(self) -> None:
        # llhttp accepted a head here: it is the received bytes up to the first empty line.
        raw = self._raw
        end = raw.find(b"\r\n\r\n")
        if end < 0:
            raise UpstreamError("a response head without CRLF line ends")
        self._fields = raw[raw.find(b"\r\n") : end]
        self._raw = raw[end + 4 :]  # the body's start, or the final answer after a 1xx
        self._headers_done = True
        exchange = self.exchange
        if exchange is not None and exchange.head_only:
            # No body follows a HEAD's answer, and llhttp cannot be told so: answer now.
            self._resolve(keep_alive=False)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # An interim answer (100 Continue, 103 Early Hints): the final one follows.
            self._headers_done = False
            self._body = []
            return
        if not self._complete:
            self._resolve(keep_alive=self._parser.should_keep_alive())

    # ----------------------------------------------------------------------------------

    def _delimited_by_close(self) -> bool:
        return _FRAMING.search(self._fields) is None

    def send(self, exchange: _Exchange) -> None:
        assert self.transport is not None
        self.exchange = exchange
        self._raw, self._fields, self._body = b"", b"", []
        self._received = self._complete = self._headers_done = False
        self.transport.write(exchange.data)

    def _resolve(self, keep_alive: bool) -> None:
        self._complete = True
        exchange, self.exchange = self.exchange, None
        response = UpstreamResponse(
            self._parser.get_status_code(), self._fields, b"".join(self._body)
        )
        if keep_alive and exchange is not None and not exchange.head_only:
            self._pool.release(self)
        else:
            self.close()
        if exchange is not None:
            exchange.finish(response)

    def abort(self, error: BaseException) -> None:
        """Give up on this connection (timeout, garbage); its exchange fails with ``error``."""
        exchange, self.exchange = self.exchange, None
        self.close()
        if exchange is not None:
            exchange.finish(error)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._pool.forget(self)
            if self.transport is not None:
                self.transport.close()


class UpstreamPool:
    """Keep-alive connections per origin, at most ``limit`` open at once; use as
    ``async with UpstreamPool() as pool`` (closing it closes every connection)."""

    def __init__(self, limit: int = 256, timeout_s: float = 60.0) -> None:
        self.limit = limit
        self.timeout_s = timeout_s
        self._idle: dict[str, list[_Connection]] = {}  # by Origin.key
        self._open: set[_Connection] = set()
        self._connecting = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._origins: dict[str, Origin] = {}
        self._ssl: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._pending: set[_Exchange] = set()  # waiting for a connection to open

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def __aenter__(self) -> UpstreamPool:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self._open):
            connection.abort(UpstreamError("the upstream pool was closed"))
        for exchange in list(self._pending):
            exchange.finish(UpstreamError("the upstream pool was closed"))
        self._pending.clear()
        self._idle.clear()

    def origin(self, url: str) -> Origin:
        origin = self._origins.get(url)
        if origin is None:
            origin = self._origins[url] = parse_origin(url)
        return origin

    # timeouts: one sweep a second instead of a timer per request -------------------------

    def _sweep(self) -> None:
        now = self.loop.time()
        for connection in list(self._open):
            exchange = connection.exchange
            if exchange is not None and exchange.deadline <= now:
                connection.abort(TimeoutError(f"no answer within {self.timeout_s:g} s"))
        for exchange in [e for e in self._pending if e.deadline <= now]:
            self._pending.discard(exchange)
            exchange.finish(TimeoutError(f"no connection within {self.timeout_s:g} s"))
        busy = self._pending or any(c.exchange is not None for c in self._open)
        self._sweeper = self.loop.call_later(1.0, self._sweep) if busy else None

    def _watch(self) -> None:
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(1.0, self._sweep)

    # connection bookkeeping -------------------------------------------------------------

    def release(self, connection: _Connection) -> None:
        if connection.closed:
            return
        waiter = self._next_waiter()
        if waiter is not None:  # someone waits for a slot: this connection frees one
            connection.close()
            waiter.set_result(None)
            return
        connection.reused = True
        self._idle.setdefault(connection.origin.key, []).append(connection)

    def forget(self, connection: _Connection) -> None:
        if connection in self._open:
            self._open.discard(connection)
            idle = self._idle.get(connection.origin.key)
            if idle and connection in idle:
                idle.remove(connection)
            waiter = self._next_waiter()
            if waiter is not None:
                waiter.set_result(None)

    def _next_waiter(self) -> asyncio.Future[None] | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin.key)
        while idle:
            connection = idle.pop()
            transport = connection.transport
            if not connection.closed and transport is not None and not transport.is_closing():
                return connection
            connection.close()
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        while len(self._open) + self._connecting >= self.limit:
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            await waiter
            idle = self._take_idle(origin)
            if idle is not None:
                return idle
        self._connecting += 1
        try:
            context = None
            if origin.scheme == "https":
                context = self._ssl = self._ssl or ssl.create_default_context()
            _, protocol = await self.loop.create_connection(
                lambda: _Connection(self, origin), origin.host, origin.port, ssl=context
            )
        finally:
            self._connecting -= 1
        connection = cast(_Connection, protocol)
        self._open.add(connection)
        return connection

    # requests ---------------------------------------------------------------------------

    def request_bytes(
        self, origin: Origin, method: str, path_qs: str, headers: Headers, body: bytes
    ) -> bytes:
        start = f"{method} {origin.prefix}{path_qs} HTTP/1.1\r\nHost: {origin.host_header}"
        fields = http1.render_fields(headers)
        length = b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        return b"".join((start.encode("latin-1"), fields, length, body))

    def request(
        self, url: str, method: str, path_qs: str, headers: Headers, body: bytes, callback: Callback
    ) -> None:
        """Send one request; ``callback`` gets the answer, or an OSError/TimeoutError/
        UpstreamError, exactly once (never from inside this call).

        ``headers`` must not hold hop-by-hop headers, Host or Content-Length (set here).
        Raises ValueError for a URL this client cannot use."""
        origin = self.origin(url)
        data = self.request_bytes(origin, method, path_qs, headers, body)
        self.send(origin, data, method == "HEAD", callback)

    def send(self, origin: Origin, data: bytes, head_only: bool, callback: Callback) -> None:
        """Send a request already in bytes (start line, Host, headers, Content-Length, body:
        what ``request_bytes`` makes); otherwise as :meth:`request`. ``head_only``: the
        request is a HEAD, whose answer has no body."""
        loop = self.loop
        exchange = _Exchange(origin, data, head_only, callback, loop.time() + self.timeout_s)
        if self._sweeper is None:
            self._watch()
        connection = self._take_idle(origin)
        if connection is not None:
            connection.send(exchange)
        else:
            self._pending.add(exchange)
            loop.create_task(self._send_fresh(exchange))

    def retry(self, exchange: _Exchange) -> None:
        self._pending.add(exchange)
        self.loop.create_task(self._send_fresh(exchange))

    async def _send_fresh(self, exchange: _Exchange) -> None:
        try:
            connection = await self._connect(exchange.origin)
        except OSError as error:
            self._pending.discard(exchange)
            exchange.finish(error)
            return
        self._pending.discard(exchange)
        if exchange.done:  # timed out while connecting
            self.release(connection)
            return
        connection.reused = False  # a failure on it now is no keep-alive race: no retry
        connection.send(exchange)
