"""The operator process: read the configuration once, register every kind, run Kopf.

`run_operators` is the one entry point (`python -m operators`, `kubeloop operator`). Handlers
are registered here, explicitly, into a registry of our own; importing a kind's package
registers nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from operators.config import OperatorConfig
from operators.experiment import handlers as experiment
from operators.featureview import handlers as featureview
from operators.mlmodel import handlers as mlmodel
from operators.peering import PEERING_NAME, draw_priority, ensure_cluster_peering
from operators.runtime import OperatorContext, configure_kopf

# In the order their dependencies need (features → training → serving).
KINDS = (featureview, experiment, mlmodel)


def build_registry(
    context: OperatorContext, *, cluster_peering: bool = False
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)

    if cluster_peering:
        # Before any watch starts (startup handlers run first): the object Kopf's mandatory
        # peering waits for; without it every operator would stay paused.
        @kopf.on.startup(registry=registry)
        def peering_object(**_: Any) -> None:
            from kubernetes import client as k8s

            ensure_cluster_peering(k8s.CustomObjectsApi(context.kubernetes()))

    for kind in KINDS:
        kind.register(registry, context)
    return registry


def peering_options(*, standalone: bool, priority: int | None) -> dict[str, Any]:
    """Kopf's peering arguments (operators/peering.py says why each is set)."""
    if standalone:
        return {"standalone": True}
    # A named peering is mandatory in Kopf: paused, never acting alone, until it has seen the
    # peering object and no live peer outranks it.
    return {
        "standalone": False,
        "peering_name": PEERING_NAME,
        "priority": draw_priority() if priority is None else priority,
    }


def run_operators(
    *,
    namespaces: list[str],
    standalone: bool,
    liveness: str | None,
    verbose: bool,
    priority: int | None = None,
) -> int:
    context = OperatorContext(config=OperatorConfig.from_env())
    # Namespaced operators peer through a KopfPeering in each namespace they serve, which the
    # installer creates (docs/deploy.md); the cluster-wide one is made here.
    registry = build_registry(context, cluster_peering=not standalone and not namespaces)
    kopf.configure(verbose=verbose)
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=not namespaces,
            namespaces=namespaces or (),
            liveness_endpoint=liveness,
            **peering_options(standalone=standalone, priority=priority),
        )
    )
    return 0
