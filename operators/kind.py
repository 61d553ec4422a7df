"""The value types every kind shares: the object as a reconcile reads it, and its outcome.

I/O-free (pydantic and `operators.api` only), so pure cores and services can use them without
loading Kopf. `from_body` is the one validator: the spec is parsed by the kind's pydantic model,
and an invalid spec becomes `Ready=False`/`InvalidSpec` naming every invalid field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from operators.api.common import ResourceKind, StatusBase, find_condition
from operators.status import REASON_INVALID_SPEC, invalid_spec
from operators.validation import check_spec

SpecT = TypeVar("SpecT", bound=BaseModel)
StatusT = TypeVar("StatusT", bound=StatusBase)


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass
class Outcome(Generic[StatusT]):
    """What one reconcile pass decided: the next status (None: leave it), events to post, and
    child objects to ensure (none of the kinds returns children yet)."""

    status: StatusT | None
    events: list[Event] = field(default_factory=list)
    children: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class KindObject(Generic[SpecT, StatusT]):
    """One custom object with a valid spec, parsed into its kind's models."""

    name: str
    namespace: str
    uid: str
    generation: int | None
    annotations: dict[str, str]
    spec: SpecT
    status: StatusT


@dataclass(frozen=True)
class InvalidObject(Generic[StatusT]):
    """One custom object whose spec does not validate; `message` names every invalid field."""

    name: str
    namespace: str
    generation: int | None
    status: StatusT
    message: str

    def outcome(self) -> Outcome[StatusT]:
        """Ready=False/InvalidSpec; the Warning event only when the message is new."""
        ready = find_condition(self.status.conditions, "Ready")
        told = (
            ready is not None
            and ready.reason == REASON_INVALID_SPEC
            and ready.message == self.message
            and ready.observed_generation == self.generation
        )
        events = [] if told else [Event(EventType.WARNING, REASON_INVALID_SPEC, self.message)]
        return Outcome(invalid_spec(self.status, self.generation, self.message), events)


def from_body(
    kind: ResourceKind, body: Mapping[str, Any]
) -> KindObject[Any, Any] | InvalidObject[Any]:
    """Read a Kubernetes object (a Kopf body or a plain dict) into its typed value."""
    meta = body.get("metadata") or {}
    status = kind.status_model.model_validate(dict(body.get("status") or {}))
    name = str(meta.get("name"))
    namespace = str(meta.get("namespace") or "default")
    generation = meta.get("generation")
    check = check_spec(kind, dict(body.get("spec") or {}))
    if check.spec is None:
        return InvalidObject(name, namespace, generation, status, check.message or "invalid spec")
    return KindObject(
        name=name,
        namespace=namespace,
        uid=str(meta.get("uid") or ""),
        generation=generation,
        annotations=dict(meta.get("annotations") or {}),
        spec=check.spec,
        status=status,
    )
