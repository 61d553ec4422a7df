"""The router's CPU per proxied request, in-process: what its own code path costs per request
without sockets, the event loop's polling or a load generator sharing the cores.

The router's client protocol and one keep-alive upstream connection of its real
``UpstreamPool`` sit on stub transports. Per request the driver feeds the client protocol the
bytes of the request ``bench/router.py``'s aiohttp client sends (a 223-byte JSON POST, no
request id: the router makes one), takes the upstream request the pool writes, feeds the
upstream connection the answer ``bench/router.py``'s aiohttp echo upstream gives, and checks
that the client got its 200. The route table is ``bench/router.py``'s (90/10 split;
``--mirror`` adds the 100 % mirror, answered the same way). Everything the router does per
request runs: parsing on both sides (llhttp), routing, the request id, the
``istio_requests_total`` count, both writes' bytes. What does not: the syscalls and epoll.

Reports CPU µs per request (``process_time``; best of ``--repeats``, as a lower bound that
moves less with other load than a mean). ``--profile`` prints cProfile's top functions. Run
under ``valgrind --tool=callgrind`` with ``--requests 2000 --repeats 1`` for instructions.

    .venv/bin/python bench/router_cpu.py [--requests 50000 --repeats 5 --mirror --profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import random
import time
from typing import Any

import _repo  # noqa: F401  (the repository on the path)

from localcluster.serving.router import Router, RouterProtocol
from localcluster.serving.routing import route_table_from_spec, static_resolver
from localcluster.serving.upstream import UpstreamPool, _Connection

BODY = json.dumps({"instances": [[0.1 * i for i in range(20)]]}).encode()
# What bench/router.py's aiohttp client sends and its aiohttp echo upstream answers.
REQUEST = (
    b"POST /v1/models/bench:predict HTTP/1.1\r\nHost: 127.0.0.1:40001\r\n"
    b"Content-Type: application/json\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\n"
    b"User-Agent: Python/3.11 aiohttp/3.14.5\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
ANSWER = b'{"predictions": [0.5]}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(ANSWER)).encode()
    + b"\r\nDate: Sun, 06 Dec 2026 09:40:00 GMT\r\nServer: Python/3.11 aiohttp/3.14.5\r\n\r\n"
    + ANSWER
)
URLS = {"stable": "http://127.0.0.1:40002", "candidate": "http://127.0.0.1:40003",
        "shadow": "http://127.0.0.1:40004"}  # fmt: skip


class StubTransport(_repo.StubTransport):
    """Keeps what is written; never closes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def virtualservice(mirror: bool) -> dict[str, Any]:
    http: dict[str, Any] = {
        "route": [
            {"destination": {"host": "stable"}, "weight": 90},
            {"destination": {"host": "candidate"}, "weight": 10},
        ]
    }
    if mirror:
        http["mirror"] = {"host": "shadow"}
        http["mirrorPercentage"] = {"value": 100.0}
    return {"http": [http]}


def upstream_connection(pool: UpstreamPool, url: str) -> tuple[_Connection, StubTransport]:
    """One idle keep-alive connection to ``url`` in the pool, on a stub transport."""
    origin = pool.origin(url)
    connection = _Connection(pool, origin)
    transport = StubTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    pool._open.add(connection)
    pool.release(connection)
    return connection, transport


async def drive(requests: int, mirror: bool, profile: cProfile.Profile | None) -> float:
    """CPU seconds (process_time) for ``requests`` proxied requests."""
    async with UpstreamPool() as pool:
        table = route_table_from_spec(virtualservice(mirror), static_resolver(URLS))
        router = Router(pool, table, rng=random.Random(1))
        upstreams = [upstream_connection(pool, url) for url in URLS.values()]
        client = StubTransport()
        protocol = RouterProtocol(router, set())
        protocol.connection_made(client)  # type: ignore[arg-type]
        if profile is not None:
            profile.enable()
        started = time.process_time()
        for _ in range(requests):
            protocol.data_received(REQUEST)
            for connection, transport in upstreams:
                if transport.written:
                    transport.written.clear()
                    connection.data_received(RESPONSE)
        elapsed = time.process_time() - started
        if profile is not None:
            profile.disable()
        answered = len(client.written)
        if answered != requests or not client.written[-1].startswith(b"HTTP/1.1 200 "):
            raise RuntimeError(f"{answered} answers to {requests} requests: {client.written[-1]!r}")
        return elapsed


def run_loop(requests: int, mirror: bool, profile: cProfile.Profile | None) -> float:
    """On uvloop, as the router runs (``run_event_loop``), when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(drive(requests, mirror, profile))
    return uvloop.run(drive(requests, mirror, profile))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mirror", action="store_true", help="the 100 %% mirror too")
    parser.add_argument("--profile", action="store_true", help="cProfile's top functions")
    args = parser.parse_args()
    runs = [
        run_loop(args.requests, args.mirror, None) / args.requests * 1e6
        for _ in range(args.repeats)
    ]
    print(f"CPU µs per proxied request (mirror={args.mirror}): best {min(runs):.2f}, "
          f"runs {', '.join(f'{r:.2f}' for r in runs)}")  # fmt: skip
    if args.profile:
        profile = cProfile.Profile()
        run_loop(args.requests, args.mirror, profile)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
