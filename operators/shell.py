"""The part of every reconcile that is the same for all kinds: parse, validate, write status.

Handlers call `reconcile_object`, passing the kind's pure planner; this module does the I/O
that Kopf does not do for us (events), and turns the planned status into Kopf's status patch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kopf
from pydantic import BaseModel

from operators.api.common import ResourceKind, StatusBase
from operators.status import REASON_INVALID_SPEC, invalid_spec
from operators.validation import check_spec

# planner(spec, status, generation) -> next status; pure.
Planner = Callable[[Any, Any, int | None], StatusBase]


def read_status(kind: ResourceKind, body: kopf.Body) -> StatusBase:
    status = kind.status_model.model_validate(dict(body.get("status") or {}))
    assert isinstance(status, StatusBase)
    return status


def plan_for(
    kind: ResourceKind,
    spec: dict[str, Any],
    status: StatusBase,
    generation: int | None,
    planner: Planner,
) -> tuple[StatusBase, str | None]:
    """Pure: the next status, and the validation message if the spec is invalid."""
    check = check_spec(kind, spec)
    if not check.valid:
        return invalid_spec(status, generation, check.message or "invalid spec"), check.message
    return planner(check.spec, status, generation), None


def reconcile_object(
    kind: ResourceKind, body: kopf.Body, patch: kopf.Patch, planner: Planner
) -> BaseModel:
    generation = body.meta.get("generation")
    status = read_status(kind, body)
    next_status, problem = plan_for(kind, dict(body.spec), status, generation, planner)
    if problem:
        kopf.warn(body, reason=REASON_INVALID_SPEC, message=problem)
    write_status(patch, next_status)
    return next_status


def write_status(patch: kopf.Patch, status: StatusBase) -> None:
    for key, value in status.to_k8s().items():
        patch.status[key] = value
