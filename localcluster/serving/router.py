"""A local stand-in for an Istio VirtualService: a reverse proxy on its own port.

Each request takes a snapshot of the current route table, so ``reconfigure`` swaps the table
atomically and in-flight requests finish against the destinations they started with. The mirror
copy is fire-and-forget on a bounded number of in-flight copies: when the shadow is slow, copies
are dropped (and counted) rather than piling up or delaying the primary.

The data path is lean on purpose (it sits in front of every prediction): requests are
validated by httptools (llhttp, C) in an ``asyncio.Protocol`` — the approach of the monitor's
fast ingest port — and go upstream through :mod:`localcluster.serving.upstream`'s keep-alive
client. Headers stay the bytes they came as (:mod:`localcluster.serving.http1`): hop-by-hop
lines are cut and the mesh's lines added without a Python object per header; the (name,
value) pairs are made only for a table with header matches or a sticky assignment. Each route
table is compiled once (summed weights, request-line bytes, stats keys, metric series) when it
is first used. Pipelined requests on one connection are answered in order.

Run: ``python -m localcluster.serving.router --port P --virtualservice vs.yaml
[--resolve HOST=URL ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterator, Sequence
from http import HTTPStatus
from typing import Any, cast

import httptools
import yaml
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from contracts import mesh_metrics as mesh
from localcluster.serving import constants as c
from localcluster.serving import http1
from localcluster.serving.http1 import Headers
from localcluster.serving.routing import (
    Destination,
    RouteAction,
    RouteTable,
    bucket_for,
    route_table_from_spec,
    static_resolver,
)
from localcluster.serving.upstream import Origin, UpstreamPool, UpstreamResponse

log = logging.getLogger(__name__)

STATS_PATH = "/_kubeloop/router/stats"
#: Largest request body taken (aiohttp's ``client_max_size`` before): larger is a 413.
MAX_BODY_BYTES = 64 * 1024**2
#: Answers queued on one connection (pipelining) before the router stops reading from it.
_MAX_QUEUED_REPLIES = 64
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_JSON = "application/json; charset=utf-8"
_JSON_FIELD = f"\r\nContent-Type: {_JSON}".encode()
_REQUEST_ID_FIELD = f"\r\n{c.REQUEST_ID_HEADER}: ".encode()
_REQUEST_ID = c.REQUEST_ID_HEADER.encode()
_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"

# What a forwarded request does not carry from the client: hop-by-hop headers and the mesh's
# request id and role, which the router sets (replacing any the client sent, whatever the case).
# One pass cuts them and gives the body's framing and the request id.
_NOT_FORWARDED = http1.lines_named(http1.HOP_BY_HOP | {c.REQUEST_ID_HEADER, c.ROLE_HEADER})
# What an answer does not carry back: hop-by-hop headers; the request id is cut to be seen.
_NOT_RELAYED = http1.lines_named(http1.HOP_BY_HOP | {c.REQUEST_ID_HEADER})
_EXPECT = http1.lines_named({"expect"})

#: (status, field block, body) of an answer to a client.
Reply = tuple[int, bytes, bytes]


def new_client_session(limit: int = 256) -> UpstreamPool:
    """One keep-alive upstream pool shared by every router (and every route table version);
    ``async with new_client_session() as session`` closes its connections at the end."""
    return UpstreamPool(limit=limit, timeout_s=60.0)


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
    """One parsed client request. Its headers stay the field block they arrived as; the
    (name, value) pairs and the lowercase map are made only when asked for (header matches,
    sticky assignment)."""

    __slots__ = ("method", "target", "fields", "forwarded", "request_id", "body", "_lower")

    def __init__(
        self,
        method: str,
        target: bytes,
        fields: bytes,
        forwarded: bytes,
        request_id: bytes,
        body: bytes,
    ) -> None:
        self.method = method
        self.target = target  # the request target as received (path and query)
        self.fields = fields  # the http1 field block as received
        self.forwarded = forwarded  # the same without what the router does not forward
        self.request_id = request_id  # the client's (the last one), b"" when it sent none
        self.body = body
        self._lower: dict[str, str] | None = None

    @property
    def path_qs(self) -> str:
        return self.target.decode("latin-1")

    @property
    def headers(self) -> Headers:
        """As received: names in their case, repeats kept."""
        return http1.parse_fields(self.fields)

    @property
    def lower(self) -> dict[str, str]:
        """Lowercased names; a repeated name: the last wins."""
        if self._lower is None:
            self._lower = {name.lower(): value for name, value in self.headers}
        return self._lower


class _RequestIds:
    """Random (version 4) UUIDs as ``uuid.uuid4()`` makes them — 122 bits of ``os.urandom``
    each — made 256 at a time in a few C calls: per request only a slice of bytes."""

    __slots__ = ("_pool", "_next")
    _BATCH = 256
    _SIZE = 36
    # The variant digit (8, 9, a or b) from a random hex digit's value.
    _VARIANT = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")

    def __init__(self) -> None:
        self._pool = b""
        self._next = 0

    def __call__(self) -> bytes:
        at = self._next
        if at >= len(self._pool):
            self._pool, at = self._fill(), 0
        self._next = at + self._SIZE
        return self._pool[at : at + self._SIZE]

    def _fill(self) -> bytes:
        n, size = self._BATCH, self._SIZE
        # 36 random hex digits per id; the hyphens, version and variant overwrite 6 of them,
        # leaving 30 random digits and 2 random bits of the variant: 122 bits.
        ids = bytearray(os.urandom(size // 2 * n).hex().encode())
        for at in (8, 13, 18, 23):
            ids[at::size] = b"-" * n
        ids[14::size] = b"4" * n
        ids[19::size] = bytes(ids[19::size]).translate(self._VARIANT)
        return bytes(ids)


class _Tally:
    """One series group of ``istio_requests_total``: counts by response code."""

    __slots__ = ("labels", "counts", "created")

    def __init__(self, labels: tuple[str, str, str]) -> None:
        self.labels = labels  # reporter, workload, namespace
        self.counts: dict[int, int] = {}
        self.created: dict[int, float] = {}

    def add(self, status: int) -> None:
        counts = self.counts
        if status in counts:
            counts[status] += 1
        else:
            counts[status] = 1
            self.created[status] = time.time()


class _RequestCounts(Collector):
    """``istio_requests_total`` (contracts/mesh_metrics.py) as plain counts, rendered at scrape
    time into what a labelled ``prometheus_client`` Counter exposes (``_total`` and
    ``_created`` samples): a dict increment per request instead of a label lookup and a
    locked increment."""

    def __init__(self) -> None:
        self._tallies: dict[tuple[str, str, str], _Tally] = {}

    def tally(self, reporter: str, host: str) -> _Tally:
        """Hosts with the same workload and namespace share their series, as labels() does."""
        labels = (reporter, *mesh.predictor_workload(host))
        tally = self._tallies.get(labels)
        if tally is None:
            tally = self._tallies[labels] = _Tally(labels)
        return tally

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            mesh.REQUESTS_TOTAL,
            "Requests by destination workload and response code (Istio's metric).",
            labels=mesh.LABELS,
        )
        for (reporter, workload, namespace), tally in self._tallies.items():
            for status, count in tally.counts.items():
                labels = [reporter, workload, namespace, workload, str(status)]
                family.add_metric(labels, count, created=tally.created[status])
        yield family


class _Target:
    """A destination as the data path writes to it, worked out once per route table: the
    origin, the bytes of its request line's prefix, Host and role lines, its stats keys and
    its metric series."""

    __slots__ = (
        "destination", "origin", "error", "prefix", "host_line", "role_line", "requests_key",
        "errors_key", "tally", "source_tally",
    )  # fmt: skip

    def __init__(
        self, destination: Destination, session: UpstreamPool, counts: _RequestCounts
    ) -> None:
        self.destination = destination
        self.origin: Origin | None = None
        self.error: ValueError | None = None  # a destination URL the client cannot use
        self.prefix = self.host_line = b""
        if destination.url is not None:
            try:
                origin = self.origin = session.origin(destination.url)
            except ValueError as exc:
                self.error = exc
            else:
                self.prefix = origin.prefix.encode("latin-1")
                self.host_line = f" HTTP/1.1\r\nHost: {origin.host_header}".encode("latin-1")
        self.role_line = f"\r\n{c.ROLE_HEADER}: {destination.role}".encode("latin-1")
        self.requests_key = f"requests:{destination.role}"
        self.errors_key = f"upstream_errors:{destination.role}"
        self.tally = counts.tally(mesh.REPORTER_DESTINATION, destination.host)
        # Never reached the workload: on a mesh only the caller's sidecar reports it.
        self.source_tally = counts.tally("source", destination.host)

    def request_bytes(
        self, request: Incoming, request_id: bytes, extra: tuple[str, str] | None
    ) -> bytes:
        """The upstream request: the client's end-to-end headers as received, then the
        bucket header (``extra``), the request id and the role; Host and Content-Length set."""
        fields = request.forwarded
        set_ = b""
        if extra is not None:
            fields = http1.cut(http1.lines_named({extra[0]}), fields)[0]
            set_ = http1.render_fields([extra])
        body = request.body
        return b"".join(
            (
                request.method.encode("latin-1"), b" ", self.prefix, request.target,
                self.host_line, fields, set_, _REQUEST_ID_FIELD, request_id, self.role_line,
                b"\r\nContent-Length: %d\r\n\r\n" % len(body), body,
            )
        )  # fmt: skip


class _Action:
    """A route's action with its weights summed and its mirror resolved once."""

    __slots__ = ("total", "weighted", "mirror", "mirror_percent")

    def __init__(self, action: RouteAction, target: Callable[[Destination], _Target]) -> None:
        self.total = action.total_weight
        # Positive weights only, in order: what choose_destination walks.
        self.weighted = [(d.weight, target(d)) for d in action.destinations if d.weight > 0]
        mirror = action.mirror
        usable = mirror is not None and mirror.url is not None and action.mirror_percent > 0
        self.mirror = target(mirror) if usable and mirror is not None else None
        self.mirror_percent = action.mirror_percent


class _Plan:
    """A route table compiled for the data path (rebuilt when the table object changes)."""

    __slots__ = ("table", "actions", "default", "plain")

    def __init__(self, table: RouteTable, target: Callable[[Destination], _Target]) -> None:
        self.table = table
        # By identity: route_for returns the table's own objects, which the plan keeps alive.
        self.actions = {id(route): _Action(route, target) for route in table.matched}
        self.default = _Action(table, target) if table.has_default else None
        if self.default is not None:
            self.actions[id(table)] = self.default
        # No header matches and no assignment: no request header needs reading for routing.
        self.plain = not table.matched and table.assignment is None


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
        self._new_id = _RequestIds()
        # What Istio's sidecars export (contracts/mesh_metrics.py): KServe's logger never logs
        # a failed response, so the operator's error figures come from this counter. One
        # registry per router: no process-global metric state.
        self._counts = _RequestCounts()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self._counts)
        self._targets: dict[tuple[str, str | None, str], _Target] = {}
        self._plan = _Plan(RouteTable(), self._target)

    def reconfigure(self, table: RouteTable) -> None:
        self.table = table

    def _target(self, destination: Destination) -> _Target:
        key = (destination.host, destination.url, destination.role)  # what a target uses
        target = self._targets.get(key)
        if target is None:
            target = self._targets[key] = _Target(destination, self.session, self._counts)
        return target

    def _local(self, request: Incoming) -> Reply | None:
        """The router's own endpoints (GET/HEAD); anything else is proxied."""
        path = request.target.split(b"?", 1)[0]
        if path == _STATS_PATH:
            body = json.dumps({"counts": dict(self.stats), "table": self.table.model_dump()})
            return 200, _JSON_FIELD, body.encode()
        if path == _METRICS_PATH:
            return 200, _METRICS_FIELD, generate_latest(self.registry)
        return None

    def handle(self, request: Incoming) -> Reply | Pending:
        """The answer, or a slot the upstream's answer will fill."""
        if request.method in ("GET", "HEAD"):
            local = self._local(request)
            if local is not None:
                return local
        table = self.table  # snapshot: a concurrent reconfigure does not affect this request
        plan = self._plan
        if plan.table is not table:
            plan = self._plan = _Plan(table, self._target)
        request_id = request.request_id or self._new_id()
        extra: tuple[str, str] | None = None
        action = plan.default
        if not plan.plain:
            headers = request.lower
            assignment = table.assignment
            if assignment is not None and assignment.header not in headers:
                # What an edge filter would do on a real mesh: the bucket header from the key.
                bucket = bucket_for(assignment, headers, request.body)
                if bucket is not None:
                    headers[assignment.header] = bucket
                    extra = (assignment.header, bucket)
                else:
                    self.stats["assignment_key_missing"] += 1
            route = table.route_for(headers)
            action = None if route is None else plan.actions[id(route)]
        if action is None:
            self.stats["no_match"] += 1
            return _error(404, "no route matches the request", request_id)
        target = self._choose(action)
        mirror = action.mirror
        if mirror is not None and (
            action.mirror_percent >= 100 or self.rng.random() * 100.0 < action.mirror_percent
        ):
            self._start_mirror(mirror, request, request_id, extra)
        if target is None:
            self.stats["no_route"] += 1
            return _error(503, "no destination has a positive weight", request_id)
        if target.destination.url is None:
            self.stats[f"unavailable:{target.destination.role}"] += 1
            host = target.destination.host
            return _error(503, f"upstream {host} is not available", request_id)
        self.stats[target.requests_key] += 1
        return self._forward(target, request, request_id, extra)

    def _choose(self, action: _Action) -> _Target | None:
        """choose_destination's weighted choice, the same draw for the same ``rng``."""
        total = action.total
        if total <= 0:
            return None
        point = self.rng.random() * total
        for weight, target in action.weighted:
            point -= weight
            if point < 0:
                return target
        return action.weighted[-1][1]

    def _forward(
        self, target: _Target, request: Incoming, request_id: bytes, extra: tuple[str, str] | None
    ) -> Pending:
        reply = Pending()
        if target.origin is None:
            assert target.error is not None
            reply.fill(self._failed(target, target.error, request_id))
            return reply

        def answer(outcome: UpstreamResponse | BaseException) -> None:
            if isinstance(outcome, BaseException):
                reply.fill(self._failed(target, outcome, request_id))
                return
            fields, names, values = http1.cut(_NOT_RELAYED, outcome.fields)
            if _REQUEST_ID in map(bytes.lower, names):  # the upstream's own: relayed as is
                fields += b"".join(
                    b"\r\n%s: %s" % (name, value)
                    for name, value in zip(names, values, strict=True)
                    if name.lower() == _REQUEST_ID
                )
            else:
                fields = b"".join((fields, _REQUEST_ID_FIELD, request_id))
            target.tally.add(outcome.status)
            reply.fill((outcome.status, fields, outcome.body))

        data = target.request_bytes(request, request_id, extra)
        self.session.send(target.origin, data, request.method == "HEAD", answer)
        return reply

    def _failed(self, target: _Target, exc: BaseException, request_id: bytes) -> Reply:
        self.stats[target.errors_key] += 1
        target.source_tally.add(503)
        return _error(503, f"upstream {target.destination.host} failed: {exc}", request_id)

    def _start_mirror(
        self, mirror: _Target, request: Incoming, request_id: bytes, extra: tuple[str, str] | None
    ) -> None:
        if self._mirrors_in_flight >= self.max_mirror_in_flight:
            self.stats["mirror_dropped"] += 1
            return
        if mirror.origin is None:  # a URL the client cannot use
            self.stats["mirror_failed"] += 1
            return

        def finished(outcome: UpstreamResponse | BaseException) -> None:
            self._mirrors_in_flight -= 1
            if isinstance(outcome, BaseException):
                self.stats["mirror_failed"] += 1
            else:
                # The shadow's answer is discarded; only its status is counted.
                mirror.tally.add(outcome.status)
                self.stats["mirror_sent"] += 1
            if not self._mirrors_in_flight and self._mirrors_drained is not None:
                self._mirrors_drained.set()

        data = mirror.request_bytes(request, request_id, extra)
        self.session.send(mirror.origin, data, request.method == "HEAD", finished)
        self._mirrors_in_flight += 1

    async def drain_mirrors(self) -> None:
        """Wait for in-flight mirror copies (tests and shutdown)."""
        while self._mirrors_in_flight:
            self._mirrors_drained = asyncio.Event()
            await self._mirrors_drained.wait()


_STATS_PATH = STATS_PATH.encode()
_METRICS_PATH = mesh.ROUTER_METRICS_PATH.encode()
_METRICS_FIELD = f"\r\nContent-Type: {CONTENT_TYPE_LATEST}".encode()


def _error(status: int, message: str, request_id: bytes) -> Reply:
    body = json.dumps({"error": message}).encode()
    return status, b"".join((_JSON_FIELD, _REQUEST_ID_FIELD, request_id)), body


def _json_error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}".encode() for status in HTTPStatus
}


def _response_bytes(reply: Reply, keep_alive: bool, head: bool) -> bytes:
    status, fields, body = reply
    status_line = _STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown" % status
    connection = b"\r\nConnection: keep-alive\r\n\r\n" if keep_alive else _CLOSE
    length = b"\r\nContent-Length: %d" % len(body)
    return b"".join((status_line, fields, length, connection, b"" if head else body))


_CLOSE = b"\r\nConnection: close\r\n\r\n"
_METHODS = {name.encode(): name for name in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")}


class _Refused(Exception):
    """A request the router answers with an error and then closes the connection on."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RouterProtocol(asyncio.Protocol):
    """One client connection; pipelined requests are answered in order.

    Framing: a request's head ends at its first empty line; its body is as long as its
    Content-Length says, or chunked. The router frames each request so, then gives llhttp
    exactly that request's bytes: llhttp validates it and must see one message ending where
    the router's framing ends, or the request is refused (400) and the connection closed. So a
    request's head reaches the router as one block of bytes, without a Python callback per
    header, and no byte of the next pipelined request is parsed ahead of its turn."""

    def __init__(self, router: Router, connections: set[asyncio.Transport]) -> None:
        self._router = router
        self._connections = connections
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._outbox: deque[tuple[Reply | Pending, bool, bool]] = deque()
        self._paused = False
        self._closing = False  # an answer closes the connection: nothing more is read
        self._buf = bytearray()  # the start of a request not yet whole
        self._next_message()

    def _next_message(self) -> None:
        self._fed = 0  # bytes of the message given to llhttp so far
        self._head = b""  # start line, fields and the empty line, once whole
        self._fields = b""
        self._forwarded = b""
        self._request_id = b""
        self._length: int | None = 0  # of the body, by Content-Length; None: chunked
        self._chunked: http1.ChunkedBody | None = None
        self._begun = self._completed = 0  # llhttp's count of messages, for the check
        self._continued = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self._transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._connections.discard(self._transport)

    # llhttp's callbacks: only counted ----------------------------------------------------

    def on_message_begin(self) -> None:
        self._begun += 1

    def on_message_complete(self) -> None:
        self._completed += 1

    # ------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        buf: bytes | bytearray = data
        if self._buf:
            self._buf += data
            buf = self._buf
        try:
            used = self._take(buf)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
            return
        except (httptools.HttpParserError, ValueError) as error:
            self._refuse(400, f"malformed HTTP: {error}")
            return
        except OverflowError:
            self._refuse(413, f"request body over {MAX_BODY_BYTES} bytes")
            return
        except _Refused as refused:
            self._refuse(refused.status, refused.message)
            return
        if buf is self._buf:
            del self._buf[:used]
        elif used < len(buf):
            self._buf = bytearray(buf[used:])

    def _take(self, buf: bytes | bytearray) -> int:
        """Answer each whole request at the start of ``buf``; the bytes used up."""
        start, size = 0, len(buf)
        while start < size and not self._closing:
            if not self._fed and not self._head:
                while start < size and buf[start] in (13, 10):  # CRLFs between messages
                    start += 1
                if start == size:
                    break
            end = self._message_end(buf, start)
            if end is None:
                self._fed_so_far(buf, start)
                break
            self._complete(buf, start, end)
            start = end
        return start

    def _message_end(self, buf: bytes | bytearray, start: int) -> int | None:
        """Where the request starting at ``start`` ends; None while it is incomplete."""
        if not self._head:
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                if len(buf) - start > http1.MAX_HEAD_BYTES:
                    raise _Refused(431, f"request head over {http1.MAX_HEAD_BYTES} bytes")
                return None
            self._head = head = bytes(buf[start : end + 4])
            self._fields = fields = head[head.find(b"\r\n") : -4]
            pieces = _NOT_FORWARDED.split(fields)  # http1.cut, inline: once per request
            self._forwarded = b"".join(pieces[0::3])
            if len(pieces) > 1:
                self._special(buf, start, pieces[1::3], pieces[2::3])
        body_start = start + len(self._head)
        if self._chunked is not None:
            found = self._chunked.end(buf, body_start)
        else:
            assert self._length is not None
            found = body_start + self._length
            if found > len(buf):
                found = None
        if found is None and not self._continued:
            self._continue()
        return found

    def _special(
        self, buf: bytes | bytearray, start: int, names: list[bytes], values: list[bytes]
    ) -> None:
        """The body's framing and the request id from the lines the router does not forward
        (llhttp judges the framing the router cannot)."""
        lengths: list[bytes] = []
        for name, value in zip(names, values, strict=True):
            low = name.lower()
            if low == _CONTENT_LENGTH:
                lengths.append(value.rstrip(b" \t"))
            elif low == _TRANSFER_ENCODING:
                self._chunked = http1.ChunkedBody(MAX_BODY_BYTES)
            elif low == _REQUEST_ID:
                self._request_id = value.rstrip(b" \t")  # the last one, as before
        if self._chunked is not None:
            self._length = None
        elif len(lengths) == 1 and lengths[0].isdigit():
            self._length = int(lengths[0])
            if self._length > MAX_BODY_BYTES:
                raise OverflowError
        elif lengths:  # repeated or malformed Content-Length: llhttp's own error names it
            self._parser.feed_data(bytes(buf[start + self._fed : start + len(self._head)]))
            raise _Refused(400, "malformed HTTP: invalid Content-Length")

    def _continue(self) -> None:
        """Expect: 100-continue and the body not all here yet: invite the client to send it."""
        _, _, values = http1.cut(_EXPECT, self._fields)
        if any(value.rstrip(b" \t").lower() == b"100-continue" for value in values):
            self._continued = True
            if self._transport is not None:
                self._transport.write(_CONTINUE)

    def _fed_so_far(self, buf: bytes | bytearray, start: int) -> None:
        """Give llhttp what has come of an incomplete request (none of it lies past the
        request's end), so garbage is refused at once; offsets restart at the kept bytes."""
        if len(buf) - start > self._fed:
            self._parser.feed_data(bytes(buf[start + self._fed :]))
            self._fed = len(buf) - start

    def _complete(self, buf: bytes | bytearray, start: int, end: int) -> None:
        """Validate the request ``buf[start:end]`` with llhttp and hand it to the router."""
        first = start + self._fed
        self._parser.feed_data(buf if first == 0 and end == len(buf) else bytes(buf[first:end]))
        if self._begun != 1 or self._completed != 1:
            raise _Refused(400, "malformed HTTP: the message framing is ambiguous")
        head = self._head
        line = head[: head.find(b"\r\n")]
        target = line[line.find(b" ") + 1 : line.rfind(b" ")]
        keep_alive = self._parser.should_keep_alive()
        if self._chunked is not None:
            body = self._chunked.content
        else:
            body = bytes(buf[start + len(head) : end])
        raw_method = self._parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        request = Incoming(method, target, self._fields, self._forwarded, self._request_id, body)
        self._next_message()
        reply = self._router.handle(request)
        if not isinstance(reply, tuple):
            reply.on_ready = self._pump
        self._queue(reply, keep_alive, method == "HEAD")

    def _refuse(self, status: int, message: str) -> None:
        """Answer after the earlier requests, then close: the stream can no longer be
        trusted (or the request is too large to take)."""
        if not self._closing:
            self._queue((status, _JSON_FIELD, _json_error(message)), False, False)

    def _queue(self, reply: Reply | Pending, keep_alive: bool, head: bool) -> None:
        if not keep_alive:
            self._closing = True  # nothing after this request is read
        self._outbox.append((reply, keep_alive, head))
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
