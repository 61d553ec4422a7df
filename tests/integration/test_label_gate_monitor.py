"""The label gate on the real wire: the MLModel service with its real monitor client
(`HttpMonitor`) against a real monitor (in process, on a clock the test moves), fed the
logger's CloudEvents of every call and the labels through the feedback API. Registry, Kubernetes
objects and traffic are the in-memory fakes; the test plays the router (who serves which
request at the current split) and the predictors (their scores).

A candidate that learned nothing (scores unrelated to the label, as one trained on shuffled
labels) is rolled back in shadow by the label gate with zero errors; a genuinely better one is
promoted through the canary; the stable version's quality reaches status.quality.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from operators.api.mlmodel import MLMODEL
from operators.backends.monitor import HttpMonitor
from operators.mlmodel import service
from operators.mlmodel.backends import ServingBackends
from services.monitor import Limits, MonitorService, MonitorSettings
from services.monitor.outcomes.tests.feedback_events import post_batch, serve, structured
from services.monitor.tests.http_api import AUTH_HEADERS, TEST_AUTH, TEST_TOKEN, running
from tests.support.fakes import FakeObject, FakeObjects, FakeRegistry, FakeTraffic

REQUESTS_PER_MINUTE = 80


class Clock:
    """The monitor's clock, moved by the test; the operator is handed the same time."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def settings(data_dir: Path) -> MonitorSettings:
    return MonitorSettings(
        auth=TEST_AUTH,
        port=0,
        ingest_port=0,
        data_dir=data_dir,
        flush_interval_s=0.05,
        drift_interval_s=3600,
        expiry_interval_s=3600,
        limits=Limits(max_body_bytes=64 * 1024),
    )


def mlmodel() -> dict[str, Any]:
    return {
        "metadata": {"name": "churn", "namespace": "team-a", "generation": 1, "uid": "u1"},
        "spec": {
            "model": {"name": "churn", "follow": "latest-passing"},
            "rollout": {
                "shadow": {"duration": "2m", "minRequests": 50},
                "steps": [50, 100],
                "analysis": {
                    "interval": "1m",
                    "minRequests": 20,
                    "threshold": 2,
                    "primaryMetric": {"name": "auc", "margin": 0.03, "minLabeled": 200},
                },
            },
        },
    }


class World:
    """Users whose label depends on one feature, and the scores each version gives them."""

    def __init__(self, candidate: str, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.candidate = candidate
        self.served = 0

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        x = self.rng.normal(size=REQUESTS_PER_MINUTE)
        labels = (self.rng.uniform(size=x.size) < 1 / (1 + np.exp(-2.5 * x))).astype(int)
        return x, labels

    def score(self, version: str, x: float) -> float:
        if version == "1":  # stable: a blurred view of the feature
            return 1 / (1 + math.exp(-(0.8 * x + self.rng.normal(scale=1.2))))
        if self.candidate == "better":
            return 1 / (1 + math.exp(-2.5 * x))
        return float(self.rng.uniform())  # learned nothing


async def serve_minute(
    http: aiohttp.ClientSession, url: str, world: World, traffic: Any, candidate: str | None
) -> None:
    """One minute of traffic at the current split, then the labels of every request."""
    x, labels = world.batch()
    for i, value in enumerate(x):
        request_id = f"r{world.served + i}"
        to_candidate = candidate is not None and world.rng.uniform() * 100 < traffic.candidate
        if to_candidate:
            assert candidate is not None
            await serve(http, url, request_id, candidate, world.score(candidate, value),
                        role="candidate")  # fmt: skip
        else:
            await serve(http, url, request_id, "1", world.score("1", value), role="stable")
            if candidate is not None and traffic.mirror:
                await serve(http, url, request_id, candidate, world.score(candidate, value),
                            role="shadow")  # fmt: skip
    events = [
        structured(f"label-{world.served + i}", {"requestId": f"r{world.served + i}",
                                                  "label": int(label)})
        for i, label in enumerate(labels)
    ]  # fmt: skip
    for start in range(0, len(events), 40):  # under the test monitor's body limit
        status, body = await post_batch(http, url, events[start : start + 40])
        assert status == 200 and body["accepted"] == len(events[start : start + 40]), body
    world.served += len(x)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH_HEADERS) as session:
        yield session


async def roll_out(tmp_path: Path, http: aiohttp.ClientSession, candidate: str) -> FakeObject:
    clock = Clock()
    async with running(MonitorService(settings(tmp_path), clock=clock)) as monitor:
        registry = FakeRegistry("churn", ["1"])
        token_file = tmp_path / "monitor-token"  # the operator's token for the monitor
        token_file.write_text(TEST_TOKEN)
        client = HttpMonitor(monitor.url, token_file=token_file)
        serving = ServingBackends(
            registry=registry,  # type: ignore[arg-type]
            objects=FakeObjects(),  # type: ignore[arg-type]
            traffic=FakeTraffic(),
            monitor=client,
            monitor_url=monitor.url,
        )
        obj = FakeObject(MLMODEL, mlmodel())

        async def step() -> None:
            now = datetime.fromtimestamp(clock.now, UTC)
            await asyncio.to_thread(obj.run, service.observe_and_step, serving, now)

        world = World(candidate)
        await step()
        await step()
        assert obj.status.stable_version == "1"
        await serve_minute(http, monitor.url, world, obj.status.traffic, None)
        registry.versions.append("2")
        await step()
        assert obj.status.phase == "Shadow"
        for _ in range(20):
            clock.now += 1
            await serve_minute(http, monitor.url, world, obj.status.traffic, "2")
            clock.now += 59
            await step()
            if obj.status.phase in ("Promoted", "RolledBack", "Failed"):
                break
        client.close()
    return obj


async def test_a_candidate_that_learned_nothing_is_rolled_back_in_shadow(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    obj = await roll_out(tmp_path, http, "nothing")
    status = obj.status
    assert status.phase == "RolledBack" and status.stable_version == "1", status.message
    assert status.traffic is not None and status.traffic.candidate == 0
    rolled = [e for e in obj.events if e.reason == "RolledBack"]
    assert rolled and "significantly worse" in rolled[0].message
    assert "Canary" not in {e.reason for e in obj.events}  # never saw user traffic
    assert status.analysis is not None and status.analysis.errors == 0
    assert status.analysis.high is not None and status.analysis.high < 0


async def test_a_better_candidate_is_promoted_and_quality_reaches_status(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    obj = await roll_out(tmp_path, http, "better")
    status = obj.status
    assert status.phase == "Promoted" and status.stable_version == "2", status.message
    reasons = [e.reason for e in obj.events]
    assert reasons.count("StepPassed") == 1 and "ShadowPassed" in reasons
    # The quality of the versions in play, from the monitor's joined labels.
    assert [q.version for q in status.quality] == ["2"]
    two = status.quality[0]
    assert two.labeled > 0 and two.auc is not None and two.auc.value is not None
    assert status.stable_quality is not None and status.stable_quality.metric == "auc"
    assert status.stable_quality.value == two.auc.value
