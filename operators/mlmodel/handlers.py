"""Kopf handlers for the mlmodel kind: parse and delegate, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from operators.api.common import GROUP, VERSION
from operators.api.kinds import MLMODEL
from operators.config import OperatorConfig
from operators.mlmodel import service
from operators.mlmodel.reconcile import status_patch
from operators.mlmodel.rollout import Event
from operators.runtime import context_of
from operators.runtime import startup as shared_startup

SERVING_BACKENDS = "mlmodel-serving"
# Kopf fixes a timer's interval when the handler is registered, before startup runs, so this
# one value is read from the environment here; every other setting arrives through the memo.
TICK_S = OperatorConfig.from_env().analysis_tick_s


@kopf.on.startup()
def build_serving_backends(settings: kopf.OperatorSettings, memo: kopf.Memo, **kw: Any) -> None:
    if getattr(memo, "context", None) is None:
        shared_startup(settings=settings, memo=memo, **kw)
    context = context_of(memo)
    context.backends[SERVING_BACKENDS] = service.build_backends(context.config)


def _backends(memo: kopf.Memo) -> service.ServingBackends:
    backends: service.ServingBackends = context_of(memo).backends[SERVING_BACKENDS]
    return backends


def _post(body: kopf.Body, events: list[Event]) -> None:
    for event in events:
        kopf.event(body, type=str(event.type), reason=event.reason, message=event.message)


def _write(patch: kopf.Patch, outcome: service.Outcome) -> None:
    if outcome.status is not None:
        for key, value in status_patch(outcome.status).items():
            patch.status[key] = value


@kopf.on.resume(GROUP, VERSION, MLMODEL.plural)
@kopf.on.create(GROUP, VERSION, MLMODEL.plural)
@kopf.on.update(GROUP, VERSION, MLMODEL.plural)
def reconcile_mlmodel(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    outcome = service.reconcile(service.MLModelObject.from_body(body))
    _post(body, outcome.events)
    _write(patch, outcome)


@kopf.timer(GROUP, VERSION, MLMODEL.plural, interval=TICK_S)
def step_rollout(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    now = datetime.now(UTC)
    outcome = service.observe_and_step(_backends(memo), service.MLModelObject.from_body(body), now)
    _post(body, outcome.events)
    _write(patch, outcome)


@kopf.on.delete(GROUP, VERSION, MLMODEL.plural)
def release_mlmodel(body: kopf.Body, **_: Any) -> None:
    """Owned children go with ownerReferences; this holds the finalizer until then."""
