"""Feedback CloudEvents → labels (pure): binary, structured and batch mode.

One event type, :data:`contracts.cloudevents.TYPE_FEEDBACK`; its data is
:class:`contracts.feedback.FeedbackData`. Everything a client can get wrong becomes a
:class:`FeedbackError` with the HTTP status to answer, a counter reason and the field it
names (``data.label``, ``id``, ``type`` …); only a fully valid event becomes a
:class:`~services.monitor.outcomes.join.Label`, so nothing malformed reaches a window.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from contracts import cloudevents as ce
from contracts.feedback import FeedbackData, epoch_seconds
from services.monitor.outcomes.join import Label

try:  # orjson is several times faster on these small bodies; json is the fallback
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - orjson is in the lock
    _loads = json.loads

#: Events per batch; more is refused whole with 413 (the body limit applies too).
MAX_BATCH_EVENTS = 5000
_MAX_ID = 256
REASON_PREFIX = "feedback_"


class FeedbackError(Exception):
    """One refused event (or body): ``status`` to answer, ``reason`` to count."""

    def __init__(self, status: int, reason: str, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = REASON_PREFIX + reason
        self.field = field
        self.message = message

    def body(self, **extra: Any) -> dict[str, Any]:
        return {"error": self.reason, "field": self.field, "message": self.message, **extra}


@dataclass(frozen=True, slots=True)
class Parsed:
    """Per event of the body, in order: a label or the reason it was refused."""

    items: list[Label | FeedbackError]


def parse_feedback(
    headers: Mapping[str, str], content_type: str, body: bytes, now: float
) -> Parsed:
    """A feedback POST's body → labels; raises FeedbackError when the body as a whole is
    unusable (not JSON, too many events). ``headers`` answers ``get`` for lowercase names."""
    if content_type in (ce.STRUCTURED_CONTENT_TYPE, ce.BATCH_CONTENT_TYPE):
        parsed = _json(body, "body")
        events = parsed if isinstance(parsed, list) else [parsed]
        if len(events) > MAX_BATCH_EVENTS:
            message = f"{len(events)} events in one batch; at most {MAX_BATCH_EVENTS}"
            raise FeedbackError(413, "too_many_events", "body", message)
        if not events:
            raise FeedbackError(400, "empty", "body", "the batch holds no events")
        items: list[Label | FeedbackError] = []
        for event in events:
            try:
                items.append(_structured(event, now))
            except FeedbackError as error:
                items.append(error)
        return Parsed(items)
    try:
        return Parsed([_binary(headers, body, now)])
    except FeedbackError as error:
        return Parsed([error])


def _binary(headers: Mapping[str, str], body: bytes, now: float) -> Label:
    def attr(name: str) -> str | None:
        return headers.get(ce.BINARY_PREFIX + name)

    _check_type(attr(ce.ATTR_TYPE), ce.TYPE_HEADER)
    event_id = _event_id(attr(ce.ATTR_ID), ce.ID_HEADER)
    data = _json(body, "data")
    return _label(event_id, data, attr(ce.ATTR_TIME), now, ce.TIME_HEADER)


def _structured(event: Any, now: float) -> Label:
    if not isinstance(event, dict):
        raise FeedbackError(400, "not_cloudevent", "event", "an event must be a JSON object")
    _check_type(_str_attr(event, ce.ATTR_TYPE), ce.ATTR_TYPE)
    event_id = _event_id(_str_attr(event, ce.ATTR_ID), ce.ATTR_ID)
    if "data_base64" in event:
        encoded = event["data_base64"]
        if not isinstance(encoded, str):
            raise FeedbackError(400, "wrong_type", "data_base64", "data_base64 must be a string")
        try:
            data = _json(base64.b64decode(encoded, validate=True), "data_base64")
        except (binascii.Error, ValueError):
            raise FeedbackError(400, "invalid_base64", "data_base64", "not base64") from None
    else:
        data = event.get("data")
        if isinstance(data, str):
            data = _json(data.encode(), "data")  # JSON sent as a string
    return _label(event_id, data, _str_attr(event, ce.ATTR_TIME), now, ce.ATTR_TIME)


def _str_attr(event: dict[str, Any], name: str) -> str | None:
    value = event.get(name)
    if value is None or isinstance(value, str):
        return value
    raise FeedbackError(400, "wrong_type", name, f"attribute {name!r} must be a string")


def _check_type(ce_type: str | None, field: str) -> None:
    if ce_type is None:
        raise FeedbackError(400, "not_cloudevent", field, f"missing CloudEvents {field}")
    if ce_type != ce.TYPE_FEEDBACK:
        message = f"{field} {ce_type[:100]!r} is not {ce.TYPE_FEEDBACK!r}"
        raise FeedbackError(400, "unknown_type", field, message)


def _event_id(event_id: str | None, field: str) -> str:
    if not event_id or len(event_id) > _MAX_ID:
        message = f"{field} must be a non-empty id of at most {_MAX_ID} characters"
        raise FeedbackError(400, "missing_id", field, message)
    return event_id


def _json(raw: bytes, field: str) -> Any:
    try:
        return _loads(raw)
    except ValueError:
        pass
    try:  # Python's json reads NaN/Infinity, so those are refused by name, not as syntax
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise FeedbackError(400, "invalid_json", field, f"{field} is not valid JSON") from None


def _label(event_id: str, data: Any, ce_time: str | None, now: float, time_field: str) -> Label:
    if not isinstance(data, dict):
        raise FeedbackError(400, "wrong_type", "data", "data must be a JSON object")
    try:
        parsed = FeedbackData.model_validate(data)
    except ValidationError as error:
        raise _data_error(error) from None
    observed = parsed.observed_at
    if observed is None and ce_time is not None:
        try:
            observed = epoch_seconds(ce_time)
        except ValueError as exc:
            raise FeedbackError(400, "invalid_value", time_field, f"{time_field} {exc}") from None
    return Label(
        event_id=event_id,
        request_id=parsed.request_id,
        entity=parsed.entity,  # type: ignore[arg-type]  # the validator made it a str
        served_at=parsed.served_at,  # type: ignore[arg-type]  # epoch seconds by now
        row=parsed.row,
        label=int(parsed.label),
        observed_at=observed if observed is not None else now,  # type: ignore[arg-type]
        received_at=now,
    )


#: pydantic error types → counter reasons.
_REASONS = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "finite_number": "nan",
    "value_error": "invalid_value",
}


def _data_error(error: ValidationError) -> FeedbackError:
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"]]
    # Union members add the tried type to the location (label.int): the field is loc[0].
    field = "data." + loc[0] if loc else "data"
    reason = _REASONS.get(first["type"], "wrong_type")
    if any(e["type"] == "finite_number" for e in error.errors()):
        reason = "nan"
    message = f"{field}: {first['msg']}"
    if not loc:  # a rule on the whole object: the message names the member
        message = f"data: {first['msg'].removeprefix('Value error, ')}"
        reason = "missing_field"
    return FeedbackError(400, reason, field, message)
