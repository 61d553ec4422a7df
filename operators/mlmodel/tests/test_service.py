"""The MLModel service on in-memory backends: each failure path gives its documented
condition and reason (or leaves status alone for Kopf to retry), and no InferenceService is
created twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from operators.api.mlmodel import MLMODEL
from operators.mlmodel import service
from operators.mlmodel.backends import ServingBackends
from tests.support.fakes import FakeMonitor, FakeObject, FakeObjects, FakeRegistry, FakeTraffic

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def mlmodel(**model: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "churn", "namespace": "team-a", "generation": 1, "uid": "u3"},
        "spec": {"model": {"name": "churn", **(model or {"follow": "latest-passing"})}},
    }


def backends(
    registry: FakeRegistry, traffic: FakeTraffic | None = None, monitor: FakeMonitor | None = None
) -> tuple[ServingBackends, FakeObjects]:
    objects = FakeObjects()
    serving = ServingBackends(
        registry=registry,  # type: ignore[arg-type]
        objects=objects,  # type: ignore[arg-type]
        traffic=traffic or FakeTraffic(),
        monitor=monitor or FakeMonitor(),
        monitor_url="http://monitor.fake",
    )
    return serving, objects


def tick(obj: FakeObject, serving: ServingBackends, at: datetime = T0) -> Any:
    return obj.run(service.observe_and_step, serving, at)


def test_first_version_serves() -> None:
    serving, objects = backends(FakeRegistry("churn", ["1"]))
    obj = FakeObject(MLMODEL, mlmodel())
    obj.run(service.reconcile, serving, T0)
    assert obj.condition("Ready") == ("False", "NotServing")
    for _ in range(3):
        tick(obj, serving)
    assert obj.condition("Ready") == ("True", "Promoted")
    assert obj.condition("Serving") == ("True", "PredictorReady")
    assert dict(objects.creates) == {"churn-v1": 1}


def test_the_stable_version_is_marked_champion_in_the_registry() -> None:
    registry = FakeRegistry("churn", ["1"])
    serving, _ = backends(registry)
    obj = FakeObject(MLMODEL, mlmodel())
    for _ in range(3):
        tick(obj, serving)
    assert obj.status.stable_version == "1" and registry.champions == {"churn": "1"}


def test_registry_unavailable_then_back() -> None:
    registry = FakeRegistry("churn", ["1"])
    registry.down = ConnectionError("MLflow at fake:// is unavailable")
    serving, objects = backends(registry)
    obj = FakeObject(MLMODEL, mlmodel())
    obj.run(service.reconcile, serving, T0)
    with pytest.raises(ConnectionError):  # Kopf retries the timer; status stays as it was
        tick(obj, serving)
    assert obj.condition("Ready") == ("False", "NotServing")
    assert objects.creates == {}
    registry.down = None
    tick(obj, serving)
    tick(obj, serving)
    assert obj.condition("Ready") == ("True", "Promoted")
    assert dict(objects.creates) == {"churn-v1": 1}


def test_version_not_found_warns_once() -> None:
    serving, objects = backends(FakeRegistry("churn", ["1"]))
    obj = FakeObject(MLMODEL, mlmodel(version="7"))
    for _ in range(3):
        tick(obj, serving)
    assert obj.condition("Ready") == ("False", "ModelVersionNotFound")
    assert [e.reason for e in obj.events] == ["ModelVersionNotFound"]
    assert objects.creates == {}


def test_traffic_write_conflict_is_retried() -> None:
    serving, objects = backends(FakeRegistry("churn", ["1"]), traffic=FakeTraffic(conflicts=1))
    obj = FakeObject(MLMODEL, mlmodel())
    tick(obj, serving)  # creates the InferenceService; the next pass promotes it
    with pytest.raises(ApiException) as conflict:  # Kopf retries the timer
        tick(obj, serving)
    assert conflict.value.status == 409
    assert obj.status.phase == "Pending"  # nothing written from the failed pass
    tick(obj, serving)
    assert obj.condition("Ready") == ("True", "Promoted")
    assert len(serving.traffic.applied) >= 1  # type: ignore[attr-defined]
    assert dict(objects.creates) == {"churn-v1": 1}


def test_monitor_down_gives_no_verdict() -> None:
    registry = FakeRegistry("churn", ["1"])
    monitor = FakeMonitor()
    serving, objects = backends(registry, monitor=monitor)
    obj = FakeObject(MLMODEL, mlmodel())
    tick(obj, serving)
    tick(obj, serving)
    registry.versions.append("2")  # a new version: shadow analysis starts
    tick(obj, serving, T0 + timedelta(minutes=1))
    assert obj.status.phase == "Shadow"
    before = obj.status
    monitor.down = True
    for minutes in (5, 10, 30):
        tick(obj, serving, T0 + timedelta(minutes=minutes))
    after = obj.status
    assert after.phase == "Shadow" and after.candidate_version == "2"
    assert after.analysis == before.analysis  # inconclusive: no verdict either way
    assert obj.condition("Ready") == ("True", "Shadow")
    assert dict(objects.creates) == {"churn-v1": 1, "churn-v2": 1}
