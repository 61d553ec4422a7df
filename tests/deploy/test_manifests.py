"""The deployment artefacts render with the real kubectl and apply cleanly to a real API server.

- `kubectl kustomize` renders every kustomization in manifests/ (real kubectl, real kustomize).
- The kustomize rendering (manifests/default, then manifests/samples) and the Helm rendering
  (helm/kubeloop through Helm's own engine, helm-python-sdk) each apply with `kubectl apply` to
  the embedded control plane (localcluster), which runs the Kubernetes API's validation; every
  applied object is then read back, and a second apply changes nothing that fails.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from kubernetes.client import ApiClient

from operators.api import KINDS_BY_NAME
from tests.deploy.test_helm_chart import assert_operator_liveness_wired, assert_pod_hardened

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
CHART_DIR = ROOT / "helm" / "kubeloop"
NAMESPACE = "kubeloop-system"
CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
}
CRD_NAMES = ("featureviews.kubeloop.io", "experiments.kubeloop.io", "mlmodels.kubeloop.io")
# Kopf's peering CRDs ship with kubeloop: the operator's peering needs them (one active operator).
PEERING_CRD_NAMES = ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")


def kubectl(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the real kubectl; a non-zero exit fails the test with kubectl's own message."""
    result = subprocess.run(
        ["kubectl", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, (
        f"kubectl {' '.join(args)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


@functools.cache
def _kustomize_output(folder: str) -> str:
    return kubectl("kustomize", str(MANIFESTS / folder))


def kustomize(folder: str) -> list[dict[str, Any]]:
    """`kubectl kustomize manifests/<folder>`, parsed (fresh objects on every call)."""
    return [doc for doc in yaml.safe_load_all(_kustomize_output(folder)) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def reference(doc: dict[str, Any]) -> list[str]:
    """`kubectl get` arguments that address one object (kind.group and name, namespace)."""
    group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
    resource = f"{doc['kind'].lower()}.{group}" if group else doc["kind"].lower()
    namespace = doc["metadata"].get("namespace")
    return [resource, doc["metadata"]["name"], *(["-n", namespace] if namespace else [])]


def assert_all_readable(docs: list[dict[str, Any]], env: dict[str, str]) -> None:
    for doc in docs:
        stored = yaml.safe_load(kubectl("get", *reference(doc), "-o", "yaml", env=env))
        assert stored["metadata"]["uid"], reference(doc)


def wait_for_crds(env: dict[str, str]) -> None:
    crds = [f"crd/{name}" for name in CRD_NAMES]
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds, env=env)


def helm_objects() -> list[dict[str, Any]]:
    with helm.Chart.load(CHART_DIR) as chart:
        rendered = chart.render(name="kubeloop", namespace=NAMESPACE, is_install=True)
    texts = [text for path, text in sorted(rendered.items()) if path.endswith(".yaml")]
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


# Built-in API groups whose types the Kubernetes client models (kubernetes==30) describe.
BUILTIN_API_VERSIONS = {
    "v1",
    "apps/v1",
    "rbac.authorization.k8s.io/v1",
    "apiextensions.k8s.io/v1",
    "networking.k8s.io/v1",
}


def unknown_fields(doc: dict[str, Any]) -> list[str]:
    """Fields of a built-in object that its Kubernetes type does not have (e.g. a typo).

    The embedded control plane stores built-in kinds without schema validation, so a misspelled
    `readOnlyRootFileSystem` would apply there and silently do nothing in a real cluster. A
    round trip through the Kubernetes client's typed models drops every unknown field.
    """
    client = ApiClient()
    typed = client._ApiClient__deserialize(doc, f"V1{doc['kind']}")  # type: ignore[attr-defined]
    return _dropped(doc, client.sanitize_for_serialization(typed), doc["kind"])


def _dropped(original: Any, round_trip: Any, path: str) -> list[str]:
    if isinstance(original, dict) and isinstance(round_trip, dict):
        return [
            found
            for key, value in original.items()
            for found in (
                _dropped(value, round_trip[key], f"{path}.{key}")
                if key in round_trip
                else [f"{path}.{key}"]
            )
        ]
    if isinstance(original, list) and isinstance(round_trip, list):
        return [
            found
            for index, (item, kept) in enumerate(zip(original, round_trip, strict=True))
            for found in _dropped(item, kept, f"{path}[{index}]")
        ]
    return []


# --------------------------------------------------------------------------- rendering


def test_default_renders_every_component_in_kubeloop_system() -> None:
    docs = kustomize("default")
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == sorted(
        ["Namespace", "ServiceAccount", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"]
        + ["Role", "RoleBinding", "ConfigMap", "Service", "Deployment", "Deployment"]
        + ["ClusterRoleBinding"]  # the monitor's system:auth-delegator (TokenReview, SAR)
        + ["ClusterRole", "ClusterRoleBinding"]  # KFP's pipeline-runner: TrainJobs (nodes > 1)
        + ["NetworkPolicy"] * 4  # manifests/network
        + ["CustomResourceDefinition"] * 5
    )
    assert set(by_kind(docs, "Namespace")) == {NAMESPACE}
    assert set(by_kind(docs, "CustomResourceDefinition")) == set(CRD_NAMES + PEERING_CRD_NAMES)
    for doc in docs:
        metadata = doc["metadata"]
        assert metadata["labels"]["app.kubernetes.io/name"] == "kubeloop", metadata["name"]
        assert metadata["labels"]["app.kubernetes.io/part-of"] == "kubeloop"
        if doc["kind"] not in ("Namespace", "CustomResourceDefinition"):
            assert metadata["name"].startswith("kubeloop-"), metadata["name"]
        if doc["kind"] not in CLUSTER_SCOPED_KINDS:
            assert metadata["namespace"] == NAMESPACE, metadata["name"]


def test_default_crds_are_the_generated_ones() -> None:
    rendered = by_kind(kustomize("default"), "CustomResourceDefinition")
    for name, crd in rendered.items():
        if name in PEERING_CRD_NAMES:
            continue
        plural = name.split(".")[0]
        generated = yaml.safe_load((ROOT / "crds" / f"kubeloop.io_{plural}.yaml").read_text())
        assert crd["spec"] == generated["spec"], name


def test_default_workloads_are_hardened_and_wired() -> None:
    docs = kustomize("default")
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {"kubeloop-operator", "kubeloop-monitor"}
    for deployment in deployments.values():
        assert_pod_hardened(deployment)
    operator = deployments["kubeloop-operator"]
    assert_operator_liveness_wired(operator)
    pod = operator["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] in by_kind(docs, "ServiceAccount")
    # The generated ConfigMap's hashed name reaches the Deployment that reads it.
    (config_name,) = by_kind(docs, "ConfigMap")
    assert {"configMapRef": {"name": config_name}} in pod["containers"][0]["envFrom"]
    # The monitor URL the operator is given is the monitor Service this rendering creates.
    config = by_kind(docs, "ConfigMap")[config_name]["data"]
    (service_name,) = by_kind(docs, "Service")
    assert config["KUBELOOP_MONITOR_URL"].startswith(f"http://{service_name}.{NAMESPACE}.svc")


@pytest.mark.parametrize("source", ["default", "dev-deps", "helm"])
def test_builtin_objects_have_only_known_fields(source: str) -> None:
    docs = helm_objects() if source == "helm" else kustomize(source)
    builtin = [doc for doc in docs if doc["apiVersion"] in BUILTIN_API_VERSIONS]
    # The KServe ClusterServingRuntime is checked in tests/deploy/test_serving_runtime.py.
    custom = [doc for doc in docs if doc["kind"] == "ClusterServingRuntime"]
    assert len(builtin) + len(custom) == len(docs)
    for doc in builtin:
        assert unknown_fields(doc) == [], doc["metadata"]["name"]


def test_unknown_field_check_catches_a_typo() -> None:
    deployment = by_kind(kustomize("default"), "Deployment")["kubeloop-operator"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFileSystem"] = True
    assert unknown_fields(deployment) == [
        "Deployment.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem"
    ]


@pytest.mark.parametrize(
    "folder",
    ["crd", "rbac", "manager", "samples", "argocd", "dev-deps", "object-storage", "monitor-claim"],
)
def test_every_kustomization_renders(folder: str) -> None:
    docs = kustomize(folder)
    assert docs, folder
    assert all(doc.get("kind") and doc["metadata"].get("name") for doc in docs)


def test_argocd_application_syncs_manifests_default_server_side() -> None:
    (application,) = kustomize("argocd")
    assert application["kind"] == "Application"
    spec = application["spec"]
    assert spec["source"]["path"] == "manifests/default"
    assert spec["destination"]["namespace"] == NAMESPACE
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert "ServerSideApply=true" in spec["syncPolicy"]["syncOptions"]
    assert (ROOT / spec["source"]["path"] / "kustomization.yaml").is_file()


def test_argocd_never_prunes_or_deletes_a_crd() -> None:
    """Deleting a CRD deletes every object of its kind: neither a prune nor deleting the
    Application (whose resources-finalizer cascades) may remove one. Argo CD's resource-level
    sync options Prune=false and Delete=false keep them."""
    (application,) = kustomize("argocd")
    synced = kustomize(application["spec"]["source"]["path"].removeprefix("manifests/"))
    crds = by_kind(synced, "CustomResourceDefinition")
    assert set(crds) == set(CRD_NAMES + PEERING_CRD_NAMES)
    for name, crd in crds.items():
        value = crd["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-options", "")
        options = {option.strip() for option in value.split(",")}
        assert {"Prune=false", "Delete=false"} <= options, name


def test_peering_crds_are_kopfs_and_the_same_in_both_renderings() -> None:
    crds = by_kind(kustomize("default"), "CustomResourceDefinition")
    with helm.Chart.load(CHART_DIR) as chart:
        chart_crds = {
            doc["metadata"]["name"]: doc
            for crd in chart.crds
            for doc in yaml.safe_load_all(crd["data"])
            if doc
        }
    for name in PEERING_CRD_NAMES:
        assert crds[name]["spec"] == chart_crds[name]["spec"], name
        spec = crds[name]["spec"]
        assert spec["group"] == "kopf.dev"  # the group Kopf >= 1.0 looks up (kopf.dev/v1)
        (version,) = spec["versions"]
        assert version["name"] == "v1" and version["served"] and version["storage"]
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True  # keep-alives live here
    assert crds["clusterkopfpeerings.kopf.dev"]["spec"]["scope"] == "Cluster"
    assert crds["kopfpeerings.kopf.dev"]["spec"]["scope"] == "Namespaced"


def test_samples_are_one_of_each_kind_and_valid() -> None:
    docs = kustomize("samples")
    assert sorted(doc["kind"] for doc in docs) == sorted(KINDS_BY_NAME)
    for doc in docs:
        KINDS_BY_NAME[doc["kind"]].spec_model.model_validate(doc["spec"])
    # The samples are examples/resources with cluster data paths: same kinds and names.
    examples = [
        yaml.safe_load(path.read_text())
        for path in sorted((ROOT / "examples" / "resources").glob("*.yaml"))
    ]
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == {
        (d["kind"], d["metadata"]["name"]) for d in examples
    }


# --------------------------------------------------------------------------- applying


def test_kustomize_rendering_applies_cleanly(kube_env: dict[str, str]) -> None:
    kubectl("apply", "-k", str(MANIFESTS / "default"), env=kube_env)
    wait_for_crds(kube_env)
    kubectl("apply", "-k", str(MANIFESTS / "samples"), env=kube_env)
    assert_all_readable(kustomize("default") + kustomize("samples"), kube_env)
    listed = kubectl("get", "featureviews,experiments,mlmodels", "-A", "-o", "name", env=kube_env)
    assert sorted(listed.split()) == sorted(
        [
            "experiment.kubeloop.io/churn",
            "featureview.kubeloop.io/user-activity",
            "mlmodel.kubeloop.io/churn",
        ]
    )
    # Applying the same rendering again is a no-op, not an error (GitOps re-syncs do this).
    kubectl("apply", "-k", str(MANIFESTS / "default"), env=kube_env)


def test_helm_rendering_applies_cleanly(kube_env: dict[str, str], tmp_path: Path) -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        crds = [crd["data"] for crd in chart.crds]
        # The embedded API server has no KServe CRDs (kind-up.sh installs KServe before the
        # chart); the ClusterServingRuntime is checked against kserve's own types in
        # tests/deploy/test_serving_runtime.py.
        no_runtime = {"servingRuntime": {"enabled": False, "name": "kubeloop-mlflow"}}
        rendered = chart.render(no_runtime, name="kubeloop", namespace=NAMESPACE, is_install=True)
    templates = [text for path, text in sorted(rendered.items()) if path.endswith(".yaml")]
    namespace_file = tmp_path / "namespace.yaml"
    crd_file, objects_file = tmp_path / "crds.yaml", tmp_path / "objects.yaml"
    # The release namespace, and KFP's, where the chart puts the storage claim (kind-up.sh
    # installs KFP before the chart).
    namespace_file.write_text(
        "\n---\n".join(
            f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"
            for name in (NAMESPACE, "kubeflow")
        )
    )
    crd_file.write_text("\n---\n".join(crds))
    objects_file.write_text("\n---\n".join(templates))

    # What `helm install --create-namespace` does: namespace, then crds/, then the templates.
    kubectl("apply", "-f", str(namespace_file), env=kube_env)
    kubectl("apply", "-f", str(crd_file), env=kube_env)
    wait_for_crds(kube_env)
    kubectl("apply", "-f", str(objects_file), env=kube_env)

    objects = [o for o in helm_objects() if o["kind"] != "ClusterServingRuntime"]
    assert len(objects) >= 10
    assert_all_readable(objects, kube_env)
    kubectl("apply", "-k", str(MANIFESTS / "samples"), env=kube_env)
    kubectl("apply", "-f", str(objects_file), env=kube_env)
