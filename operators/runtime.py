"""What the operator process builds once at start-up and hands to every kind.

`operators.main` reads the configuration, creates an `OperatorContext`, and registers each
kind's handlers with it; backends are built by a start-up handler and kept here, shared where
several kinds use the same one (the pipeline backend, the Kubernetes API client).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kopf

from operators.api.common import FINALIZER, GROUP
from operators.config import OperatorConfig
from operators.peering import PEERING_NAME

PIPELINES = "pipelines"
KUBERNETES = "kubernetes"


@dataclass
class OperatorContext:
    """Everything a handler needs beyond the object itself; built once at startup."""

    config: OperatorConfig
    backends: dict[str, Any] = field(default_factory=dict)

    def shared(self, key: str, build: Callable[[], Any]) -> Any:
        """One instance per process of a backend several operators use (built on first need)."""
        if key not in self.backends:
            self.backends[key] = build()
        return self.backends[key]

    def kubernetes(self) -> Any:
        """The process's Kubernetes API client."""
        return self.shared(KUBERNETES, kubernetes_api_client)

    def pipelines(self) -> Any:
        from operators.backends.pipelines import pipeline_backend_from_config

        return self.shared(PIPELINES, lambda: pipeline_backend_from_config(self.config))


def kubernetes_api_client() -> Any:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    kubeconfig = os.environ.get("KUBECONFIG")
    if kubeconfig:
        return k8s_config.new_client_from_config(config_file=kubeconfig)
    k8s_config.load_incluster_config()
    return k8s.ApiClient()


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    # Kopf's bookkeeping goes to annotations under our prefix, never into our status, which
    # belongs to the schema the CRD declares (structural schemas would prune it anyway).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = 30  # WARNING and above become Kubernetes Events
    settings.watching.server_timeout = 300
    settings.peering.name = PEERING_NAME
