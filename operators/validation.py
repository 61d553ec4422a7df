"""The one spec validator (the kinds' pydantic models): parse a spec dict into its model.

`operators.kind.from_body` calls it for every reconcile; an invalid spec yields the first invalid
field and a message naming every problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from operators.api.common import ResourceKind, describe_validation_error, first_invalid_field


@dataclass(frozen=True)
class SpecCheck:
    """The parsed spec, or the first invalid field and a message naming every problem."""

    spec: BaseModel | None
    field: str | None = None
    message: str | None = None

    @property
    def valid(self) -> bool:
        return self.spec is not None


def check_spec(kind: ResourceKind, spec: dict[str, Any] | None) -> SpecCheck:
    try:
        return SpecCheck(spec=kind.spec_model.model_validate(spec or {}))
    except ValidationError as error:
        return SpecCheck(
            spec=None,
            field=first_invalid_field(error),
            message=describe_validation_error(error),
        )
