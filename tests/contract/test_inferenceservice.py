"""The InferenceService bodies the MLModel operator writes, against KServe 0.20's own types
(the ``kserve`` package's models, the version ``scripts/kind-up.sh`` installs), and the local
stand-in refusing what those types refuse.

Breaks of issue #13 covered here: 3 (the storageUri is one KServe's storage initializer
fetches, the runtime is the one the chart ships) and 5 (the logger carries metadataHeaders and
metadataAnnotations, fields KServe's LoggerSpec defines).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kserve import V1beta1InferenceService

from contracts import feature_serving as fs
from contracts.kserve_runtime import RUNTIME_NAME, kserve_can_fetch
from localcluster.serving.feast_transformer import parse_transformer_args
from localcluster.serving.inferenceservice import InvalidSpec, PredictorSpec, parse_isvc
from localcluster.serving.kserve_types import inference_service_problems, problems
from localcluster.serving.supervisor import predictor_command
from operators.api.mlmodel import FeatureServing, Serving, ServingResources
from operators.backends.serving import Owner, inference_service
from operators.mlmodel.features import transformer_container

OWNER = Owner(namespace="team", name="churn", uid="uid-1")
MONITOR = "http://kubeloop-monitor.kubeloop-system.svc.cluster.local:8081/"

SERVINGS = {
    "defaults": Serving(),
    "runtime": Serving(runtime=RUNTIME_NAME),
    "resources": Serving(resources=ServingResources(cpu="500m", memory="1Gi"), min_replicas=2),
}
URIS = ["s3://models/1/artifacts/model", "pvc://mlflow/artifacts/3/model", "file:///m/model"]


def bodies() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for label, serving in SERVINGS.items():
        for uri in URIS:
            for monitor in (MONITOR, None):
                body = inference_service(OWNER, "3", uri, serving, monitor)
                out.append((f"{label}-{uri.split(':')[0]}-{bool(monitor)}", body))
    return out


@pytest.mark.parametrize(("label", "body"), bodies(), ids=[label for label, _ in bodies()])
def test_every_body_fits_kserves_types(label: str, body: dict[str, Any]) -> None:
    assert body["apiVersion"] == "serving.kserve.io/v1beta1"
    assert body["kind"] == V1beta1InferenceService.__name__.removeprefix("V1beta1")
    assert inference_service_problems(body) == []
    # The stand-in reads it as a predictor, no refusal.
    assert isinstance(parse_isvc(body), PredictorSpec)
    model = body["spec"]["predictor"]["model"]
    assert kserve_can_fetch(model["storageUri"])
    assert model.get("runtime") in (None, RUNTIME_NAME)


def test_the_logger_uses_kserves_logger_fields() -> None:
    """Break 5: without metadataHeaders/metadataAnnotations KServe's agent sends neither the
    request id nor the version; both are LoggerSpec fields in KServe 0.20."""
    body = inference_service(OWNER, "3", URIS[0], Serving(), MONITOR)
    logger = body["spec"]["predictor"]["logger"]
    assert problems(logger, "V1beta1LoggerSpec", "logger") == []
    assert logger["metadataHeaders"] and logger["metadataAnnotations"]
    assert {"mlmodel", "model-version"} <= {a.split("/")[-1] for a in logger["metadataAnnotations"]}


BROKEN = {
    "unknown field": (lambda b: b["spec"]["predictor"].update(modelx={}), "predictor.modelx"),
    "misspelt logger field": (
        lambda b: b["spec"]["predictor"]["logger"].update(metadataHeader=["X"]),
        "logger.metadataHeader",
    ),
    "required modelFormat missing": (
        lambda b: b["spec"]["predictor"]["model"].pop("modelFormat"),
        "model_format",
    ),
    "predictor missing": (lambda b: b["spec"].pop("predictor"), "predictor"),
    "wrong type": (lambda b: b["spec"]["predictor"].update(minReplicas="1"), "minReplicas"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_check_and_the_stand_in_refuse_what_kserve_refuses(case: str) -> None:
    mutate, field = BROKEN[case]
    body = inference_service(OWNER, "3", URIS[0], Serving(), MONITOR)
    mutate(body)
    found = inference_service_problems(body)
    assert any(field in problem for problem in found), found
    parsed = parse_isvc(body)
    assert isinstance(parsed, InvalidSpec) and field in parsed.message


def _feature_view(materialized: bool = True) -> dict[str, Any]:
    """A FeatureView object as the API server returns it (spec and status)."""
    status: dict[str, Any] = {"offlinePath": "/data/offline/team/activity/abc"}
    if materialized:
        status["freshness"] = {"offline": "2026-01-05T09:00:00Z", "online": "2026-01-05T09:00:00Z"}
    return {
        "spec": {
            "entities": [{"name": "customer", "joinKey": "customer_id", "valueType": "INT64"}],
            "source": {"path": "/data/events", "timestampField": "ts"},
            "features": [
                {"name": "tenure", "dtype": "int64"},
                {"name": "spend", "dtype": "float64"},
            ],
            "backfill": {"start": "2026-01-01T00:00:00Z"},
        },
        "status": status,
    }


def _transformer(image: str | None = "ghcr.io/kubeloop/kubeloop:0.1.0") -> dict[str, Any]:
    container = transformer_container(
        FeatureServing(feature_view="activity", defaults={"spend": -1.0}),
        _feature_view(),
        "churn",
        Path("/state/feast"),
        "s3://feast/registry.db",
        "redis.kubeloop-system:6379",
        image,
    )
    assert isinstance(container, dict), container
    return container


@pytest.mark.parametrize("image", ["ghcr.io/kubeloop/kubeloop:0.1.0", None])
def test_a_feast_transformer_fits_kserves_types_and_the_stand_in_runs_it(
    image: str | None,
) -> None:
    """Serving from Feast: spec.transformer.containers is a KServe TransformerSpec (a PodSpec
    of Kubernetes Containers); the stand-in reads the container's args as the transformer
    does, and hands them to the predictor process that runs the preprocess."""
    body = inference_service(OWNER, "3", URIS[0], Serving(), MONITOR, _transformer(image))
    assert inference_service_problems(body) == []
    container = body["spec"]["transformer"]["containers"][0]
    assert problems(container, "V1Container", "container") == []
    assert container["command"] == ["python", "-m", fs.TRANSFORMER_MODULE]
    # The logger stays on the predictor: it logs the filled request (the served features).
    assert "logger" in body["spec"]["predictor"] and "logger" not in body["spec"]["transformer"]
    parsed = parse_isvc(body)
    assert isinstance(parsed, PredictorSpec)
    assert parsed.transformer_args == tuple(container["args"])
    spec, store, _ = parse_transformer_args(parsed.transformer_args)
    assert (spec.entity_key, spec.entity_type) == ("customer_id", "INT64")
    assert dict(spec.features) == {"tenure": "int64", "spend": "float64"}
    assert store.online_store == "redis" and store.registry_path == "s3://feast/registry.db"
    command = predictor_command(parsed, 8080)
    assert json.loads(command[command.index("--transformer-args") + 1]) == container["args"]


def test_the_stand_in_refuses_a_transformer_it_cannot_run() -> None:
    body = inference_service(OWNER, "3", URIS[0], Serving(), MONITOR, _transformer())
    other = json.loads(json.dumps(body))
    other["spec"]["transformer"]["containers"][0]["command"] = ["python", "-m", "my.transformer"]
    parsed = parse_isvc(other)
    assert isinstance(parsed, InvalidSpec) and "Feast transformer" in parsed.message
    bad = json.loads(json.dumps(body))
    args = bad["spec"]["transformer"]["containers"][0]["args"]
    args[:] = [a for a in args if not a.startswith(fs.ARG_ENTITY_KEY)]
    parsed = parse_isvc(bad)
    assert isinstance(parsed, InvalidSpec)
    assert "args" in parsed.message and fs.ARG_ENTITY_KEY in parsed.message


def test_on_a_cluster_the_transformer_needs_a_store_its_pod_reaches() -> None:
    local = transformer_container(
        FeatureServing(feature_view="activity"),
        _feature_view(),
        "churn",
        Path("/f"),
        None,
        None,
        "img",
    )
    assert isinstance(local, str) and "Redis online store and a shared Feast registry" in local
    embedded = transformer_container(
        FeatureServing(feature_view="activity"),
        _feature_view(),
        "churn",
        Path("/f"),
        None,
        None,
        None,
    )
    assert isinstance(embedded, dict)  # the embedded default: SQLite and a local registry


@pytest.mark.parametrize(
    ("features", "view", "reason"),
    [
        (FeatureServing(feature_view="activity"), None, "not found"),
        (FeatureServing(feature_view="activity"), _feature_view(False), "not been materialized"),
        (FeatureServing(feature_view="activity", features=["clicks"]), _feature_view(), "clicks"),
        (
            FeatureServing(feature_view="activity", defaults={"tenure": 0.5}),
            _feature_view(),
            "['tenure'] are integer features",
        ),
    ],
)
def test_no_transformer_until_the_feature_view_can_serve(
    features: FeatureServing, view: dict[str, Any] | None, reason: str
) -> None:
    got = transformer_container(features, view, "churn", Path("/f"), None, None, None)
    assert isinstance(got, str) and reason in got
