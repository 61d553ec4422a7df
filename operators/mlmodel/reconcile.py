"""Pure core of the MLModel operator."""

from __future__ import annotations

from operators.api.mlmodel import MLModelSpec, MLModelStatus, RolloutPhase
from operators.status import observed, with_condition


def plan_status(spec: MLModelSpec, status: MLModelStatus, generation: int | None) -> MLModelStatus:
    if status.phase is None:
        status = status.model_copy(update={"phase": RolloutPhase.PENDING})
    if status.stable_version is None:
        status = with_condition(
            status, "Ready", "False", "NotServing", "no model version is being served", generation
        )
    return observed(status, generation)
