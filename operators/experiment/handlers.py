"""Kopf registration for Experiment: changes and the timer go to the one reconcile."""

from __future__ import annotations

from typing import Any

import kopf

from operators.api.kinds import EXPERIMENT
from operators.controller import KindController, register_kind
from operators.experiment import service
from operators.runtime import OperatorContext


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    key, poll = EXPERIMENT.plural, context.config.poll_interval_s

    @kopf.on.startup(registry=registry)
    def build_experiment_backends(**_: Any) -> None:
        reader = service.KubeFeatureViews(context.kubernetes())
        context.backends[key] = service.ExperimentBackends.from_config(
            context.config, reader, context.pipelines()
        )

    controller = KindController(EXPERIMENT, service.reconcile, lambda: context.backends[key])
    # The timer follows running trials, launches the next, registers the best when all finish.
    ids = ("reconcile_experiment", "follow_trials", "release_experiment")
    register_kind(registry, controller, ids=ids, interval=poll, initial_delay=poll)
