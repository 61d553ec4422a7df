"""The monitor reads what KServe's agent really sends for the InferenceServices kubeloop writes.

Issue #13 item 5: with a logger spec of only ``{mode, url}`` the agent sends no version (every
event rejected as ``missing_version``) and a per-pod UUID as ``ce-id`` (stable and shadow
never pair). The agent double (``kserve_agent.py``) follows KServe's code, cited there.
"""

from __future__ import annotations

import pytest

from contracts.headers import canonical
from operators.api.mlmodel import Serving
from operators.backends.serving import Owner, inference_service
from services.monitor.tests.events import envelope
from services.monitor.tests.kserve_agent import agent_events

OWNER = Owner(namespace="team-a", name="churn", uid="u-1")


def isvc(version: str) -> dict:
    return inference_service(OWNER, version, "s3://b/m", Serving(), "http://monitor:8081/")


def test_logger_spec_names_headers_canonically_and_annotations_the_isvc_carries() -> None:
    body = isvc("3")
    logger = body["spec"]["predictor"]["logger"]
    # The agent compares names exactly against Go's canonical keys.
    assert all(name == canonical(name.lower()) for name in logger["metadataHeaders"])
    for key in logger["metadataAnnotations"]:
        assert key in body["metadata"]["annotations"]


def test_agent_events_carry_version_model_role_and_the_shared_request_id() -> None:
    # Istio's mirror keeps x-request-id but not the route destination's header rules
    # (istio/istio#50811), so the shadow's copy carries no role header.
    stable = agent_events(
        isvc("1"), {"x-request-id": "r-1", "x-kubeloop-role": "stable"}, 200, pod="churn-v1-a"
    )
    shadow = agent_events(isvc("2"), {"x-request-id": "r-1"}, 200, pod="churn-v2-a")
    assert [len(stable), len(shadow)] == [2, 2]
    assert not any(name.startswith("ce-kubeloop") for name in stable[0])
    got = [envelope(h, {"predictions": [0.5]}) for h in stable + shadow]
    assert [(e.model, e.version, e.role, e.kind) for e in got] == [
        ("churn", "1", "stable", "request"),
        ("churn", "1", "stable", "response"),
        # No role in the event: the monitor takes it from its config (shadowVersion).
        ("churn", "2", None, "request"),
        ("churn", "2", None, "response"),
    ]
    # ce-id is a fresh UUID per agent; the pairing key is the forwarded X-Request-Id.
    assert got[1].event_id != got[3].event_id
    assert {e.correlation_id for e in got} == {"r-1"}
    # The agent carries neither status nor latency: a logged response is a 200.
    assert (got[1].status, got[1].latency_ms) == (200, None)


@pytest.mark.parametrize("status", [400, 500, 503])
def test_agent_logs_no_failed_response(status: int) -> None:
    events = agent_events(isvc("1"), {"x-request-id": "r-2"}, status)
    assert [e["ce-type"].rsplit(".", 1)[1] for e in events] == ["request"]
    assert envelope(events[0], {"instances": [[1.0]]}).version == "1"
