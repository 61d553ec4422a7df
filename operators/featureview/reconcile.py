"""Pure core of the FeatureView operator."""

from __future__ import annotations

import hashlib
import json

from operators.api.featureview import FeatureViewSpec, FeatureViewStatus
from operators.status import observed, with_condition


def definition_version(spec: FeatureViewSpec) -> str:
    """Hash of what defines the feature values; the backfill window and schedule are excluded,
    so widening the window does not make a new version of the same features."""
    definition = spec.model_dump(
        by_alias=True, mode="json", exclude={"backfill", "online", "store"}
    )
    digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()
    return digest[:12]


def plan_status(
    spec: FeatureViewSpec, status: FeatureViewStatus, generation: int | None
) -> FeatureViewStatus:
    status = status.model_copy(update={"version": definition_version(spec)})
    if status.last_backfill is None:
        status = with_condition(
            status, "Ready", "False", "BackfillPending", "no backfill has finished yet", generation
        )
        status = with_condition(
            status, "Backfilled", "Unknown", "BackfillPending", "not started", generation
        )
    return observed(status, generation)
