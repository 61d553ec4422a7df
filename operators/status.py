"""Pure helpers that derive the next status of a resource from what a reconcile learned."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

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


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns `old` into `new`: only what changed, keys `new` no
    longer has sent as null (a merge patch would otherwise keep them), lists replaced whole."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif before != value:
            patch[key] = value
    return patch
