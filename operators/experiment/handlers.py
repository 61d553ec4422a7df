"""Kopf registration for Experiment: every event goes to the one reconcile."""

from __future__ import annotations

from typing import Any

import kopf

from operators.api.common import GROUP, VERSION
from operators.api.kinds import EXPERIMENT
from operators.controller import KindController
from operators.experiment import service
from operators.runtime import OperatorContext


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    key, plural, poll = EXPERIMENT.plural, EXPERIMENT.plural, context.config.poll_interval_s
    controller = KindController(EXPERIMENT, service.reconcile, lambda: context.backends[key])

    @kopf.on.startup(registry=registry)
    def build_experiment_backends(**_: Any) -> None:
        reader = service.KubeFeatureViews(context.kubernetes())
        context.backends[key] = service.ExperimentBackends.from_config(
            context.config, reader, context.pipelines()
        )

    @kopf.on.resume(GROUP, VERSION, plural, registry=registry)
    @kopf.on.create(GROUP, VERSION, plural, registry=registry)
    @kopf.on.update(GROUP, VERSION, plural, registry=registry)
    def reconcile_experiment(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        controller.handle(body, patch)

    @kopf.timer(GROUP, VERSION, plural, interval=poll, initial_delay=poll, registry=registry)
    def follow_trials(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        """Follows running trials, launches the next ones, registers the best when all finish."""
        controller.handle(body, patch)

    @kopf.on.delete(GROUP, VERSION, plural, registry=registry)
    def release_experiment(**_: Any) -> None:
        """Owned children go with ownerReferences; this holds the finalizer until then."""
