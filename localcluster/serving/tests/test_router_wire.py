"""The router on the wire: requests framed and validated byte by byte, the headers it forwards
and relays as bytes, answers in order even when a request is refused, interim answers."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import pytest

from contracts.mesh_metrics import ROUTER_METRICS_PATH
from localcluster.serving import constants as c
from localcluster.serving import http1
from localcluster.serving.router import MAX_BODY_BYTES, Router, new_client_session, serve
from localcluster.serving.routing import route_table_from_spec, static_resolver
from localcluster.serving.tests.test_router import Upstream, before_raw_upstream, table


@pytest.fixture
async def stable() -> AsyncIterator[Upstream]:
    upstream = Upstream("stable")
    await upstream.start()
    yield upstream
    upstream.release.set()
    assert upstream.runner is not None
    await upstream.runner.cleanup()


@pytest.fixture
async def port(stable: Upstream) -> AsyncIterator[int]:
    """A router sending everything to ``stable``."""
    async with new_client_session() as session:
        router = Router(session, table({"stable": stable}, 100, 0), rng=random.Random(3))
        runner = await serve(router, "127.0.0.1", 0)
        yield runner.addresses[0][1]
        await runner.cleanup()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    start, fields = http1.split_head(head)
    headers = {name.lower(): value for name, value in http1.parse_fields(fields)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(start.split(b" ")[1]), headers, body


async def exchange(
    port: int, *writes: bytes, answers: int = 1
) -> list[tuple[int, dict[str, str], bytes]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for data in writes:
            writer.write(data)
            await writer.drain()
            await asyncio.sleep(0.01)
        return [await read_answer(reader) for _ in range(answers)]
    finally:
        writer.close()


def post(path: str, body: bytes, *fields: bytes) -> bytes:
    head = b"".join(field + b"\r\n" for field in fields)
    return (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: r\r\n" + head
        + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


async def test_a_request_in_one_byte_pieces_is_forwarded_whole(stable: Upstream, port: int) -> None:
    data = post("/v1/models/m:predict?x=1", b'{"instances": [1]}', b"X-Trace: t1")
    [(status, headers, _)] = await exchange(port, *(data[i : i + 1] for i in range(len(data))))
    assert status == 200 and headers["x-upstream"] == "stable"
    [seen] = stable.seen
    assert seen["path"] == "/v1/models/m:predict?x=1"
    assert seen["body"] == b'{"instances": [1]}'
    assert seen["headers"]["x-trace"] == "t1"


async def test_forwarded_headers_replace_the_mesh_ones_and_drop_hop_by_hop(
    stable: Upstream, port: int
) -> None:
    data = post(
        "/p", b"{}",
        b"X-Request-Id: first", b"Keep-Alive: timeout=5", b"X-KUBELOOP-ROLE: candidate",
        b"x-request-ID:   last  ", b"Accept: a/b",
    )  # fmt: skip
    [(status, headers, _)] = await exchange(port, data)
    assert status == 200 and headers[c.REQUEST_ID_HEADER] == "last"
    [seen] = stable.seen
    assert seen["headers"][c.REQUEST_ID_HEADER] == "last"  # the last one, as a dict keeps it
    assert seen["headers"][c.ROLE_HEADER] == c.ROLE_STABLE
    assert "keep-alive" not in seen["headers"]
    assert seen["headers"]["accept"] == "a/b"
    assert seen["headers"]["host"] == stable.url.removeprefix("http://")


async def test_generated_request_ids_are_distinct_uuid4s(stable: Upstream, port: int) -> None:
    answers = await exchange(port, *(post("/p", b"{}") for _ in range(20)), answers=20)
    ids = [headers[c.REQUEST_ID_HEADER] for _, headers, _ in answers]
    assert len(set(ids)) == 20
    assert {uuid.UUID(i).version for i in ids} == {4}
    assert [s["headers"][c.REQUEST_ID_HEADER] for s in stable.seen] == ids


async def test_a_chunked_request_then_a_pipelined_one(stable: Upstream, port: int) -> None:
    chunked = (
        b"POST /chunked HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    answers = await exchange(port, chunked[:40], chunked[40:] + post("/after", b"next"), answers=2)
    assert [status for status, _, _ in answers] == [200, 200]
    assert [(s["path"], s["body"]) for s in stable.seen] == [
        ("/chunked", b"hello world"),
        ("/after", b"next"),
    ]


async def test_expect_100_continue_is_answered_before_the_body(stable: Upstream, port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /p HTTP/1.1\r\nHost: r\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    )
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) == (
        b"HTTP/1.1 100 Continue\r\n\r\n"
    )
    writer.write(b"body")
    status, _, _ = await read_answer(reader)
    writer.close()
    assert status == 200 and stable.seen[0]["body"] == b"body"


@pytest.mark.parametrize(
    "bad",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"POST /x HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /x HTTP/1.1\r\nBad Name: v\r\nContent-Length: 0\r\n\r\n",
    ],
)
async def test_a_malformed_request_is_a_400_after_the_answers_before_it(
    stable: Upstream, port: int, bad: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # The first request waits at the upstream while the bad one arrives: its answer still
    # comes first, then the 400, then the close.
    writer.write(post("/first", b"a", b"x-block: stable") + bad)
    await stable.arrived.wait()
    await asyncio.sleep(0.05)
    stable.release.set()
    first = await read_answer(reader)
    second = await read_answer(reader)
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed
    writer.close()
    assert first[0] == 200 and second[0] == 400
    assert second[1]["connection"] == "close"
    assert [s["path"] for s in stable.seen] == ["/first"]


async def test_a_body_over_the_limit_is_refused_without_waiting_for_it(port: int) -> None:
    head = f"POST /big HTTP/1.1\r\nHost: r\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
    [(status, headers, body)] = await exchange(port, head.encode())
    assert status == 413 and headers["connection"] == "close"
    assert b"body over" in body


async def test_interim_1xx_answers_of_the_upstream_are_not_relayed() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(dict(http1.parse_fields(http1.split_head(head)[1]))["Content-Length"])
            await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
            )

    async with before_raw_upstream(answer) as port:
        answers = await exchange(port, post("/a", b"1"), post("/b", b"2"), answers=2)
    assert [(status, body) for status, _, body in answers] == [(201, b"ok"), (201, b"ok")]
    assert "link" not in answers[0][1]


async def test_hosts_of_one_workload_share_their_metric_series() -> None:
    upstream = Upstream("stable")
    await upstream.start()
    hosts = ("churn-v1-predictor.team-a.svc.cluster.local", "churn-v1-predictor.team-a")
    spec = {"http": [{"route": [{"destination": {"host": h}, "weight": 50} for h in hosts]}]}
    resolver = static_resolver(dict.fromkeys(hosts, upstream.url))
    async with new_client_session() as session:
        router = Router(session, route_table_from_spec(spec, resolver), rng=random.Random(5))
        runner = await serve(router, "127.0.0.1", 0)
        try:
            port = runner.addresses[0][1]
            await exchange(port, *(post("/p", b"{}") for _ in range(10)), answers=10)
            get = f"GET {ROUTER_METRICS_PATH} HTTP/1.1\r\nHost: r\r\n\r\n".encode()
            [(_, _, text)] = await exchange(port, get)
        finally:
            await runner.cleanup()
            assert upstream.runner is not None
            await upstream.runner.cleanup()
    lines = [
        line for line in text.decode().splitlines() if line.startswith("istio_requests_total{")
    ]
    assert lines == [
        'istio_requests_total{destination_service_name="churn-v1-predictor",'
        'destination_workload="churn-v1-predictor",destination_workload_namespace="team-a",'
        'reporter="destination",response_code="200"} 10.0'
    ]


def test_field_blocks() -> None:
    block = b"\r\nA: 1\r\nConnection: x\r\n  folded\r\nx-Request-Id:  r1 \r\nTE: t\r\nTEA: 2"
    kept, names, values = http1.cut(http1.lines_named({"connection", "te", "x-request-id"}), block)
    assert kept == b"\r\nA: 1\r\nTEA: 2"
    assert names == [b"Connection", b"x-Request-Id", b"TE"]
    assert values == [b"x\r\n  folded", b"r1 ", b"t"]
    assert http1.parse_fields(block) == [
        ("A", "1"), ("Connection", "x folded"), ("x-Request-Id", "r1"), ("TE", "t"), ("TEA", "2"),
    ]  # fmt: skip
    assert http1.render_fields([("A", "1"), ("B", "2")]) == b"\r\nA: 1\r\nB: 2"
    assert http1.split_head(b"GET / HTTP/1.1\r\nA: 1\r\n\r\n") == (b"GET / HTTP/1.1", b"\r\nA: 1")
    assert http1.split_head(b"GET / HTTP/1.1\r\n\r\n") == (b"GET / HTTP/1.1", b"")


def test_a_chunked_body_found_across_reads() -> None:
    wire = b"HEAD4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\nNEXT"
    body = http1.ChunkedBody(limit=100)
    for cut in range(6, len(wire) - 4):
        assert body.end(wire[:cut], 4) is None
    assert body.end(wire, 4) == len(wire) - 4
    assert body.content == b"wikipedia"
    with pytest.raises(OverflowError):
        http1.ChunkedBody(limit=8).end(wire, 4)
