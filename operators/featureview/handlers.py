"""Kopf registration for FeatureView: changes and the timer go to the one reconcile."""

from __future__ import annotations

from typing import Any

import kopf

from operators.api.kinds import FEATUREVIEW
from operators.controller import KindController, register_kind
from operators.featureview import service
from operators.runtime import OperatorContext


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    key, poll = FEATUREVIEW.plural, context.config.poll_interval_s

    @kopf.on.startup(registry=registry)
    def build_featureview_backends(**_: Any) -> None:
        context.backends[key] = service.FeatureViewBackends.from_config(
            context.config, context.pipelines()
        )

    controller = KindController(FEATUREVIEW, service.reconcile, lambda: context.backends[key])
    # The timer launches pinned runs, follows running ones, pins scheduled incremental windows.
    ids = ("reconcile_featureview", "follow_backfill", "release_featureview")
    register_kind(registry, controller, ids=ids, interval=poll, initial_delay=poll)
