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

from operators.api.common import GROUP, VERSION, ResourceKind, StatusBase
from operators.kind import Event, KindObject, Outcome, from_body
from operators.status import merge_patch

B = TypeVar("B")
Reconcile = Callable[[B, KindObject[Any, Any], datetime], Outcome[Any]]

# Kopf retries a handler that raised an unexpected error only after 60 s; an API server that is
# restarting, a registry that is briefly away or a write that lost a race (409) are worth a new
# pass within seconds (a control-plane restart used to stall a rollout for a minute).
TRANSIENT_RETRY_S = 5.0
RETRIED_API_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


def is_transient(error: BaseException) -> bool:
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(error, ApiException):
        return error.status in RETRIED_API_STATUSES
    return isinstance(error, ConnectionError | TimeoutError | HTTPError)


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
            try:
                outcome = (step or self.reconcile)(self.backends(), obj, datetime.now(UTC))
            except Exception as error:
                if not is_transient(error):
                    raise
                message = f"{type(error).__name__}: {error}"[:500]
                raise kopf.TemporaryError(message, delay=TRANSIENT_RETRY_S) from error
        else:
            outcome = obj.outcome()
        record_events(body, outcome.events)
        if outcome.status is not None:
            write_status(body, patch, outcome.status)


def register_kind(
    registry: kopf.OperatorRegistry,
    controller: KindController[B],
    *,
    ids: tuple[str, str, str],
    interval: float,
    initial_delay: float | None = None,
    timer_step: Reconcile[B] | None = None,
) -> None:
    """on.resume/create/update and a timer -> the kind's reconcile; on.delete holds the finalizer.

    `ids` (change, timer, delete) name the handlers in Kopf's progress annotations; they are
    the names the handlers have always had, so objects handled before keep their records.
    """
    change_id, timer_id, delete_id = ids
    resource = (GROUP, VERSION, controller.kind.plural)

    def on_change(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        controller.handle(body, patch)

    def on_timer(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        controller.handle(body, patch, step=timer_step)

    def on_delete(**_: Any) -> None:
        """Owned children go with ownerReferences; this holds the finalizer until then."""

    for on in (kopf.on.resume, kopf.on.create, kopf.on.update):
        on(*resource, id=change_id, registry=registry)(on_change)
    kopf.timer(
        *resource, id=timer_id, interval=interval, initial_delay=initial_delay, registry=registry
    )(on_timer)
    kopf.on.delete(*resource, id=delete_id, registry=registry)(on_delete)
