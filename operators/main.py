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
from operators.runtime import OperatorContext, configure_kopf

# In the order their dependencies need (features → training → serving).
KINDS = (featureview, experiment, mlmodel)


def build_registry(context: OperatorContext) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)

    for kind in KINDS:
        kind.register(registry, context)
    return registry


def run_operators(
    *, namespaces: list[str], standalone: bool, liveness: str | None, verbose: bool
) -> int:
    context = OperatorContext(config=OperatorConfig.from_env())
    registry = build_registry(context)
    kopf.configure(verbose=verbose)
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=not namespaces,
            namespaces=namespaces or (),
            standalone=standalone,
            liveness_endpoint=liveness,
        )
    )
    return 0
