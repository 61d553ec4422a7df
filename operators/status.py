"""Pure helpers that derive the next status of a resource from what a reconcile learned."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from operators.api.common import ConditionStatus, StatusBase, set_condition

S = TypeVar("S", bound=StatusBase)

REASON_INVALID_SPEC = "InvalidSpec"


def with_condition(
    status: S,
    type_: str,
    value: ConditionStatus | str,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime | None = None,
) -> S:
    conditions = set_condition(status.conditions, type_, value, reason, message, generation, now)
    return status.model_copy(update={"conditions": conditions})


def observed(status: S, generation: int | None) -> S:
    return status.model_copy(update={"observed_generation": generation})


def invalid_spec(status: S, generation: int | None, message: str) -> S:
    """Ready=False with the field-naming message; the other tracked conditions go Unknown."""
    status = with_condition(status, "Ready", "False", REASON_INVALID_SPEC, message, generation)
    for other in status.TRACKED_CONDITIONS:
        if other != "Ready":
            status = with_condition(
                status, other, "Unknown", REASON_INVALID_SPEC, "spec is invalid", generation
            )
    return observed(status, generation)
