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
REASON_NO_SERVICE = "HostWithoutService"
REASON_INVALID = "InvalidSpec"
# Ready=False reasons that mean "the real controller would refuse this object", not "wait".
REFUSALS = frozenset({REASON_INVALID, REASON_NO_SERVICE})


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
    """0, then 1, 2, 4, … seconds, capped: a kubelet's CrashLoopBackOff (shortened).

    A kubelet restarts a container at once after its first exit and backs off only from the
    second (10 s, doubling, capped at 5 min; Kubernetes in Action 2nd ed., §6.2.1). A first
    restart held back gives a rollout time to remove the version before it serves again.
    """
    if restarts == 0:
        return 0.0
    return min(MAX_BACKOFF_S, 2.0 ** min(restarts - 1, 10))


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


# ``VirtualService.spec`` fields Istio has (networking/v1 reference,
# https://istio.io/v1.27/docs/reference/config/networking/virtual-service/); of these the local
# router realizes hosts, gateways (every binding: it stands in for the gateway and the sidecars
# alike) and http. The others are refused by name rather than ignored.
_SPEC_FIELDS = frozenset({"hosts", "gateways", "http", "exportTo"})
_UNSUPPORTED_SPEC = frozenset({"tls", "tcp"})
# The cluster domain the hosts kubeloop writes use (<name>.<ns>.svc.cluster.local).
_CLUSTER_SUFFIXES = (".svc.cluster.local", ".svc")


def _check_spec(spec: Mapping[str, Any]) -> list[str]:
    """Refuse what Istio's validation refuses at the spec level (hosts missing, unknown
    fields), and name the ``spec.hosts``; raises VirtualServiceError."""
    unsupported = sorted(set(spec) & _UNSUPPORTED_SPEC)
    if unsupported:
        raise VirtualServiceError(f"spec.{unsupported[0]}: not supported by the local router")
    unknown = sorted(set(spec) - _SPEC_FIELDS - _UNSUPPORTED_SPEC)
    if unknown:
        raise VirtualServiceError(f"spec: unknown field(s) {unknown}")
    hosts = spec.get("hosts")
    # Istio's validation: a VirtualService that is not a delegate needs at least one host.
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise VirtualServiceError("spec.hosts must be a non-empty list of host names")
    gateways = spec.get("gateways", [])
    if not isinstance(gateways, list) or not all(isinstance(g, str) and g for g in gateways):
        raise VirtualServiceError("spec.gateways must be a list of gateway names")
    return hosts


def service_of_host(host: str, namespace: str) -> tuple[str, str] | None:
    """The Kubernetes Service (namespace, name) a VirtualService host names, or None for a
    host outside the cluster domain (``models.example.com``, a wildcard): Istio reads a short
    name in the VirtualService's own namespace, ``<name>.<ns>`` and ``…svc[.cluster.local]``
    as that Service."""
    if "*" in host:
        return None
    for suffix in _CLUSTER_SUFFIXES:
        if host.endswith(suffix):
            parts = host.removesuffix(suffix).split(".")
            return (parts[1], parts[0]) if len(parts) == 2 else None
    parts = host.split(".")
    if len(parts) == 1:
        return namespace, host
    if len(parts) == 2:
        return parts[1], parts[0]
    return None


def _service_types(services: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    found = {}
    for service in services:
        meta = service.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        kind = (service.get("spec") or {}).get("type") or "ClusterIP"
        found[(meta.get("namespace", "default"), meta.get("name", ""))] = kind
    return found


def hosts_without_service(
    hosts: Sequence[str], namespace: str, services: Mapping[tuple[str, str], str]
) -> list[str]:
    """The in-cluster hosts a mesh would route nothing for, each with why.

    A sidecar applies a VirtualService to a Kubernetes host only when the name resolves and is
    in its service registry, i.e. a Service of that name exists (a selector-less ClusterIP one
    is enough: the VIP gives DNS, the sidecar intercepts and routes by the VirtualService).
    An ExternalName Service does not count: since Istio 1.21 it is only an alias and
    VirtualServices on it no longer apply (Istio 1.21 upgrade notes,
    https://istio.io/latest/news/releases/1.21.x/announcing-1.21/upgrade-notes/)."""
    problems = []
    for host in hosts:
        service = service_of_host(host, namespace)
        if service is None:
            continue
        kind = services.get(service)
        if kind is None:
            problems.append(f"{host}: no Service {service[1]!r} in namespace {service[0]!r}")
        elif kind == "ExternalName":
            problems.append(
                f"{host}: Service {service[1]!r} is ExternalName, an alias Istio routes nothing by"
            )
    return problems


def plan_routers(
    virtualservices: Sequence[Mapping[str, Any]],
    running_processes: Mapping[str, PredictorProcess],
    routers: Mapping[str, RunningRouter],
    now_iso: str,
    services: Sequence[Mapping[str, Any]],
) -> list[Action]:
    """Router actions for kubeloop-managed VirtualServices, plus their status.

    A VirtualService whose host has no Service gets no router and ``Ready=False`` with
    reason ``HostWithoutService``: a mesh would route nothing for it."""
    actions: list[Action] = []
    wanted = set()
    known_services = _service_types(services)
    for obj in virtualservices:
        if not is_managed(obj) or obj.get("metadata", {}).get("deletionTimestamp"):
            continue
        namespace, name = _meta(obj)
        key = f"{namespace}/{name}"
        wanted.add(key)
        router = routers.get(key)
        try:
            hosts = _check_spec(obj.get("spec") or {})
            resolve = _resolver(host_map(running_processes, namespace))
            annotations = obj.get("metadata", {}).get("annotations")
            table = route_table_from_spec(obj.get("spec") or {}, resolve, annotations)
        except VirtualServiceError as exc:
            stop: list[Action] = [StopRouter(key=key)] if router else []
            actions += stop + _vs_patch(
                obj, _vs_status(obj, False, REASON_INVALID, str(exc), "", now_iso)
            )
            continue
        missing = hosts_without_service(hosts, namespace, known_services)
        if missing:
            stop = [StopRouter(key=key)] if router else []
            message = f"no route until the host has a Service: {'; '.join(missing)}"
            actions += stop + _vs_patch(
                obj, _vs_status(obj, False, REASON_NO_SERVICE, message, "", now_iso)
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
