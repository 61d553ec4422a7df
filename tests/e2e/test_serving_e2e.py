"""Issue 5 end to end on the embedded default: MLflow versions → MLModel → KServe predictor
processes behind the local router → monitor → gates → promotion or rollback.

One cluster, monitor, serving controller and operator serve the whole module; one MLModel
walks v2 through shadow → 1 → 10 → 50 → 100, then three faulty versions (errors, slow,
disagreeing) that must each be rolled back while stable traffic never drops below
100 − the first step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.models import (
    FailingModel,
    FlippedModel,
    LogisticModel,
    SlowModel,
    register_model,
)
from tests.support.served_model import ServedModel
from tests.support.stack import MONITOR, OPERATORS, SERVING, Stack
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = "churn"
STEPS = [1, 10, 50, 100]
RPS = 20.0  # user traffic through the router
CLIENTS = 2


@dataclass
class Traffic:
    """Clients calling the MLModel's router, as users would, in a background thread."""

    url: str
    path: str
    per_thread_rps: float = RPS / CLIENTS
    statuses: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        payload = {"instances": [{"x1": 0.5, "x2": 0.25}]}
        period = 1.0 / self.per_thread_rps
        with httpx.Client(timeout=10) as http:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    self.statuses.append(http.post(self.url + self.path, json=payload).status_code)
                except httpx.HTTPError:
                    self.statuses.append(0)
                # Paced: a steady rate keeps the slow shadow's queue (and its readiness) sane.
                self.stop.wait(max(0.0, period - (time.monotonic() - started)))


class Serving(ServedModel):
    def __init__(self, stack: Stack, versions: dict[str, str]):
        super().__init__(stack, MODEL, versions)
        self.traffic: Traffic | None = None

    def start_traffic(self, url: str) -> None:
        self.traffic = Traffic(url, f"/v1/models/{MODEL}:predict")
        self.start_threads([self.traffic.run] * CLIENTS, [self.traffic.stop])


def _mlmodel_spec(version: str) -> dict[str, Any]:
    return {
        "model": {"name": MODEL, "version": version},
        "rollout": {
            "steps": STEPS,
            # 5% of 20 rps mirrored: a 0.4 s shadow keeps up, and answers its probes.
            "shadow": {
                "duration": "2s",
                "mirrorPercent": 5,
                "minRequests": 10,
                "maxDisagreement": 0.05,
            },
            "analysis": {
                "interval": "2s",
                "minRequests": 3,
                "maxErrorRate": 0.05,
                "maxLatencyP99Ms": 250,
                "threshold": 1,
            },
        },
    }


@pytest.fixture(scope="module")
def serving(model_stack: Stack) -> Iterator[Serving]:
    stack = model_stack
    models = {
        "v1": LogisticModel(),
        "v2": LogisticModel(b=0.52),  # retrained: same answers within the tolerance
        "errors": FailingModel(),
        "slow": SlowModel(delay_s=0.4),
        "flipped": FlippedModel(),
    }
    versions = {
        key: register_model(stack.tracking_uri, stack.state_dir, MODEL, m)
        for key, m in models.items()
    }
    with stack.running(MONITOR, SERVING, OPERATORS):
        serving = Serving(stack, versions)
        try:
            serving.create("mlmodels", "MLModel", MODEL, _mlmodel_spec(versions["v1"]))
            status = serving.wait_phase("Promoted", versions["v1"], 240)
            url = wait_for(
                lambda: serving.model_status().get("url"), 60, "the router URL in status"
            )
            assert status["traffic"]["stable"] == 100
            _assert_router_serves_the_mlmodel_name(url)
            serving.start_traffic(url)
            yield serving
        finally:
            serving.stop_threads()


def _assert_router_serves_the_mlmodel_name(url: str) -> None:
    """Clients call the MLModel's name; every version's predictor must answer to it."""
    answer = httpx.post(
        f"{url}/v1/models/{MODEL}:predict", json={"instances": [{"x1": 0.5, "x2": 0.25}]}
    )
    assert answer.status_code == 200, answer.text


def test_v2_is_promoted_through_shadow_and_every_step(serving: Serving) -> None:
    v2 = serving.versions["v2"]
    serving.set_version(v2)
    promoted = serving.wait_phase("Promoted", v2, 240)
    assert promoted["traffic"] == {"stable": 100, "candidate": 0, "mirror": 0}
    ramp = [
        (phase, canary, mirror) for phase, _, _, canary, mirror in serving.observer.rows_for(v2)
    ]
    assert ramp[0] == ("Shadow", 0, 5)
    canary_weights = [canary for phase, canary, _ in ramp if phase == "Canary"]
    assert canary_weights == STEPS
    assert serving.traffic is not None
    assert set(serving.traffic.statuses) == {200}, "users saw errors during the rollout"
    analysis = promoted["analysis"]
    assert analysis["outcome"] == "Pass" and analysis["requests"] >= 3


def _rolled_back(serving: Serving, key: str) -> dict[str, Any]:
    stable, faulty = serving.versions["v2"], serving.versions[key]
    assert serving.model_status()["stableVersion"] == stable
    serving.set_version(faulty)
    status = serving.wait_phase("RolledBack", faulty, 240)
    assert status["stableVersion"] == stable
    assert status["traffic"] == {"stable": 100, "candidate": 0, "mirror": 0}
    lowest_stable = min(stable_pct for _, _, stable_pct, _, _ in serving.observer.rows_for(faulty))
    assert lowest_stable >= 100 - STEPS[0]
    return status


def test_erroring_version_is_rolled_back(serving: Serving) -> None:
    status = _rolled_back(serving, "errors")
    assert "error rate" in status["analysis"]["message"]
    rows = serving.observer.rows_for(serving.versions["errors"])
    assert max(canary for _, _, _, canary, _ in rows) == 0


def test_slow_version_is_rolled_back(serving: Serving) -> None:
    status = _rolled_back(serving, "slow")
    assert "p99" in status["analysis"]["message"]


def test_disagreeing_version_is_rolled_back(serving: Serving) -> None:
    status = _rolled_back(serving, "flipped")
    assert "disagreement" in status["analysis"]["message"]
    # Caught in shadow: no user ever got an answer from it.
    rows = serving.observer.rows_for(serving.versions["flipped"])
    assert max(canary for _, _, _, canary, _ in rows) == 0
