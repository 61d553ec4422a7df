"""Every built-in object kubeloop renders (kustomize and Helm) validates against the real
Kubernetes OpenAPI schemas of the versions we support, strictly: an unknown or misspelt
field is an error, as `kubectl apply --validate=strict` makes it on a cluster.

The schemas are kubernetes-validate's (github.com/willthames/kubernetes-validate, generated
from each release's OpenAPI); custom resources (CRDs, KServe, Istio) are checked elsewhere
against their own CRD schemas.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.test_helm_chart import render
from tests.deploy.test_manifests import BUILTIN_API_VERSIONS, kustomize

VERSIONS = ["1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0"]


def _builtins(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in documents if d["apiVersion"] in BUILTIN_API_VERSIONS]


# Every optional part of the chart switched on, with a value in every optional list and map, so
# each conditional block of the templates is rendered and validated.
ALL_FEATURES: dict[str, Any] = {
    "imagePullSecrets": [{"name": "registry"}],
    "operator": {
        "extraArgs": ["--verbose"],
        "extraEnv": [{"name": "EXTRA", "value": "1"}],
        "envFromSecret": "kubeloop-credentials",
        "podAnnotations": {"example.com/a": "b"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}
                    ]
                }
            }
        },
    },
    "monitor": {
        "storageClaim": "kubeloop-storage-rwx",
        "persistence": {"enabled": True, "storageClass": "standard"},
        "podAnnotations": {"example.com/a": "b"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
    },
    "storage": {
        "credentialsSecret": "kubeloop-storage-credentials",
        "claim": {"create": True, "storageClass": "standard"},
    },
    "training": {"sharedDir": "pvc://kubeloop-storage/shared"},
    "mlflow": {"artifactsDestination": "pvc://mlflow-artifacts/artifacts"},
    "prometheus": {
        "enabled": True,
        "url": "http://prometheus.monitoring:9090",
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    },
}


# Object-storage roots: the credentials Secret's environment (s3) and mounted key file (gs)
# in the operator and the monitor (tests/deploy/test_object_storage.py).
OBJECT_STORAGE: list[dict[str, Any]] = [
    {"storage": {"uri": f"{scheme}://bucket/kubeloop", "credentialsSecret": "credentials"}}
    for scheme in ("s3", "gs")
]


def _rendered(source: str) -> list[dict[str, Any]]:
    if source == "kustomize":
        return _builtins(kustomize("default"))
    if source == "kustomize-overlays":
        return _builtins(kustomize("object-storage")) + _builtins(kustomize("monitor-claim"))
    if source == "helm-all-features":
        return _builtins(render(ALL_FEATURES))
    if source == "helm-object-storage":
        return [d for values in OBJECT_STORAGE for d in _builtins(render(values))]
    return _builtins(render({})) + _builtins(render({"networkPolicy": {"enabled": False}}))


SOURCES = ["kustomize", "kustomize-overlays", "helm", "helm-all-features", "helm-object-storage"]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("version", VERSIONS)
def test_rendered_builtins_validate_strictly(source: str, version: str) -> None:
    documents = _rendered(source)
    kinds = {d["kind"] for d in documents}
    assert {"NetworkPolicy", "Deployment", "ServiceAccount"} <= kinds, kinds
    problems = []
    for document in documents:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{document['kind']}/{document['metadata']['name']}"
            problems.append(f"{name}: {error.message} at {list(error.path)}")
    assert problems == []


def test_a_misspelt_field_is_caught() -> None:
    """The check can fail: a NetworkPolicy with a typo in its spec is refused."""
    policy = next(d for d in _rendered("kustomize") if d["kind"] == "NetworkPolicy")
    broken = {**policy, "spec": {**policy["spec"], "podSelecter": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)
