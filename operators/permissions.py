"""The one declared table of every Kubernetes permission the kubeloop operators use.

RBAC in `manifests/rbac/` and in the Helm chart is derived from this table (tests prove both
grant exactly it), and a runtime audit can ask `is_granted()` before an API call. Adding an API
call to an operator therefore means adding a row here first — with the reason it is needed.

Two scopes: most rows go into the operator's ClusterRole (the operators watch every namespace);
the rows that only concern the operator's own coordination objects go into a Role in the
operator's namespace, so no cluster-wide write access to leases or peerings is handed out.

Run `python -m operators.permissions` to print the rules as YAML.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.auth import MLMODELS
from contracts.kube import GROUP, ISVC_GROUP, ISVC_PLURAL, VS_GROUP, VS_PLURAL

# A read-only view: what Kopf needs to discover and follow a resource.
READ = ("get", "list", "watch")
# Full lifecycle of an object the operators own as a child of a kubeloop resource.
CRUD_WATCH = ("get", "list", "watch", "create", "update", "patch", "delete")

# The order `kubectl` and the API docs use; rendered rules list verbs in this order so the YAML
# we commit is stable and readable.
VERB_ORDER = (
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
)


class Scope(StrEnum):
    """Where a permission is granted."""

    CLUSTER = "cluster"  # ClusterRole + ClusterRoleBinding
    OPERATOR_NAMESPACE = "operator-namespace"  # Role + RoleBinding in the operator's namespace
    # A ClusterRole + ClusterRoleBinding for Kubeflow Pipelines' run identity (the
    # `pipeline-runner` ServiceAccount KFP's task pods run as), not for the operator: some API
    # calls are made by pipeline steps, not by the operators.
    PIPELINE_RUNNER = "pipeline-runner"


class Permission(BaseModel):
    """One row of the table: an API group, the resources in it, the verbs, and why."""

    model_config = ConfigDict(frozen=True)

    api_group: str = Field(description='API group; "" is the core group')
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    scope: Scope = Scope.CLUSTER
    why: str

    @field_validator("resources", "verbs")
    @classmethod
    def _no_wildcards(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if not names:
            raise ValueError("must name at least one entry")
        for name in names:
            if "*" in name:
                raise ValueError(f"wildcard {name!r} is not allowed: name each one")
        return names

    @field_validator("verbs")
    @classmethod
    def _known_verbs(cls, verbs: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [verb for verb in verbs if verb not in VERB_ORDER]
        if unknown:
            raise ValueError(f"unknown verb(s) {unknown}; known: {list(VERB_ORDER)}")
        return verbs


KUBELOOP_GROUP = GROUP
KUBELOOP_PLURALS = ("featureviews", "experiments", MLMODELS)

PERMISSIONS: tuple[Permission, ...] = (
    # --- our own resources -------------------------------------------------------------------
    Permission(
        api_group=KUBELOOP_GROUP,
        resources=KUBELOOP_PLURALS,
        verbs=("get", "list", "watch", "patch"),
        why="Kopf watches them and patches metadata (finalizer, its kubeloop.io/ bookkeeping "
        "annotations); the MLModel operator annotates an Experiment to request a retrain. "
        "The operators never create, replace or delete a user's resource.",
    ),
    Permission(
        api_group=KUBELOOP_GROUP,
        resources=tuple(f"{plural}/status" for plural in KUBELOOP_PLURALS),
        verbs=("get", "patch"),
        why="Progress lives in status, written through the status subresource.",
    ),
    Permission(
        api_group=KUBELOOP_GROUP,
        resources=tuple(f"{plural}/finalizers" for plural in KUBELOOP_PLURALS),
        verbs=("update",),
        why="Owned children carry ownerReferences with blockOwnerDeletion=true, which the "
        "OwnerReferencesPermissionEnforcement admission plugin allows only with update on "
        "the owner's finalizers subresource.",
    ),
    # --- core --------------------------------------------------------------------------------
    Permission(
        api_group="",
        resources=("events",),
        verbs=("create", "patch"),
        why="Kopf and the handlers post Events on the resources they reconcile.",
    ),
    Permission(
        api_group="",
        resources=("configmaps",),
        verbs=("get", "create", "update", "patch", "delete"),
        why="Owned ConfigMaps carrying pipeline and Feast (feature_store.yaml) configuration. "
        "No list/watch: the operators address their own ConfigMaps by name and need not read "
        "every ConfigMap in the cluster.",
    ),
    Permission(
        api_group="",
        resources=("services",),
        verbs=("get", "create"),
        why="The MLModel operator owns a selector-less Service per MLModel, so the "
        "VirtualService host <mlmodel>.<ns>.svc.cluster.local resolves and Istio routes it. "
        "Created once, read back on a conflict, never changed; garbage collection deletes it "
        "with the MLModel (ownerReference), so no update, delete or list.",
    ),
    Permission(
        api_group="",
        resources=("namespaces",),
        verbs=READ,
        why="Kopf follows namespaces to serve every namespace it is told to watch.",
    ),
    Permission(
        api_group="apiextensions.k8s.io",
        resources=("customresourcedefinitions",),
        verbs=READ,
        why="Kopf scans CRDs to resolve the resources it serves and to detect peering.",
    ),
    # --- Kopf's peering ----------------------------------------------------------------------
    Permission(
        api_group="kopf.dev",
        resources=("clusterkopfpeerings",),
        verbs=("get", "list", "watch", "create", "patch"),
        why="Kopf's cluster-wide peering: operators running cluster-wide see each other and "
        "only the highest-priority one is active; the operator creates the `kubeloop` peering "
        "object at start-up when it is missing (operators/peering.py).",
    ),
    Permission(
        api_group="kopf.dev",
        resources=("kopfpeerings",),
        verbs=("get", "list", "watch", "patch"),
        scope=Scope.OPERATOR_NAMESPACE,
        why="Kopf's namespaced peering, used when an operator is limited to its namespace.",
    ),
    Permission(
        api_group="coordination.k8s.io",
        resources=("leases",),
        verbs=("get", "create", "update"),
        scope=Scope.OPERATOR_NAMESPACE,
        why="Leader election among operator replicas (read, take, renew one Lease).",
    ),
    # --- children in other projects' APIs ----------------------------------------------------
    Permission(
        api_group=ISVC_GROUP,
        resources=(ISVC_PLURAL,),
        verbs=CRUD_WATCH,
        why="The MLModel operator runs one InferenceService per model version.",
    ),
    Permission(
        api_group=VS_GROUP,
        resources=(VS_PLURAL,),
        verbs=CRUD_WATCH,
        why="The MLModel operator owns the VirtualService that splits and mirrors traffic "
        "between the stable and candidate versions.",
    ),
    Permission(
        api_group="trainer.kubeflow.org",
        resources=("trainjobs",),
        verbs=("get", "list", "watch", "create", "delete"),
        scope=Scope.PIPELINE_RUNNER,
        why="Multi-node training runs as a Kubeflow Trainer TrainJob, which the train_ddp step "
        "creates and waits on from its KFP pod (components/train_ddp/trainjob.py), in the "
        "Experiment's namespace; the operators never touch TrainJobs.",
    ),
)

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)


def rules_for(scope: Scope, table: Sequence[Permission] = PERMISSIONS) -> list[dict[str, Any]]:
    """The RBAC `rules` of the Role (or ClusterRole) for one scope, in the table's order."""
    return [
        {
            "apiGroups": [row.api_group],
            "resources": list(row.resources),
            "verbs": sorted(row.verbs, key=VERB_ORDER.index),
        }
        for row in table
        if row.scope == scope
    ]


def cluster_role_rules(table: Sequence[Permission] = PERMISSIONS) -> list[dict[str, Any]]:
    """The rules of the operator's ClusterRole."""
    return rules_for(Scope.CLUSTER, table)


def namespace_role_rules(table: Sequence[Permission] = PERMISSIONS) -> list[dict[str, Any]]:
    """The rules of the Role in the operator's own namespace."""
    return rules_for(Scope.OPERATOR_NAMESPACE, table)


def pipeline_runner_rules(table: Sequence[Permission] = PERMISSIONS) -> list[dict[str, Any]]:
    """The rules of the ClusterRole bound to KFP's pipeline-runner ServiceAccount."""
    return rules_for(Scope.PIPELINE_RUNNER, table)


def required_grants(scope: Scope, table: Sequence[Permission] = PERMISSIONS) -> set[Grant]:
    """Every (apiGroup, resource, verb) the table declares for one scope."""
    return {
        (row.api_group, resource, verb)
        for row in table
        if row.scope == scope
        for resource in row.resources
        for verb in row.verbs
    }


def grants_of(rules: Iterable[Mapping[str, Any]]) -> set[Grant]:
    """Flatten RBAC rules (as found in a Role's YAML) into (apiGroup, resource, verb) triples.

    Raises ValueError for anything this flattening would misread: wildcards, nonResourceURLs
    and resourceNames (which narrow a rule and would make a flat comparison wrong).
    """
    found: set[Grant] = set()
    for index, rule in enumerate(rules):
        for key in ("nonResourceURLs", "resourceNames"):
            if rule.get(key):
                raise ValueError(f"rules[{index}].{key} is not expected in operator RBAC")
        groups = rule.get("apiGroups") or []
        resources = rule.get("resources") or []
        verbs = rule.get("verbs") or []
        for field, names in (("apiGroups", groups), ("resources", resources), ("verbs", verbs)):
            if any("*" in str(name) for name in names):
                raise ValueError(f"rules[{index}].{field} has a wildcard: {list(names)}")
        found |= {(g, r, v) for g in groups for r in resources for v in verbs}
    return found


def is_granted(api_group: str, resource: str, verb: str) -> bool:
    """Whether the table declares this call, in any scope (for a runtime audit)."""
    grant = (api_group, resource, verb)
    return any(grant in required_grants(scope) for scope in Scope)


def render_yaml() -> str:
    """Both rule sets as YAML, for pasting into or checking against RBAC manifests."""
    document = {
        "clusterRoleRules": cluster_role_rules(),
        "namespaceRoleRules": namespace_role_rules(),
        "pipelineRunnerRules": pipeline_runner_rules(),
    }
    return yaml.safe_dump(document, sort_keys=False)


if __name__ == "__main__":
    sys.stdout.write(render_yaml())
