"""The VirtualService bodies the MLModel operator writes, against the Istio 1.27 schema in
``schemas/virtualservice.istio-1.27.json`` (written from the Istio API reference it names),
and the local router refusing what that schema refuses.

Break 4 of issue #13: the host has a Service (the operator writes it first) and the
VirtualService binds the mesh and the kubeloop gateway.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from localcluster.serving.plan import PatchStatus, StartRouter, plan_routers
from operators.api.mlmodel import Assignment, Traffic
from operators.backends.serving import (
    Owner,
    TrafficTarget,
    model_service,
    virtual_service,
)
from tests.contract.schemas import errors

SCHEMA = "virtualservice.istio-1.27"
OWNER = Owner(namespace="team", name="churn", uid="uid-1")
GATEWAY = "istio-system/kubeloop-gateway"
T0 = "2026-01-01T00:00:00Z"

SPLITS = {
    "stable only": (None, Traffic(stable=100, candidate=0, mirror=0), Assignment()),
    "shadow": ("2", Traffic(stable=100, candidate=0, mirror=100), Assignment()),
    "canary": ("2", Traffic(stable=90, candidate=10, mirror=0), Assignment()),
    "canary+mirror": ("2", Traffic(stable=80, candidate=20, mirror=50), Assignment()),
    "sticky header": (
        "2",
        Traffic(stable=75, candidate=25, mirror=0),
        Assignment(by="header", key="x-user-id"),
    ),
    "sticky entity": (
        "2",
        Traffic(stable=50, candidate=50, mirror=0),
        Assignment(by="entity", key="customer_id"),
    ),
}


def body(split: str, gateway: str | None = GATEWAY) -> dict[str, Any]:
    candidate, traffic, assignment = SPLITS[split]
    target = TrafficTarget(
        owner=OWNER,
        stable_version="1",
        candidate_version=candidate,
        traffic=traffic,
        assignment=assignment,
    )
    return virtual_service(target, gateway)


@pytest.mark.parametrize("split", sorted(SPLITS))
@pytest.mark.parametrize("gateway", [GATEWAY, None])
def test_every_split_fits_istios_schema(split: str, gateway: str | None) -> None:
    vs = body(split, gateway)
    assert errors(SCHEMA, vs) == []
    assert vs["spec"]["gateways"][0] == "mesh"


def _router_verdict(vs: dict[str, Any], with_service: bool = True) -> dict[str, Any]:
    """The local router's verdict on ``vs``: ``{"status": "True"}`` when it starts a router,
    else the Ready condition it writes."""
    services = [model_service(OWNER)] if with_service else []
    actions = plan_routers([vs], {}, {}, T0, services)
    if any(isinstance(a, StartRouter) for a in actions):
        return {"status": "True"}
    [patch] = [a for a in actions if isinstance(a, PatchStatus)]
    condition: dict[str, Any] = patch.status["conditions"][0]
    return condition


def _route(vs: dict[str, Any]) -> dict[str, Any]:
    route: dict[str, Any] = vs["spec"]["http"][-1]["route"][0]
    return route


BROKEN = {
    "hosts missing": lambda vs: vs["spec"].pop("hosts"),
    "hosts empty": lambda vs: vs["spec"].update(hosts=[]),
    "unknown spec field": lambda vs: vs["spec"].update(host="churn"),
    "unknown http field": lambda vs: vs["spec"]["http"][-1].update(mirrorPercentag={"value": 1}),
    "destination missing": lambda vs: _route(vs).pop("destination"),
    "host missing": lambda vs: _route(vs)["destination"].pop("host"),
    "negative weight": lambda vs: _route(vs).update(weight=-1),
    "two string matches": lambda vs: vs["spec"]["http"][0]["match"][0]["headers"].update(
        {"x-kubeloop-bucket": {"exact": "1", "prefix": "1"}}
    ),
    "upper-case header name": lambda vs: vs["spec"]["http"][0]["match"][0].update(
        headers={"X-Kubeloop-Bucket": {"exact": "1"}}
    ),
    "mirror percentage over 100": lambda vs: vs["spec"]["http"][-1].update(
        mirrorPercentage={"value": 150.0}
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_what_istio_refuses_the_local_router_refuses(case: str) -> None:
    vs = copy.deepcopy(body("sticky header"))
    vs["spec"]["http"][-1]["mirror"] = {"host": "churn-v2-predictor.team.svc.cluster.local"}
    vs["spec"]["http"][-1]["mirrorPercentage"] = {"value": 10.0}
    assert errors(SCHEMA, vs) == [] and _router_verdict(vs)["status"] == "True"
    BROKEN[case](vs)
    assert errors(SCHEMA, vs) != []
    verdict = _router_verdict(vs)
    assert verdict["status"] == "False" and verdict["reason"] == "InvalidSpec", verdict


def test_the_host_resolves_only_with_the_service() -> None:
    """Break 4: the same VirtualService routes with its Service and not without."""
    vs = body("canary")
    assert _router_verdict(vs, with_service=False)["reason"] == "HostWithoutService"
    assert _router_verdict(vs)["status"] == "True"
