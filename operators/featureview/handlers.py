"""Kopf registration for FeatureView: every event goes to the one reconcile."""

from __future__ import annotations

from typing import Any

import kopf

from operators.api.common import GROUP, VERSION
from operators.api.kinds import FEATUREVIEW
from operators.controller import KindController
from operators.featureview import service
from operators.runtime import OperatorContext


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    key, plural, poll = FEATUREVIEW.plural, FEATUREVIEW.plural, context.config.poll_interval_s
    controller = KindController(FEATUREVIEW, service.reconcile, lambda: context.backends[key])

    @kopf.on.startup(registry=registry)
    def build_featureview_backends(**_: Any) -> None:
        context.backends[key] = service.FeatureViewBackends.from_config(
            context.config, context.pipelines()
        )

    @kopf.on.resume(GROUP, VERSION, plural, registry=registry)
    @kopf.on.create(GROUP, VERSION, plural, registry=registry)
    @kopf.on.update(GROUP, VERSION, plural, registry=registry)
    def reconcile_featureview(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        controller.handle(body, patch)

    @kopf.timer(GROUP, VERSION, plural, interval=poll, initial_delay=poll, registry=registry)
    def follow_backfill(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        """Launches pinned runs, follows running ones, pins scheduled incremental windows."""
        controller.handle(body, patch)

    @kopf.on.delete(GROUP, VERSION, plural, registry=registry)
    def release_featureview(**_: Any) -> None:
        """Owned children go with ownerReferences; this holds the finalizer until then."""
