"""The MLModel service with outcomes, on in-memory backends: what it asks the monitor (paired
since the shadow started, concurrent since the canary started), what a silent monitor does,
status.quality and Degraded each pass, and a retrain requested on degradation."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.quality import Comparison, Interval, QualityReport, VersionQuality
from operators.api.common import ANNOTATION_RETRAIN
from operators.api.mlmodel import MLMODEL
from operators.backends.monitor import CompareRequest, ModelFigures, MonitorUnavailable
from operators.mlmodel import service
from operators.mlmodel.analysis import VersionFigures
from operators.mlmodel.backends import ServingBackends
from tests.support.fakes import FakeMonitor, FakeObject, FakeObjects, FakeRegistry, FakeTraffic

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HEALTHY = VersionFigures(requests=500, server_errors=0, latency_p99_ms=40)


def mlmodel(triggers: list[str] | None = None, metric: bool = True) -> dict[str, Any]:
    analysis: dict[str, Any] = {"interval": "1m", "minRequests": 10}
    if metric:
        analysis["primaryMetric"] = {"name": "auc", "margin": 0.02, "minLabeled": 100}
    spec: dict[str, Any] = {
        "model": {"name": "churn", "follow": "latest-passing"},
        "rollout": {"shadow": {"duration": "1m", "minRequests": 10}, "analysis": analysis},
    }
    if triggers is not None:
        spec["monitoring"] = {"retrain": {"experiment": "churn", "triggers": triggers}}
    return {
        "metadata": {"name": "churn", "namespace": "team-a", "generation": 1, "uid": "u3"},
        "spec": spec,
    }


def comparison(request: CompareRequest, estimate: float = 0.0) -> Comparison:
    return Comparison(
        metric=request.metric,
        candidate=request.candidate,
        stable=request.stable,
        design=request.design,
        n=5000,
        n_stable=5000,
        estimate=estimate,
        variance=1e-8,
        method="delong",
        since=request.since.timestamp(),
    )


class LabelMonitor(FakeMonitor):
    """Answers every comparison with one estimate (0: as good as stable); `compare_down`
    makes only the comparison fail."""

    def __init__(self, estimate: float = 0.0) -> None:
        super().__init__()
        self.estimate = estimate
        self.compare_down = False
        self.model_figures = ModelFigures(
            versions={"1": HEALTHY, "2": HEALTHY}, paired={"2": 300}, disagreements={"2": 250}
        )

    def compare(self, namespace: str, name: str, request: CompareRequest) -> Comparison:
        if self.compare_down:
            raise MonitorUnavailable("compare: monitor at fake:// did not answer")
        super().compare(namespace, name, request)
        return comparison(request, self.estimate)


def backends(monitor: FakeMonitor, registry: FakeRegistry | None = None) -> ServingBackends:
    return ServingBackends(
        registry=registry or FakeRegistry("churn", ["1"]),  # type: ignore[arg-type]
        objects=FakeObjects(),  # type: ignore[arg-type]
        traffic=FakeTraffic(),
        monitor=monitor,
        monitor_url="http://monitor.fake",
    )


def tick(obj: FakeObject, serving: ServingBackends, minutes: float) -> Any:
    return obj.run(service.observe_and_step, serving, T0 + timedelta(minutes=minutes))


def serving_v1(obj: FakeObject, serving: ServingBackends) -> None:
    for _ in range(2):
        tick(obj, serving, 0)
    assert obj.status.phase == "Promoted" and obj.status.stable_version == "1"


def test_label_gated_rollout_asks_paired_then_concurrent_since_each_phase_started() -> None:
    monitor = LabelMonitor()
    serving = backends(monitor)
    obj = FakeObject(MLMODEL, mlmodel())
    serving_v1(obj, serving)
    serving.registry.versions.append("2")  # type: ignore[attr-defined]
    phases = []
    for minute in range(1, 9):
        tick(obj, serving, minute)
        phases.append((obj.status.phase, obj.status.traffic.candidate))  # type: ignore[union-attr]
    assert phases[0] == ("Shadow", 0) and ("Canary", 1) in phases and phases[-1][0] == "Promoted"
    designs = [(r.design, r.since) for r in monitor.compares]
    shadow_start = T0 + timedelta(minutes=1)
    canary_start = T0 + timedelta(minutes=2)  # the shadow lasts 1m
    assert designs[0] == ("paired", shadow_start)
    assert {d for d in designs if d[0] == "concurrent"} == {("concurrent", canary_start)}
    # The 83% disagreement was not judged: a primary metric turns the default off.
    assert obj.status.analysis is not None and obj.status.analysis.metric == "auc"
    assert [e.reason for e in obj.events].count("StepPassed") == 3


def test_a_worse_candidate_is_rolled_back_in_shadow() -> None:
    monitor = LabelMonitor(estimate=-0.2)
    serving = backends(monitor)
    obj = FakeObject(MLMODEL, mlmodel())
    serving_v1(obj, serving)
    serving.registry.versions.append("2")  # type: ignore[attr-defined]
    for minute in range(1, 5):
        tick(obj, serving, minute)
    assert obj.status.phase == "RolledBack" and obj.status.traffic.candidate == 0  # type: ignore[union-attr]
    assert obj.status.analysis is not None and obj.status.analysis.high is not None
    assert obj.status.analysis.high < 0 and obj.status.analysis.labeled == 5000


def test_without_a_primary_metric_nothing_is_compared() -> None:
    monitor = LabelMonitor()
    serving = backends(monitor)
    obj = FakeObject(MLMODEL, mlmodel(metric=False))
    serving_v1(obj, serving)
    serving.registry.versions.append("2")  # type: ignore[attr-defined]
    for minute in range(1, 4):
        tick(obj, serving, minute)
    assert monitor.compares == []
    # ... and the shadow's disagreement gate is the old default: 83% disagreement fails.
    assert obj.status.phase == "RolledBack" and "disagreement" in (obj.status.message or "")


def test_monitor_compare_down_gives_no_verdict() -> None:
    monitor = LabelMonitor()
    serving = backends(monitor)
    obj = FakeObject(MLMODEL, mlmodel())
    serving_v1(obj, serving)
    serving.registry.versions.append("2")  # type: ignore[attr-defined]
    tick(obj, serving, 1)
    before = obj.status
    monitor.compare_down = True
    for minute in (3, 5, 10):
        tick(obj, serving, minute)
    after = obj.status
    assert after.phase == "Shadow" and after.analysis == before.analysis


_WINDOWS = itertools.count()


def quality(auc: tuple[float, float, float], labeled: int = 1000) -> QualityReport:
    """A report whose stable window is new (disjoint from every one before): the Degraded
    test pools it."""
    value, low, high = auc
    start = T0.timestamp() + 3600 * next(_WINDOWS)
    entry = VersionQuality(
        version="1",
        role="stable",
        labeled=labeled,
        positives=300,
        auc=Interval(value=value, low=low, high=high),
        window_start=start,
        window_end=start + 600,
    )
    return QualityReport(namespace="team-a", model="churn", now=T0.timestamp(), versions=[entry])


def degraded_setup(triggers: list[str]) -> tuple[FakeObject, ServingBackends, FakeObjects]:
    monitor = LabelMonitor()
    registry = FakeRegistry("churn", ["1"])
    registry.validation[("1", "auc")] = 0.80
    serving = backends(monitor, registry)
    objects: FakeObjects = serving.objects  # type: ignore[assignment]
    objects.experiments[("team-a", "churn")] = {"metadata": {"name": "churn"}, "status": {}}
    obj = FakeObject(MLMODEL, mlmodel(triggers=triggers))
    serving_v1(obj, serving)
    return obj, serving, objects


def test_status_quality_and_degraded_each_pass_and_a_retrain_on_degradation() -> None:
    obj, serving, objects = degraded_setup(["degradation"])
    monitor: LabelMonitor = serving.monitor  # type: ignore[assignment]
    monitor.report = quality((0.81, 0.79, 0.83))
    tick(obj, serving, 1)
    assert obj.condition("Degraded") == ("False", "WithinValidation")
    assert [q.version for q in obj.status.quality] == ["1"]
    assert obj.status.stable_quality is not None and obj.status.stable_quality.value == 0.81
    assert ANNOTATION_RETRAIN not in objects.experiments[("team-a", "churn")]["metadata"].get(
        "annotations", {}
    )
    monitor.report = quality((0.70, 0.68, 0.72))
    tick(obj, serving, 2)
    assert obj.condition("Degraded") == ("True", "BelowValidation")
    request = objects.experiments[("team-a", "churn")]["metadata"]["annotations"][
        ANNOTATION_RETRAIN
    ]
    assert json.loads(request)["reason"].startswith("degraded: auc 0.7000")
    assert {"Degraded", "RetrainRequested"} <= {e.reason for e in obj.events}


def test_degradation_does_not_retrain_unless_a_trigger() -> None:
    obj, serving, objects = degraded_setup(["drift"])
    serving.monitor.report = quality((0.70, 0.68, 0.72))  # type: ignore[union-attr]
    tick(obj, serving, 1)
    assert obj.condition("Degraded") == ("True", "BelowValidation")
    assert "annotations" not in objects.experiments[("team-a", "churn")]["metadata"]


def test_quality_unreachable_keeps_the_last_figures() -> None:
    obj, serving, _ = degraded_setup(["drift"])
    serving.monitor.report = quality((0.81, 0.79, 0.83))  # type: ignore[union-attr]
    tick(obj, serving, 1)
    before = obj.status
    serving.monitor.down = True  # type: ignore[union-attr]
    tick(obj, serving, 2)
    assert obj.status.quality == before.quality
    assert obj.status.stable_quality == before.stable_quality
    assert obj.condition("Degraded") == ("False", "WithinValidation")


def test_a_registry_hiccup_keeps_the_last_validation_figure() -> None:
    obj, serving, _ = degraded_setup(["drift"])
    serving.monitor.report = quality((0.70, 0.68, 0.72))  # type: ignore[union-attr]
    tick(obj, serving, 1)
    assert obj.condition("Degraded") == ("True", "BelowValidation")
    registry: FakeRegistry = serving.registry  # type: ignore[assignment]
    registry.validation.clear()
    registry.validation_error = ConnectionError("MLflow at fake:// is unavailable")
    tick(obj, serving, 2)
    assert obj.condition("Degraded") == ("True", "BelowValidation")
    assert obj.status.stable_quality is not None and obj.status.stable_quality.validation == 0.8


def test_the_monitor_is_told_the_outcomes_settings() -> None:
    monitor = LabelMonitor()
    serving = backends(monitor)
    body = mlmodel()
    body["spec"]["monitoring"] = {
        "outcomes": {"labelMaturity": "30m", "window": {"size": 800, "maxAge": "2d"},
                     "entityKey": "user_id"}
    }  # fmt: skip
    obj = FakeObject(MLMODEL, body)
    serving_v1(obj, serving)
    sent = monitor.configs[-1].to_json()["outcomes"]
    assert sent["labelMaturitySeconds"] == 1800 and sent["windowSize"] == 800
    assert sent["maxAgeSeconds"] == 2 * 86400 and sent["entityKey"] == "user_id"
    # Unset: null, the monitor keeps its defaults.
    plain = FakeObject(MLMODEL, mlmodel())
    serving_v1(plain, serving)
    assert monitor.configs[-1].to_json()["outcomes"] is None
