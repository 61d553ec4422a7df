"""Whatever a logger sends, ingestion answers 200/4xx (never 422 = an unexpected exception)
and the windows only ever hold finite numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.monitor import MonitorService, MonitorSettings
from services.monitor.ingest import handle_ingest
from services.monitor.tests.events import binary_headers, structured_event
from services.monitor.tests.http_api import TEST_AUTH

KEYS = ["instances", "inputs", "predictions", "outputs", "name", "shape", "datatype", "data"]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=4)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=20,
)
header_values = st.sampled_from(["", "1", "200", "503", "abc", "-1", "1e309", "shadow", "{}"])


def service(tmp: Path) -> MonitorService:
    # Not started: handle_ingest only needs the core and the (in-memory) journal.
    return MonitorService(MonitorSettings(auth=TEST_AUTH, port=0, data_dir=tmp))


def assert_windows_finite(monitor: MonitorService) -> None:
    for state in monitor.core.models.values():
        for window in state.versions.values():
            assert np.isfinite(window.scores.ordered()["score"]).all()
            if window.features is not None:
                assert np.isfinite(window.features.ordered()["x"]).all()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["request", "response"]),
    body=json_values,
    status=header_values,
    latency=header_values,
    role=header_values,
)
def test_binary_events_never_break_ingestion(
    tmp_path_factory: Any, kind: str, body: Any, status: str, latency: str, role: str
) -> None:
    monitor = service(tmp_path_factory.mktemp("fuzz"))
    headers = binary_headers(kind, "id-1", "1")
    headers.update({"ce-kubeloopstatus": status, "ce-kubelooplatencyms": latency})
    headers["ce-kubelooprole"] = role
    raw = json.dumps(body).encode()
    for _ in range(2):  # the second time exercises pairing and duplicates
        code, reply = handle_ingest(monitor, headers, "application/json", raw)
        assert code in (200, 400), reply
        other = "response" if kind == "request" else "request"
        code, _ = handle_ingest(monitor, {**headers, "ce-type": binary_headers(other, "x", "1")["ce-type"]}, "application/json", raw)  # fmt: skip
        assert code in (200, 400)
    assert_windows_finite(monitor)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(json_values | st.just("event"), max_size=4), raw=st.binary(max_size=64))
def test_structured_and_garbage_bodies_never_break_ingestion(
    tmp_path_factory: Any, events: list[Any], raw: bytes
) -> None:
    monitor = service(tmp_path_factory.mktemp("fuzz"))
    batch = [
        structured_event(binary_headers("request", f"i{i}", "1"), {"instances": [[1.0]]})
        if event == "event"
        else event
        for i, event in enumerate(events)
    ]
    for content_type, body in [
        ("application/cloudevents-batch+json", json.dumps(batch).encode()),
        ("application/cloudevents+json", raw),
        ("application/json", raw),
    ]:
        code, reply = handle_ingest(monitor, {}, content_type, body)
        assert code in (200, 400), reply
    assert_windows_finite(monitor)
