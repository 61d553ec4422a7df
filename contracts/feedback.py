"""The data of a feedback CloudEvent (``contracts.cloudevents.TYPE_FEEDBACK``): one label.

Written by applications (``services/monitor/outcomes/client.py`` is a helper), read by the
monitor (``services/monitor/outcomes/feedback.py``), which joins it to the prediction(s)
served for the same request and keeps it in the versions' quality windows.

Members (camelCase; unknown members are refused so that a typo such as ``requestID`` fails
loudly instead of turning every label into an orphan):

=============== ==================================================================
``requestId``   the id the application knows for the call: the ``X-Request-Id`` it
                sent (the router forwards it to every version, shadow included)
``entity``      instead of ``requestId``: the value of the model's entity input
``servedAt``    with ``entity``: when the prediction was served (epoch seconds or
                RFC 3339); joined within the model's ``servedAtToleranceSeconds``
``row``         which prediction of a multi-row call (default 0; with ``requestId``)
``label``       the outcome: 0 or 1 (``true``/``false`` accepted)
``observedAt``  when the outcome was observed (epoch seconds or RFC 3339); default
                the event's ``time``, else the time the monitor received it
=============== ==================================================================
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

#: Epoch seconds or an RFC 3339 string.
Timestamp = StrictFloat | StrictInt | StrictStr


def epoch_seconds(value: float | int | str) -> float:
    """A timestamp as epoch seconds; naive RFC 3339 times are UTC. ValueError otherwise."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("must be epoch seconds or an RFC 3339 time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds = parsed.timestamp()
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("must be a finite, positive time")
    return seconds


class FeedbackData(BaseModel):
    """One label; either ``requestId`` or ``entity`` + ``servedAt`` says what it labels."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        allow_inf_nan=False,
        frozen=True,
    )

    request_id: StrictStr | None = Field(default=None, min_length=1, max_length=256)
    entity: StrictStr | StrictInt | None = None
    served_at: Timestamp | None = None
    row: StrictInt = Field(default=0, ge=0, le=100_000)
    label: StrictBool | StrictInt | StrictFloat
    observed_at: Timestamp | None = None

    @field_validator("label")
    @classmethod
    def _binary(cls, value: bool | int | float) -> int:
        # Quality figures (AUC, log loss, Brier, ECE) are those of a binary outcome.
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be 0 or 1, not NaN/infinity")
        if value not in (0, 1):
            raise ValueError("must be 0 or 1")
        return int(value)

    @field_validator("served_at", "observed_at")
    @classmethod
    def _time(cls, value: float | int | str | None) -> float | None:
        return None if value is None else epoch_seconds(value)

    @field_validator("entity")
    @classmethod
    def _entity(cls, value: str | int | None) -> str | None:
        if value is None:
            return None
        text = str(value)
        if not text or len(text) > 256:
            raise ValueError("must be 1 to 256 characters")
        return text

    @model_validator(mode="after")
    def _says_what_it_labels(self) -> FeedbackData:
        if self.request_id is None and self.entity is None:
            raise ValueError("requestId (or entity with servedAt) is required")
        if self.request_id is not None and self.entity is not None:
            raise ValueError("give requestId or entity, not both")
        if self.entity is not None and self.served_at is None:
            raise ValueError("servedAt is required with entity")
        return self
