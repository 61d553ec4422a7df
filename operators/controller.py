"""The one Kopf shell every kind's handlers route to: read, reconcile, post events, patch status.

`KindController.handle` reads the object (`operators.kind.from_body`: the spec validated by the
kind's pydantic model), lets the kind's service decide (`reconcile(backends, obj, now)` ->
`Outcome`), posts the outcome's events and sends the status as a merge patch of what changed.
Only the kinds' `handlers.py` import this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import kopf

from operators.api.common import ResourceKind, StatusBase
from operators.kind import Event, KindObject, Outcome, from_body
from operators.status import merge_patch

B = TypeVar("B")
Reconcile = Callable[[B, KindObject[Any, Any], datetime], Outcome[Any]]


def write_status(body: kopf.Body, patch: kopf.Patch, status: StatusBase) -> dict[str, Any]:
    """Patch the object's status to `status`, sending only what changed; returns what was sent."""
    diff = merge_patch(dict(body.get("status") or {}), status.to_k8s())
    for key, value in diff.items():
        patch.status[key] = value
    return diff


def record_events(body: kopf.Body, events: list[Event]) -> None:
    for event in events:
        kopf.event(body, type=str(event.type), reason=event.reason, message=event.message)


@dataclass(frozen=True)
class KindController(Generic[B]):
    """One kind's reconcile as Kopf calls it; `backends` returns what startup built."""

    kind: ResourceKind
    reconcile: Reconcile[B]
    backends: Callable[[], B]

    def handle(self, body: kopf.Body, patch: kopf.Patch, step: Reconcile[B] | None = None) -> None:
        obj = from_body(self.kind, body)
        if isinstance(obj, KindObject):
            outcome = (step or self.reconcile)(self.backends(), obj, datetime.now(UTC))
        else:
            outcome = obj.outcome()
        record_events(body, outcome.events)
        if outcome.status is not None:
            write_status(body, patch, outcome.status)
