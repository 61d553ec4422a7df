"""Kopf handlers for the mlmodel kind: parse and delegate, nothing else."""

from __future__ import annotations

from typing import Any

import kopf

from operators.api.common import GROUP, VERSION
from operators.api.kinds import MLMODEL
from operators.mlmodel import reconcile
from operators.runtime import startup  # noqa: F401  (registers the shared startup handler)
from operators.shell import reconcile_object


@kopf.on.resume(GROUP, VERSION, MLMODEL.plural)
@kopf.on.create(GROUP, VERSION, MLMODEL.plural)
@kopf.on.update(GROUP, VERSION, MLMODEL.plural)
def reconcile_mlmodel(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    reconcile_object(MLMODEL, body, patch, reconcile.plan_status)


@kopf.on.delete(GROUP, VERSION, MLMODEL.plural)
def release_mlmodel(body: kopf.Body, **_: Any) -> None:
    """Owned children go with ownerReferences; this holds the finalizer until then."""
