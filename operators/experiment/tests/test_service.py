"""The Experiment service on in-memory backends: each failure path gives its documented
condition and reason, and no trial run is launched twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from operators.api.experiment import EXPERIMENT
from operators.api.featureview import FeatureViewSpec
from operators.config import OperatorConfig
from operators.experiment import service
from operators.featureview.reconcile import definition_version
from tests.support.fakes import FakeFeatureViews, FakeObject, FakePipelines

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FV_SPEC = {
    "entities": [{"name": "user", "joinKey": "user_id"}],
    "source": {"path": "/data/events", "timestampField": "ts"},
    "features": [{"name": "x", "dtype": "float64"}],
    "backfill": {"start": "2026-01-01T00:00:00Z"},
}
REPORT = {"objective": {"value": 0.8, "baseline_value": 0.5}, "feature_columns": ["fv__x"]}


def feature_view(backfilled: bool = True) -> dict[str, Any]:
    version = definition_version(FeatureViewSpec.model_validate(FV_SPEC))
    condition = {"type": "Backfilled", "status": "True" if backfilled else "Unknown"}
    return {
        "metadata": {"name": "fv", "namespace": "team-a"},
        "spec": FV_SPEC,
        "status": {"version": version, "offlinePath": "/offline/fv", "conditions": [condition]},
    }


def experiment(labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "churn", "namespace": "team-a", "generation": 1, "uid": "u2"},
        "spec": {
            "features": [{"featureView": "fv"}],
            "labels": {
                "source": labels,
                "timestampField": "t",
                "labelField": "y",
                "entityKeys": ["user_id"],
            },
            "split": {"validation": "1d", "test": "1d"},
            "search": {"parameters": [{"name": "lr", "values": [0.1]}], "maxTrials": 1},
            "register": {"model": "churn"},
        },
    }


class Registrar:
    """The MLflow registration, unavailable `down` times before it answers."""

    def __init__(self, down: int = 0) -> None:
        self.down = down
        self.calls = 0

    def __call__(self, *args: Any) -> service.Registration:
        self.calls += 1
        if self.down:
            self.down -= 1
            raise ConnectionError("MLflow at fake:// is unavailable")
        return service.Registration(version="1")


def make(
    tmp_path: Path, views: FakeFeatureViews, registrar: Registrar
) -> tuple[service.ExperimentBackends, FakePipelines]:
    pipelines = FakePipelines()
    config = OperatorConfig(state_dir=tmp_path / "state", mlflow_tracking_uri="http://fake")
    backends = service.ExperimentBackends.from_config(config, views, pipelines)
    backends.registrar = registrar
    return backends, pipelines


def finish_all(pipelines: FakePipelines) -> None:
    for name in pipelines.states:
        pipelines.finish(name, {"metrics_json": json.dumps(REPORT), "mlflow_run_id": "r1"})


def passes(obj: FakeObject, backends: service.ExperimentBackends, count: int) -> None:
    for _ in range(count):
        obj.run(service.reconcile, backends, NOW)


def test_featureview_missing_waits_and_launches_nothing(tmp_path: Path, labels: str) -> None:
    backends, pipelines = make(tmp_path, FakeFeatureViews(), Registrar())
    obj = FakeObject(EXPERIMENT, experiment(labels))
    passes(obj, backends, 2)
    assert obj.condition("Ready") == ("False", "FeatureViewNotFound")
    assert obj.condition("Trained") == ("Unknown", "FeatureViewNotFound")
    assert pipelines.submits == {}


def test_featureview_not_backfilled_waits(tmp_path: Path, labels: str) -> None:
    views = FakeFeatureViews({("team-a", "fv"): feature_view(backfilled=False)})
    backends, pipelines = make(tmp_path, views, Registrar())
    obj = FakeObject(EXPERIMENT, experiment(labels))
    passes(obj, backends, 2)
    assert obj.condition("Ready") == ("False", "FeaturesNotReady")
    assert pipelines.submits == {}


@pytest.mark.parametrize(
    "down,registered,reason",
    [(0, "True", "Registered"), (1, "True", "Registered"), (5, "False", "RegistrationFailed")],
    ids=["registry up", "registry unavailable then back", "registry down"],
)
def test_registration(tmp_path: Path, labels: str, down: int, registered: str, reason: str) -> None:
    views = FakeFeatureViews({("team-a", "fv"): feature_view()})
    registrar = Registrar(down)
    backends, pipelines = make(tmp_path, views, registrar)
    obj = FakeObject(EXPERIMENT, experiment(labels))
    passes(obj, backends, 1)
    assert obj.condition("Trained") == ("Unknown", "TrialsRunning")
    finish_all(pipelines)
    passes(obj, backends, 1)
    if down:
        assert obj.condition("Registered") == ("False", "RegistrationFailed")
        assert "MLflow at fake://" in obj.status.conditions[-1].message
    passes(obj, backends, 2)
    assert obj.condition("Registered") == (registered, reason)
    assert list(pipelines.launches.values()) == [1]


def test_launch_fails_the_trial(tmp_path: Path, labels: str) -> None:
    views = FakeFeatureViews({("team-a", "fv"): feature_view()})
    backends, pipelines = make(tmp_path, views, Registrar())
    pipelines.submit_error = ConnectionError("KFP at fake:// refused the connection")
    obj = FakeObject(EXPERIMENT, experiment(labels))
    passes(obj, backends, 3)
    assert obj.condition("Ready") == ("False", "AllTrialsFailed")
    assert obj.condition("Trained") == ("False", "AllTrialsFailed")
    assert "KFP at fake://" in (obj.status.trials[0].message or "")
    assert sum(pipelines.submits.values()) == 1  # a failed trial is not retried
    assert pipelines.launches == {}


def test_lost_trial_run_fails_it_once(tmp_path: Path, labels: str) -> None:
    views = FakeFeatureViews({("team-a", "fv"): feature_view()})
    backends, pipelines = make(tmp_path, views, Registrar())
    obj = FakeObject(EXPERIMENT, experiment(labels))
    passes(obj, backends, 1)
    (run,) = pipelines.states
    pipelines.fail(run, "the worker process 4242 exited without recording a result")
    passes(obj, backends, 3)
    assert obj.condition("Trained") == ("False", "AllTrialsFailed")
    assert "4242" in (obj.status.trials[0].message or "")
    assert list(pipelines.launches.values()) == [1]


def test_a_multi_node_trial_gets_what_the_trainjob_needs(tmp_path: Path, labels: str) -> None:
    """train_ddp refuses nodes > 1 without shared_dir and trainjob_image: the operator passes
    them from its configuration, and the TrainJob's namespace is the Experiment's."""
    views = FakeFeatureViews({("team-a", "fv"): feature_view()})
    pipelines = FakePipelines()
    config = OperatorConfig(
        state_dir=tmp_path / "state",
        mlflow_tracking_uri="http://fake",
        trainjob_image="ghcr.io/kubeloop/kubeloop:0.1.0",
        shared_dir="/shared",
    )
    backends = service.ExperimentBackends.from_config(config, views, pipelines)
    spec = experiment(labels)
    spec["spec"]["trainer"] = {"nodes": 2}
    passes(FakeObject(EXPERIMENT, spec), backends, 1)
    (params,) = pipelines.params.values()
    assert params["nodes"] == 2
    assert params["shared_dir"] == "/shared"
    assert params["trainjob_image"] == "ghcr.io/kubeloop/kubeloop:0.1.0"
    assert params["trainjob_namespace"] == "team-a"


def scheduled_view(fresh_until: str | None, **backfill: str) -> dict[str, Any]:
    """A scheduled FeatureView between ticks: Backfilled=Unknown (the next increment is
    pinned) while what it already holds is fresh up to `fresh_until`."""
    window: dict[str, Any] = {"start": "2026-01-01T00:00:00Z", "schedule": "* * * * *"}
    spec: dict[str, Any] = dict(FV_SPEC)
    spec["backfill"] = {**window, **backfill}
    body = feature_view()
    body["spec"] = spec
    body["status"]["conditions"] = [{"type": "Backfilled", "status": "Unknown"}]
    if fresh_until:
        body["status"]["freshness"] = {"offline": fresh_until, "online": fresh_until}
    return body


def retrain(labels: str) -> FakeObject:
    body = experiment(labels)
    body["metadata"]["annotations"] = {"kubeloop.io/retrain-requested": "drift on fv__x"}
    body["spec"]["split"] = {"validation": "1d", "test": "1d", "trainWindow": "7d"}
    body["spec"]["split"]["recencyHalfLife"] = "2d"
    return FakeObject(EXPERIMENT, body)


def test_a_retrain_waits_for_its_features_then_trains(tmp_path: Path, labels: str) -> None:
    views = FakeFeatureViews({("team-a", "fv"): scheduled_view("2026-03-01T11:58:00Z")})
    backends, pipelines = make(tmp_path, views, Registrar())
    obj = retrain(labels)
    passes(obj, backends, 2)
    assert obj.condition("Trained") == ("False", "WaitingForFeatures")
    assert obj.condition("Ready") == ("False", "WaitingForFeatures")
    trained = next(c for c in obj.status.conditions if c.type == "Trained")
    assert trained.observed_generation == 1
    assert "FeatureView fv is fresh up to 2026-03-01T11:58:00+00:00" in trained.message
    assert "window ends at 2026-03-01T12:00:00+00:00" in trained.message
    assert pipelines.submits == {}
    # The scheduled backfill catches up: the same round launches, with the sliding window.
    views.objects[("team-a", "fv")] = scheduled_view("2026-03-01T12:00:00Z")
    passes(obj, backends, 1)
    assert obj.condition("Trained") == ("Unknown", "TrialsRunning")
    (params,) = pipelines.params.values()
    assert params["split"] == {
        "validation": "1d",
        "test": "1d",
        "trainWindow": "7d",
        "recencyHalfLife": "2d",
        "end": "2026-03-01T12:00:00+00:00",
    }
    # The gate holds only launches back: a launched round finishes whatever the view says.
    views.objects[("team-a", "fv")] = scheduled_view("2026-03-01T11:00:00Z")
    finish_all(pipelines)
    passes(obj, backends, 2)
    assert obj.condition("Registered") == ("True", "Registered")
    assert list(pipelines.launches.values()) == [1]


def test_a_view_bounded_before_the_window_names_its_end(tmp_path: Path, labels: str) -> None:
    view = scheduled_view("2026-02-20T00:00:00Z", end="2026-02-20T00:00:00Z")
    backends, pipelines = make(tmp_path, FakeFeatureViews({("team-a", "fv"): view}), Registrar())
    obj = retrain(labels)
    passes(obj, backends, 1)
    assert obj.condition("Trained") == ("False", "WaitingForFeatures")
    trained = next(c for c in obj.status.conditions if c.type == "Trained")
    assert "spec.backfill.end 2026-02-20T00:00:00+00:00 stops it short" in trained.message
    assert pipelines.submits == {}


def test_an_unscheduled_view_is_a_snapshot_a_retrain_does_not_wait_for(
    tmp_path: Path, labels: str
) -> None:
    backends, pipelines = make(
        tmp_path, FakeFeatureViews({("team-a", "fv"): feature_view()}), Registrar()
    )
    obj = retrain(labels)
    passes(obj, backends, 1)
    assert obj.condition("Trained") == ("Unknown", "TrialsRunning")
    assert len(pipelines.submits) == 1


def test_prediction_log_labels_need_the_request_id_and_wait_for_no_view(
    tmp_path: Path, labels: str
) -> None:
    lagging = scheduled_view("2026-03-01T11:00:00Z")
    backends, pipelines = make(tmp_path, FakeFeatureViews({("team-a", "fv"): lagging}), Registrar())
    obj = retrain(labels)
    obj.body["spec"]["labels"]["predictionLog"] = {"path": "/log", "model": "churn"}
    passes(obj, backends, 1)
    # The served features need no backfill; the label events lack the request id column.
    assert obj.condition("Trained") == ("False", "AllTrialsFailed")
    assert "labels: columns ['request_id'] are absent" in (obj.status.trials[0].message or "")
    assert pipelines.submits == {}

    with_ids = tmp_path / "with_ids.parquet"
    pq.write_table(pq.read_table(labels).append_column("request_id", pa.array(["q1"])), with_ids)
    obj = retrain(str(with_ids))
    obj.body["spec"]["labels"]["predictionLog"] = {"path": "/log", "model": "churn"}
    passes(obj, backends, 1)
    assert obj.condition("Trained") == ("Unknown", "TrialsRunning")
    (params,) = pipelines.params.values()
    assert params["labels"]["predictionLog"] == {
        "path": "file:///log",  # a URI, as the tasks read it (components/uris.py)
        "model": "churn",
        "requestIdField": "request_id",
        "namespace": "team-a",
    }
