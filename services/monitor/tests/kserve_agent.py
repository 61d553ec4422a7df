"""A test double of KServe's agent logger: the CloudEvents it would send for one call.

Follows kserve/kserve as read for contracts/cloudevents.py: ``pkg/logger/handler.go``
(id from ``Ce-Id`` else a fresh UUID; metadata = request headers whose Go-canonical name is
listed in ``metadataHeaders``, exact match; response logged only for status 200),
``pkg/logger/worker.go`` (binary mode; extensions inferenceservicename, namespace, component,
endpoint; ``metadata`` always as JSON, ``annotations`` only when non-empty) and
``pkg/webhook/admission/pod/agent_injector.go`` (``metadataAnnotations`` are keys looked up in
the pod's annotations, which KServe copies from the InferenceService; absent keys skipped).
Nothing kubeloop-specific is added: no ``ce-kubeloop*`` extension.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from contracts.cloudevents import (
    LOGGER_MODE_ALL,
    LOGGER_MODE_REQUEST,
    LOGGER_MODE_RESPONSE,
    TYPE_REQUEST,
    TYPE_RESPONSE,
)
from contracts.headers import canonical


def _go_json(value: Any) -> str:
    # Go's json.Marshal of a map: compact, keys sorted.
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def agent_events(
    isvc: dict[str, Any],
    request_headers: dict[str, str],
    status: int,
    *,
    pod: str = "pod-0",
    request_body: bytes = b'{"instances": [[1.0, 2.0]]}',
    response_body: bytes = b'{"predictions": [0.5]}',
) -> list[dict[str, str]]:
    """The binary-mode headers of each event the agent sends for one call (bodies elided)."""
    logger = isvc["spec"]["predictor"].get("logger")
    if logger is None:
        return []
    # Go's net/http hands the handler canonical header keys.
    incoming = {canonical(name.lower()): value for name, value in request_headers.items()}
    listed = logger.get("metadataHeaders") or []
    metadata = {name: [value] for name, value in incoming.items() if name in listed}
    pod_annotations = isvc["metadata"].get("annotations") or {}
    annotations = {
        key: pod_annotations[key]
        for key in logger.get("metadataAnnotations") or []
        if key in pod_annotations
    }
    event_id = incoming.get("Ce-Id") or str(uuid.uuid4())
    common = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": pod,
        "ce-time": "2026-01-01T00:00:00Z",
        "ce-inferenceservicename": isvc["metadata"]["name"],
        "ce-namespace": isvc["metadata"]["namespace"],
        "ce-component": "predictor",
        "ce-endpoint": "",
        "ce-metadata": _go_json(metadata),
        "content-type": incoming.get("Content-Type", "application/json"),
    }
    if annotations:
        common["ce-annotations"] = _go_json(annotations)
    mode = logger.get("mode") or LOGGER_MODE_ALL
    events = []
    if mode in (LOGGER_MODE_ALL, LOGGER_MODE_REQUEST):
        events.append({**common, "ce-type": TYPE_REQUEST})
    if status == 200 and mode in (LOGGER_MODE_ALL, LOGGER_MODE_RESPONSE):
        events.append({**common, "ce-type": TYPE_RESPONSE})
    del request_body, response_body  # the payload is the body; the envelope does not need it
    return events
