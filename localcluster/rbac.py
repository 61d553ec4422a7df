"""RBAC decisions from stored Role/ClusterRole/RoleBinding/ClusterRoleBinding objects (pure).

What SubjectAccessReview answers (``localcluster/reviews.py``); the API server itself still
does not enforce RBAC on its own requests (see the package docstring).

The rules are kube-apiserver's RBAC authorizer's
(https://kubernetes.io/docs/reference/access-authn-authz/rbac/): a request is allowed when a
ClusterRoleBinding, or a RoleBinding in the request's namespace, binds a subject matching the
user (kind ``User`` by name, ``Group`` by one of the user's groups, ``ServiceAccount`` as
``system:serviceaccount:<namespace>:<name>``) to a role with a rule whose ``apiGroups``,
``resources`` (``resource/subresource`` for a subresource; ``*`` and ``*/subresource``
match), ``verbs`` and ``resourceNames`` (empty = any) all match; ``*`` matches anything. A
RoleBinding may reference a ClusterRole, which then grants only in the binding's namespace.
Members of ``system:masters`` are allowed everything (kube-apiserver's privileged group).
There are no deny rules. Not modelled: aggregated ClusterRoles (``aggregationRule``) and
non-resource URLs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SYSTEM_MASTERS = "system:masters"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class Attributes:
    """``spec.resourceAttributes`` of a SubjectAccessReview ("" = unset / all)."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def _subject_matches(subject: Mapping[str, Any], user: str, groups: Iterable[str]) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(name == user)
    if kind == "Group":
        return name in set(groups)
    if kind == "ServiceAccount":
        return user == f"{SERVICE_ACCOUNT_PREFIX}{subject.get('namespace', '')}:{name}"
    return False


def _rule_matches(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.group not in groups:
        return False
    resources = rule.get("resources") or []
    wanted = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    if not any(
        r == "*" or r == wanted or (attrs.subresource and r == f"*/{attrs.subresource}")
        for r in resources
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def decide(
    user: str,
    groups: Iterable[str],
    attrs: Attributes,
    cluster_roles: Mapping[str, Mapping[str, Any]],
    cluster_bindings: Iterable[Mapping[str, Any]],
    roles: Mapping[str, Mapping[str, Any]],
    bindings: Iterable[Mapping[str, Any]],
) -> Decision:
    """``roles`` and ``bindings``: the Role and RoleBinding objects of ``attrs.namespace``
    (empty for a cluster-wide question), by name / as listed."""
    groups = tuple(groups)
    if SYSTEM_MASTERS in groups:
        return Decision(True, f'allowed: member of group "{SYSTEM_MASTERS}"')
    scopes = [("ClusterRoleBinding", b, "") for b in cluster_bindings]
    if attrs.namespace:
        scopes += [("RoleBinding", b, attrs.namespace) for b in bindings]
    for binding_kind, binding, namespace in scopes:
        if not any(_subject_matches(s, user, groups) for s in binding.get("subjects") or []):
            continue
        ref = binding.get("roleRef") or {}
        role_kind, role_name = ref.get("kind"), ref.get("name", "")
        role = cluster_roles.get(role_name) if role_kind == "ClusterRole" else None
        if role_kind == "Role" and binding_kind == "RoleBinding":
            role = roles.get(role_name)
        if role is None:
            continue
        if any(_rule_matches(rule, attrs) for rule in role.get("rules") or []):
            where = f' in namespace "{namespace}"' if namespace else ""
            binding_name = (binding.get("metadata") or {}).get("name", "")
            reason = (
                f'RBAC: allowed by {binding_kind} "{binding_name}{where}" of {role_kind} '
                f'"{role_name}" to user "{user}"'
            )
            return Decision(True, reason)
    return Decision(False, "")
