"""Kopf registration for MLModel: changes acknowledge the spec, the timer drives the rollout."""

from __future__ import annotations

from typing import Any

import kopf

from operators.api.common import GROUP, VERSION
from operators.api.kinds import MLMODEL
from operators.controller import KindController
from operators.mlmodel import backends, service
from operators.runtime import OperatorContext


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    key, plural, tick = MLMODEL.plural, MLMODEL.plural, context.config.analysis_tick_s
    controller = KindController(MLMODEL, service.reconcile, lambda: context.backends[key])

    @kopf.on.startup(registry=registry)
    def build_serving_backends(**_: Any) -> None:
        context.backends[key] = backends.build_backends(context.config, context.kubernetes())

    @kopf.on.resume(GROUP, VERSION, plural, registry=registry)
    @kopf.on.create(GROUP, VERSION, plural, registry=registry)
    @kopf.on.update(GROUP, VERSION, plural, registry=registry)
    def reconcile_mlmodel(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        controller.handle(body, patch)

    @kopf.timer(GROUP, VERSION, plural, interval=tick, registry=registry)
    def step_rollout(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        controller.handle(body, patch, step=service.observe_and_step)

    @kopf.on.delete(GROUP, VERSION, plural, registry=registry)
    def release_mlmodel(**_: Any) -> None:
        """Owned children go with ownerReferences; this holds the finalizer until then."""
