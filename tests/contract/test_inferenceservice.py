"""The InferenceService bodies the MLModel operator writes, against KServe 0.20's own types
(the ``kserve`` package's models, the version ``scripts/kind-up.sh`` installs), and the local
stand-in refusing what those types refuse.

Breaks of issue #13 covered here: 3 (the storageUri is one KServe's storage initializer
fetches, the runtime is the one the chart ships) and 5 (the logger carries metadataHeaders and
metadataAnnotations, fields KServe's LoggerSpec defines).
"""

from __future__ import annotations

from typing import Any

import pytest
from kserve import V1beta1InferenceService

from contracts.kserve_runtime import RUNTIME_NAME, kserve_can_fetch
from localcluster.serving.inferenceservice import InvalidSpec, PredictorSpec, parse_isvc
from localcluster.serving.kserve_types import inference_service_problems, problems
from operators.api.mlmodel import Serving, ServingResources
from operators.backends.serving import Owner, inference_service

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
