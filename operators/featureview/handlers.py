"""Kopf handlers for the featureview kind: parse and delegate, nothing else."""

from __future__ import annotations

from typing import Any

import kopf

from operators.api.common import GROUP, VERSION
from operators.api.kinds import FEATUREVIEW
from operators.featureview import reconcile
from operators.runtime import startup  # noqa: F401  (registers the shared startup handler)
from operators.shell import reconcile_object


@kopf.on.resume(GROUP, VERSION, FEATUREVIEW.plural)
@kopf.on.create(GROUP, VERSION, FEATUREVIEW.plural)
@kopf.on.update(GROUP, VERSION, FEATUREVIEW.plural)
def reconcile_featureview(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    reconcile_object(FEATUREVIEW, body, patch, reconcile.plan_status)


@kopf.on.delete(GROUP, VERSION, FEATUREVIEW.plural)
def release_featureview(body: kopf.Body, **_: Any) -> None:
    """Owned children go with ownerReferences; this holds the finalizer until then."""
