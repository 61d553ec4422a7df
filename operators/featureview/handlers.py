"""Kopf handlers for the featureview kind: parse and delegate, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from operators.api.common import GROUP, VERSION
from operators.api.kinds import FEATUREVIEW
from operators.backends.pipelines import pipeline_backend_from_config
from operators.config import OperatorConfig
from operators.featureview import service
from operators.featureview.status_patch import write_status
from operators.runtime import PIPELINES, context_of, shared_backend
from operators.runtime import startup as shared_startup
from operators.status import REASON_INVALID_SPEC

FEATUREVIEW_BACKENDS = "featureview"
# Kopf fixes a timer's interval when the handler is registered, before startup runs, so this
# one value is read from the environment here; every other setting arrives through the memo.
POLL_S = OperatorConfig.from_env().poll_interval_s


@kopf.on.startup()
def build_featureview_backends(settings: kopf.OperatorSettings, memo: kopf.Memo, **kw: Any) -> None:
    if getattr(memo, "context", None) is None:
        shared_startup(settings=settings, memo=memo, **kw)
    context = context_of(memo)
    pipelines = shared_backend(
        context, PIPELINES, lambda: pipeline_backend_from_config(context.config)
    )
    context.backends[FEATUREVIEW_BACKENDS] = service.FeatureViewBackends.from_config(
        context.config, pipelines
    )


def _backends(memo: kopf.Memo) -> service.FeatureViewBackends:
    backends: service.FeatureViewBackends = context_of(memo).backends[FEATUREVIEW_BACKENDS]
    return backends


@kopf.on.resume(GROUP, VERSION, FEATUREVIEW.plural)
@kopf.on.create(GROUP, VERSION, FEATUREVIEW.plural)
@kopf.on.update(GROUP, VERSION, FEATUREVIEW.plural)
def reconcile_featureview(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    obj = service.FeatureViewObject.from_body(body)
    outcome = service.reconcile(_backends(memo), obj, datetime.now(UTC))
    if outcome.problem:
        kopf.warn(body, reason=REASON_INVALID_SPEC, message=outcome.problem)
    write_status(body, patch, outcome.status)


@kopf.timer(GROUP, VERSION, FEATUREVIEW.plural, interval=POLL_S, initial_delay=POLL_S)
def follow_backfill(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Launches pinned runs, follows running ones, pins scheduled incremental windows."""
    obj = service.FeatureViewObject.from_body(body)
    write_status(body, patch, service.reconcile(_backends(memo), obj, datetime.now(UTC)).status)


@kopf.on.delete(GROUP, VERSION, FEATUREVIEW.plural)
def release_featureview(body: kopf.Body, **_: Any) -> None:
    """Owned children go with ownerReferences; this holds the finalizer until then."""
