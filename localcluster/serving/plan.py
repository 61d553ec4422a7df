"""The controller's pure core: observed objects + running processes/routers → actions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from localcluster.serving import constants as c
from localcluster.serving.inferenceservice import (
    InvalidSpec,
    PredictorSpec,
    ProcessView,
    carry_transition_times,
    desired_status,
    isvc_key,
    parse_isvc,
    predictor_hosts,
)
from localcluster.serving.routing import (
    RouteTable,
    VirtualServiceError,
    loopback_url,
    route_table_from_spec,
)

MAX_BACKOFF_S = 30.0


class PredictorProcess(BaseModel):
    """A supervised predictor as the shell last saw it."""

    model_config = ConfigDict(frozen=True)

    spec: PredictorSpec
    port: int
    phase: Literal["Starting", "Ready", "Exited"]
    restarts: int = 0
    exited_at: float | None = None  # monotonic seconds
    last_failure: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class RunningRouter(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    port: int
    table: RouteTable


class StartPredictor(BaseModel):
    kind: Literal["StartPredictor"] = "StartPredictor"
    spec: PredictorSpec


class StopPredictor(BaseModel):
    kind: Literal["StopPredictor"] = "StopPredictor"
    key: str


class RestartPredictor(BaseModel):
    kind: Literal["RestartPredictor"] = "RestartPredictor"
    key: str


class PatchStatus(BaseModel):
    kind: Literal["PatchStatus"] = "PatchStatus"
    group: str
    version: str
    plural: str
    namespace: str
    name: str
    status: dict[str, Any]


class StartRouter(BaseModel):
    kind: Literal["StartRouter"] = "StartRouter"
    key: str
    port: int | None
    table: RouteTable


class ReconfigureRouter(BaseModel):
    kind: Literal["ReconfigureRouter"] = "ReconfigureRouter"
    key: str
    table: RouteTable


class StopRouter(BaseModel):
    kind: Literal["StopRouter"] = "StopRouter"
    key: str


Action = (
    StartPredictor
    | StopPredictor
    | RestartPredictor
    | PatchStatus
    | StartRouter
    | ReconfigureRouter
    | StopRouter
)


def backoff_s(restarts: int) -> float:
    """1, 2, 4, … seconds, capped, like a kubelet's CrashLoopBackOff (shortened)."""
    return min(MAX_BACKOFF_S, 2.0 ** min(restarts, 10))


def _meta(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata", {})
    return meta.get("namespace", "default"), meta.get("name", "")


def _status_patch(
    group: str, version: str, plural: str, obj: Mapping[str, Any], status: dict[str, Any]
) -> list[Action]:
    if (obj.get("status") or {}) == status:
        return []
    namespace, name = _meta(obj)
    return [
        PatchStatus(
            group=group,
            version=version,
            plural=plural,
            namespace=namespace,
            name=name,
            status=status,
        )
    ]


def _isvc_patch(obj: Mapping[str, Any], status: dict[str, Any]) -> list[Action]:
    return _status_patch(c.ISVC_GROUP, c.ISVC_VERSION, c.ISVC_PLURAL, obj, status)


def _plan_one_isvc(
    obj: Mapping[str, Any], running: PredictorProcess | None, now_s: float, now_iso: str
) -> list[Action]:
    parsed = parse_isvc(obj)
    if isinstance(parsed, InvalidSpec):
        stop: list[Action] = [StopPredictor(key=isvc_key(obj))] if running else []
        return stop + _isvc_patch(obj, desired_status(obj, None, parsed, now_iso))
    if running is None or running.spec != parsed:
        replace: list[Action] = [StopPredictor(key=parsed.key)] if running else []
        # Until the new process reports, status shows it as starting (no URL yet).
        return replace + [StartPredictor(spec=parsed)]
    actions: list[Action] = []
    restart_due = running.exited_at is not None and now_s >= running.exited_at + backoff_s(
        running.restarts
    )
    if running.phase == "Exited" and restart_due:
        actions.append(RestartPredictor(key=parsed.key))
    view = ProcessView(
        phase=running.phase,
        url=running.url,
        restarts=running.restarts,
        last_failure=running.last_failure,
    )
    return actions + _isvc_patch(obj, desired_status(obj, view, None, now_iso))


def plan(
    desired_isvcs: Sequence[Mapping[str, Any]],
    running_processes: Mapping[str, PredictorProcess],
    now_s: float,
    now_iso: str,
) -> list[Action]:
    """Predictor actions: start, replace, restart after backoff, stop orphans, write status."""
    actions: list[Action] = []
    wanted = set()
    for obj in desired_isvcs:
        if obj.get("metadata", {}).get("deletionTimestamp"):
            continue
        key = isvc_key(obj)
        wanted.add(key)
        actions += _plan_one_isvc(obj, running_processes.get(key), now_s, now_iso)
    actions += [StopPredictor(key=key) for key in running_processes if key not in wanted]
    return actions


def host_map(processes: Mapping[str, PredictorProcess], namespace: str) -> dict[str, str]:
    """Destination host → predictor URL, with short names resolved within ``namespace``."""
    mapping: dict[str, str] = {}
    for process in processes.values():
        spec = process.spec
        for host in predictor_hosts(spec.namespace, spec.name):
            mapping[host] = process.url
        if spec.namespace == namespace:
            mapping[f"{spec.name}-predictor"] = process.url
            mapping[spec.name] = process.url
    return mapping


def _resolver(mapping: Mapping[str, str]) -> Any:
    def resolve(host: str, port: int | None) -> str | None:
        return loopback_url(host, port) or mapping.get(host)

    return resolve


def is_managed(obj: Mapping[str, Any]) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return labels.get(c.MANAGED_BY_LABEL) == c.MANAGED_BY_VALUE


def _requested_port(obj: Mapping[str, Any]) -> int | None:
    value = (obj.get("metadata", {}).get("annotations") or {}).get(c.ROUTER_PORT_ANNOTATION)
    return int(value) if value and str(value).isdigit() else None


def _vs_status(
    obj: Mapping[str, Any], ok: bool, reason: str, message: str, url: str, now_iso: str
) -> dict[str, Any]:
    condition: dict[str, Any] = {"type": "Ready", "status": "True" if ok else "False"}
    if not ok:
        condition.update(reason=reason, message=message)
    previous = (obj.get("status") or {}).get("conditions") or []
    status: dict[str, Any] = {
        "conditions": carry_transition_times([condition], previous, now_iso),
        "observedGeneration": obj.get("metadata", {}).get("generation", 0),
    }
    if url:
        status["url"] = url
    return status


def _vs_patch(obj: Mapping[str, Any], status: dict[str, Any]) -> list[Action]:
    return _status_patch(c.VS_GROUP, c.VS_VERSION, c.VS_PLURAL, obj, status)


def plan_routers(
    virtualservices: Sequence[Mapping[str, Any]],
    running_processes: Mapping[str, PredictorProcess],
    routers: Mapping[str, RunningRouter],
    now_iso: str,
) -> list[Action]:
    """Router actions for kubeloop-managed VirtualServices, plus their status."""
    actions: list[Action] = []
    wanted = set()
    for obj in virtualservices:
        if not is_managed(obj) or obj.get("metadata", {}).get("deletionTimestamp"):
            continue
        namespace, name = _meta(obj)
        key = f"{namespace}/{name}"
        wanted.add(key)
        router = routers.get(key)
        try:
            resolve = _resolver(host_map(running_processes, namespace))
            annotations = obj.get("metadata", {}).get("annotations")
            table = route_table_from_spec(obj.get("spec") or {}, resolve, annotations)
        except VirtualServiceError as exc:
            stop: list[Action] = [StopRouter(key=key)] if router else []
            actions += stop + _vs_patch(
                obj, _vs_status(obj, False, "InvalidSpec", str(exc), "", now_iso)
            )
            continue
        if router is None:
            actions.append(StartRouter(key=key, port=_requested_port(obj), table=table))
            continue
        if router.table != table:
            actions.append(ReconfigureRouter(key=key, table=table))
        unresolved = [d.host for d in table.destinations if d.url is None and d.weight > 0]
        message = f"destinations not available yet: {unresolved}" if unresolved else ""
        status = _vs_status(
            obj,
            not unresolved,
            "DestinationUnavailable",
            message,
            f"http://127.0.0.1:{router.port}",
            now_iso,
        )
        actions += _vs_patch(obj, status)
    actions += [StopRouter(key=key) for key in routers if key not in wanted]
    return actions
