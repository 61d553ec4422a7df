"""The controller's I/O shell against the real embedded API server and the real kubectl.

No predictor process is needed: an InferenceService with an unsupported format gets its
status written, and a VirtualService gets a router whose destination is unavailable.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from localcluster.serving import constants as c
from localcluster.serving.controller import RouterHost, ServingController
from localcluster.serving.kubeapi import KubeApi
from localcluster.serving.router import new_client_session
from localcluster.serving.supervisor import PredictorSupervisor
from localcluster.serving.tests.conftest import kubectl, kubectl_apply
from tests.support.localcluster import RunningCluster

ISVC = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {"name": "m-v1", "namespace": "default"},
    "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://x"}}},
}
VS = {
    "apiVersion": "networking.istio.io/v1beta1",
    "kind": "VirtualService",
    "metadata": {"name": "m", "namespace": "default", "labels": {c.MANAGED_BY_LABEL: c.MANAGED_BY_VALUE}},
    "spec": {"hosts": ["m"], "http": [{"route": [{"destination": {"host": "m-v1-predictor"}, "weight": 100}]}]},
}  # fmt: skip
# The selector-less Service the MLModel operator writes for its VirtualService host.
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "m", "namespace": "default"},
    "spec": {"ports": [{"name": "http", "port": 80, "appProtocol": "http"}]},
}


@pytest.fixture
async def controller(cluster: RunningCluster, tmp_path: Path) -> AsyncIterator[ServingController]:
    api = KubeApi.from_kubeconfig(str(cluster.kubeconfig))
    async with httpx.AsyncClient() as probe, new_client_session() as session:
        routers = RouterHost(session)
        yield ServingController(api, PredictorSupervisor(tmp_path / "logs", probe), routers)
        await routers.close()
    await api.close()


def get(cluster: RunningCluster, kind: str, name: str) -> dict[str, Any]:
    return json.loads(kubectl(cluster, "get", kind, name, "-o", "json"))


async def test_status_written_router_served_and_watch_wakes(
    cluster: RunningCluster, controller: ServingController
) -> None:
    kubectl_apply(cluster, ISVC)
    kubectl_apply(cluster, VS)
    # No Service for the host "m": refused as a mesh would route nothing, and no router.
    await controller.reconcile_once()
    refused = get(cluster, "virtualservices.networking.istio.io", "m")["status"]
    assert refused["conditions"][0]["reason"] == "HostWithoutService" and "url" not in refused
    assert controller.routers.running() == {}
    kubectl_apply(cluster, SERVICE)
    await controller.reconcile_once()  # starts the router, writes the ISVC status
    await controller.reconcile_once()  # writes the VirtualService status with the router URL

    isvc = get(cluster, "inferenceservices.serving.kserve.io", "m-v1")
    ready = next(cond for cond in isvc["status"]["conditions"] if cond["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "sklearn" in ready["message"] and ready["lastTransitionTime"]
    vs = get(cluster, "virtualservices.networking.istio.io", "m")
    assert vs["status"]["conditions"][0]["status"] == "False"
    async with aiohttp.ClientSession() as client:
        response = await client.post(vs["status"]["url"] + "/v1/models/m:predict", data=b"{}")
        assert response.status == 503  # the destination's predictor does not exist
    assert await controller.reconcile_once() == []  # level-triggered and settled: nothing to do

    assert isinstance(controller.api, KubeApi)
    events = controller.api.watch(c.ISVC_GROUP, c.ISVC_VERSION, c.ISVC_PLURAL)
    first = await asyncio.wait_for(anext(events), 30)
    assert first["object"]["metadata"]["name"] == "m-v1"
    await events.aclose()

    kubectl(cluster, "delete", "virtualservices.networking.istio.io", "m")
    actions = await controller.reconcile_once()
    assert [a.kind for a in actions] == ["StopRouter"]
    assert controller.routers.running() == {}
