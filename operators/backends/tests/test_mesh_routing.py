"""Issue #13, break 4: the traffic layer must route on a real mesh.

The VirtualService host ``<mlmodel>.<ns>.svc.cluster.local`` needs a Service behind it (no
DNS name and nothing in Istio's registry otherwise) and the VirtualService must bind the mesh
and the ingress gateway. Checked with the local router's own reading of hosts
(``localcluster.serving.plan``), the one that refuses a host without a Service.
"""

from __future__ import annotations

from typing import Any

from localcluster.serving.plan import hosts_without_service, service_of_host
from operators.api.mlmodel import Traffic
from operators.backends.serving import (
    IstioTraffic,
    KubeObjects,
    Owner,
    TrafficTarget,
    model_service,
    virtual_service,
)
from operators.config import OperatorConfig

OWNER = Owner(namespace="team", name="churn", uid="uid-1")
GATEWAY = "istio-system/kubeloop-gateway"


def target() -> TrafficTarget:
    return TrafficTarget(
        owner=OWNER,
        stable_version="1",
        candidate_version="2",
        traffic=Traffic(stable=90, candidate=10, mirror=0),
    )


class RecordingObjects(KubeObjects):
    """KubeObjects without an API server: records what the traffic backend writes, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def ensure_service(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("service", body))
        return body

    def apply_virtual_service(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("virtualservice", body))
        return {**body, "status": {"url": "http://127.0.0.1:1"}}


def test_the_service_is_selectorless_clusterip_with_an_http_port_owned_by_the_mlmodel() -> None:
    body = model_service(OWNER)
    assert body["apiVersion"] == "v1" and body["kind"] == "Service"
    assert body["metadata"]["name"] == "churn" and body["metadata"]["namespace"] == "team"
    [reference] = body["metadata"]["ownerReferences"]
    assert reference["kind"] == "MLModel" and reference["uid"] == "uid-1"
    spec = body["spec"]
    # No selector (no endpoints of its own), not ExternalName (an alias Istio does not route by).
    assert "selector" not in spec and spec["type"] == "ClusterIP"
    [port] = spec["ports"]
    assert port["port"] == 80 and port["name"] == "http" and port["appProtocol"] == "http"


def test_the_virtualservice_binds_the_mesh_and_the_gateway() -> None:
    spec = virtual_service(target(), GATEWAY)["spec"]
    assert spec["gateways"] == ["mesh", GATEWAY]
    # Without a gateway configured, the mesh only (never an empty binding list).
    assert virtual_service(target())["spec"]["gateways"] == ["mesh"]


def test_applying_traffic_creates_the_service_its_host_names_first() -> None:
    objects = RecordingObjects()
    url = IstioTraffic(objects, GATEWAY).apply(target())
    assert url == "http://127.0.0.1:1"
    assert [kind for kind, _ in objects.calls] == ["service", "virtualservice"]
    service, vs = objects.calls[0][1], objects.calls[1][1]
    namespace = vs["metadata"]["namespace"]
    named = {service_of_host(host, namespace) for host in vs["spec"]["hosts"]}
    assert named == {(service["metadata"]["namespace"], service["metadata"]["name"])}
    services = {(service["metadata"]["namespace"], service["metadata"]["name"]): "ClusterIP"}
    assert hosts_without_service(vs["spec"]["hosts"], namespace, services) == []
    assert vs["spec"]["gateways"] == ["mesh", GATEWAY]


def test_the_gateway_comes_from_the_operator_configuration() -> None:
    assert OperatorConfig.from_env({}).istio_gateway == GATEWAY
    other = OperatorConfig.from_env({"KUBELOOP_ISTIO_GATEWAY": "edge/models"})
    assert other.istio_gateway == "edge/models"
    assert OperatorConfig.from_env({"KUBELOOP_ISTIO_GATEWAY": ""}).istio_gateway == ""
