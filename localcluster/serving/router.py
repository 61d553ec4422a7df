"""A local stand-in for an Istio VirtualService: a reverse proxy on its own port.

Each request takes a snapshot of the current route table, so ``reconfigure`` swaps the table
atomically and in-flight requests finish against the destinations they started with. The mirror
copy is fire-and-forget on a bounded number of in-flight copies: when the shadow is slow, copies
are dropped (and counted) rather than piling up or delaying the primary.

The data path is lean on purpose (it sits in front of every prediction): requests are parsed
by httptools (llhttp, C) in an ``asyncio.Protocol`` — the approach of the monitor's fast ingest
port — and go upstream through :mod:`localcluster.serving.upstream`'s keep-alive client; the
answer is written back from bytes. Pipelined requests on one connection are answered in order.

Run: ``python -m localcluster.serving.router --port P --virtualservice vs.yaml
[--resolve HOST=URL ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import sys
import uuid
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Sequence
from http import HTTPStatus
from typing import Any, cast

import httptools
import yaml
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter

from contracts import mesh_metrics as mesh
from localcluster.serving import constants as c
from localcluster.serving.routing import (
    Destination,
    RouteTable,
    bucket_for,
    choose_destination,
    route_table_from_spec,
    should_mirror,
    static_resolver,
)
from localcluster.serving.upstream import Headers, UpstreamPool, UpstreamResponse

log = logging.getLogger(__name__)

STATS_PATH = "/_kubeloop/router/stats"
# Hop-by-hop headers (RFC 9110 §7.6.1) and ones the proxy sets itself.
_DROP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


#: Largest request body taken (aiohttp's ``client_max_size`` before): larger is a 413.
MAX_BODY_BYTES = 64 * 1024**2
#: Answers queued on one connection (pipelining) before the router stops reading from it.
_MAX_QUEUED_REPLIES = 64
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_JSON = "application/json; charset=utf-8"

#: (status, headers, body) of an answer to a client.
Reply = tuple[int, Headers, bytes]


def new_client_session(limit: int = 256) -> UpstreamPool:
    """One keep-alive upstream pool shared by every router (and every route table version);
    ``async with new_client_session() as session`` closes its connections at the end."""
    return UpstreamPool(limit=limit, timeout_s=60.0)


def _forward_headers(
    headers: Headers, request_id: str, role: str, extra: dict[str, str] | None = None
) -> Headers:
    """The client's end-to-end headers, with the mesh's request id, role and ``extra`` set
    (replacing any the client sent, whatever their case)."""
    replaced = {c.REQUEST_ID_HEADER.lower(), c.ROLE_HEADER.lower()}
    replaced.update(name.lower() for name in extra or {})
    out = [
        (k, v)
        for k, v in headers
        if (low := k.lower()) not in _DROP_HEADERS and low not in replaced
    ]
    out += (extra or {}).items()
    out += [(c.REQUEST_ID_HEADER, request_id), (c.ROLE_HEADER, role)]
    return out


class Pending:
    """An answer still upstream. Cheaper than a future: no loop round trip on completion;
    ``fill`` calls the connection's writer directly."""

    __slots__ = ("reply", "on_ready")

    def __init__(self) -> None:
        self.reply: Reply | None = None
        self.on_ready: Callable[[], None] | None = None

    def fill(self, reply: Reply) -> None:
        if self.reply is None:
            self.reply = reply
            if self.on_ready is not None:
                self.on_ready()


class Incoming:
    """One parsed client request."""

    __slots__ = ("method", "path_qs", "headers", "lower", "body")

    def __init__(
        self, method: str, path_qs: str, headers: Headers, lower: dict[str, str], body: bytes
    ) -> None:
        self.method = method
        self.path_qs = path_qs
        self.headers = headers  # as received
        self.lower = lower  # lowercased names; a repeated name: the last wins
        self.body = body


class Router:
    """Proxies every request to one destination of the current route table."""

    def __init__(
        self,
        session: UpstreamPool,
        table: RouteTable | None = None,
        rng: random.Random | None = None,
        max_mirror_in_flight: int = 64,
    ) -> None:
        self.session = session
        self.table = table or RouteTable()
        self.rng = rng or random.Random()
        self.max_mirror_in_flight = max_mirror_in_flight
        self.stats: Counter[str] = Counter()
        self._mirrors_in_flight = 0
        self._mirrors_drained: asyncio.Event | None = None
        # What Istio's sidecars export (contracts/mesh_metrics.py): KServe's logger never logs
        # a failed response, so the operator's error figures come from this counter. One
        # registry per router: no process-global metric state.
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests_total = PromCounter(
            mesh.REQUESTS_TOTAL.removesuffix("_total"),
            "Requests by destination workload and response code (Istio's metric).",
            mesh.LABELS,
            registry=self.registry,
        )
        # The labelled children by (reporter, host, status): a dict hit instead of the
        # client's label lookup on every proxied request.
        self._children: dict[tuple[str, str, int], Any] = {}

    def reconfigure(self, table: RouteTable) -> None:
        self.table = table

    def _count(self, destination: Destination, status: int, reporter: str) -> None:
        key = (reporter, destination.host, status)
        child = self._children.get(key)
        if child is None:
            workload, namespace = mesh.predictor_workload(destination.host)
            child = self._children[key] = self.requests_total.labels(
                reporter, workload, namespace, workload, str(status)
            )
        child.inc()

    def _local(self, request: Incoming) -> Reply | None:
        """The router's own endpoints (GET/HEAD); anything else is proxied."""
        if request.method not in ("GET", "HEAD"):
            return None
        path = request.path_qs.split("?", 1)[0]
        if path == STATS_PATH:
            body = json.dumps({"counts": dict(self.stats), "table": self.table.model_dump()})
            return 200, [("Content-Type", _JSON)], body.encode()
        if path == mesh.ROUTER_METRICS_PATH:
            return 200, [("Content-Type", CONTENT_TYPE_LATEST)], generate_latest(self.registry)
        return None

    def handle(self, request: Incoming) -> Reply | Pending:
        """The answer, or a slot the upstream's answer will fill."""
        local = self._local(request)
        if local is not None:
            return local
        table = self.table  # snapshot: a concurrent reconfigure does not affect this request
        headers = request.lower
        request_id = headers.get(c.REQUEST_ID_HEADER.lower()) or str(uuid.uuid4())
        extra: dict[str, str] = {}
        assignment = table.assignment
        if assignment is not None and assignment.header not in headers:
            # What an edge filter would do on a real mesh: the bucket header from the key.
            bucket = bucket_for(assignment, headers, request.body)
            if bucket is not None:
                extra[assignment.header] = headers[assignment.header] = bucket
            else:
                self.stats["assignment_key_missing"] += 1
        route = table.route_for(headers)
        if route is None:
            self.stats["no_match"] += 1
            return _error(404, "no route matches the request", request_id)
        destination = choose_destination(route, self.rng)
        if route.mirror is not None and should_mirror(route, self.rng):
            self._start_mirror(route.mirror, request, request_id, extra)
        if destination is None:
            self.stats["no_route"] += 1
            return _error(503, "no destination has a positive weight", request_id)
        if destination.url is None:
            self.stats[f"unavailable:{destination.role}"] += 1
            return _error(503, f"upstream {destination.host} is not available", request_id)
        self.stats[f"requests:{destination.role}"] += 1
        return self._forward(destination, request, request_id, extra)

    def _forward(
        self, destination: Destination, request: Incoming, request_id: str, extra: dict[str, str]
    ) -> Pending:
        assert destination.url is not None
        session = self.session
        reply = Pending()
        headers = _forward_headers(request.headers, request_id, destination.role, extra)

        def answer(outcome: UpstreamResponse | BaseException) -> None:
            if isinstance(outcome, BaseException):
                result = self._failed(destination, outcome, request_id)
            else:
                out = [(k, v) for k, v in outcome.headers if k.lower() not in _DROP_HEADERS]
                if not any(k.lower() == _REQUEST_ID_LOWER for k, _ in out):
                    out.append((c.REQUEST_ID_HEADER, request_id))
                self._count(destination, outcome.status, mesh.REPORTER_DESTINATION)
                result = (outcome.status, out, outcome.body)
            reply.fill(result)

        try:
            session.request(
                destination.url, request.method, request.path_qs, headers, request.body, answer
            )
        except ValueError as exc:  # a destination URL the client cannot use
            reply.fill(self._failed(destination, exc, request_id))
        return reply

    def _failed(self, destination: Destination, exc: BaseException, request_id: str) -> Reply:
        self.stats[f"upstream_errors:{destination.role}"] += 1
        # Never reached the workload: on a mesh only the caller's sidecar reports it.
        self._count(destination, 503, "source")
        return _error(503, f"upstream {destination.host} failed: {exc}", request_id)

    def _start_mirror(
        self, mirror: Destination, request: Incoming, request_id: str, extra: dict[str, str]
    ) -> None:
        if self._mirrors_in_flight >= self.max_mirror_in_flight:
            self.stats["mirror_dropped"] += 1
            return
        assert mirror.url is not None  # should_mirror said so
        headers = _forward_headers(request.headers, request_id, mirror.role, extra)

        def finished(outcome: UpstreamResponse | BaseException) -> None:
            self._mirrors_in_flight -= 1
            if isinstance(outcome, BaseException):
                self.stats["mirror_failed"] += 1
            else:
                # The shadow's answer is discarded; only its status is counted.
                self._count(mirror, outcome.status, mesh.REPORTER_DESTINATION)
                self.stats["mirror_sent"] += 1
            if not self._mirrors_in_flight and self._mirrors_drained is not None:
                self._mirrors_drained.set()

        try:
            self.session.request(
                mirror.url, request.method, request.path_qs, headers, request.body, finished
            )
        except ValueError:
            self.stats["mirror_failed"] += 1
            return
        self._mirrors_in_flight += 1

    async def drain_mirrors(self) -> None:
        """Wait for in-flight mirror copies (tests and shutdown)."""
        while self._mirrors_in_flight:
            self._mirrors_drained = asyncio.Event()
            await self._mirrors_drained.wait()


_REQUEST_ID_LOWER = c.REQUEST_ID_HEADER.lower()


def _error(status: int, message: str, request_id: str) -> Reply:
    body = json.dumps({"error": message}).encode()
    return status, [("Content-Type", _JSON), (c.REQUEST_ID_HEADER, request_id)], body


_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n" for status in HTTPStatus
}


def _response_bytes(reply: Reply, keep_alive: bool, head: bool) -> bytes:
    status, headers, body = reply
    status_line = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n"
    lines = [status_line]
    lines += [f"{name}: {value}\r\n" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("Connection: keep-alive\r\n\r\n" if keep_alive else "Connection: close\r\n\r\n")
    head_bytes = "".join(lines).encode("latin-1")
    return head_bytes if head else head_bytes + body


class RouterProtocol(asyncio.Protocol):
    """One client connection; pipelined requests are answered in order."""

    def __init__(self, router: Router, connections: set[asyncio.Transport]) -> None:
        self._router = router
        self._connections = connections
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._outbox: deque[tuple[Reply | Pending, bool, bool]] = deque()
        self._paused = False
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: Headers = []
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
            self._finish(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as error:
            self._finish(400, f"malformed HTTP: {error}")

    def _finish(self, status: int, message: str) -> None:
        """Answer now and close: the connection's stream can no longer be trusted."""
        if self._transport is not None and not self._transport.is_closing():
            body = json.dumps({"error": message}).encode()
            reply: Reply = (status, [("Content-Type", _JSON)], body)
            self._transport.write(_response_bytes(reply, keep_alive=False, head=False))
            self._transport.close()

    # httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        for name, value in self._headers:
            if name.lower() == "expect" and value.lower() == "100-continue" and self._transport:
                self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size <= MAX_BODY_BYTES:
            self._body.append(body)
        else:
            self._body.clear()

    def on_message_complete(self) -> None:
        keep_alive = self._parser.should_keep_alive()
        method = self._parser.get_method().decode("latin-1")
        reply: Reply | Pending
        if self._size > MAX_BODY_BYTES:
            message = f"request body over {MAX_BODY_BYTES} bytes"
            reply, keep_alive = (413, [("Content-Type", _JSON)], _json_error(message)), False
        else:
            headers = self._headers
            request = Incoming(
                method,
                self._url.decode("latin-1"),
                headers,
                {name.lower(): value for name, value in headers},
                b"".join(self._body),
            )
            reply = self._router.handle(request)
            if not isinstance(reply, tuple):
                reply.on_ready = self._pump
        self._outbox.append((reply, keep_alive, method == "HEAD"))
        if len(self._outbox) >= _MAX_QUEUED_REPLIES and self._transport is not None:
            self._transport.pause_reading()  # bounded memory under deep pipelining
            self._paused = True
        self._pump()

    def _pump(self) -> None:
        """Write the answers at the head of the queue that are ready."""
        outbox = self._outbox
        while outbox:
            reply, keep_alive, head = outbox[0]
            if not isinstance(reply, tuple):
                if reply.reply is None:
                    return
                reply = reply.reply
            outbox.popleft()
            transport = self._transport
            if transport is None or transport.is_closing():
                outbox.clear()
                return
            transport.write(_response_bytes(reply, keep_alive, head))
            if not keep_alive:
                transport.close()
                outbox.clear()
                return
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()


def _json_error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class RouterServer:
    """A router's listening socket and its open connections; ``cleanup`` closes both."""

    def __init__(self, server: asyncio.Server, connections: set[asyncio.Transport]) -> None:
        self.server = server
        self._connections = connections

    @property
    def addresses(self) -> list[Any]:
        return [sock.getsockname() for sock in self.server.sockets]

    async def cleanup(self) -> None:
        self.server.close()
        for transport in list(self._connections):
            transport.close()
        self._connections.clear()
        await self.server.wait_closed()


async def serve(router: Router, host: str, port: int) -> RouterServer:
    """Start serving ``router`` on host:port; the caller owns ``cleanup()``."""
    loop = asyncio.get_running_loop()
    connections: set[asyncio.Transport] = set()
    server = await loop.create_server(
        lambda: RouterProtocol(router, connections), host, port, reuse_address=True
    )
    return RouterServer(server, connections)


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when available (it ships with KServe): a cheaper loop for a proxy."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localcluster.serving.router")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--virtualservice", required=True, help="YAML file of a VirtualService")
    parser.add_argument(
        "--resolve", action="append", default=[], help="HOST=URL mapping a destination host"
    )
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace, virtualservice: dict[str, Any]) -> None:
    mapping = dict(item.split("=", 1) for item in args.resolve)
    annotations = (virtualservice.get("metadata") or {}).get("annotations")
    table = route_table_from_spec(
        virtualservice.get("spec", {}), static_resolver(mapping), annotations
    )
    async with new_client_session() as session:
        runner = await serve(Router(session, table), args.host, args.port)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING)
    with open(args.virtualservice) as handle:
        virtualservice = yaml.safe_load(handle)
    with contextlib.suppress(KeyboardInterrupt):
        run_event_loop(_run(args, virtualservice))


if __name__ == "__main__":
    main()
