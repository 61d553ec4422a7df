"""The MLModel operator against the embedded control plane, a real MLflow store and the real
monitor. The test plays KServe's part (it marks InferenceServices Ready) and the predictors'
(it sends their logger CloudEvents to the monitor), so every gate sees real monitor figures
while the test stays quick and free of predictor processes.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config

from kubeloop.embedded.launcher import free_port as _free_port
from kubeloop.embedded.services import apply_crds, crd_documents
from localcluster.testing import RunningCluster
from operators.mlmodel.testing import (
    LogisticModel,
    ServingStack,
    exchange_events,
    post_events,
    register_model,
    sqlite_tracking_uri,
    wait_for,
)

pytestmark = pytest.mark.slow

GROUP, VERSION = "kubeloop.io", "v1alpha1"
NS = "default"
REGISTERED = "churn"
_ids = itertools.count()


class Harness:
    def __init__(self, cluster: RunningCluster, stack: ServingStack, versions: list[str]) -> None:
        self.cluster = cluster
        self.stack = stack
        self.versions = versions
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    # --- MLModel -------------------------------------------------------------------------
    def create(self, name: str, version: str, **rollout: Any) -> None:
        spec = {
            "model": {"name": REGISTERED, "version": version},
            "rollout": {
                "shadow": {"duration": "1s", "minRequests": 10},
                "analysis": {"interval": "1s", "minRequests": 5, "threshold": 1},
                **rollout,
            },
        }
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MLModel",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, "mlmodels", body)

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, NS, "mlmodels", name
        )
        return found

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def set_version(self, name: str, version: str) -> None:
        patch = {"spec": {"model": {"version": version}}}
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, NS, "mlmodels", name, patch)

    def wait_status(
        self, name: str, check: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 90
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            status = self.status(name)
            return status if check(status) else None

        return wait_for(probe, timeout_s, f"{name}: {what}", context=self.stack.logs)

    # --- what KServe and the predictors would do -----------------------------------------
    def isvc(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", NS, "inferenceservices", name
            )
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def mark_ready(self, isvc_name: str) -> None:
        found = wait_for(
            lambda: self.isvc(isvc_name),
            60,
            f"InferenceService {isvc_name}",
            context=self.stack.logs,
        )
        status = {
            "observedGeneration": found["metadata"]["generation"],
            "url": f"http://{isvc_name}.{NS}.example.com",
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        self.custom.patch_namespaced_custom_object_status(
            "serving.kserve.io", "v1beta1", NS, "inferenceservices", isvc_name, {"status": status}
        )

    def virtual_service(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            "networking.istio.io", "v1beta1", NS, "virtualservices", name
        )
        return found

    def send(self, model: str, version: str, role: str, count: int, **kw: Any) -> None:
        events = []
        for _ in range(count):
            events += exchange_events(NS, model, version, role, f"r{next(_ids)}", **kw)
        post_events(self.stack.monitor_url, events)

    def send_paired(self, model: str, stable: str, shadow: str, count: int, flip: bool) -> None:
        events = []
        for _ in range(count):
            request_id = f"p{next(_ids)}"
            events += exchange_events(NS, model, stable, "stable", request_id, score=0.8)
            events += exchange_events(
                NS, model, shadow, "shadow", request_id, score=0.2 if flip else 0.8
            )
        post_events(self.stack.monitor_url, events)

    def events_for(self, name: str) -> list[Any]:
        listed = self.core.list_namespaced_event(NS)
        return [e for e in listed.items if e.involved_object and e.involved_object.name == name]


@pytest.fixture(scope="module")
def harness(
    localcluster_module: RunningCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    apply_crds(localcluster_module.kubeconfig, crd_documents())
    root = tmp_path_factory.mktemp("mlmodel")
    tracking_uri = sqlite_tracking_uri(root / "mlflow")
    versions = [register_model(tracking_uri, root, REGISTERED, LogisticModel()) for _ in range(3)]
    stack = ServingStack(
        localcluster_module.kubeconfig, root, tracking_uri, _free_port(), tick_s=0.5
    )
    stack.start_monitor()
    stack.start_operator()
    try:
        yield Harness(localcluster_module, stack, versions)
    finally:
        stack.stop_all()


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


def test_unknown_model_version_is_reported(harness: Harness) -> None:
    harness.create("ghost", "999")
    status = harness.wait_status(
        "ghost", lambda s: _ready(s).get("reason") == "ModelVersionNotFound", "ModelVersionNotFound"
    )
    ready = _ready(status)
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
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MLModel",
        "metadata": {"name": "nobody", "namespace": NS},
        "spec": {"model": {"name": "no-such-model", "alias": "champion"}},
    }
    harness.custom.create_namespaced_custom_object(GROUP, VERSION, NS, "mlmodels", body)
    status = harness.wait_status(
        "nobody", lambda s: _ready(s).get("reason") == "ModelVersionNotFound", "not found"
    )
    assert "no-such-model" in _ready(status)["message"]


def test_serving_objects_have_the_kserve_and_istio_shape(harness: Harness) -> None:
    v1 = harness.versions[0]
    harness.create("shape", v1)
    harness.mark_ready(f"shape-v{v1}")
    status = harness.wait_status("shape", lambda s: s.get("phase") == "Promoted", "Promoted")
    assert status["stableVersion"] == v1
    assert status["traffic"] == {"stable": 100, "candidate": 0, "mirror": 0}
    assert _ready(status)["status"] == "True"
    owner = harness.get("shape")["metadata"]["uid"]

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
    assert isvc["spec"]["predictor"]["logger"] == {
        "mode": "all",
        "url": harness.stack.monitor_url,
    }

    vs = harness.virtual_service("shape")
    assert vs["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubeloop"
    assert vs["metadata"]["ownerReferences"][0]["uid"] == owner
    [route] = vs["spec"]["http"][0]["route"]
    assert route["destination"]["host"] == f"shape-v{v1}-predictor.{NS}.svc.cluster.local"
    assert route["weight"] == 100
    assert "mirror" not in vs["spec"]["http"][0]

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
    harness.create("roll", v1)
    harness.mark_ready(f"roll-v{v1}")
    harness.wait_status("roll", lambda s: s.get("phase") == "Promoted", "v1 Promoted")

    harness.set_version("roll", v2)
    shadow = harness.wait_status("roll", lambda s: s.get("phase") == "Shadow", "Shadow")
    assert shadow["candidateVersion"] == v2 and _traffic(shadow) == (100, 0, 100)
    vs = harness.virtual_service("roll")
    assert vs["spec"]["http"][0]["mirror"]["host"] == f"roll-v{v2}-predictor.{NS}.svc.cluster.local"
    assert vs["spec"]["http"][0]["mirrorPercentage"] == {"value": 100.0}
    harness.mark_ready(f"roll-v{v2}")

    def paired_until_canary() -> dict[str, Any] | None:
        harness.send_paired("roll", v1, v2, 12, flip=False)
        status = harness.status("roll")
        return status if status.get("phase") == "Canary" else None

    canary = wait_for(paired_until_canary, 90, "Canary", interval_s=0.5, context=harness.stack.logs)
    assert canary["stepIndex"] == 0 and _traffic(canary) == (99, 1, 0)
    weights = [r["weight"] for r in harness.virtual_service("roll")["spec"]["http"][0]["route"]]
    assert weights == [99, 1]

    # The operator goes away mid-step; traffic keeps flowing and is analysed after restart.
    harness.stack.stop("operator")
    before = harness.status("roll")
    harness.send("roll", v2, "candidate", 8)
    harness.send("roll", v1, "stable", 40)
    harness.stack.start_operator()

    def traffic_until(step: int) -> Callable[[], dict[str, Any] | None]:
        def probe() -> dict[str, Any] | None:
            status = harness.status("roll")
            if (status.get("stepIndex") or 0) >= step or status.get("phase") == "Promoted":
                return status
            harness.send("roll", v2, "candidate", 8)
            harness.send("roll", v1, "stable", 8)
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
    harness.create(
        "bad",
        v1,
        shadow={"duration": "1s", "minRequests": 10},
        analysis={"interval": "1s", "minRequests": 30, "threshold": 1},
    )
    harness.mark_ready(f"bad-v{v1}")
    harness.wait_status("bad", lambda s: s.get("phase") == "Promoted", "v1 Promoted")
    harness.set_version("bad", v3)
    harness.mark_ready(f"bad-v{v3}")

    seen_stable: list[int] = []

    def drive(target: str, errors: bool) -> Callable[[], dict[str, Any] | None]:
        def probe() -> dict[str, Any] | None:
            status = harness.status("bad")
            seen_stable.append(_traffic(status)[0])
            if status.get("phase") == target:
                return status
            if status.get("phase") == "Shadow":
                harness.send_paired("bad", v1, v3, 12, flip=False)
            else:
                harness.send("bad", v3, "candidate", 8, status=500 if errors else 200)
                harness.send("bad", v1, "stable", 8)
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
