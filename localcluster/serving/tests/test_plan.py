"""The controller's pure core, case by case."""

from __future__ import annotations

from typing import Any

from localcluster.serving import constants as c
from localcluster.serving.inferenceservice import InvalidSpec, PredictorSpec, parse_isvc
from localcluster.serving.plan import (
    PatchStatus,
    PredictorProcess,
    ReconfigureRouter,
    RestartPredictor,
    RunningRouter,
    StartPredictor,
    StartRouter,
    StopPredictor,
    StopRouter,
    backoff_s,
    plan,
    plan_routers,
)
from localcluster.serving.routing import RouteTable

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:01:00Z"


def isvc(name: str = "m-v2", uri: str = "file:///models/m/2", fmt: str = "mlflow", generation: int = 1, status: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    obj: dict[str, Any] = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "generation": generation,
            "labels": {c.MODEL_VERSION_LABEL: "2"},
        },
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": fmt}, "storageUri": uri},
                "logger": {"mode": "all", "url": "http://monitor/"},
            }
        },
    }
    if status is not None:
        obj["status"] = status
    return obj


def running(
    obj: dict[str, Any], phase: str = "Ready", restarts: int = 0, exited_at: float | None = None
) -> PredictorProcess:
    spec = parse_isvc(obj)
    assert isinstance(spec, PredictorSpec)
    return PredictorProcess(
        spec=spec, port=5000, phase=phase, restarts=restarts, exited_at=exited_at
    )  # type: ignore[arg-type]


def conditions(action: PatchStatus) -> dict[str, dict[str, Any]]:
    return {cond["type"]: cond for cond in action.status["conditions"]}


def only_patch(actions: list[Any]) -> PatchStatus:
    patches = [a for a in actions if isinstance(a, PatchStatus)]
    assert len(patches) == 1, actions
    return patches[0]


def test_new_isvc_starts_a_predictor_read_as_kserve_does() -> None:
    actions = plan([isvc()], {}, now_s=0.0, now_iso=T0)
    assert actions == [
        StartPredictor(
            spec=PredictorSpec(
                namespace="ns", name="m-v2", model_uri="file:///models/m/2", model_version="2",
                logger_url="http://monitor/", logger_mode="all",
            )
        )
    ]  # fmt: skip


def test_storage_uri_kserve_cannot_fetch_is_refused() -> None:
    # KServe's storage initializer knows no MLflow scheme: the stand-in refuses them as well.
    for uri in ("models:/m/5", "mlflow-artifacts:/1/abc/artifacts/model", "runs:/r/model"):
        invalid = parse_isvc(isvc(uri=uri))
        assert isinstance(invalid, InvalidSpec), uri
        assert "spec.predictor.model.storageUri" in invalid.message and uri in invalid.message
    other_runtime = isvc()
    other_runtime["spec"]["predictor"]["model"]["runtime"] = "kserve-mlserver"
    refused = parse_isvc(other_runtime)
    assert isinstance(refused, InvalidSpec) and "spec.predictor.model.runtime" in refused.message
    for uri in ("s3://b/m", "gs://b/m", "pvc://claim/m", "https://h/m.tgz", "file:///m", "/m"):
        assert isinstance(parse_isvc(isvc(uri=uri)), PredictorSpec), uri


def test_starting_predictor_is_not_ready_and_has_its_url() -> None:
    obj = isvc(generation=3)
    patch = only_patch(plan([obj], {"ns/m-v2": running(obj, "Starting")}, 0.0, T0))
    assert patch.name == "m-v2" and patch.plural == "inferenceservices"
    assert patch.status["url"] == "http://127.0.0.1:5000"
    assert patch.status["address"]["url"] == "http://127.0.0.1:5000"
    assert patch.status["observedGeneration"] == 3
    conds = conditions(patch)
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "PredictorStarting"
    assert conds["IngressReady"]["status"] == "True"
    assert patch.status["modelStatus"]["states"]["activeModelState"] == "Loading"


def test_ready_predictor_and_an_unchanged_status_is_not_rewritten() -> None:
    obj = isvc()
    patch = only_patch(plan([obj], {"ns/m-v2": running(obj)}, 0.0, T0))
    conds = conditions(patch)
    assert {conds[k]["status"] for k in ("Ready", "PredictorReady", "IngressReady")} == {"True"}
    assert all(cond["lastTransitionTime"] == T0 for cond in conds.values())
    assert patch.status["modelStatus"]["transitionStatus"] == "UpToDate"
    settled = isvc(status=patch.status)
    assert plan([settled], {"ns/m-v2": running(settled)}, 10.0, T1) == []


def test_transition_time_moves_only_when_the_condition_flips() -> None:
    obj = isvc()
    ready = only_patch(plan([obj], {"ns/m-v2": running(obj)}, 0.0, T0)).status
    crashed = isvc(status=ready)
    patch = only_patch(
        plan([crashed], {"ns/m-v2": running(crashed, "Exited", exited_at=9.0)}, 9.5, T1)
    )
    conds = conditions(patch)
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["lastTransitionTime"] == T1
    assert conds["Ready"]["reason"] == "PredictorCrashed"
    assert conds["IngressReady"]["lastTransitionTime"] == T0


def test_crashed_predictor_restarts_after_backoff_only() -> None:
    obj = isvc()
    proc = running(obj, "Exited", restarts=2, exited_at=100.0)
    early = plan([obj], {"ns/m-v2": proc}, 100.0 + backoff_s(2) - 0.1, T0)
    assert not any(isinstance(a, RestartPredictor) for a in early)
    late = plan([obj], {"ns/m-v2": proc}, 100.0 + backoff_s(2), T0)
    assert RestartPredictor(key="ns/m-v2") in late


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_s(n) for n in range(5)] == [0.0, 1.0, 2.0, 4.0, 8.0]
    assert backoff_s(50) == 30.0


def test_changed_spec_replaces_the_process() -> None:
    old = isvc(uri="file:///models/m/2")
    new = isvc(uri="file:///models/m/3", generation=2)
    actions = plan([new], {"ns/m-v2": running(old)}, 0.0, T0)
    assert [a.kind for a in actions] == ["StopPredictor", "StartPredictor"]


def test_deleted_or_deleting_isvc_stops_its_process() -> None:
    obj = isvc()
    assert plan([], {"ns/m-v2": running(obj)}, 0.0, T0) == [StopPredictor(key="ns/m-v2")]
    obj["metadata"]["deletionTimestamp"] = T0
    assert plan([obj], {"ns/m-v2": running(obj)}, 0.0, T0) == [StopPredictor(key="ns/m-v2")]


def test_invalid_spec_is_reported_and_not_started() -> None:
    for obj, field in ((isvc(fmt="sklearn"), "modelFormat"), (isvc(uri=""), "storageUri")):
        patch = only_patch(plan([obj], {}, 0.0, T0))
        ready = conditions(patch)["Ready"]
        assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
        assert field in ready["message"]
        assert patch.status["modelStatus"]["transitionStatus"] == "InvalidSpec"


def virtualservice(weights: tuple[int, int], managed: bool = True, port: str | None = None, status: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    meta: dict[str, Any] = {
        "name": "m",
        "namespace": "ns",
        "generation": 1,
        "labels": {},
        "annotations": {},
    }
    if managed:
        meta["labels"][c.MANAGED_BY_LABEL] = c.MANAGED_BY_VALUE
    if port:
        meta["annotations"][c.ROUTER_PORT_ANNOTATION] = port
    obj: dict[str, Any] = {
        "metadata": meta,
        "spec": {
            "hosts": ["m.ns.svc.cluster.local"],
            "gateways": ["mesh", "istio-system/kubeloop-gateway"],
            "http": [
                {
                    "route": [
                        {
                            "destination": {"host": "m-v1-predictor.ns.svc.cluster.local"},
                            "weight": weights[0],
                        },
                        {"destination": {"host": "m-v2-predictor"}, "weight": weights[1]},
                    ],
                    "mirror": {"host": "m-v3-predictor.ns.svc.cluster.local"},
                    "mirrorPercentage": {"value": 50.0},
                }
            ],
        },
    }
    if status is not None:
        obj["status"] = status
    return obj


def service(name: str = "m", namespace: str = "ns", kind: str = "ClusterIP") -> dict[str, Any]:
    """A Service as the MLModel operator writes it (selector-less) or of another type."""
    spec: dict[str, Any] = {"type": kind, "ports": [{"name": "http", "port": 80}]}
    if kind == "ExternalName":
        spec = {"type": kind, "externalName": "elsewhere.example.com"}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": spec}  # fmt: skip


SERVICES = [service()]


def processes() -> dict[str, PredictorProcess]:
    out = {}
    for index, name in enumerate(("m-v1", "m-v2", "m-v3")):
        spec = PredictorSpec(namespace="ns", name=name, model_uri=f"file:///models/m/{index + 1}")
        out[spec.key] = PredictorProcess(spec=spec, port=6000 + index, phase="Ready")
    return out


def test_unmanaged_virtualservices_are_ignored() -> None:
    assert (
        plan_routers([virtualservice((90, 10), managed=False)], processes(), {}, T0, SERVICES) == []
    )


def test_new_virtualservice_starts_a_router_with_resolved_hosts() -> None:
    [action] = plan_routers([virtualservice((90, 10), port="18123")], processes(), {}, T0, SERVICES)
    assert isinstance(action, StartRouter) and action.port == 18123
    urls = [(d.url, d.weight, d.role) for d in action.table.destinations]
    assert urls == [
        ("http://127.0.0.1:6000", 90, "stable"),
        ("http://127.0.0.1:6001", 10, "candidate"),
    ]
    assert action.table.mirror is not None and action.table.mirror.url == "http://127.0.0.1:6002"
    assert action.table.mirror_percent == 50.0


def test_changed_weights_reconfigure_and_status_carries_the_url() -> None:
    first = plan_routers([virtualservice((90, 10))], processes(), {}, T0, SERVICES)[0]
    assert isinstance(first, StartRouter)
    router = RunningRouter(key="ns/m", port=7000, table=first.table)
    actions = plan_routers([virtualservice((50, 50))], processes(), {"ns/m": router}, T0, SERVICES)
    assert isinstance(actions[0], ReconfigureRouter)
    assert [d.weight for d in actions[0].table.destinations] == [50, 50]
    patch = only_patch(actions)
    assert patch.plural == "virtualservices" and patch.status["url"] == "http://127.0.0.1:7000"
    assert patch.status["conditions"][0]["status"] == "True"
    settled = virtualservice((90, 10), status=patch.status)
    assert plan_routers([settled], processes(), {"ns/m": router}, T1, SERVICES) == []


def test_missing_destination_makes_the_virtualservice_not_ready() -> None:
    procs = {k: v for k, v in processes().items() if k != "ns/m-v2"}
    router = RunningRouter(key="ns/m", port=7000, table=RouteTable())
    patch = only_patch(
        plan_routers([virtualservice((90, 10))], procs, {"ns/m": router}, T0, SERVICES)
    )
    ready = patch.status["conditions"][0]
    assert ready["status"] == "False" and "m-v2-predictor" in ready["message"]


def test_removed_or_invalid_virtualservice_stops_its_router() -> None:
    router = RunningRouter(key="ns/m", port=7000, table=RouteTable())
    assert plan_routers([], processes(), {"ns/m": router}, T0, SERVICES) == [StopRouter(key="ns/m")]
    broken = virtualservice((90, 10))
    broken["spec"] = {"http": []}
    actions = plan_routers([broken], processes(), {"ns/m": router}, T0, SERVICES)
    assert actions[0] == StopRouter(key="ns/m")
    assert only_patch(actions).status["conditions"][0]["reason"] == "InvalidSpec"


def test_a_host_without_a_service_gets_no_router_and_says_why() -> None:
    """Issue #13, break 4: a mesh routes nothing for a VirtualService host that has no Service
    (no DNS name, nothing in the registry); the stand-in refuses it the same way."""
    router = RunningRouter(key="ns/m", port=7000, table=RouteTable())
    for services in ([], [service(namespace="other")], [service(name="m-v1")]):
        actions = plan_routers([virtualservice((90, 10))], processes(), {}, T0, services)
        assert not any(isinstance(a, StartRouter) for a in actions)
        ready = only_patch(actions).status["conditions"][0]
        assert ready["status"] == "False" and ready["reason"] == "HostWithoutService"
        assert "m.ns.svc.cluster.local" in ready["message"] and "no Service 'm'" in ready["message"]
    # A running router is stopped once its host's Service is gone.
    actions = plan_routers([virtualservice((90, 10))], processes(), {"ns/m": router}, T0, [])
    assert actions[0] == StopRouter(key="ns/m")


def test_an_externalname_service_is_not_enough() -> None:
    actions = plan_routers(
        [virtualservice((90, 10))], processes(), {}, T0, [service(kind="ExternalName")]
    )
    ready = only_patch(actions).status["conditions"][0]
    assert ready["reason"] == "HostWithoutService" and "ExternalName" in ready["message"]


def test_spec_level_fields_are_checked_like_istio() -> None:
    cases = {
        "hosts": lambda spec: spec.pop("hosts"),
        "spec.tcp": lambda spec: spec.update(tcp=[{"route": []}]),
        "unknown field(s) ['retries']": lambda spec: spec.update(retries={"attempts": 3}),
        "spec.gateways": lambda spec: spec.update(gateways="mesh"),
    }
    for expected, mutate in cases.items():
        vs = virtualservice((90, 10))
        mutate(vs["spec"])
        actions = plan_routers([vs], processes(), {}, T0, SERVICES)
        ready = only_patch(actions).status["conditions"][0]
        assert ready["reason"] == "InvalidSpec" and expected in ready["message"], expected


def test_service_of_host_reads_names_as_istio_does() -> None:
    from localcluster.serving.plan import service_of_host

    assert service_of_host("m.ns.svc.cluster.local", "x") == ("ns", "m")
    assert service_of_host("m.ns.svc", "x") == ("ns", "m")
    assert service_of_host("m.ns", "x") == ("ns", "m")
    assert service_of_host("m", "x") == ("x", "m")
    assert service_of_host("models.example.com", "x") is None
    assert service_of_host("*.example.com", "x") is None


def test_an_isvc_is_read_against_kserves_own_types() -> None:
    """Issue #13 item 6: what KServe's API server would drop (an unknown field: it would do
    nothing there) or refuse (a required field missing) is InvalidSpec here, naming it."""
    misspelt = isvc()
    model = misspelt["spec"]["predictor"]["model"]
    model["storageURI"] = model.pop("storageUri")
    parsed = parse_isvc(misspelt)
    assert isinstance(parsed, InvalidSpec) and "spec.predictor.model.storageURI" in parsed.message
    no_format = isvc()
    del no_format["spec"]["predictor"]["model"]["modelFormat"]
    parsed = parse_isvc(no_format)
    assert isinstance(parsed, InvalidSpec) and "model_format" in parsed.message
    logger = isvc()
    logger["spec"]["predictor"]["logger"] = {
        "mode": "all",
        "url": "http://m/",
        "metadataHeader": [],
    }
    parsed = parse_isvc(logger)
    assert isinstance(parsed, InvalidSpec) and "logger.metadataHeader" in parsed.message
    wrong_type = isvc()
    wrong_type["spec"]["predictor"]["minReplicas"] = "one"
    parsed = parse_isvc(wrong_type)
    assert isinstance(parsed, InvalidSpec) and "minReplicas: must be int" in parsed.message
    assert isinstance(parse_isvc(isvc()), PredictorSpec)
