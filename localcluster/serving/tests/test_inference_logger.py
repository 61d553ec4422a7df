"""CloudEvent building and the bounded, non-blocking sender."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from localcluster.serving import constants as c
from localcluster.serving.inference_logger import (
    CloudEventSender,
    LoggedExchange,
    LoggerSettings,
    build_events,
    is_inference_path,
)

EXCHANGE = LoggedExchange(
    request_id="r-1",
    role="shadow",
    content_type="application/json",
    request_body=b'{"instances": [[1, 2]]}',
    response_body=b'{"predictions": [0.5]}',
    status=200,
    latency_ms=12.5,
)


def settings(url: str = "http://127.0.0.1:9/", **extra: object) -> LoggerSettings:
    return LoggerSettings(url=url, inference_service="m-v2", model_version="2", **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "types"),
    [
        ("all", [c.CE_TYPE_REQUEST, c.CE_TYPE_RESPONSE]),
        ("request", [c.CE_TYPE_REQUEST]),
        ("response", [c.CE_TYPE_RESPONSE]),
    ],
)
def test_logger_mode_selects_events(mode: str, types: list[str]) -> None:
    events = build_events(settings(mode=mode), EXCHANGE)
    assert [e.headers[c.CE_TYPE_HEADER] for e in events] == types


def test_response_event_carries_status_latency_and_payload() -> None:
    request, response = build_events(settings(), EXCHANGE)
    assert request.body == EXCHANGE.request_body and response.body == EXCHANGE.response_body
    assert response.headers[c.CE_STATUS_HEADER] == "200"
    assert response.headers[c.CE_LATENCY_MS_HEADER] == "12.500"
    assert c.CE_STATUS_HEADER not in request.headers
    for event in (request, response):
        assert event.headers[c.CE_ID_HEADER] == "r-1"
        assert event.headers[c.CE_ROLE_HEADER] == "shadow"
        assert event.headers[c.CE_MODEL_VERSION_HEADER] == "2"
        assert event.headers[c.CE_TIME_HEADER].endswith("Z")


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_a_failed_response_is_not_logged_as_kserves_agent_does(status: str) -> None:
    """KServe's agent queues the response event only for 200 (contracts/mesh_metrics.py):
    the request is logged, its failure is counted by the mesh metric, not by the monitor."""
    failed = EXCHANGE.model_copy(update={"status": status})
    assert [e.headers[c.CE_TYPE_HEADER] for e in build_events(settings(), failed)] == [
        c.CE_TYPE_REQUEST
    ]
    assert build_events(settings(mode="response"), failed) == []


def test_only_inference_routes_are_logged() -> None:
    assert is_inference_path("POST", "/v1/models/m:predict")
    assert is_inference_path("POST", "/v2/models/m/infer")
    assert is_inference_path("POST", "/v2/models/m/versions/3/infer")
    assert not is_inference_path("GET", "/v1/models/m")
    assert not is_inference_path("POST", "/v1/models/m:explain")


@pytest.fixture
async def sink() -> AsyncIterator[tuple[str, list[dict[str, str]], asyncio.Event]]:
    received: list[dict[str, str]] = []
    gate = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        await gate.wait()
        received.append(dict(request.headers))
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/", received, gate
    gate.set()
    await runner.cleanup()


async def test_full_queue_drops_and_counts_without_blocking(
    sink: tuple[str, list[dict[str, str]], asyncio.Event],
) -> None:
    url, received, gate = sink
    sender = CloudEventSender(settings(url, queue_size=4, workers=1))
    # The sink holds every POST, so one event is in flight and 4 fit the queue.
    for _ in range(10):
        sender.submit(EXCHANGE)  # returns at once: never awaits the sink
    await asyncio.sleep(0)
    assert sender.dropped >= 20 - 4 - 2
    gate.set()
    await sender.flush()
    assert sender.sent == len(received) == 20 - sender.dropped
    await sender.close()


async def test_unreachable_sink_is_counted_not_raised() -> None:
    sender = CloudEventSender(settings("http://127.0.0.1:9/", timeout_s=2.0))
    sender.submit(EXCHANGE)
    await sender.flush()
    assert sender.failed == 2 and sender.sent == 0
    await sender.close()
