"""The monitor over real HTTP, in-process: both CloudEvents modes, 4xx on bad input, metrics,
config, the counts form and the drift hook."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.monitor import (
    DriftOutcome,
    Limits,
    MonitorService,
    MonitorSettings,
    WindowSnapshot,
)
from services.monitor.tests.events import binary_headers, structured_event
from services.monitor.tests.http_api import BASE, TEST_AUTH, running


def settings(data_dir: Path) -> MonitorSettings:
    return MonitorSettings(
        auth=TEST_AUTH,
        port=0,
        data_dir=data_dir,
        flush_interval_s=0.05,
        limits=Limits(max_body_bytes=4096),
    )


@pytest.fixture
async def monitor(tmp_path: Path) -> AsyncIterator[MonitorService]:
    async with running(MonitorService(settings(tmp_path))) as service:
        yield service


async def post_call(
    http: aiohttp.ClientSession,
    url: str,
    rid: str,
    version: str,
    x: list[float],
    score: float,
    **kw: Any,
) -> None:
    headers = binary_headers("request", rid, version, role=kw.get("role"))
    async with http.post(url, data=json.dumps({"instances": [x]}), headers=headers) as r:
        assert r.status == 200, await r.text()
    headers = binary_headers(
        "response",
        rid,
        version,
        status=kw.get("status", 200),
        latency_ms=kw.get("latency", 5.0),
        role=kw.get("role"),
    )
    async with http.post(url, data=json.dumps({"predictions": [score]}), headers=headers) as r:
        assert r.status == 200, await r.text()


async def test_binary_mode_events_become_figures(
    monitor: MonitorService, http: aiohttp.ClientSession
) -> None:
    for i in range(4):
        await post_call(
            http,
            monitor.url + "/",
            f"r{i}",
            "1",
            [1.0, 2.0],
            0.3,
            status=500 if i == 0 else 200,
            latency=10.0 * (i + 1),
        )
    async with http.get(monitor.url + BASE + "/figures", params={"version": "1"}) as r:
        body = await r.json()
    figures = body["versions"]["1"]
    assert (figures["requests"], figures["serverErrors"]) == (4, 1)
    assert figures["errorRate"] == 0.25
    assert figures["latencyMs"]["max"] == 40.0
    assert body["now"] >= body["since"]
    async with http.get(monitor.url + BASE + "/figures", params={"version": "9'x"}) as r:
        assert (r.status, (await r.json())["error"]) == (404, "unknown_version")
    async with http.get(monitor.url + BASE + "/counts", params={"latencySample": "10"}) as r:
        counts = (await r.json())["versions"]["1"]
    assert counts["latencySampleMs"] == [10.0, 20.0, 30.0, 40.0]
    assert sum(counts["latencyHistogram"]["counts"]) == 4
    assert counts["latencyHistogram"]["leMs"][-1] is None


async def test_structured_mode_single_and_batch(
    monitor: MonitorService, http: aiohttp.ClientSession
) -> None:
    request = structured_event(binary_headers("request", "s1", "2"), {"instances": [[5.0]]})
    response = structured_event(
        binary_headers("response", "s1", "2", latency_ms=3.0), {"predictions": [0.7]}
    )
    single = {"Content-Type": "application/cloudevents+json"}
    async with http.post(monitor.url + "/", data=json.dumps(request), headers=single) as r:
        assert r.status == 200
    batch = [response, {"type": "nope"}, {"specversion": "1.0"}]
    batch_type = {"Content-Type": "application/cloudevents-batch+json"}
    async with http.post(
        monitor.url + "/v1/events", data=json.dumps(batch), headers=batch_type
    ) as r:
        assert r.status == 200
        body = await r.json()
    assert body["accepted"] == 1
    assert [item["error"] for item in body["rejected"]] == ["unknown_type", "not_cloudevent"]
    async with http.get(monitor.url + BASE + "/figures") as r:
        figures = (await r.json())["versions"]["2"]
    assert (figures["requests"], figures["predictions"]) == (1, 1)


async def test_bad_http_input_is_4xx_and_counted(
    monitor: MonitorService, http: aiohttp.ClientSession
) -> None:
    url = monitor.url
    cases: list[tuple[str, str, dict[str, str], bytes | str, int, str]] = [
        ("post", "/", {"content-type": "application/json"}, b"{}", 400, "not_cloudevent"),
        (
            "post",
            "/",
            {**binary_headers("request", "x", "1"), "ce-type": "other"},
            b"{}",
            400,
            "unknown_type",
        ),
        ("post", "/", binary_headers("request", "x", "1"), b"x" * 5000, 413, "oversized"),
        (
            "post",
            "/",
            {"content-type": "application/cloudevents+json"},
            b"{nope",
            400,
            "invalid_json",
        ),
        ("post", "/", {"content-type": "application/cloudevents-batch+json"}, b"[]", 400, "empty"),
        ("put", BASE + "/config", {}, b'{"windowSize": 2}', 400, "invalid_config"),
        ("put", BASE + "/config", {}, b'{"bogus": 1}', 400, "invalid_config"),
        ("put", BASE + "/config", {}, b"not json", 400, "invalid_config"),
        ("get", BASE + "/figures?since=yesterday", {}, b"", 400, "invalid_parameter"),
        ("get", BASE + "/counts?latencySample=-1", {}, b"", 400, "invalid_parameter"),
        ("get", "/v1/models/team-a/Not_A_Name/figures", {}, b"", 400, "invalid_name"),
        ("get", "/v1/models/team-a/unknown/figures", {}, b"", 404, "unknown_model"),
    ]
    for method, path, headers, data, status, error in cases:
        async with http.request(method, url + path, headers=headers, data=data) as r:
            body = await r.json(content_type=None)
            assert (r.status, body["error"]) == (status, error), (path, body)
            assert body.get("message"), body
    async with http.get(url + "/v1/bad-input") as r:
        totals = (await r.json())["totals"]
    assert totals == {"not_cloudevent": 1, "unknown_type": 1, "oversized": 1, "invalid_json": 1}


async def test_payload_problems_are_accepted_and_reported(
    monitor: MonitorService, http: aiohttp.ClientSession
) -> None:
    headers = binary_headers("request", "n1", "1")
    async with http.post(
        monitor.url + "/", data=b'{"instances": [[NaN, 1.0]]}', headers=headers
    ) as r:
        assert (r.status, (await r.json())["payloadProblem"]) == (200, "nan")
    async with http.get(monitor.url + "/v1/bad-input") as r:
        entries = (await r.json())["entries"]
    assert entries[0]["reason"] == "nan" and entries[0]["model"] == "churn"


async def test_config_round_trip_and_role_assignment(
    monitor: MonitorService, http: aiohttp.ClientSession
) -> None:
    config = {"windowSize": 100, "maxAgeSeconds": 60, "stableVersion": "1", "shadowVersion": "2"}
    async with http.put(monitor.url + BASE + "/config", json=config) as r:
        assert r.status == 200
    async with http.get(monitor.url + BASE + "/config") as r:
        stored = await r.json()
    assert (stored["windowSize"], stored["shadowVersion"]) == (100, "2")
    await post_call(http, monitor.url + "/", "a", "1", [1.0], 0.2)
    await post_call(http, monitor.url + "/", "a", "2", [1.0], 0.8)
    async with http.get(monitor.url + BASE + "/figures") as r:
        body = await r.json()
    assert body["roles"] == {"stable": "1", "candidate": None, "shadow": "2"}
    assert body["versions"]["2"]["role"] == "shadow"
    assert body["versions"]["2"]["disagreementRate"] == 1.0
    async with http.get(monitor.url + "/v1/models") as r:
        models = (await r.json())["models"]
    assert models[0]["model"] == "churn" and set(models[0]["versions"]) == {"1", "2"}


async def test_metrics_use_a_registry_per_instance(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    first = MonitorService(settings(tmp_path / "a"))
    second = MonitorService(settings(tmp_path / "b"))
    await first.start()
    await second.start()
    try:
        await post_call(http, first.url + "/", "r", "1", [1.0], 0.5, latency=8.0)
        async with http.get(first.url + "/metrics") as r:
            text = await r.text()
        async with http.get(second.url + "/metrics") as r:
            other = await r.text()
    finally:
        await first.stop()
        await second.stop()
    assert 'kubeloop_monitor_events_total{kind="request"} 1.0' in text
    assert (
        'kubeloop_monitor_window_requests{model="churn",namespace="team-a",role="stable",version="1"} 1.0'
        in text
    )
    assert 'quantile="0.99"' in text
    assert 'kubeloop_monitor_events_total{kind="request"} 0.0' in other


class MeanShift:
    """A toy detector for the hook test: alarms when the first feature's mean exceeds 5."""

    name = "mean-shift"

    def evaluate(self, snapshot: WindowSnapshot, alarm_state: Mapping[str, Any]) -> DriftOutcome:
        mean = float(snapshot.features[:, 0].mean())
        alarms = int(alarm_state.get("alarms", 0)) + (mean > 5)
        return DriftOutcome(
            result={"mean": mean, "rows": int(snapshot.features.shape[0])},
            alarm_state={"alarms": alarms},
            is_drift=mean > 5,
        )


async def test_drift_hook_results_and_alarm_state_survive_restart(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    service = MonitorService(settings(tmp_path), drift_evaluators=[MeanShift()])
    await service.start()
    try:
        for i in range(3):
            await post_call(http, service.url + "/", f"r{i}", "1", [9.0], 0.5)
        async with http.post(service.url + "/v1/drift/evaluate") as r:
            assert (await r.json())["evaluations"] == 1
    finally:
        await service.stop()
    restarted = MonitorService(settings(tmp_path), drift_evaluators=[MeanShift()])
    await restarted.start()
    try:
        async with http.get(restarted.url + BASE + "/drift") as r:
            body = await r.json()
        assert body["results"]["1/mean-shift"]["isDrift"] is True
        assert body["results"]["1/mean-shift"]["rows"] == 3
        assert body["alarmState"]["1/mean-shift"] == {"alarms": 1}
        async with http.get(restarted.url + "/metrics") as r:
            metrics = await r.text()
        assert (
            'kubeloop_monitor_drift{evaluator="mean-shift",model="churn",namespace="team-a",'
            'version="1"} 1.0' in metrics
        )
        async with http.post(restarted.url + "/v1/drift/evaluate") as r:
            assert r.status == 200
        async with http.get(restarted.url + BASE + "/drift") as r:
            assert (await r.json())["alarmState"]["1/mean-shift"] == {"alarms": 2}
    finally:
        await restarted.stop()


async def test_fast_ingest_listener_behaves_like_the_aiohttp_route(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    service = MonitorService(settings(tmp_path).model_copy(update={"ingest_port": 0}))
    await service.start()
    try:
        assert service.ingest_url != service.url + "/"
        for i in range(3):
            await post_call(http, service.ingest_url, f"f{i}", "1", [1.0], 0.5, latency=4.0)
        structured = structured_event(binary_headers("request", "s", "1"), {"instances": [[2.0]]})
        async with http.post(
            service.ingest_url,
            data=json.dumps(structured),
            headers={"Content-Type": "application/cloudevents+json; charset=utf-8"},
        ) as r:
            assert r.status == 200
        cases = [
            ("post", service.ingest_url, {"content-type": "application/json"}, b"{}", 400),
            ("post", service.ingest_url, binary_headers("request", "x", "1"), b"x" * 5000, 413),
            ("get", service.ingest_url, {}, b"", 405),
            ("post", service.ingest_url + "v1/models", {}, b"", 404),
        ]
        for method, url, headers, data, status in cases:
            async with http.request(method, url, headers=headers, data=data) as r:
                assert r.status == status
                assert (await r.json(content_type=None))["message"]
        reader, writer = await asyncio.open_connection("127.0.0.1", service.ingest_port)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 400")
        writer.close()
        async with http.get(service.url + BASE + "/figures") as r:
            figures = (await r.json())["versions"]["1"]
        assert (figures["requests"], figures["latencyMs"]["p50"]) == (3, 4.0)
        assert len(service.core.pending) == 1  # the structured request awaits its response
        async with http.get(service.url + "/v1/bad-input") as r:
            assert (await r.json())["totals"] == {"not_cloudevent": 1, "oversized": 1}
    finally:
        await service.stop()
