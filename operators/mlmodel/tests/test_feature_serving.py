"""Serving from Feast in the MLModel service (in-memory backends): no InferenceService until
the FeatureView can serve, then one with the Feast transformer; the skew check on by default."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts import feature_serving as fs
from operators.api.mlmodel import MLMODEL, MLModelSpec, Skew
from operators.mlmodel import service
from operators.mlmodel.backends import ServingBackends
from tests.support.fakes import FakeMonitor, FakeObject, FakeObjects, FakeRegistry, FakeTraffic

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VIEW = {
    "metadata": {"name": "activity", "namespace": "team-a"},
    "spec": {
        "entities": [{"name": "customer", "joinKey": "customer_id", "valueType": "INT64"}],
        "source": {"path": "/data/events", "timestampField": "ts"},
        "features": [{"name": "tenure", "dtype": "int64"}, {"name": "spend", "dtype": "float64"}],
        "backfill": {"start": "2026-01-01T00:00:00Z", "schedule": "@hourly"},
        "ttl": "1d",
    },
    "status": {
        "offlinePath": "/state/offline/team-a/activity/abc",
        "freshness": {"offline": "2026-03-01T11:00:00Z", "online": "2026-03-01T11:00:00Z"},
    },
}


def mlmodel(features: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "churn", "namespace": "team-a", "generation": 1, "uid": "u3"},
        "spec": {"model": {"name": "churn", "version": "1"}, "serving": {"features": features}},
    }


def setup() -> tuple[ServingBackends, FakeObjects, FakeMonitor]:
    objects, monitor = FakeObjects(), FakeMonitor()
    serving = ServingBackends(
        registry=FakeRegistry("churn", ["1"]),  # type: ignore[arg-type]
        objects=objects,  # type: ignore[arg-type]
        traffic=FakeTraffic(),
        monitor=monitor,  # type: ignore[arg-type]
        monitor_url="http://monitor.fake",
        feast_repo=Path("/state/feast"),
        feast_registry="s3://feast/registry.db",
        feast_online_store="redis.kubeloop-system:6379",
        serving_image="ghcr.io/kubeloop/kubeloop:0.1.0",
    )
    return serving, objects, monitor


def test_waits_for_the_feature_view_then_serves_through_the_transformer() -> None:
    serving, objects, monitor = setup()
    obj = FakeObject(MLMODEL, mlmodel({"featureView": "activity", "features": ["spend"]}))
    obj.run(service.observe_and_step, serving, T0)
    assert obj.condition("Ready") == ("False", "FeatureViewNotReady")
    assert objects.isvcs == {}
    objects.feature_views[("team-a", "activity")] = VIEW
    for _ in range(3):
        obj.run(service.observe_and_step, serving, T0)
    assert obj.condition("Ready") == ("True", "Promoted")
    isvc = objects.isvcs[("team-a", "churn-v1")]
    container = isvc["spec"]["transformer"]["containers"][0]
    assert container["image"] == "ghcr.io/kubeloop/kubeloop:0.1.0"
    assert f"{fs.ARG_ENTITY_KEY}=customer_id" in container["args"]
    assert f'{fs.ARG_FEATURES}={{"spend": "float64"}}' in container["args"]
    store = next(a for a in container["args"] if a.startswith(fs.ARG_FEAST_STORE))
    assert '"onlineStore": "redis"' in store and "s3://feast/registry.db" in store
    # The skew check runs without monitoring.skew, over the served feature only.
    skew = monitor.configs[-1].skew
    assert skew is not None
    assert skew.entity_key == "customer_id"
    assert skew.columns == {"activity__spend": "spend"}
    assert skew.offline == "/state/offline/team-a/activity/abc"
    # Paired when the transformer read the store, with the offline row known by then.
    assert skew.timestamp_key == fs.FETCHED_AT_INPUT
    assert skew.offline_timestamp == "created_timestamp"
    # Rows served after the offline store's freshness wait for the next backfill.
    assert skew.offline_complete_until == datetime(2026, 3, 1, 11, 0, tzinfo=UTC).timestamp()


def test_skew_default_and_opt_out() -> None:
    spec = MLModelSpec.model_validate(mlmodel({"featureView": "activity"})["spec"])
    assert spec.skew == Skew(feature_view="activity")
    off = MLModelSpec.model_validate(
        mlmodel({"featureView": "activity", "skewCheck": False})["spec"]
    )
    assert off.skew is None
    explicit = {
        **mlmodel({"featureView": "activity"})["spec"],
        "monitoring": {"skew": {"featureView": "activity", "maxMismatchFraction": 0.2}},
    }
    assert MLModelSpec.model_validate(explicit).skew == Skew(
        feature_view="activity", max_mismatch_fraction=0.2
    )
    plain = MLModelSpec.model_validate({"model": {"name": "churn", "version": "1"}})
    assert plain.skew is None


def test_a_view_backfilled_once_compares_every_served_row() -> None:
    """Without a schedule no backfill will bring newer rows: holding back rows served after
    its freshness would hold them forever (the check would never run)."""
    serving, objects, monitor = setup()
    once: dict[str, Any] = copy.deepcopy(VIEW)
    once["spec"]["backfill"] = {"start": "2026-01-01T00:00:00Z"}
    objects.feature_views[("team-a", "activity")] = once
    obj = FakeObject(MLMODEL, mlmodel({"featureView": "activity", "features": ["spend"]}))
    for _ in range(3):
        obj.run(service.observe_and_step, serving, T0)
    skew = monitor.configs[-1].skew
    assert skew is not None and skew.offline_complete_until is None
