"""The router as a real aiohttp proxy in front of real aiohttp upstreams."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from localcluster.serving import constants as c
from localcluster.serving.router import Router, new_client_session, serve
from localcluster.serving.routing import RouteTable, route_table_from_spec, static_resolver
from localcluster.serving.upstream import UpstreamPool


class Upstream:
    """Records what it receives; requests with ``x-block: <its name>`` wait until released."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()
        self.url = ""
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append({"path": request.path_qs, "headers": headers, "body": body})
        self.arrived.set()
        if request.headers.get("x-block") == self.name:
            await self.release.wait()
        return web.json_response({"upstream": self.name}, headers={"x-upstream": self.name})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture
async def upstreams() -> AsyncIterator[dict[str, Upstream]]:
    ups = {name: Upstream(name) for name in ("stable", "candidate", "shadow")}
    for upstream in ups.values():
        await upstream.start()
    yield ups
    for upstream in ups.values():
        upstream.release.set()
        assert upstream.runner is not None
        await upstream.runner.cleanup()


def table(
    ups: dict[str, Upstream], stable: int, candidate: int, mirror: float | None = None
) -> RouteTable:
    http: dict[str, Any] = {
        "route": [
            {"destination": {"host": "stable"}, "weight": stable},
            {"destination": {"host": "candidate"}, "weight": candidate},
        ]
    }
    if mirror is not None:
        http["mirror"] = {"host": "shadow"}
        http["mirrorPercentage"] = {"value": mirror}
    resolver = static_resolver({name: u.url for name, u in ups.items()})
    return route_table_from_spec({"http": [http]}, resolver)


@pytest.fixture
async def proxy(upstreams: dict[str, Upstream]) -> AsyncIterator[tuple[Router, str]]:
    async with new_client_session() as session:
        router = Router(session, table(upstreams, 100, 0), rng=random.Random(42))
        runner = await serve(router, "127.0.0.1", 0)
        port = runner.addresses[0][1]
        yield router, f"http://127.0.0.1:{port}"
        await router.drain_mirrors()
        await runner.cleanup()


@pytest.fixture
def mirrored(upstreams: dict[str, Upstream], proxy: tuple[Router, str]) -> tuple[Router, str]:
    """The proxy with every request on stable and mirrored to shadow."""
    router, _ = proxy
    router.reconfigure(table(upstreams, 100, 0, mirror=100))
    return proxy


async def test_split_follows_weights(
    upstreams: dict[str, Upstream], proxy: tuple[Router, str]
) -> None:
    router, url = proxy
    router.reconfigure(table(upstreams, 80, 20))
    n = 500
    async with aiohttp.ClientSession() as client:
        for _ in range(n // 50):
            await asyncio.gather(
                *(client.post(f"{url}/v1/models/m:predict", data=b"{}") for _ in range(50))
            )
    got = len(upstreams["candidate"].seen)
    assert got + len(upstreams["stable"].seen) == n
    assert abs(got - 0.2 * n) <= 4 * math.sqrt(n * 0.2 * 0.8)
    roles = {s["headers"][c.ROLE_HEADER] for s in upstreams["candidate"].seen}
    assert roles == {c.ROLE_CANDIDATE}
    assert router.stats["requests:candidate"] == got


async def test_mirror_gets_the_same_request_id(
    upstreams: dict[str, Upstream], mirrored: tuple[Router, str]
) -> None:
    router, url = mirrored
    async with aiohttp.ClientSession() as client:
        given = await client.post(
            f"{url}/v1/models/m:predict?x=1",
            data=b'{"a":1}',
            headers={c.REQUEST_ID_HEADER: "req-1"},
        )
        generated = await client.post(f"{url}/v1/models/m:predict", data=b'{"a":2}')
        assert given.status == 200 and generated.status == 200
        assert given.headers[c.REQUEST_ID_HEADER] == "req-1"
        generated_id = generated.headers[c.REQUEST_ID_HEADER]
    await router.drain_mirrors()
    primary, shadow = upstreams["stable"].seen, upstreams["shadow"].seen
    assert [s["headers"][c.REQUEST_ID_HEADER] for s in primary] == ["req-1", generated_id]
    assert [s["headers"][c.REQUEST_ID_HEADER] for s in shadow] == ["req-1", generated_id]
    assert [s["body"] for s in shadow] == [b'{"a":1}', b'{"a":2}']
    assert shadow[0]["path"] == "/v1/models/m:predict?x=1"
    assert {s["headers"][c.ROLE_HEADER] for s in shadow} == {c.ROLE_SHADOW}
    assert {s["headers"][c.ROLE_HEADER] for s in primary} == {c.ROLE_STABLE}


async def test_a_stuck_mirror_does_not_hold_the_primary(
    upstreams: dict[str, Upstream], mirrored: tuple[Router, str]
) -> None:
    _, url = mirrored
    async with aiohttp.ClientSession() as client:
        # The shadow blocks this request until released; the primary must answer regardless.
        response = await client.post(f"{url}/p", data=b"x", headers={"x-block": "shadow"})
        assert response.status == 200, await response.text()
    assert upstreams["shadow"].arrived.is_set()
    assert upstreams["shadow"].seen and not upstreams["shadow"].release.is_set()
    upstreams["shadow"].release.set()


async def test_reconfigure_keeps_in_flight_requests(
    upstreams: dict[str, Upstream], proxy: tuple[Router, str]
) -> None:
    router, url = proxy
    async with aiohttp.ClientSession() as client:
        in_flight = asyncio.create_task(client.post(f"{url}/slow", headers={"x-block": "stable"}))
        await upstreams["stable"].arrived.wait()
        router.reconfigure(table(upstreams, 0, 100))
        after = await client.post(f"{url}/fast")
        assert (await after.json())["upstream"] == "candidate"
        assert not in_flight.done()
        upstreams["stable"].release.set()
        before = await in_flight
        assert before.status == 200 and (await before.json())["upstream"] == "stable"


async def test_unavailable_destination_and_zero_weights_answer_503(
    upstreams: dict[str, Upstream], proxy: tuple[Router, str]
) -> None:
    router, url = proxy
    unresolved = route_table_from_spec(
        {"http": [{"route": [{"destination": {"host": "gone"}}]}]}, static_resolver({})
    )
    async with aiohttp.ClientSession() as client:
        router.reconfigure(unresolved)
        missing = await client.post(f"{url}/x")
        assert missing.status == 503 and "gone" in (await missing.json())["error"]
        router.reconfigure(table(upstreams, 0, 0))
        nothing = await client.post(f"{url}/x")
        assert nothing.status == 503


async def test_upstream_down_is_503_not_a_crash(
    upstreams: dict[str, Upstream], proxy: tuple[Router, str]
) -> None:
    router, url = proxy
    assert upstreams["candidate"].runner is not None
    await upstreams["candidate"].runner.cleanup()
    router.reconfigure(table(upstreams, 0, 100))
    async with aiohttp.ClientSession() as client:
        response = await client.post(f"{url}/x")
        assert response.status == 503, await response.text()
    errors = sum(n for key, n in router.stats.items() if key.startswith("upstream_errors:"))
    assert errors == 1, router.stats


async def test_pipelined_requests_are_answered_in_order(
    upstreams: dict[str, Upstream], proxy: tuple[Router, str]
) -> None:
    _, url = proxy
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    # Both requests in one write; the first waits at the upstream, the second does not, and
    # its answer must still come second.
    writer.write(
        b"POST /first HTTP/1.1\r\nHost: x\r\nx-request-id: one\r\nx-block: stable\r\n"
        b"Content-Length: 1\r\n\r\na"
        b"POST /second HTTP/1.1\r\nHost: x\r\nx-request-id: two\r\nContent-Length: 1\r\n\r\nb"
    )
    await writer.drain()
    while len(upstreams["stable"].seen) < 2:  # noqa: ASYNC110 (both must be upstream first)
        await asyncio.sleep(0.01)
    upstreams["stable"].release.set()
    answered = []
    for _ in range(2):
        lines = (await reader.readuntil(b"\r\n\r\n")).decode().lower().split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        await reader.readexactly(int(fields["content-length"]))
        answered.append((lines[0], fields[c.REQUEST_ID_HEADER.lower()]))
    writer.close()
    assert answered == [("http/1.1 200 ok", "one"), ("http/1.1 200 ok", "two")]


@contextlib.asynccontextmanager
async def before_raw_upstream(
    answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A router sending everything to a raw TCP upstream that talks through ``answer``
    (for answers aiohttp's server would never send); yields the router's port."""
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    raw_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    spec = {"http": [{"route": [{"destination": {"host": "raw"}}]}]}
    async with new_client_session() as session:
        router = Router(session, route_table_from_spec(spec, static_resolver({"raw": raw_url})))
        runner = await serve(router, "127.0.0.1", 0)
        try:
            yield runner.addresses[0][1]
        finally:
            await runner.cleanup()
            server.close()


async def test_a_body_delimited_by_the_close_is_relayed_whole() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nX-Upstream: raw\r\n\r\nno length")
        await writer.drain()
        writer.close()

    async with before_raw_upstream(answer) as port, aiohttp.ClientSession() as client:
        for _ in range(2):  # and the closed connection is not reused
            async with client.get(f"http://127.0.0.1:{port}/x") as response:
                assert response.status == 200
                assert await response.read() == b"no length"
                assert response.headers["x-upstream"] == "raw"


async def test_an_upstream_past_the_timeout_is_a_503(upstreams: dict[str, Upstream]) -> None:
    async with UpstreamPool(timeout_s=0.2) as session:
        router = Router(session, table(upstreams, 100, 0))
        runner = await serve(router, "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as client:
                url = f"http://127.0.0.1:{runner.addresses[0][1]}/slow"
                async with client.post(url, headers={"x-block": "stable"}) as response:
                    assert response.status == 503
                    assert "no answer within" in (await response.json())["error"]
        finally:
            upstreams["stable"].release.set()
            await runner.cleanup()
    assert router.stats["upstream_errors:stable"] == 1
