"""Builders for the CloudEvents a KServe logger / kubeloop predictor sends (test helpers)."""

from __future__ import annotations

import json
from typing import Any

from services.monitor import cloudevents_spec as ce
from services.monitor.parsing import Envelope, envelope_from_binary


def binary_headers(
    kind: str,
    request_id: str,
    version: str,
    *,
    model: str = "churn",
    namespace: str = "team-a",
    role: str | None = None,
    status: int | None = None,
    latency_ms: float | None = None,
) -> dict[str, str]:
    headers = {
        "ce-specversion": "1.0",
        "ce-type": ce.CE_TYPE_REQUEST if kind == "request" else ce.CE_TYPE_RESPONSE,
        "ce-id": request_id,
        "ce-source": f"http://{model}-{version}.{namespace}/",
        "ce-inferenceservicename": f"{model}-{version}",
        "ce-namespace": namespace,
        "ce-component": "predictor",
        "ce-endpoint": "default",
        "ce-metadata": "{}",
        "ce-kubeloopversion": version,
        "content-type": "application/json",
    }
    if role is not None:
        headers["ce-kubelooprole"] = role
    if status is not None:
        headers["ce-kubeloopstatus"] = str(status)
    if latency_ms is not None:
        headers["ce-kubelooplatencyms"] = str(latency_ms)
    return headers


def structured_event(headers: dict[str, str], data: Any) -> dict[str, Any]:
    """The structured-mode twin of a binary event: attributes as members, payload in data."""
    event = {
        name.removeprefix("ce-"): value for name, value in headers.items() if name.startswith("ce-")
    }
    event["datacontenttype"] = "application/json"
    event["data"] = data
    return event


class CaseInsensitive(dict[str, str]):
    """Enough of a case-insensitive header mapping for the pure parser."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


def envelope(headers: dict[str, str], body: Any) -> Envelope:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return envelope_from_binary(CaseInsensitive({k.lower(): v for k, v in headers.items()}), raw)


def request(request_id: str, version: str, instances: Any, **kw: Any) -> Envelope:
    return envelope(binary_headers("request", request_id, version, **kw), {"instances": instances})


def response(
    request_id: str, version: str, predictions: Any, status: int = 200, **kw: Any
) -> Envelope:
    headers = binary_headers("response", request_id, version, status=status, **kw)
    body = {"predictions": predictions} if predictions is not None else {"error": "boom"}
    return envelope(headers, body)
