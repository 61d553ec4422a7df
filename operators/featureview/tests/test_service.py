"""The FeatureView service on in-memory backends: each failure path gives its documented
condition and reason, and no backfill run is launched twice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from operators.api.featureview import FEATUREVIEW
from operators.config import OperatorConfig
from operators.featureview import service
from tests.support.fakes import FakeObject, FakePipelines

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def featureview(source: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "user-stats", "namespace": "team-a", "generation": 1, "uid": "u1"},
        "spec": {
            "entities": [{"name": "user", "joinKey": "user_id"}],
            "source": {"path": source, "timestampField": "ts"},
            "features": [{"name": "x", "dtype": "float64"}],
            "backfill": {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
            **spec,
        },
    }


@pytest.fixture
def source(tmp_path: Path) -> str:
    path = tmp_path / "events"
    path.mkdir()
    return str(path)


def backends(tmp_path: Path, pipelines: FakePipelines) -> service.FeatureViewBackends:
    config = OperatorConfig(state_dir=tmp_path / "state")
    return service.FeatureViewBackends.from_config(config, pipelines)


def launched(obj: FakeObject, fv: service.FeatureViewBackends) -> str:
    """Pin, then launch; returns the run's name."""
    obj.run(service.reconcile, fv, NOW)
    assert obj.condition("Backfilled") == ("Unknown", "BackfillPending")
    obj.run(service.reconcile, fv, NOW)
    assert obj.status.last_backfill is not None
    return obj.status.last_backfill.run


def launch_fails(obj: FakeObject, fv: Any, pipelines: FakePipelines) -> None:
    pipelines.submit_error = ConnectionError("KFP at fake:// refused the connection")
    obj.run(service.reconcile, fv, NOW)
    obj.run(service.reconcile, fv, NOW)
    assert obj.condition("Backfilled") == ("False", "LaunchFailed")
    assert "KFP at fake://" in obj.status.conditions[0].message + obj.status.conditions[1].message
    pipelines.submit_error = None  # the backend is back: the same run is launched, once
    obj.run(service.reconcile, fv, NOW)
    obj.run(service.reconcile, fv, NOW)
    assert obj.condition("Backfilled") == ("Unknown", "BackfillRunning")


def run_lost(obj: FakeObject, fv: Any, pipelines: FakePipelines) -> None:
    run = launched(obj, fv)
    pipelines.fail(run, "the worker process 4242 exited without recording a result")
    obj.run(service.reconcile, fv, NOW)
    obj.run(service.reconcile, fv, NOW)
    assert obj.condition("Backfilled") == ("False", "BackfillFailed")
    assert "4242" in (obj.status.last_backfill.message or "")


def run_succeeds(obj: FakeObject, fv: Any, pipelines: FakePipelines) -> None:
    run = launched(obj, fv)
    pipelines.finish(run, {"rows": 12})
    obj.run(service.reconcile, fv, NOW)
    assert obj.condition("Backfilled") == ("True", "BackfillSucceeded")
    assert obj.condition("Materialized") == ("True", "Materialized")


CASES = {
    "launch fails, then the backend is back": (launch_fails, ("False", "LaunchFailed")),
    "run lost": (run_lost, ("False", "BackfillFailed")),
    "run succeeds": (run_succeeds, ("True", "BackfillSucceeded")),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_failure_paths(case: str, tmp_path: Path, source: str) -> None:
    play, ready = CASES[case]
    pipelines = FakePipelines()
    fv = backends(tmp_path, pipelines)
    obj = FakeObject(FEATUREVIEW, featureview(source))
    play(obj, fv, pipelines)
    if case != "launch fails, then the backend is back":
        assert obj.condition("Ready") == ready
    assert all(count == 1 for count in pipelines.launches.values()), pipelines.launches
    assert len(pipelines.launches) == 1


def test_missing_source_launches_nothing(tmp_path: Path) -> None:
    pipelines = FakePipelines()
    obj = FakeObject(FEATUREVIEW, featureview(str(tmp_path / "absent")))
    for _ in range(3):
        obj.run(service.reconcile, backends(tmp_path, pipelines), NOW)
    assert obj.condition("Ready") == ("False", "SourceNotFound")
    assert obj.condition("Backfilled") == ("False", "SourceNotFound")
    assert pipelines.submits == {}


def test_invalid_spec_names_the_field_and_warns_once(tmp_path: Path, source: str) -> None:
    pipelines = FakePipelines()
    obj = FakeObject(FEATUREVIEW, featureview(source, features=[{"name": "bad name"}]))
    for _ in range(2):
        obj.run(service.reconcile, backends(tmp_path, pipelines), NOW)
    assert obj.condition("Ready") == ("False", "InvalidSpec")
    ready = obj.status.conditions[0]
    assert "spec.features" in ready.message
    assert [(e.type, e.reason) for e in obj.events] == [("Warning", "InvalidSpec")]
    assert pipelines.submits == {}
