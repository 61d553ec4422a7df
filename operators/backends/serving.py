"""KServe InferenceServices per model version and the traffic object in front of them.

Pure builders (`inference_service`, `virtual_service`) produce the objects; `KubeObjects` is
the small I/O that creates them idempotently, reads readiness the way KServe's own Python
client does, and deletes versions no longer in play. The traffic split sits behind
`TrafficBackend` so KServe's `canaryTrafficPercent` or a Gateway API `HTTPRoute` can be added
without touching the operator.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import BaseModel, ConfigDict

from contracts import kube
from contracts.cloudevents import (
    LOGGER_METADATA_ANNOTATIONS,
    LOGGER_METADATA_HEADERS,
    LOGGER_MODE_ALL,
)
from contracts.headers import BUCKET_HEADER, BUCKETS, ROLE_CANDIDATE, ROLE_HEADER, ROLE_STABLE
from operators.api.mlmodel import Assignment, Serving, Traffic

log = logging.getLogger(__name__)

SERVICE_PORT = 80
# Istio's reserved gateway name for every sidecar in the mesh (VirtualService.gateways,
# https://istio.io/v1.27/docs/reference/config/networking/virtual-service/#VirtualService).
MESH_GATEWAY = "mesh"
# The port's name and appProtocol tell Istio the traffic is HTTP, so the VirtualService's http
# routes apply to it (explicit protocol selection,
# https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/).
SERVICE_PORT_NAME = "http"


class Owner(BaseModel):
    """The MLModel that owns the serving objects."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": kube.API_VERSION,
            "kind": "MLModel",
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def isvc_name(model: str, version: str) -> str:
    """`<mlmodel>-v<version>`: the monitor reads the MLModel name back by stripping `-v<n>`."""
    return f"{model}-v{version}"


def model_host(owner: Owner) -> str:
    """The host clients call for an MLModel, whatever version serves: its Service's name."""
    return f"{owner.name}.{owner.namespace}.svc.cluster.local"


def predictor_host(owner: Owner, version: str) -> str:
    return f"{isvc_name(owner.name, version)}-predictor.{owner.namespace}.svc.cluster.local"


def _labels(owner: Owner, version: str | None = None) -> dict[str, str]:
    labels = {kube.MANAGED_BY_LABEL: kube.MANAGED_BY_VALUE, kube.MLMODEL_LABEL: owner.name}
    if version is not None:
        labels[kube.MODEL_VERSION_LABEL] = version
    return labels


def _resources(serving: Serving) -> dict[str, Any] | None:
    if serving.resources is None:
        return None
    limits = serving.resources.to_k8s()
    return {"requests": limits, "limits": limits} if limits else None


def inference_service(
    owner: Owner,
    version: str,
    storage_uri: str,
    serving: Serving,
    monitor_url: str | None,
    transformer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One model version's InferenceService; never changed after creation (one per version).

    ``transformer``: the Feast transformer container (``operators/mlmodel/features.py``) of a
    model serving from Feast. The logger stays on the predictor, so the prediction log holds
    the request the transformer filled: the served features, with the entity key."""
    model: dict[str, Any] = {
        "modelFormat": {"name": serving.model_format},
        "storageUri": storage_uri,
    }
    if serving.runtime:
        model["runtime"] = serving.runtime
    resources = _resources(serving)
    if resources:
        model["resources"] = resources
    predictor: dict[str, Any] = {"minReplicas": serving.min_replicas, "model": model}
    if monitor_url:
        # KServe's agent sends neither the version nor the request id on its own: it copies the
        # named headers into ce-metadata and the named annotations (set below) into
        # ce-annotations (contracts/cloudevents.py cites the agent's code).
        predictor["logger"] = {
            "mode": LOGGER_MODE_ALL,
            "url": monitor_url,
            "metadataHeaders": list(LOGGER_METADATA_HEADERS),
            "metadataAnnotations": list(LOGGER_METADATA_ANNOTATIONS),
        }
    return {
        "apiVersion": f"{kube.ISVC_GROUP}/{kube.ISVC_VERSION}",
        "kind": "InferenceService",
        "metadata": {
            "name": isvc_name(owner.name, version),
            "namespace": owner.namespace,
            "labels": _labels(owner, version),
            "annotations": {kube.MLMODEL_LABEL: owner.name, kube.MODEL_VERSION_LABEL: version},
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "predictor": predictor,
            **({"transformer": {"containers": [transformer]}} if transformer else {}),
        },
    }


def model_service(owner: Owner) -> dict[str, Any]:
    """The Service behind the VirtualService host ``<mlmodel>.<ns>.svc.cluster.local``.

    Istio applies a VirtualService to a Kubernetes host only when that host is in its service
    registry and a caller can resolve it: without a Service the name has no DNS record and
    sidecars have no route for it (a destination "should unambiguously refer to a service in
    the service registry", https://istio.io/v1.27/docs/reference/config/networking/virtual-service/#Destination).
    Selector-less ClusterIP, not ExternalName: the ClusterIP gives the name an address the
    sidecar intercepts and routes by the VirtualService, whereas since Istio 1.21 an
    ExternalName Service is only an alias and VirtualServices on it no longer apply
    (https://istio.io/latest/news/releases/1.21.x/announcing-1.21/upgrade-notes/). No selector:
    the Service has no endpoints of its own; every request is routed by the VirtualService to
    a version's predictor (a caller outside the mesh goes through the gateway instead).
    """
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": owner.name,
            "namespace": owner.namespace,
            "labels": _labels(owner),
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "type": "ClusterIP",
            "ports": [
                {
                    "name": SERVICE_PORT_NAME,
                    "port": SERVICE_PORT,
                    "protocol": "TCP",
                    "appProtocol": SERVICE_PORT_NAME,
                }
            ],
        },
    }


class TrafficTarget(BaseModel):
    """Where an MLModel's traffic should go: versions and the split among them."""

    model_config = ConfigDict(frozen=True)

    owner: Owner
    stable_version: str
    candidate_version: str | None
    traffic: Traffic
    assignment: Assignment = Assignment()


def _route(owner: Owner, version: str, weight: int, role: str) -> dict[str, Any]:
    return {
        "destination": {"host": predictor_host(owner, version), "port": {"number": SERVICE_PORT}},
        "weight": weight,
        "headers": {"request": {"set": {ROLE_HEADER: role}}},
    }


def bucket_regex(below: int) -> str:
    """An RE2 regex (what Istio's ``StringMatch.regex`` takes) matching the decimal buckets
    ``0``..``below - 1`` exactly: ``^(?:[0-9]|[1-4][0-9])$`` for 50."""
    if not 1 <= below <= BUCKETS:
        raise ValueError(f"bucket bound {below} outside 1..{BUCKETS}")
    last = below - 1
    parts = [f"[0-{min(last, 9)}]"]
    tens, ones = divmod(last, 10)
    if tens >= 2:
        parts.append(f"[1-{tens - 1}][0-9]")
    if tens >= 1:
        parts.append(f"{tens}[0-{ones}]")
    return "^(?:" + "|".join(parts) + ")$"


def _bucket_match(regex: str) -> list[dict[str, Any]]:
    return [{"headers": {BUCKET_HEADER: {"regex": regex}}}]


def _http_routes(target: TrafficTarget) -> list[dict[str, Any]]:
    """``spec.http``: one weighted route; with sticky assignment during a split, two bucket
    routes in front of it (buckets below the candidate's weight → candidate, any other
    bucket → stable), so the weighted route is left to requests that carry no bucket."""
    owner, traffic = target.owner, target.traffic
    routes = [_route(owner, target.stable_version, traffic.stable, ROLE_STABLE)]
    candidate = target.candidate_version
    if candidate is not None and traffic.candidate > 0:
        routes.append(_route(owner, candidate, traffic.candidate, ROLE_CANDIDATE))
    mirror: dict[str, Any] = {}
    if candidate is not None and traffic.mirror > 0:
        host = predictor_host(owner, candidate)
        mirror["mirror"] = {"host": host, "port": {"number": SERVICE_PORT}}
        mirror["mirrorPercentage"] = {"value": float(traffic.mirror)}
    weighted = {"route": routes, **mirror}
    if target.assignment.by == "request" or len(routes) < 2 or traffic.stable == 0:
        return [weighted]
    assert candidate is not None
    share = round(BUCKETS * traffic.candidate / (traffic.candidate + traffic.stable))
    if share <= 0 or share >= BUCKETS:
        return [weighted]
    to_candidate = {
        "name": "sticky-candidate",
        "match": _bucket_match(bucket_regex(share)),
        "route": [_route(owner, candidate, 100, ROLE_CANDIDATE)],
        **mirror,
    }
    to_stable = {
        "name": "sticky-stable",
        "match": _bucket_match(bucket_regex(BUCKETS)),
        "route": [_route(owner, target.stable_version, 100, ROLE_STABLE)],
        **mirror,
    }
    return [to_candidate, to_stable, weighted]


def assignment_annotation(assignment: Assignment) -> str | None:
    """What the bucket is computed from (``kube.ASSIGNMENT_ANNOTATION``); None by request."""
    if assignment.by == "request":
        return None
    return json.dumps({"by": assignment.by, "key": assignment.key, "header": BUCKET_HEADER})


def gateways_for(gateway: str | None) -> list[str]:
    """``spec.gateways``: the sidecars (``mesh``) and, when configured, the ingress gateway
    (``<namespace>/<name>``). Naming a gateway without ``mesh`` would take the routes away from
    in-mesh callers: Istio applies ``mesh`` only by default, when the field is empty."""
    return [MESH_GATEWAY, gateway] if gateway else [MESH_GATEWAY]


def virtual_service(target: TrafficTarget, gateway: str | None = None) -> dict[str, Any]:
    """The Istio VirtualService: weights stable/candidate, mirror a share to a shadow, and
    with sticky assignment the bucket routes (see ``docs/sticky-assignment.md``); bound to the
    mesh and to ``gateway`` (``<namespace>/<name>`` of an Istio Gateway) when given."""
    owner = target.owner
    metadata: dict[str, Any] = {
        "name": owner.name,
        "namespace": owner.namespace,
        "labels": _labels(owner),
        "ownerReferences": [owner.reference()],
    }
    annotation = assignment_annotation(target.assignment)
    if annotation is not None:
        metadata["annotations"] = {kube.ASSIGNMENT_ANNOTATION: annotation}
    return {
        "apiVersion": f"{kube.VS_GROUP}/{kube.VS_VERSION}",
        "kind": "VirtualService",
        "metadata": metadata,
        "spec": {
            "hosts": [model_host(owner)],
            "gateways": gateways_for(gateway),
            "http": _http_routes(target),
        },
    }


def isvc_ready(obj: Mapping[str, Any] | None) -> bool:
    """KServe's client: the `Ready` condition is True and the controller has seen this generation.

    `observedGeneration >= generation`, as KServe's own Python client checks it
    (`KServeClient.is_isvc_ready` in the kserve package, kserve/api/kserve_client.py): a status written for a newer generation than the copy we
    read (a read racing an update) is still a status of this spec or a later one, never stale.
    """
    if not obj:
        return False
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return False
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class KubeObjects:
    """Create/patch/read/delete of the serving objects through the Kubernetes API."""

    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    def ensure_service(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create the MLModel's Service if missing; an existing one is left as it is (its
        spec never changes, and garbage collection removes it with the MLModel)."""
        meta = body["metadata"]
        try:
            created = self.core.create_namespaced_service(meta["namespace"], body)
        except ApiException as error:
            if error.status != 409:
                raise
            created = self.core.read_namespaced_service(meta["name"], meta["namespace"])
        found: dict[str, Any] = self.core.api_client.sanitize_for_serialization(created)
        return found

    def ensure_isvc(self, body: dict[str, Any]) -> None:
        """Create if missing. An existing one is left alone: a version's object is immutable."""
        meta = body["metadata"]
        try:
            self.custom.create_namespaced_custom_object(
                kube.ISVC_GROUP, kube.ISVC_VERSION, meta["namespace"], kube.ISVC_PLURAL, body
            )
        except ApiException as error:
            if error.status != 409:
                raise

    def _get(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                group, version, namespace, plural, name
            )
            return found
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def read_isvc(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(kube.ISVC_GROUP, kube.ISVC_VERSION, namespace, kube.ISVC_PLURAL, name)

    def delete_isvcs_except(self, owner: Owner, keep: set[str]) -> list[str]:
        """Delete this MLModel's InferenceServices whose version is not in `keep`."""
        listed = self.custom.list_namespaced_custom_object(
            kube.ISVC_GROUP,
            kube.ISVC_VERSION,
            owner.namespace,
            kube.ISVC_PLURAL,
            label_selector=f"{kube.MLMODEL_LABEL}={owner.name}",
        )
        deleted = []
        for item in listed.get("items", []):
            meta = item.get("metadata") or {}
            version = (meta.get("labels") or {}).get(kube.MODEL_VERSION_LABEL)
            if version is None or version in keep or meta.get("deletionTimestamp"):
                continue
            try:
                self.custom.delete_namespaced_custom_object(
                    kube.ISVC_GROUP,
                    kube.ISVC_VERSION,
                    owner.namespace,
                    kube.ISVC_PLURAL,
                    meta["name"],
                )
            except ApiException as error:
                if error.status != 404:
                    raise
            deleted.append(meta["name"])
        return deleted

    def apply_virtual_service(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create, or merge-patch spec and labels of the existing one (idempotent)."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        try:
            created: dict[str, Any] = self.custom.create_namespaced_custom_object(
                kube.VS_GROUP, kube.VS_VERSION, namespace, kube.VS_PLURAL, body
            )
            return created
        except ApiException as error:
            if error.status != 409:
                raise
        # The assignment annotation is set or removed (null) with the spec it goes with.
        annotation = (meta.get("annotations") or {}).get(kube.ASSIGNMENT_ANNOTATION)
        annotations = {kube.ASSIGNMENT_ANNOTATION: annotation}
        patch = {
            "metadata": {"labels": meta["labels"], "annotations": annotations},
            "spec": body["spec"],
        }
        patched: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            kube.VS_GROUP, kube.VS_VERSION, namespace, kube.VS_PLURAL, name, patch
        )
        return patched

    def virtual_service_url(self, namespace: str, name: str) -> str | None:
        """``status.url`` of a VirtualService: the local router's URL (Istio writes none)."""
        found = self._get(kube.VS_GROUP, kube.VS_VERSION, namespace, kube.VS_PLURAL, name)
        url = ((found or {}).get("status") or {}).get("url")
        return str(url) if url else None

    def read_experiment(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Experiment a drift alarm retrains (None when it does not exist)."""
        return self._get(kube.GROUP, kube.VERSION, namespace, "experiments", name)

    def read_feature_view(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The FeatureView a skew check compares served features with (None when missing)."""
        return self._get(kube.GROUP, kube.VERSION, namespace, "featureviews", name)

    def annotate_experiment(self, namespace: str, name: str, key: str, value: str) -> None:
        """Merge-patch one annotation onto an Experiment (a retrain request)."""
        patch = {"metadata": {"annotations": {key: value}}}
        self.custom.patch_namespaced_custom_object(
            kube.GROUP, kube.VERSION, namespace, "experiments", name, patch
        )


def _owned_by(obj: Mapping[str, Any], owner: Owner) -> bool:
    references = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner.uid for ref in references)


class TrafficBackend(Protocol):
    """Realizes a traffic split; returns the URL clients call, when known."""

    def apply(self, target: TrafficTarget) -> str | None: ...


class IstioTraffic:
    """Traffic as an Istio VirtualService over the MLModel's own Service (realized locally
    by the kubeloop router), bound to the mesh and to ``gateway`` when set."""

    def __init__(self, objects: KubeObjects, gateway: str | None = None) -> None:
        self.objects = objects
        self.gateway = gateway

    def apply(self, target: TrafficTarget) -> str | None:
        # The Service first: a VirtualService whose host has none routes nothing.
        service = self.objects.ensure_service(model_service(target.owner))
        if not _owned_by(service, target.owner):
            log.warning(
                "Service %s/%s exists and is not owned by MLModel %s: routing through it",
                target.owner.namespace,
                target.owner.name,
                target.owner.name,
            )
        applied = self.objects.apply_virtual_service(virtual_service(target, self.gateway))
        url = (applied.get("status") or {}).get("url")
        return str(url) if url else None
