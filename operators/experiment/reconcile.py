"""Pure core of the Experiment operator."""

from __future__ import annotations

from operators.api.experiment import ExperimentPhase, ExperimentSpec, ExperimentStatus
from operators.status import observed, with_condition


def plan_status(
    spec: ExperimentSpec, status: ExperimentStatus, generation: int | None
) -> ExperimentStatus:
    if status.phase is None:
        status = status.model_copy(update={"phase": ExperimentPhase.PENDING})
    if status.registered_version is None:
        status = with_condition(
            status, "Ready", "False", "NotTrained", "no trial has been trained yet", generation
        )
    return observed(status, generation)
