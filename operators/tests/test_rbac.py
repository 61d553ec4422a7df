"""RBAC grants exactly the permission table in operators/permissions.py — nothing less, nothing more.

Both deployment paths are checked: the kustomize RBAC in manifests/rbac/ and the Helm chart's
rendered rbac.yaml. A missing grant breaks the operators in a real cluster; an extra grant is
privilege nobody asked for.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from pydantic import ValidationError

from operators import permissions
from operators.api import ALL_KINDS
from operators.permissions import PERMISSIONS, Permission, Scope

ROOT = Path(__file__).resolve().parents[2]
RBAC_DIR = ROOT / "manifests" / "rbac"
CHART_DIR = ROOT / "helm" / "kubeloop"
COMPONENT = "app.kubernetes.io/component"
RBAC_KINDS = {"ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"}


def _documents(texts: list[str]) -> list[dict[str, Any]]:
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


RUNNER = "pipeline-runner"


@functools.cache
def kustomize_all_rbac() -> list[dict[str, Any]]:
    paths = sorted(p for p in RBAC_DIR.glob("*.yaml") if p.name != "kustomization.yaml")
    return _documents([path.read_text() for path in paths])


def component(doc: dict[str, Any]) -> str | None:
    return doc["metadata"].get("labels", {}).get(COMPONENT)


def kustomize_rbac() -> list[dict[str, Any]]:
    return [d for d in kustomize_all_rbac() if component(d) != RUNNER]


@functools.cache
def helm_all_rbac() -> list[dict[str, Any]]:
    with helm.Chart.load(CHART_DIR) as chart:
        rendered = chart.render(name="kubeloop", namespace="kubeloop-system")
    docs = _documents([text for path, text in rendered.items() if path.endswith(".yaml")])
    return [d for d in docs if d["kind"] in RBAC_KINDS]


def helm_rbac() -> list[dict[str, Any]]:
    # The monitor's own binding (system:auth-delegator, for TokenReview/SubjectAccessReview) and
    # the pipeline runner's grant are not the operator's RBAC.
    return [d for d in helm_all_rbac() if component(d) not in ("monitor", RUNNER)]


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc.get("kind") == kind]
    assert len(found) == 1, f"expected exactly one {kind}, found {len(found)}"
    return found[0]


SOURCES = {"kustomize": kustomize_rbac, "helm": helm_rbac}
ALL_SOURCES = {"kustomize": kustomize_all_rbac, "helm": helm_all_rbac}


@pytest.mark.parametrize("source", SOURCES)
def test_the_pipeline_runner_identity_holds_the_trainjob_grant(source: str) -> None:
    """The train_ddp step creates TrainJobs from its KFP pod, which runs as KFP's
    pipeline-runner ServiceAccount: that identity needs the grant, the operator does not."""
    docs = [d for d in ALL_SOURCES[source]() if component(d) == RUNNER]
    role, binding = only(docs, "ClusterRole"), only(docs, "ClusterRoleBinding")
    assert permissions.grants_of(role["rules"]) == permissions.required_grants(
        Scope.PIPELINE_RUNNER
    )
    assert ("trainer.kubeflow.org", "trainjobs", "create") in permissions.grants_of(role["rules"])
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"}
    ]
    operator_role = only(SOURCES[source](), "ClusterRole")
    assert not any(
        resource == "trainjobs" for _, resource, _ in permissions.grants_of(operator_role["rules"])
    )


@pytest.mark.parametrize("source", SOURCES)
def test_cluster_role_grants_exactly_the_cluster_table(source: str) -> None:
    cluster_role = only(SOURCES[source](), "ClusterRole")
    granted = permissions.grants_of(cluster_role["rules"])
    required = permissions.required_grants(Scope.CLUSTER)
    assert not required - granted, f"missing from {source} ClusterRole: {required - granted}"
    assert not granted - required, f"not in the table but granted: {granted - required}"


@pytest.mark.parametrize("source", SOURCES)
def test_namespace_role_grants_exactly_the_namespaced_table(source: str) -> None:
    role = only(SOURCES[source](), "Role")
    granted = permissions.grants_of(role["rules"])
    required = permissions.required_grants(Scope.OPERATOR_NAMESPACE)
    assert granted == required


@pytest.mark.parametrize("source", SOURCES)
def test_no_other_roles_and_bindings_point_at_the_operator(source: str) -> None:
    docs = SOURCES[source]()
    assert sorted(doc["kind"] for doc in docs if doc["kind"] in RBAC_KINDS) == sorted(RBAC_KINDS)
    cluster_role, role = only(docs, "ClusterRole"), only(docs, "Role")
    operator_accounts = set()
    for binding_kind, role_doc in (("ClusterRoleBinding", cluster_role), ("RoleBinding", role)):
        binding = only(docs, binding_kind)
        assert binding["roleRef"]["kind"] == role_doc["kind"]
        assert binding["roleRef"]["name"] == role_doc["metadata"]["name"]
        subjects = binding["subjects"]
        assert [s["kind"] for s in subjects] == ["ServiceAccount"]
        operator_accounts.add(subjects[0]["name"])
    # Both bindings go to the one operator account, never to the monitor's.
    assert len(operator_accounts) == 1
    assert "monitor" not in operator_accounts.pop()


@pytest.mark.parametrize("scope", list(Scope))
def test_rendered_rules_are_the_table_rows_of_their_scope(scope: Scope) -> None:
    rows = [row for row in PERMISSIONS if row.scope == scope]
    rules = permissions.rules_for(scope)
    assert rows, f"no permission in scope {scope}"
    for rule, row in zip(rules, rows, strict=True):
        assert rule["apiGroups"] == [row.api_group]
        assert rule["resources"] == list(row.resources)
        assert set(rule["verbs"]) == set(row.verbs)


def test_table_covers_every_kubeloop_kind_with_its_subresources() -> None:
    plurals = {kind.plural for kind in ALL_KINDS}
    granted = {
        (group, resource)
        for group, resource, _verb in permissions.required_grants(Scope.CLUSTER)
        if group == "kubeloop.io"
    }
    expected = {
        ("kubeloop.io", f"{plural}{suffix}")
        for plural in plurals
        for suffix in ("", "/status", "/finalizers")
    }
    assert granted == expected


@pytest.mark.parametrize(
    ("group", "resource", "verb", "allowed"),
    [
        ("serving.kserve.io", "inferenceservices", "watch", True),
        ("networking.istio.io", "virtualservices", "patch", True),
        ("coordination.k8s.io", "leases", "update", True),
        ("kubeloop.io", "mlmodels/status", "patch", True),
        # The operators never create or delete a user's resources, nor read secrets.
        ("kubeloop.io", "mlmodels", "delete", False),
        ("kubeloop.io", "experiments", "create", False),
        ("", "secrets", "get", False),
        ("", "configmaps", "list", False),
        ("trainer.kubeflow.org", "trainjobs", "update", False),
    ],
)
def test_is_granted_answers_from_the_table(
    group: str, resource: str, verb: str, allowed: bool
) -> None:
    assert permissions.is_granted(group, resource, verb) is allowed


@pytest.mark.parametrize(
    "rule",
    [
        {"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["*"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["pods/*"], "verbs": ["get"]},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "resourceNames": ["x"], "verbs": ["get"]},
    ],
)
def test_grants_of_rejects_wildcards_and_rules_it_cannot_flatten(rule: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"rules\[0\]"):
        permissions.grants_of([rule])


@pytest.mark.parametrize(
    ("resources", "verbs", "message"),
    [
        (("*",), ("get",), "wildcard"),
        (("pods",), ("*",), "wildcard"),
        (("pods",), ("escalate-everything",), "unknown verb"),
        ((), ("get",), "at least one"),
    ],
)
def test_table_rows_reject_wildcards_and_unknown_verbs(
    resources: tuple[str, ...], verbs: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Permission(api_group="", resources=resources, verbs=verbs, why="test")


def test_every_row_says_why() -> None:
    assert all(len(row.why) > 20 for row in PERMISSIONS)
    assert all(row.scope in set(Scope) for row in PERMISSIONS)
