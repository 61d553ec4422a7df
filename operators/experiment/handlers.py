"""Kopf handlers for the experiment kind: parse and delegate, nothing else."""

from __future__ import annotations

from typing import Any

import kopf

from operators.api.common import GROUP, VERSION
from operators.api.kinds import EXPERIMENT
from operators.experiment import reconcile
from operators.runtime import startup  # noqa: F401  (registers the shared startup handler)
from operators.shell import reconcile_object


@kopf.on.resume(GROUP, VERSION, EXPERIMENT.plural)
@kopf.on.create(GROUP, VERSION, EXPERIMENT.plural)
@kopf.on.update(GROUP, VERSION, EXPERIMENT.plural)
def reconcile_experiment(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    reconcile_object(EXPERIMENT, body, patch, reconcile.plan_status)


@kopf.on.delete(GROUP, VERSION, EXPERIMENT.plural)
def release_experiment(body: kopf.Body, **_: Any) -> None:
    """Owned children go with ownerReferences; this holds the finalizer until then."""
