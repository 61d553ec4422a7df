"""Whatever an application sends as feedback, parsing answers a label or a 4xx naming a
field (never an unexpected exception), and only finite, 0/1 labels reach a window."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import cloudevents as ce
from contracts.monitor_config import ModelConfig
from services.monitor.core import ServedPrediction
from services.monitor.outcomes.feedback import FeedbackError, parse_feedback
from services.monitor.outcomes.join import Label, LabelJoin

MEMBERS = ["requestId", "entity", "servedAt", "row", "label", "observedAt"]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["r0", "", "2024-05-01T10:00:00Z", "1", "NaN", "x" * 300])
)
values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
    max_leaves=8,
)  # fmt: skip
data = st.dictionaries(st.sampled_from(MEMBERS) | st.text(max_size=4), values, max_size=6)
attributes = st.dictionaries(
    st.sampled_from([ce.ATTR_ID, ce.ATTR_TYPE, ce.ATTR_TIME, "data", "data_base64"]),
    scalars | st.just(ce.TYPE_FEEDBACK),
    max_size=5,
)


def check(items: list[Label | FeedbackError]) -> list[Label]:
    labels = []
    for item in items:
        if isinstance(item, FeedbackError):
            assert 400 <= item.status < 500 and item.field and item.message
            continue
        assert item.label in (0, 1)
        assert math.isfinite(item.observed_at) and item.observed_at > 0
        assert item.served_at is None or math.isfinite(item.served_at)
        assert item.request_id is not None or (item.entity and item.served_at is not None)
        labels.append(item)
    return labels


def join_all(labels: list[Label]) -> None:
    join, config = LabelJoin(), ModelConfig()
    prediction = ServedPrediction(
        "ns", "m", "1", "stable", "e", "r0", 1.7e9, 200, 1.0, None, None, (),
        np.array([0.4]), None,
    )  # fmt: skip
    join.on_prediction(prediction, config)
    for label in labels:
        join.on_label(("ns", "m"), config, label)
    rows = join.rows(("ns", "m"), "1", 1.7e9 + 10)
    if rows is not None:
        assert set(rows.labels.tolist()) <= {0, 1} and np.isfinite(rows.delays).all()


@settings(max_examples=200, deadline=None)
@given(payload=data, event_id=st.sampled_from(["e1", "", "x" * 300]))
def test_binary_feedback_never_breaks(payload: dict[str, Any], event_id: str) -> None:
    headers = {"ce-type": ce.TYPE_FEEDBACK, "ce-id": event_id}
    body = json.dumps(payload, allow_nan=True).encode()
    join_all(check(parse_feedback(headers, "application/json", body, 1.7e9).items))


@settings(max_examples=200, deadline=None)
@given(events=st.lists(attributes | data | values, max_size=4))
def test_batches_never_break(events: list[Any]) -> None:
    body = json.dumps(events, allow_nan=True).encode()
    try:
        parsed = parse_feedback({}, ce.BATCH_CONTENT_TYPE, body, 1.7e9)
    except FeedbackError as error:  # the body as a whole (an empty batch)
        assert 400 <= error.status < 500
        return
    join_all(check(parsed.items))


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=64))
def test_any_bytes_are_a_4xx_or_a_label(raw: bytes) -> None:
    headers = {"ce-type": ce.TYPE_FEEDBACK, "ce-id": "e"}
    check(parse_feedback(headers, "application/json", raw, 1.7e9).items)
    try:
        check(parse_feedback({}, ce.STRUCTURED_CONTENT_TYPE, raw, 1.7e9).items)
    except FeedbackError as error:
        assert 400 <= error.status < 500
