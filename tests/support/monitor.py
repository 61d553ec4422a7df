"""The predictors' part, played by a test: the inference-log CloudEvents a predictor's logger
sends for one call, posted to the monitor."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx


def exchange_events(
    namespace: str,
    model: str,
    version: str,
    role: str,
    request_id: str,
    status: int = 200,
    latency_ms: float = 10.0,
    score: float = 0.7,
) -> list[dict[str, Any]]:
    """The request and response CloudEvents a predictor's logger sends for one call
    (structured mode, the attributes of `services/monitor/cloudevents_spec.py`)."""
    common = {
        "specversion": "1.0",
        "id": request_id,
        "source": f"http://{model}-v{version}-predictor.{namespace}/",
        "inferenceservicename": f"{model}-v{version}",
        "namespace": namespace,
        "kubeloopversion": version,
        "kubelooprole": role,
        "datacontenttype": "application/json",
    }
    request = {
        **common,
        "type": "org.kubeflow.serving.inference.request",
        "data": {"instances": [{"x1": 1.0, "x2": 0.25}]},
    }
    answer: dict[str, Any] = {"predictions": [score]} if status < 400 else {"error": "failed"}
    response = {
        **common,
        "type": "org.kubeflow.serving.inference.response",
        "kubeloopstatus": str(status),
        "kubelooplatencyms": str(latency_ms),
        "data": answer,
    }
    return [request, response]


def post_events(
    monitor_url: str, events: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> None:
    """``headers``: the monitor's token (``Stack.monitor_headers``); it refuses events without."""
    answer = httpx.post(
        monitor_url.rstrip("/") + "/",
        content=json.dumps(events),
        headers={"content-type": "application/cloudevents-batch+json", **(headers or {})},
        timeout=10,
    )
    if answer.status_code != 200:
        raise AssertionError(f"monitor refused events: {answer.status_code} {answer.text}")


class PredictorLogs:
    """Plays the predictors' loggers: posts their request/response CloudEvents to the monitor."""

    def __init__(
        self, monitor_url: str, namespace: str = "default", headers: dict[str, str] | None = None
    ) -> None:
        self.monitor_url = monitor_url
        self.namespace = namespace
        self.headers = headers  # the monitor's token
        self._ids = itertools.count()

    def send(self, model: str, version: str, role: str, count: int, **kw: Any) -> None:
        """`count` calls to one version in one role (`status`, `latency_ms`, `score`)."""
        events = []
        for _ in range(count):
            request_id = f"r{next(self._ids)}"
            events += exchange_events(self.namespace, model, version, role, request_id, **kw)
        post_events(self.monitor_url, events, self.headers)

    def send_paired(
        self, model: str, stable: str, shadow: str, count: int, flip: bool = False
    ) -> None:
        """`count` mirrored calls: the same request id to stable and shadow (`flip`: the
        shadow disagrees)."""
        events = []
        for _ in range(count):
            request_id = f"p{next(self._ids)}"
            events += exchange_events(
                self.namespace, model, stable, "stable", request_id, score=0.8
            )
            events += exchange_events(
                self.namespace, model, shadow, "shadow", request_id, score=0.2 if flip else 0.8
            )
        post_events(self.monitor_url, events, self.headers)
