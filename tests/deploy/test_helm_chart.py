"""The Helm chart lints and renders with Helm's own engine (helm-python-sdk, no helm binary).

Also: the rendered workloads are hardened (non-root, read-only root filesystem, no capabilities,
seccomp, requests and limits), values reach the objects they configure, and the chart's CRDs
are the generated ones.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "kubeloop"
CRD_FILES = (
    "kubeloop.io_featureviews.yaml",
    "kubeloop.io_experiments.yaml",
    "kubeloop.io_mlmodels.yaml",
)
RELEASE, NAMESPACE = "kubeloop", "kubeloop-system"


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart renders (NOTES.txt left out), in template order."""
    with helm.Chart.load(CHART_DIR) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return [
        doc
        for path, text in sorted(rendered.items())
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


@functools.cache
def default_render() -> tuple[dict[str, Any], ...]:
    return tuple(render())


def find(docs: Any, kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"{kind}/{name} not rendered; have {[d['kind'] for d in docs]}")


def assert_pod_hardened(deployment: dict[str, Any]) -> None:
    """The pod meets the `restricted` Pod Security Standard and has resource bounds.

    Shared with tests/deploy/test_manifests.py, which checks the kustomize rendering.
    """
    name = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    pod_security = pod.get("securityContext", {})
    assert pod_security.get("runAsNonRoot") is True, f"{name}: runAsNonRoot"
    assert pod_security.get("runAsUser", 0) != 0, f"{name}: runAsUser must not be root"
    assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
    mounts_needed = {"/tmp"}
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    for container in pod["containers"]:
        where = f"{name}/{container['name']}"
        security = container.get("securityContext", {})
        assert security.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem"
        assert security.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation"
        assert security.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: drop ALL"
        assert not security.get("capabilities", {}).get("add"), f"{where}: adds capabilities"
        assert not security.get("privileged"), f"{where}: privileged"
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{where}: {bound}"
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        for path in mounts_needed:
            assert path in mounts, f"{where}: {path} must be a writable mount"
            assert "emptyDir" in volumes[mounts[path]], f"{where}: {path} must be an emptyDir"


def assert_operator_liveness_wired(deployment: dict[str, Any]) -> None:
    """The kubelet probes the very endpoint the operator is told to serve (Kopf --liveness)."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    liveness_args = [a for a in container.get("args", []) if a.startswith("--liveness=")]
    assert len(liveness_args) == 1, container.get("args")
    url = liveness_args[0].removeprefix("--liveness=")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # Liveness and readiness both probe Kopf's endpoint: it answers only after the startup
    # handlers ran, so Ready means configured; no other server runs in the operator's pod.
    for kind in ("livenessProbe", "readinessProbe"):
        assert kind in container, f"operator has no {kind}"
        probe = container[kind]["httpGet"]
        assert url == f"http://0.0.0.0:{ports[probe['port']]}{probe['path']}", kind
    # Kopf's peering decides which operator acts; --standalone would switch it off.
    assert "--standalone" not in container.get("args", []) + container.get("command", [])


def test_chart_lints_with_zero_errors_and_warnings() -> None:
    report = helm.lint(CHART_DIR, strict=True, namespace=NAMESPACE, kube_version="v1.32.0")
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    # Severity 2 = warning, 3 = error; info (1) such as "icon is recommended" is fine.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


def test_lint_reports_a_broken_template(tmp_path: Path) -> None:
    """The lint check above can fail: a chart with a template error is reported."""
    with helm.Chart.load(CHART_DIR) as chart:
        copy = Path(chart.save_dir(tmp_path))
    (copy / "templates" / "broken.yaml").write_text("kind: {{ .Values.nope.missing }\n")
    report = helm.lint(copy, strict=True)
    assert report["errors"] or any(m["severity"] == 3 for m in report["messages"])


CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def cluster_scoped_names(name: str, namespace: str) -> set[tuple[str, str]]:
    with helm.Chart.load(CHART_DIR) as chart:
        rendered = chart.render(None, name=name, namespace=namespace)
    docs = [
        doc
        for path, text in rendered.items()
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    return {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in CLUSTER_SCOPED}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("kubeloop", "team-a"), ("kubeloop", "team-b")),  # same release name, two namespaces
        (("kubeloop", "ml"), ("kubeloop-canary", "ml")),
        (("prod", "ml"), ("staging", "ml")),
    ],
)
def test_two_releases_share_no_cluster_scoped_object(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    """Release names are unique per namespace only: a ClusterRole named after the release alone
    would be taken over (or refused) by the second install."""
    a, b = cluster_scoped_names(*first), cluster_scoped_names(*second)
    assert a and b
    assert not a & b, a & b


def test_chart_metadata() -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        metadata = chart.metadata
    assert metadata["apiVersion"] == "v2"
    assert metadata["name"] == "kubeloop"
    assert metadata["appVersion"] == "0.1.0"


def test_default_render_has_every_component_in_the_release_namespace() -> None:
    docs = default_render()
    kinds = sorted((doc["kind"], doc["metadata"]["name"]) for doc in docs)
    assert kinds == sorted(
        [
            ("ClusterRole", "kubeloop-system-kubeloop-operator"),
            ("ClusterRoleBinding", "kubeloop-system-kubeloop-operator"),
            # TokenReview, SAR
            ("ClusterRoleBinding", "kubeloop-system-kubeloop-monitor-auth-delegator"),
            # KFP's pipeline-runner creates TrainJobs (nodes > 1)
            ("ClusterRole", "kubeloop-system-kubeloop-pipeline-runner"),
            ("ClusterRoleBinding", "kubeloop-system-kubeloop-pipeline-runner"),
            ("ClusterServingRuntime", "kubeloop-mlflow"),  # KServe runtime, cluster-scoped
            ("ConfigMap", "kubeloop-operator-config"),
            ("NetworkPolicy", "kubeloop-default-deny"),
            ("NetworkPolicy", "kubeloop-operator-egress"),
            ("NetworkPolicy", "kubeloop-monitor-ingress"),
            ("NetworkPolicy", "kubeloop-monitor-egress"),
            ("Deployment", "kubeloop-monitor"),
            ("Deployment", "kubeloop-operator"),
            ("Role", "kubeloop-leader-election"),
            ("RoleBinding", "kubeloop-leader-election"),
            ("Service", "kubeloop-monitor"),
            ("ServiceAccount", "kubeloop-monitor"),
            ("ServiceAccount", "kubeloop-operator"),
            # The storage root's claim, in KFP's namespace (tests/deploy/test_storage.py)
            ("PersistentVolumeClaim", "kubeloop-storage"),
        ]
    )
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "kubeloop"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        if doc["kind"] == "PersistentVolumeClaim" and doc["metadata"]["name"] == "kubeloop-storage":
            assert doc["metadata"]["namespace"] == "kubeflow"  # where the task pods mount it
        elif not doc["kind"].startswith("Cluster"):
            assert doc["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize("name", ["kubeloop-operator", "kubeloop-monitor"])
def test_workloads_are_hardened(name: str) -> None:
    assert_pod_hardened(find(default_render(), "Deployment", name))


def test_operator_runs_kubeloop_operator_with_liveness_and_the_app_version_image() -> None:
    deployment = find(default_render(), "Deployment", "kubeloop-operator")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["kubeloop", "operator"]
    assert container["image"] == "ghcr.io/kubeloop/kubeloop:0.1.0"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "kubeloop-operator"
    assert_operator_liveness_wired(deployment)


def test_monitor_serves_its_port_behind_the_service() -> None:
    docs = default_render()
    deployment = find(docs, "Deployment", "kubeloop-monitor")
    service = find(docs, "Service", "kubeloop-monitor")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["command"] == [
        "python",
        "-m",
        "services.monitor",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--data-dir",
        "/data",
    ]
    # The monitor reviews tokens (TokenReview/SubjectAccessReview): it needs its API token.
    assert pod["spec"]["automountServiceAccountToken"] is True
    assert container["args"][:3] == ["--ingest-port", "8081", "--network-ingest"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_backend_values_reach_the_operator_environment() -> None:
    docs = render(
        {
            "kfp": {"host": "http://kfp.example:8888"},
            "mlflow": {"trackingUri": "http://mlflow.example:5000"},
            "feast": {
                "registry": "s3://bucket/registry.db",
                "onlineStore": {"redis": {"connectionString": "redis.example:6379"}},
            },
            "prometheus": {"enabled": True, "url": "http://prom.example:9090"},
            "image": {"tag": "dev"},
        }
    )
    config = find(docs, "ConfigMap", "kubeloop-operator-config")["data"]
    assert config["KUBELOOP_PIPELINE_BACKEND"] == "kfp"
    assert config["KUBELOOP_KFP_HOST"] == "http://kfp.example:8888"
    assert config["KUBELOOP_MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"
    assert config["KUBELOOP_FEAST_REGISTRY"] == "s3://bucket/registry.db"
    assert config["KUBELOOP_FEAST_ONLINE_STORE"] == "redis.example:6379"
    assert config["KUBELOOP_PROMETHEUS_URL"] == "http://prom.example:9090"
    assert config["KUBELOOP_MONITOR_URL"] == (
        "http://kubeloop-monitor.kubeloop-system.svc.cluster.local:8080"
    )
    operator = find(docs, "Deployment", "kubeloop-operator")
    container = operator["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/kubeloop/kubeloop:dev"
    assert {"configMapRef": {"name": "kubeloop-operator-config"}} in container["envFrom"]


def test_without_kfp_host_pipelines_run_locally() -> None:
    config = find(render({"kfp": {"host": ""}}), "ConfigMap", "kubeloop-operator-config")
    assert config["data"]["KUBELOOP_PIPELINE_BACKEND"] == "local"


def test_service_monitor_only_when_asked() -> None:
    assert not [d for d in default_render() if d["kind"] == "ServiceMonitor"]
    docs = render({"prometheus": {"enabled": True, "serviceMonitor": {"enabled": True}}})
    monitor = find(docs, "ServiceMonitor", "kubeloop-monitor")
    service = find(docs, "Service", "kubeloop-monitor")
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_monitor_persistence_creates_a_claim() -> None:
    docs = render({"monitor": {"persistence": {"enabled": True, "size": "1Gi"}}})
    claim = find(docs, "PersistentVolumeClaim", "kubeloop-monitor")
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    pod = find(docs, "Deployment", "kubeloop-monitor")["spec"]["template"]["spec"]
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data == {"name": "data", "persistentVolumeClaim": {"claimName": "kubeloop-monitor"}}


def test_rbac_and_monitor_can_be_turned_off() -> None:
    docs = render({"rbac": {"create": False}, "monitor": {"enabled": False}})
    kinds = {doc["kind"] for doc in docs}
    assert kinds == {
        "ConfigMap",
        "Deployment",
        "ServiceAccount",
        "NetworkPolicy",
        "ClusterServingRuntime",
        "PersistentVolumeClaim",  # the storage root's claim
    }
    # Without a monitor, only the operator's policies remain.
    policies = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "NetworkPolicy"}
    assert policies == {"kubeloop-default-deny", "kubeloop-operator-egress"}
    config = find(docs, "ConfigMap", "kubeloop-operator-config")
    assert config["data"]["KUBELOOP_MONITOR_URL"] == ""


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"operator": {"replicas": "many"}}, "/operator/replicas"),
        ({"kfp": {"host": "ml-pipeline:8888"}}, "/kfp/host"),
        ({"feast": {"onlineStore": {"type": "dynamodb"}}}, "/feast/onlineStore/type"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(values: dict[str, Any], field: str) -> None:
    """values.schema.json makes `helm install` refuse bad values with the field's path."""
    with pytest.raises(helm.HelmValuesError, match=field):
        render(values)


def test_chart_crds_are_the_generated_ones() -> None:
    """helm/kubeloop/crds, manifests/crd/bases and crds/ hold the same generated files (plus
    Kopf's peering CRDs, checked in tests/deploy/test_manifests.py)."""
    with helm.Chart.load(CHART_DIR) as chart:
        chart_crds = {crd["filename"].rsplit("/", 1)[-1]: crd["data"] for crd in chart.crds}
    assert sorted(chart_crds) == sorted([*CRD_FILES, "kopf.dev_peerings.yaml"])
    for name in CRD_FILES:
        generated = (ROOT / "crds" / name).read_text()
        assert (ROOT / "manifests" / "crd" / "bases" / name).read_text() == generated, name
        assert yaml.safe_load(chart_crds[name]) == yaml.safe_load(generated), name
        crd = yaml.safe_load(generated)
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["spec"]["group"] == "kubeloop.io"
