"""The KServe runtime that serves kubeloop's models (issue #13, item 3), as shipped in the Helm
chart and in kustomize (manifests/runtime):

- it fits KServe 0.20's ClusterServingRuntime type field by field, checked against the
  ``kserve`` package's own models (``V1alpha1ServingRuntimeSpec`` …, their ``attribute_map``s;
  Kubernetes' for the container), so a misspelt field fails here instead of being pruned;
- it auto-selects for ``modelFormat: mlflow``, speaks v1 and v2, runs the kubeloop image;
- its args name the MLModel (the annotation the operator writes on every per-version
  InferenceService) as the served model, and the image's predictor accepts them;
- the two renderings agree, and ``scripts/kind-up.sh`` installs KServe's runtime configs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kserve
import kubernetes.client
import pytest
import yaml

from contracts import kube
from contracts.kserve_runtime import MODEL_DIR, RUNTIME_HTTP_PORT, RUNTIME_NAME
from operators.api.mlmodel import Serving
from operators.backends.serving import Owner, inference_service
from tests.deploy.test_helm_chart import render
from tests.deploy.test_manifests import kustomize

ROOT = Path(__file__).resolve().parents[2]
KIND = "ClusterServingRuntime"


def unknown_fields(value: Any, type_name: str, path: str) -> list[str]:
    """Keys the OpenAPI model ``type_name`` (kserve's, else Kubernetes') does not define."""
    if type_name.startswith("list["):
        inner = type_name[5:-1]
        return [
            f for i, item in enumerate(value) for f in unknown_fields(item, inner, f"{path}[{i}]")
        ]
    if type_name.startswith("dict("):
        inner = type_name[5:-1].split(", ", 1)[1]
        return [f for k, item in value.items() for f in unknown_fields(item, inner, f"{path}.{k}")]
    model = getattr(kserve, type_name, None) or getattr(kubernetes.client, type_name, None)
    if model is None:  # str, int, bool, object
        return []
    by_json = {json_key: attr for attr, json_key in model.attribute_map.items()}
    found = []
    for key, item in value.items():
        if key not in by_json:
            found.append(f"{path}.{key}")
        else:
            found += unknown_fields(item, model.openapi_types[by_json[key]], f"{path}.{key}")
    return found


def runtimes() -> dict[str, dict[str, Any]]:
    helm = [d for d in render() if d["kind"] == KIND]
    kustomized = [d for d in kustomize("runtime") if d["kind"] == KIND]
    assert len(helm) == 1 and len(kustomized) == 1
    return {"helm": helm[0], "kustomize": kustomized[0]}


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    return runtimes()


@pytest.mark.parametrize("source", ["helm", "kustomize"])
def test_runtime_fits_kserve_types(rendered: dict[str, dict[str, Any]], source: str) -> None:
    runtime = rendered[source]
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert unknown_fields(runtime, "V1alpha1ClusterServingRuntime", KIND) == []
    assert runtime["metadata"]["name"] == RUNTIME_NAME
    spec = runtime["spec"]
    assert spec["protocolVersions"] == ["v1", "v2"]
    assert {"name": "mlflow", "autoSelect": True, "priority": 2} in spec["supportedModelFormats"]
    (container,) = spec["containers"]
    # KServe finds the model server container by this name.
    assert container["name"] == "kserve-container"
    assert container["image"].startswith("ghcr.io/kubeloop/kubeloop:")
    assert container["ports"] == [{"containerPort": RUNTIME_HTTP_PORT, "protocol": "TCP"}]


def test_a_misspelt_runtime_field_is_caught(rendered: dict[str, dict[str, Any]]) -> None:
    runtime = yaml.safe_load(yaml.safe_dump(rendered["kustomize"]))
    runtime["spec"]["supportedModelFormats"][0]["autoselect"] = True
    runtime["spec"]["containers"][0]["imagePullpolicy"] = "Always"
    assert sorted(unknown_fields(runtime, "V1alpha1ClusterServingRuntime", KIND)) == [
        f"{KIND}.spec.containers[0].imagePullpolicy",
        f"{KIND}.spec.supportedModelFormats[0].autoselect",
    ]


def test_helm_and_kustomize_ship_the_same_runtime(rendered: dict[str, dict[str, Any]]) -> None:
    helm, kustomized = rendered["helm"]["spec"], rendered["kustomize"]["spec"]
    assert helm == kustomized


def _expand(arg: str, metadata: dict[str, Any]) -> str:
    """KServe's expansion (Go text/template over the InferenceService's metadata) of the two
    forms the runtime uses: ``{{.Name}}``-style fields and ``{{index .Annotations `key`}}``."""

    def one(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        indexed = re.fullmatch(r"index \.Annotations `([^`]+)`", expression)
        if indexed:
            return str(metadata.get("annotations", {}).get(indexed.group(1), ""))
        field = re.fullmatch(r"\.(Name|Namespace)", expression)
        assert field, f"unexpected template {expression!r}"
        return str(metadata[field.group(1).lower()])

    return re.sub(r"\{\{(.*?)\}\}", one, arg)


def test_every_version_serves_under_the_mlmodel_name(rendered: dict[str, dict[str, Any]]) -> None:
    from localcluster.serving.predictor import parse_args

    (container,) = rendered["helm"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "localcluster.serving.predictor"]
    owner = Owner(namespace="shop", name="churn", uid="u")
    for version in ("1", "2"):
        isvc = inference_service(owner, version, "s3://b/m", Serving(), None)
        args = parse_args([_expand(a, isvc["metadata"]) for a in container["args"]])
        # The route forwards /v2/models/churn/infer unchanged to whichever version it picks.
        assert args.model_name == owner.name == isvc["metadata"]["annotations"][kube.MLMODEL_LABEL]
        assert args.model_version == version
        assert args.inference_service == f"churn-v{version}" and args.namespace == "shop"
        assert args.model_uri == MODEL_DIR and args.http_port == RUNTIME_HTTP_PORT


def test_runtime_can_be_left_out_of_a_release() -> None:
    docs = render({"servingRuntime": {"enabled": False, "name": RUNTIME_NAME}})
    assert KIND not in {d["kind"] for d in docs}


def test_artifacts_destination_reaches_the_operator() -> None:
    docs = render({"mlflow": {"artifactsDestination": "s3://mlflow/artifacts"}})
    (config,) = [
        d for d in docs if d["kind"] == "ConfigMap" and "operator" in d["metadata"]["name"]
    ]
    assert config["data"]["KUBELOOP_MLFLOW_ARTIFACTS_DESTINATION"] == "s3://mlflow/artifacts"
    default = [d for d in render() if d["kind"] == "ConfigMap"]
    assert all("KUBELOOP_MLFLOW_ARTIFACTS_DESTINATION" not in d["data"] for d in default)


def test_kind_up_installs_kserve_runtime_configs() -> None:
    script = (ROOT / "scripts" / "kind-up.sh").read_text()
    body = script[script.index("install_kserve() {") :]
    body = body[: body.index("\n}\n")]
    assert "oci://ghcr.io/kserve/charts/kserve-runtime-configs" in body
    assert '--version "$KSERVE_VERSION"' in body.split("kserve-runtime-configs", 1)[1]
