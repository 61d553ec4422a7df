"""The controller with real predictor processes, a real router and the real embedded API server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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
from localcluster.serving.tests.conftest import RegisteredModel, kubectl, kubectl_apply
from localcluster.serving.tests.logistic_model import LogisticModel
from operators.api.mlmodel import ModelRef
from operators.backends.registry import MlflowRegistry
from tests.support.localcluster import RunningCluster

pytestmark = pytest.mark.slow  # starts predictors


def storage_uri_of(model: RegisteredModel) -> str:
    """What the operator writes: the registry's KServe-fetchable URI (file:// here), since the
    stand-in, like KServe's storage initializer, refuses models:/."""
    name, version = model.model_uri.removeprefix("models:/").split("/")
    ref = ModelRef(name=name, version=version)
    return MlflowRegistry.from_uri(model.tracking_uri).resolve(ref).storage_uri


def isvc(model_uri: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        # Written by the MLModel operator for MLModel "churn": served under that name.
        "metadata": {
            "name": "logistic",
            "namespace": "default",
            "annotations": {c.MLMODEL_LABEL: "churn"},
        },
        "spec": {
            "predictor": {"model": {"modelFormat": {"name": "mlflow"}, "storageUri": model_uri}}
        },
    }


VIRTUALSERVICE = {
    "apiVersion": "networking.istio.io/v1beta1",
    "kind": "VirtualService",
    "metadata": {"name": "logistic-route", "namespace": "default", "labels": {c.MANAGED_BY_LABEL: c.MANAGED_BY_VALUE}},
    "spec": {"hosts": ["logistic-route"], "http": [{"route": [{"destination": {"host": "logistic-predictor.default.svc.cluster.local"}, "weight": 100}]}]},
}  # fmt: skip
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "logistic-route", "namespace": "default"}, "spec": {"ports": [{"name": "http", "port": 80}]}}  # fmt: skip


@pytest.fixture
async def controller(
    registered_model: RegisteredModel, cluster: RunningCluster, tmp_path: Path
) -> AsyncIterator[ServingController]:
    api = KubeApi.from_kubeconfig(str(cluster.kubeconfig))
    async with httpx.AsyncClient() as probe, new_client_session() as session:
        supervisor = PredictorSupervisor(tmp_path / "logs", probe, env=registered_model.env())
        routers = RouterHost(session)
        yield ServingController(api, supervisor, routers)
        await routers.close()
        await supervisor.close()
    await api.close()


async def ready_condition(api: KubeApi, plural: str, name: str) -> dict[str, Any]:
    group, version = (
        (c.ISVC_GROUP, c.ISVC_VERSION) if plural == c.ISVC_PLURAL else (c.VS_GROUP, c.VS_VERSION)
    )
    obj = await api.get(group, version, plural, "default", name) or {}
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((cond for cond in conditions if cond["type"] == "Ready"), {})


async def reconcile_until(
    controller: ServingController,
    check: Callable[[], Awaitable[bool]],
    what: str,
    timeout_s: float = 240.0,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await controller.reconcile_once()
        if await check():
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def condition_is(
    api: KubeApi, plural: str, name: str, **expected: str
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return expected.items() <= (await ready_condition(api, plural, name)).items()

    return check


async def test_isvc_served_routed_restarted_after_crash_and_removed(
    controller: ServingController, cluster: RunningCluster, registered_model: RegisteredModel
) -> None:
    ctl = controller
    api = ctl.api
    assert isinstance(api, KubeApi)
    kubectl_apply(cluster, isvc(storage_uri_of(registered_model)))
    kubectl_apply(cluster, SERVICE)
    kubectl_apply(cluster, VIRTUALSERVICE)
    ready = condition_is(api, c.ISVC_PLURAL, "logistic", status="True")
    await reconcile_until(ctl, ready, "predictor Ready")
    await reconcile_until(
        ctl, condition_is(api, c.VS_PLURAL, "logistic-route", status="True"), "route Ready"
    )

    route = await api.get(c.VS_GROUP, c.VS_VERSION, c.VS_PLURAL, "default", "logistic-route")
    assert route is not None
    async with aiohttp.ClientSession() as client:
        response = await client.post(
            f"{route['status']['url']}/v1/models/churn:predict", json={"instances": [[1.0, 2.0]]}
        )
        assert response.status == 200
        assert (await response.json())["predictions"] == pytest.approx(
            [LogisticModel().expected(1.0, 2.0)]
        )
        # One name, as the kubeloop runtime serves it on KServe: not the InferenceService's.
        response = await client.post(
            f"{route['status']['url']}/v1/models/logistic:predict", json={"instances": [[1.0, 2.0]]}
        )
        assert response.status == 404

    pid = ctl.supervisor.pid("default/logistic")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # The pass that sees the exit writes what it saw (the crash) as it restarts the process.
    crashed = condition_is(
        api, c.ISVC_PLURAL, "logistic", status="False", reason="PredictorCrashed"
    )
    await reconcile_until(ctl, crashed, "Ready=False reason PredictorCrashed")
    await reconcile_until(ctl, ready, "Ready again after the restart")
    obj = await api.get(c.ISVC_GROUP, c.ISVC_VERSION, c.ISVC_PLURAL, "default", "logistic")
    assert obj is not None and obj["status"]["components"]["predictor"]["restartCount"] == 1
    new_pid = ctl.supervisor.pid("default/logistic")
    assert new_pid is not None and new_pid != pid

    kubectl(cluster, "delete", "inferenceservices.serving.kserve.io", "logistic")
    unavailable = condition_is(api, c.VS_PLURAL, "logistic-route", status="False")
    await reconcile_until(ctl, unavailable, "route loses its destination")
    assert ctl.supervisor.views() == {}
    await ctl.supervisor.close()  # waits for the terminated process
    with pytest.raises(ProcessLookupError):
        os.kill(new_pid, 0)


async def test_a_killed_predictor_is_restarted_at_once_without_waiting_for_a_pass(
    controller: ServingController,
    cluster: RunningCluster,
    registered_model: RegisteredModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The exit itself wakes the controller, and the first restart has no back-off (as a
    kubelet's): with periodic passes an hour apart, the predictor is still back in moments.
    A rollout judging the version in those moments must not see it gone for seconds."""
    ctl = controller
    assert isinstance(ctl.api, KubeApi)
    kubectl_apply(cluster, isvc(storage_uri_of(registered_model)))
    ready = condition_is(ctl.api, c.ISVC_PLURAL, "logistic", status="True")
    await reconcile_until(ctl, ready, "predictor Ready")
    pid = ctl.supervisor.pid("default/logistic")
    assert pid is not None

    monkeypatch.setattr("localcluster.serving.controller.TICK_S", 3600.0)
    loop = asyncio.create_task(ctl.run())
    try:
        await asyncio.sleep(0.5)  # its first pass, then it waits for a wake-up or an hour
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while ctl.supervisor.pid("default/logistic") in (pid, None):
            assert time.monotonic() < deadline, "not restarted: the exit did not wake the loop"
            await asyncio.sleep(0.1)
        assert ctl.supervisor.views()["default/logistic"].restarts == 1
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
