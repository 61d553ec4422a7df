"""What the MLModel service talks to: the registry, the Kubernetes objects, traffic, the monitor.

Built once at startup (`build_backends`) from the configuration and the process's Kubernetes
API client; the service and `monitoring.py` receive it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from operators.api.mlmodel import MLModelSpec, MLModelStatus
from operators.backends.monitor import MonitorClient
from operators.backends.prometheus import RequestCountSource
from operators.backends.registry import ModelRegistry
from operators.backends.serving import KubeObjects, Owner, TrafficBackend
from operators.config import OperatorConfig
from operators.kind import KindObject

MLModel = KindObject[MLModelSpec, MLModelStatus]


@dataclass
class ServingBackends:
    registry: ModelRegistry
    objects: KubeObjects
    traffic: TrafficBackend
    monitor: MonitorClient | None = None
    monitor_url: str | None = None
    # Requests and errors per version from the mesh (istio_requests_total via Prometheus):
    # KServe's agent logs only 200s, so on a cluster the monitor cannot count errors.
    request_counts: RequestCountSource | None = None
    # Serving from Feast: the Feast store FeatureViews are applied to (as the FeatureView
    # operator's), and the image of the transformer container (None: the embedded default).
    feast_repo: Path | None = None
    feast_registry: str | None = None
    feast_online_store: str | None = None
    serving_image: str | None = None


def owner_of(obj: MLModel) -> Owner:
    """The MLModel as the owner of its InferenceServices, Service and VirtualService."""
    return Owner(namespace=obj.namespace, name=obj.name, uid=obj.uid)


def build_backends(config: OperatorConfig, api_client: Any) -> ServingBackends:
    """The serving backends for this process, from the operator's configuration (startup)."""
    from operators.backends.monitor import HttpMonitor
    from operators.backends.prometheus import PrometheusCounts, RouterCounts
    from operators.backends.registry import MlflowRegistry
    from operators.backends.serving import IstioTraffic

    objects = KubeObjects(api_client)
    tracking_uri = config.effective_mlflow_tracking_uri
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return ServingBackends(
        registry=MlflowRegistry.from_uri(tracking_uri, config.mlflow_artifacts_destination),
        objects=objects,
        traffic=IstioTraffic(objects, config.istio_gateway or None),
        monitor=(
            HttpMonitor(config.monitor_url, token_file=config.monitor_token_file)
            if config.monitor_url
            else None
        ),
        # Where the InferenceServices' loggers send events: the monitor's ingest port when it
        # has one (the NetworkPolicy lets predictors reach only that port).
        monitor_url=config.monitor_ingest_url or config.monitor_url,
        # The local router's exposition where no Prometheus is configured: it answers only
        # where the serving controller wrote the router's URL (the embedded default).
        request_counts=(
            PrometheusCounts(config.prometheus_url)
            if config.prometheus_url
            else RouterCounts(objects.virtual_service_url)
        ),
        feast_repo=Path(config.feast_repo),
        feast_registry=config.feast_registry,
        feast_online_store=config.feast_online_store,
        serving_image=config.serving_image,
    )
