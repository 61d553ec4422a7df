"""The MLModel operator against the embedded control plane, a real MLflow store and the real
monitor. The test plays KServe's part (it marks InferenceServices Ready) and the predictors'
(it sends their logger CloudEvents to the monitor), so every gate sees real monitor figures
while the test stays quick and free of predictor processes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.support.kube import NS, CustomObjects, condition
from tests.support.localcluster import RunningCluster
from tests.support.models import LogisticModel, register_model
from tests.support.monitor import PredictorLogs
from tests.support.stack import MONITOR, OPERATORS, Stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

REGISTERED = "churn"
PLURAL = "mlmodels"


class Harness(CustomObjects):
    """MLModels through the API server, plus the parts KServe and the predictors play."""

    def __init__(self, cluster: RunningCluster, stack: Stack, versions: list[str]) -> None:
        super().__init__(stack.kubeconfig, context=stack.logs)
        self.cluster = cluster
        self.stack = stack
        self.versions = versions
        self.predictors = PredictorLogs(stack.monitor_url, headers=stack.monitor_headers)

    # --- MLModel -------------------------------------------------------------------------
    def create_model(self, name: str, version: str, **rollout: Any) -> None:
        spec = {
            "model": {"name": REGISTERED, "version": version},
            "rollout": {
                "shadow": {"duration": "1s", "minRequests": 10},
                "analysis": {"interval": "1s", "minRequests": 5, "threshold": 1},
                **rollout,
            },
        }
        self.create(PLURAL, "MLModel", name, spec)

    def set_version(self, name: str, version: str) -> None:
        self.patch(PLURAL, name, {"spec": {"model": {"version": version}}})

    # --- what KServe and the predictors would do -----------------------------------------
    def mark_ready_at(self, isvc_name: str) -> None:
        self.mark_ready(isvc_name, url=f"http://{isvc_name}.{NS}.example.com")


@pytest.fixture(scope="module")
def harness(localcluster_module: RunningCluster, model_stack: Stack) -> Iterator[Harness]:
    stack = model_stack
    versions = [
        register_model(stack.tracking_uri, stack.state_dir, REGISTERED, LogisticModel())
        for _ in range(3)
    ]
    with stack.running(MONITOR, OPERATORS):
        yield Harness(localcluster_module, stack, versions)


def test_unknown_model_version_is_reported(harness: Harness) -> None:
    harness.create_model("ghost", "999")
    status = harness.wait_status(
        PLURAL,
        "ghost",
        lambda s: condition(s, "Ready").get("reason") == "ModelVersionNotFound",
        "ModelVersionNotFound",
    )
    ready = condition(status, "Ready")
    assert ready["status"] == "False"
    assert "version 999" in ready["message"] and REGISTERED in ready["message"]
    assert harness.isvc("ghost-v999") is None
    warnings = wait_for(
        lambda: [e for e in harness.events_for("ghost") if e.reason == "ModelVersionNotFound"],
        30,
        "a ModelVersionNotFound event",
    )
    assert warnings[0].type == "Warning"


def test_unknown_model_name_is_reported(harness: Harness) -> None:
    spec = {"model": {"name": "no-such-model", "alias": "champion"}}
    harness.create(PLURAL, "MLModel", "nobody", spec)
    status = harness.wait_status(
        PLURAL,
        "nobody",
        lambda s: condition(s, "Ready").get("reason") == "ModelVersionNotFound",
        "not found",
    )
    assert "no-such-model" in condition(status, "Ready")["message"]


def test_serving_objects_have_the_kserve_and_istio_shape(harness: Harness) -> None:
    v1 = harness.versions[0]
    harness.create_model("shape", v1)
    harness.mark_ready_at(f"shape-v{v1}")
    status = harness.wait_status(
        PLURAL, "shape", lambda s: s.get("phase") == "Promoted", "Promoted"
    )
    assert status["stableVersion"] == v1
    assert status["traffic"] == {"stable": 100, "candidate": 0, "mirror": 0}
    assert condition(status, "Ready")["status"] == "True"
    owner = harness.get(PLURAL, "shape")["metadata"]["uid"]

    isvc = harness.isvc(f"shape-v{v1}")
    assert isvc is not None
    meta = isvc["metadata"]
    assert meta["labels"]["kubeloop.io/model-version"] == v1
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "kubeloop"
    assert [(r["kind"], r["uid"], r["controller"]) for r in meta["ownerReferences"]] == [
        ("MLModel", owner, True)
    ]
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "mlflow"}
    assert model["storageUri"].endswith("/model") or "artifacts" in model["storageUri"]
    # What KServe's agent needs to tell the monitor the version, role and request id.
    assert isvc["spec"]["predictor"]["logger"] == {
        "mode": "all",
        "url": harness.stack.monitor_url,
        "metadataHeaders": ["X-Request-Id", "X-Kubeloop-Role"],
        "metadataAnnotations": ["kubeloop.io/mlmodel", "kubeloop.io/model-version"],
    }

    vs = harness.virtual_service("shape")
    assert vs["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubeloop"
    assert vs["metadata"]["ownerReferences"][0]["uid"] == owner
    [route] = vs["spec"]["http"][0]["route"]
    assert route["destination"]["host"] == f"shape-v{v1}-predictor.{NS}.svc.cluster.local"
    assert route["weight"] == 100
    assert "mirror" not in vs["spec"]["http"][0]
    # Routable on a mesh: the host's Service exists (selector-less, owned by the MLModel)
    # and the VirtualService binds the sidecars and the ingress gateway.
    assert vs["spec"]["hosts"] == [f"shape.{NS}.svc.cluster.local"]
    assert vs["spec"]["gateways"] == ["mesh", "istio-system/kubeloop-gateway"]
    service = client.CoreV1Api(harness.api_client).read_namespaced_service("shape", NS)
    assert service.spec.selector is None and service.spec.type == "ClusterIP"
    assert service.metadata.owner_references[0].uid == owner

    table = subprocess.run(
        ["kubectl", "get", "mlmodels", "shape", "--no-headers"],
        env=harness.cluster.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    # NAME PHASE STABLE [CANDIDATE empty] STABLE% CANARY% MIRROR% ... AGE
    assert table[:6] == ["shape", "Promoted", v1, "100", "0", "0"]


def _traffic(status: dict[str, Any]) -> tuple[int, int, int]:
    t = status.get("traffic") or {}
    return t.get("stable", -1), t.get("candidate", -1), t.get("mirror", -1)


def test_rollout_survives_an_operator_restart(harness: Harness) -> None:
    v1, v2 = harness.versions[0], harness.versions[1]
    harness.create_model("roll", v1)
    harness.mark_ready_at(f"roll-v{v1}")
    harness.wait_status(PLURAL, "roll", lambda s: s.get("phase") == "Promoted", "v1 Promoted")

    harness.set_version("roll", v2)
    shadow = harness.wait_status(PLURAL, "roll", lambda s: s.get("phase") == "Shadow", "Shadow")
    assert shadow["candidateVersion"] == v2 and _traffic(shadow) == (100, 0, 100)
    vs = harness.virtual_service("roll")
    assert vs["spec"]["http"][0]["mirror"]["host"] == f"roll-v{v2}-predictor.{NS}.svc.cluster.local"
    assert vs["spec"]["http"][0]["mirrorPercentage"] == {"value": 100.0}
    harness.mark_ready_at(f"roll-v{v2}")

    def paired_until_canary() -> dict[str, Any] | None:
        harness.predictors.send_paired("roll", v1, v2, 12, flip=False)
        status = harness.status(PLURAL, "roll")
        return status if status.get("phase") == "Canary" else None

    canary = wait_for(paired_until_canary, 90, "Canary", interval_s=0.5, context=harness.stack.logs)
    assert canary["stepIndex"] == 0 and _traffic(canary) == (99, 1, 0)
    weights = [r["weight"] for r in harness.virtual_service("roll")["spec"]["http"][0]["route"]]
    assert weights == [99, 1]

    # The operator goes away mid-step; traffic keeps flowing and is analysed after restart.
    harness.stack.stop(OPERATORS)
    before = harness.status(PLURAL, "roll")
    harness.predictors.send("roll", v2, "candidate", 8)
    harness.predictors.send("roll", v1, "stable", 40)
    harness.stack.start(OPERATORS)

    def traffic_until(step: int) -> Callable[[], dict[str, Any] | None]:
        def probe() -> dict[str, Any] | None:
            status = harness.status(PLURAL, "roll")
            if (status.get("stepIndex") or 0) >= step or status.get("phase") == "Promoted":
                return status
            harness.predictors.send("roll", v2, "candidate", 8)
            harness.predictors.send("roll", v1, "stable", 8)
            return None

        return probe

    stepped = wait_for(traffic_until(1), 120, "step 1 after restart", context=harness.stack.logs)
    assert stepped["phase"] == "Canary" and stepped["stepIndex"] == 1
    assert _traffic(stepped) == (90, 10, 0)
    # Continued, not restarted: same phase start, more iterations.
    assert stepped["phaseStartedAt"] == before["phaseStartedAt"]
    assert stepped["iterations"] > before["iterations"]

    promoted = wait_for(traffic_until(99), 120, "Promoted", context=harness.stack.logs)
    assert promoted["phase"] == "Promoted" and promoted["stableVersion"] == v2
    assert "candidateVersion" not in promoted and _traffic(promoted) == (100, 0, 0)
    wait_for(lambda: harness.isvc(f"roll-v{v1}") is None, 30, "old InferenceService deleted")
    reasons = {e.reason for e in harness.events_for("roll")}
    assert {"CandidateStarted", "ShadowPassed", "StepPassed", "Promoted"} <= reasons


def test_failing_canary_is_rolled_back(harness: Harness) -> None:
    v1, v3 = harness.versions[0], harness.versions[2]
    # More requests per window than one burst of shadow pairs: mirrored calls still arriving
    # just after the switch to canary count for the candidate and must not pass a step alone.
    harness.create_model(
        "bad",
        v1,
        shadow={"duration": "1s", "minRequests": 10},
        analysis={"interval": "1s", "minRequests": 30, "threshold": 1},
    )
    harness.mark_ready_at(f"bad-v{v1}")
    harness.wait_status(PLURAL, "bad", lambda s: s.get("phase") == "Promoted", "v1 Promoted")
    harness.set_version("bad", v3)
    harness.mark_ready_at(f"bad-v{v3}")

    seen_stable: list[int] = []

    def drive(target: str, errors: bool) -> Callable[[], dict[str, Any] | None]:
        def probe() -> dict[str, Any] | None:
            status = harness.status(PLURAL, "bad")
            seen_stable.append(_traffic(status)[0])
            if status.get("phase") == target:
                return status
            if status.get("phase") == "Shadow":
                harness.predictors.send_paired("bad", v1, v3, 12, flip=False)
            else:
                harness.predictors.send("bad", v3, "candidate", 8, status=500 if errors else 200)
                harness.predictors.send("bad", v1, "stable", 8)
            return None

        return probe

    wait_for(drive("Canary", errors=False), 90, "Canary", context=harness.stack.logs)
    rolled = wait_for(
        drive("RolledBack", errors=True), 90, "RolledBack", context=harness.stack.logs
    )
    assert rolled["stableVersion"] == v1 and _traffic(rolled) == (100, 0, 0)
    assert rolled["analysis"]["outcome"] == "Fail" and rolled["analysis"]["errors"] > 0
    assert min(s for s in seen_stable if s >= 0) >= 99  # never below 100 - first step
    assert [r["weight"] for r in harness.virtual_service("bad")["spec"]["http"][0]["route"]] == [
        100
    ]
    wait_for(lambda: harness.isvc(f"bad-v{v3}") is None, 30, "rolled-back InferenceService gone")
    rolled_back = [e for e in harness.events_for("bad") if e.reason == "RolledBack"]
    assert rolled_back and rolled_back[0].type == "Warning"
