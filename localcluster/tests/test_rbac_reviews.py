"""RBAC decisions and the review bodies, pure (the HTTP side: tests/integration/test_monitor_auth.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localcluster import rbac, reviews
from localcluster.errors import ApiError

JOB = "system:serviceaccount:team-a:job"


def role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "rules": rules}


def binding(name: str, kind: str, role_name: str, subjects: list[dict[str, str]]) -> dict:
    return {
        "metadata": {"name": name},
        "roleRef": {"kind": kind, "name": role_name},
        "subjects": subjects,
    }


FEEDBACK = {"apiGroups": ["kubeloop.io"], "resources": ["mlmodels/feedback"], "verbs": ["create"]}
SA = {"kind": "ServiceAccount", "name": "job", "namespace": "team-a"}


def decide(attrs: rbac.Attributes, **kw: Any) -> bool:
    args: dict[str, Any] = {
        "cluster_roles": {},
        "cluster_bindings": [],
        "roles": {},
        "bindings": [],
    }
    args.update(kw)
    return rbac.decide(JOB, ("system:authenticated",), attrs, **args).allowed


def test_rules_match_verb_group_resource_subresource_and_names() -> None:
    roles = {"w": role("w", [FEEDBACK])}
    bindings = [binding("b", "Role", "w", [SA])]
    want = rbac.Attributes("create", "kubeloop.io", "mlmodels", "feedback", "team-a", "churn")
    assert decide(want, roles=roles, bindings=bindings)
    for other in (
        rbac.Attributes("get", "kubeloop.io", "mlmodels", "feedback", "team-a", "churn"),
        rbac.Attributes("create", "kubeloop.io", "mlmodels", "", "team-a", "churn"),
        rbac.Attributes("create", "kubeloop.io", "mlmodels", "status", "team-a", "churn"),
        rbac.Attributes("create", "", "mlmodels", "feedback", "team-a", "churn"),
    ):
        assert not decide(other, roles=roles, bindings=bindings), other
    # A Role binds only in its namespace: without the namespace's bindings, nothing.
    assert not decide(want)
    named = {"w": role("w", [{**FEEDBACK, "resourceNames": ["fraud"]}])}
    assert not decide(want, roles=named, bindings=bindings)
    star = {"w": role("w", [{"apiGroups": ["*"], "resources": ["*/feedback"], "verbs": ["*"]}])}
    assert decide(want, roles=star, bindings=bindings)


def test_subjects_and_cluster_roles() -> None:
    want = rbac.Attributes("create", "kubeloop.io", "mlmodels", "feedback", "team-a", "churn")
    cluster_roles = {"w": role("w", [FEEDBACK])}
    by_group = [
        binding("g", "ClusterRole", "w", [{"kind": "Group", "name": "system:authenticated"}])
    ]
    assert decide(want, cluster_roles=cluster_roles, cluster_bindings=by_group)
    by_user = [binding("u", "ClusterRole", "w", [{"kind": "User", "name": "someone-else"}])]
    assert not decide(want, cluster_roles=cluster_roles, cluster_bindings=by_user)
    # A RoleBinding to a ClusterRole grants in the binding's namespace.
    in_ns = [binding("r", "ClusterRole", "w", [SA])]
    assert decide(want, cluster_roles=cluster_roles, bindings=in_ns)
    masters = rbac.decide("x", ("system:masters",), want, {}, [], {}, [])
    assert masters.allowed


def test_signed_tokens_round_trip_and_refuse_tampering(tmp_path: Path) -> None:
    signer = reviews.TokenSigner(tmp_path)
    claims = reviews.ServiceAccountClaims("team-a", "job", "uid-1", ("aud",), 2e9)
    token = signer.issue(claims)
    assert signer.verify(token) == claims
    assert (tmp_path / "token-signing-key").stat().st_mode & 0o777 == 0o600
    assert signer.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert signer.verify("lc1.x.y") is None and signer.verify("") is None
    assert reviews.TokenSigner(tmp_path).verify(token) == claims  # same key after a restart


def test_token_review_audiences_and_expiry() -> None:
    principal = reviews.Principal("u", audiences=("monitor",), expires_at=100.0)
    body = {"spec": {"token": "t", "audiences": ["monitor", "other"]}}
    answer = reviews.token_review(body, lambda _: principal, now=50.0)
    assert answer["status"]["authenticated"] and answer["status"]["audiences"] == ["monitor"]
    assert not reviews.token_review(body, lambda _: principal, now=100.0)["status"]["authenticated"]
    api_only = {"spec": {"token": "t"}}
    assert not reviews.token_review(api_only, lambda _: principal, now=50.0)["status"][
        "authenticated"
    ]
    bad: Any
    for bad in (
        {},
        {"spec": {}},
        {"spec": {"token": 3}},
        [],
        {"spec": {"token": "t", "audiences": "x"}},
    ):
        with pytest.raises(ApiError):
            reviews.token_review(bad, lambda _: principal, now=0.0)


def test_subject_access_review_validation() -> None:
    ok = {"spec": {"user": "u", "resourceAttributes": {"verb": "get", "resource": "pods"}}}
    user, groups, attrs = reviews.access_attributes(ok)
    assert (user, groups, attrs and attrs["verb"]) == ("u", [], "get")
    for bad in (
        {"spec": {"user": "u"}},
        {"spec": {"resourceAttributes": {"verb": "get"}}},
        {"spec": {"user": "u", "resourceAttributes": {}, "nonResourceAttributes": {}}},
        {"spec": {"user": "u", "resourceAttributes": {"verb": 1}}},
        {"kind": "TokenReview", "spec": {}},
    ):
        with pytest.raises(ApiError):
            reviews.access_attributes(bad)
