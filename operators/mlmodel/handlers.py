"""Kopf registration for MLModel: changes acknowledge the spec, the timer drives the rollout."""

from __future__ import annotations

from typing import Any

import kopf

from operators.api.kinds import MLMODEL
from operators.controller import KindController, register_kind
from operators.mlmodel import backends, service
from operators.runtime import OperatorContext


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    key = MLMODEL.plural

    @kopf.on.startup(registry=registry)
    def build_serving_backends(**_: Any) -> None:
        context.backends[key] = backends.build_backends(context.config, context.kubernetes())

    controller = KindController(MLMODEL, service.reconcile, lambda: context.backends[key])
    ids = ("reconcile_mlmodel", "step_rollout", "release_mlmodel")
    register_kind(
        registry,
        controller,
        ids=ids,
        interval=context.config.analysis_tick_s,
        timer_step=service.observe_and_step,
    )
