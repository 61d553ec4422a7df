"""Labels survive a crash: an acknowledged label is committed before its 200, so after the
monitor dies without flushing (the in-process twin of kill -9) and starts on the same data
dir, quality figures, orphans, waiting labels and duplicate detection all come back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import pytest

from contracts import cloudevents as ce
from services.monitor import MonitorService, MonitorSettings
from services.monitor.outcomes.tests.feedback_events import (
    BASE,
    post_batch,
    post_binary,
    serve,
    structured,
)
from services.monitor.tests.events import binary_headers
from services.monitor.tests.http_api import AUTH_HEADERS, TEST_AUTH
from services.monitor.tests.test_restart import MonitorProcess, wait_flushed


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def settings(data_dir: Path) -> MonitorSettings:
    # No periodic flush within a test: what is in SQLite at the crash is what the code
    # committed on purpose (labels before their 200; events where the test flushes them).
    return MonitorSettings(
        auth=TEST_AUTH,
        port=0, data_dir=data_dir, flush_interval_s=10, drift_interval_s=3600,
        expiry_interval_s=3600,
    )  # fmt: skip


async def crash(service: MonitorService, journal_events: bool = False) -> None:
    """Stop as a kill -9 would: no final flush of anything not committed yet (optionally
    the inference events are flushed first, as the periodic flush may have done)."""
    for task in service._tasks:
        task.cancel()
    await asyncio.gather(*service._tasks, return_exceptions=True)
    if journal_events:
        await service.flush()
    assert service._runner is not None and service._store is not None
    await service._runner.cleanup()
    await service._in_store(service._store.close)
    service._store_thread.shutdown(wait=True)


async def quality(http: aiohttp.ClientSession, url: str) -> dict[str, object]:
    async with http.get(url + BASE + "/quality") as r:
        assert r.status == 200, await r.text()
        body: dict[str, object] = await r.json()
    return body


async def test_quality_figures_come_back_after_a_crash(tmp_path: Path) -> None:
    clock = Clock()
    first = MonitorService(settings(tmp_path), clock=clock)
    await first.start()
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 40)
    async with aiohttp.ClientSession(headers=AUTH_HEADERS) as http:
        url = first.url
        body = {"stableVersion": "1", "shadowVersion": "2",
                "outcomes": {"labelMaturitySeconds": 120}}  # fmt: skip
        async with http.put(url + BASE + "/config", json=body) as r:
            assert r.status == 200
        for i in range(40):
            await serve(http, url, f"r{i}", "1", float(rng.uniform()), role="stable")
            await serve(http, url, f"r{i}", "2", float(rng.uniform()), role="shadow")
        events = [structured(f"e{i}", {"requestId": f"r{i}", "label": int(labels[i])})
                  for i in range(40)]  # fmt: skip
        assert (await post_batch(http, url, events))[1]["accepted"] == 40
        # A label whose prediction comes later (joined after the crash, by the replay), and
        # one whose prediction never comes (an orphan once its maturity has passed).
        await post_binary(http, url, "early", {"requestId": "late", "label": 1})
        await post_binary(http, url, "lost", {"requestId": "nowhere", "label": 0})
        await serve(http, url, "late", "1", 0.9, role="stable")
        # The late join waits for the periodic flush (asked before the quality request, whose
        # figures are computed off the loop: the flush may run meanwhile).
        assert first.outcomes.join.outbox
        before = await quality(http, url)
    await crash(first, journal_events=True)  # the late join itself was never journaled

    clock.now += 200  # past the maturity while the monitor was down
    second = MonitorService(settings(tmp_path), clock=clock)
    await second.start()
    try:
        async with aiohttp.ClientSession(headers=AUTH_HEADERS) as http:
            after = await quality(http, second.url)
            assert after["orphans"] == 1 and after["pendingLabels"] == 0
            versions = {v["version"]: v for v in after["versions"]}  # type: ignore[attr-defined]
            assert (versions["1"]["labeled"], versions["2"]["labeled"]) == (41, 40)
            for name in ("1", "2"):
                (old,) = [v for v in before["versions"] if v["version"] == name]  # type: ignore[attr-defined]
                if name == "2":
                    assert versions[name]["auc"] == old["auc"]
                    assert versions[name]["logLoss"] == old["logLoss"]
            # Retried after the restart: recognised, not counted again.
            status, reply = await post_binary(
                http, second.url, "e3", {"requestId": "r3", "label": 1}
            )
            assert (status, reply["duplicates"]) == (200, 1)
            assert (await quality(http, second.url))["versions"] == after["versions"]
    finally:
        await second.stop()


@pytest.mark.parametrize("journal_events", [False, True])
async def test_an_acknowledged_label_is_committed_before_the_answer(
    tmp_path: Path, journal_events: bool
) -> None:
    clock = Clock()
    first = MonitorService(settings(tmp_path), clock=clock)
    await first.start()
    async with aiohttp.ClientSession(headers=AUTH_HEADERS) as http:
        async with http.put(first.url + BASE + "/config", json={"stableVersion": "1"}) as r:
            assert r.status == 200
        await serve(http, first.url, "r0", "1", 0.7)
        await first.flush()  # the prediction is journaled; the label's commit is the test
        assert (await post_binary(http, first.url, "e0", {"requestId": "r0", "label": 1}))[0] == 200
    await crash(first, journal_events)
    second = MonitorService(settings(tmp_path), clock=clock)
    await second.start()
    try:
        report = await second.outcomes.quality(("team-a", "churn"))
        assert [(v.version, v.labeled) for v in report.versions] == [("1", 1)]
        assert second.outcomes.join.models[("team-a", "churn")].seen.keys() == {"e0"}
    finally:
        await second.stop()


@pytest.mark.slow  # two monitor process starts
def test_kill_9_after_acknowledged_labels_keeps_quality(tmp_path: Path) -> None:
    """The real thing: labels POSTed to the fast port, the monitor killed with SIGKILL right
    after their 200s (the periodic flush had no chance), restarted: the same figures."""
    monitor = MonitorProcess(tmp_path / "data")
    monitor.start()
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 2, 60)
    try:
        with httpx.Client(base_url=monitor.url, headers=AUTH_HEADERS, timeout=10) as client:
            config = {"stableVersion": "1", "outcomes": {"labelMaturitySeconds": 3600}}
            assert client.put(BASE + "/config", json=config).status_code == 200
            for i in range(60):
                for kind, body in (("request", {"instances": [[1.0]]}),
                                   ("response", {"predictions": [float(rng.uniform())]})):  # fmt: skip
                    headers = binary_headers(kind, f"r{i}", "1", role="stable")
                    response = client.post(monitor.ingest_url, content=json.dumps(body),
                                           headers=headers)  # fmt: skip
                    assert response.status_code == 200
            wait_flushed(client)  # the predictions are journaled (predlog makes that durable)
            events = [structured(f"e{i}", {"requestId": f"r{i}", "label": int(labels[i])})
                      for i in range(60)]  # fmt: skip
            answer = client.post(
                monitor.ingest_url.rstrip("/") + BASE + "/feedback",
                content=json.dumps(events),
                headers={"content-type": ce.BATCH_CONTENT_TYPE},
            )
            assert answer.status_code == 200 and answer.json()["accepted"] == 60
            before = client.get(BASE + "/quality").json()
        monitor.kill9()
        monitor.start()
        with httpx.Client(base_url=monitor.url, headers=AUTH_HEADERS, timeout=10) as client:
            after = client.get(BASE + "/quality").json()
            assert after["versions"] == before["versions"]
            assert after["versions"][0]["labeled"] == 60
    finally:
        monitor.stop()
