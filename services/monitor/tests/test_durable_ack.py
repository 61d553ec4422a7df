"""Durable acknowledgements: an ingest reply of 200 is sent only after the events it
acknowledges are committed to SQLite (both ports); a failed commit answers 503; pipelined
replies on the fast port keep their order."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.monitor.config import MonitorSettings
from services.monitor.service import MonitorService
from services.monitor.tests.events import binary_headers
from services.monitor.tests.http_api import AUTH_HEADERS, AUTH_LINE, TEST_AUTH


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[MonitorService]:
    settings = MonitorSettings(
        auth=TEST_AUTH, port=0, ingest_port=0, data_dir=tmp_path, flush_interval_s=5.0
    )
    monitor = MonitorService(settings)
    await monitor.start()
    yield monitor
    await monitor.stop()


class GatedStore:
    """Holds every commit until ``release`` (or fails it), to see what waits for it. The
    event loop's own attempt is refused, as while another connection holds SQLite's write
    lock, so every commit goes to the store's thread and waits at the gate there."""

    def __init__(self, service: MonitorService, fail: bool = False) -> None:
        store = service._store
        assert store is not None
        self.gate = threading.Event()
        self.real = store.write_batch
        self.fail = fail
        store.write_batch = self.write  # type: ignore[method-assign,assignment]

    def write(self, *args: Any, on_loop: bool = False) -> bool:
        if on_loop:
            return False
        self.gate.wait(30)
        if self.fail:
            raise sqlite3.OperationalError("disk I/O error")
        return bool(self.real(*args))


def raw_event(request_id: str, kind: str = "response") -> bytes:
    headers = binary_headers(kind, request_id, "1", role="stable", latency_ms=1.0)
    body = b'{"predictions": [0.5]}' if kind == "response" else b'{"instances": [[1.0]]}'
    head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, **AUTH_HEADERS}.items())
    return (
        f"POST / HTTP/1.1\r\nHost: m\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body
    )


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    body = await reader.readexactly(length)
    return int(head.split(b" ")[1]), json.loads(body)


def journaled(service: MonitorService) -> list[str]:
    db = sqlite3.connect(service.settings.db_path)
    try:
        return [row[0] for row in db.execute("SELECT event_id FROM events ORDER BY seq")]
    finally:
        db.close()


async def test_fast_port_replies_after_the_commit(service: MonitorService) -> None:
    gated = GatedStore(service)
    reader, writer = await asyncio.open_connection("127.0.0.1", service.ingest_port)
    writer.write(raw_event("r1"))
    reply = asyncio.ensure_future(read_reply(reader))
    done, _ = await asyncio.wait({reply}, timeout=0.5)
    assert not done, "answered before the event was committed"
    assert "r1" not in journaled(service)
    gated.gate.set()
    assert await reply == (200, {"accepted": 1})
    assert "r1" in journaled(service)  # by the time the client has its 200
    writer.close()


async def test_aiohttp_port_replies_after_the_commit(
    service: MonitorService, http: aiohttp.ClientSession
) -> None:
    gated = GatedStore(service)
    headers = binary_headers("response", "r2", "1", role="stable", latency_ms=1.0)
    post = asyncio.ensure_future(
        http.post(f"{service.url}/", data=b'{"predictions": [0.5]}', headers=headers)
    )
    done, _ = await asyncio.wait({post}, timeout=0.5)
    assert not done, "answered before the event was committed"
    gated.gate.set()
    response = await post
    assert response.status == 200
    assert "r2" in journaled(service)


async def test_a_failed_commit_is_not_acknowledged(service: MonitorService) -> None:
    gated = GatedStore(service, fail=True)
    gated.gate.set()
    reader, writer = await asyncio.open_connection("127.0.0.1", service.ingest_port)
    writer.write(raw_event("r3"))
    status, body = await read_reply(reader)
    assert (status, body["error"]) == (503, "journal_unavailable")
    writer.close()


async def test_pipelined_replies_keep_their_order(service: MonitorService) -> None:
    gated = GatedStore(service)
    reader, writer = await asyncio.open_connection("127.0.0.1", service.ingest_port)
    bad = (
        b"POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 2\r\n"
        + AUTH_LINE
        + b"Content-Type: text/plain\r\n\r\n{}"
    )
    writer.write(raw_event("r4") + bad + raw_event("r5"))
    await asyncio.sleep(0.2)
    gated.gate.set()
    replies = [await read_reply(reader) for _ in range(3)]
    assert [status for status, _ in replies] == [200, 400, 200]
    writer.close()


async def test_many_waiters_share_one_commit(service: MonitorService) -> None:
    """Group commit: replies registered while a commit runs go into the next one together."""
    commits: list[int] = []
    places: list[bool] = []  # on the event loop's connection (no other writer here)
    store = service._store
    assert store is not None
    real = store.write_batch

    def counting(events: list[Any], *rest: Any, on_loop: bool = False) -> bool:
        commits.append(len(events))
        places.append(on_loop)
        return bool(real(events, *rest, on_loop=on_loop))

    store.write_batch = counting  # type: ignore[method-assign,assignment]
    connections = [await asyncio.open_connection("127.0.0.1", service.ingest_port)
                   for _ in range(20)]  # fmt: skip
    for index, (_, writer) in enumerate(connections):
        writer.write(raw_event(f"g{index}"))
    replies = [await read_reply(reader) for reader, _ in connections]
    assert all(status == 200 for status, _ in replies)
    assert sum(commits) == 20
    assert len(commits) < 20  # batched, not one commit per event
    assert all(places)
    for _, writer in connections:
        writer.close()


async def test_a_commit_waits_for_another_writer_off_the_event_loop(
    service: MonitorService, http: aiohttp.ClientSession
) -> None:
    """While another connection holds SQLite's write lock, the commit waits on the store's
    thread: the reply waits for it, the event loop does not."""
    blocker = sqlite3.connect(service.settings.db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.ingest_port)
        writer.write(raw_event("w1"))
        reply = asyncio.ensure_future(read_reply(reader))
        done, _ = await asyncio.wait({reply}, timeout=0.5)
        assert not done, "answered before the event was committed"
        async with http.get(f"{service.url}/healthz") as health:  # the loop still serves
            assert health.status == 200
            assert (await health.json())["journalBacklog"] == 1
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert await reply == (200, {"accepted": 1})
    assert "w1" in journaled(service)
    writer.close()
