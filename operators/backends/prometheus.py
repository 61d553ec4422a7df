"""A version's request and error counts from the mesh's request metric (contracts/mesh_metrics.py).

KServe logs only 200 responses, so on a cluster the error gate's figures come from Prometheus:
``istio_requests_total`` of the version's predictor workloads, by response code, over the
analysis interval (a Flagger-style query, see :mod:`contracts.mesh_metrics`). The embedded
default has no Prometheus: the local router exports the same counter and
:func:`counts_from_exposition` reads it (cumulative; the caller differences two scrapes).

Pure builders and parsers first; :class:`PrometheusCounts` is the small I/O shell.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from contracts import mesh_metrics as m


class PrometheusError(Exception):
    """Prometheus answered something other than a successful instant vector."""


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """Requests that reached a version's workloads, and how many failed (4xx / 5xx)."""

    total: float
    client_errors: float
    server_errors: float

    def __sub__(self, earlier: RequestCounts) -> RequestCounts:
        # Counters reset when a router/sidecar restarts: a negative delta means "restarted",
        # and the later reading is then the whole delta (as Prometheus' increase() treats it).
        if self.total < earlier.total:
            return self
        return RequestCounts(
            self.total - earlier.total,
            max(0.0, self.client_errors - earlier.client_errors),
            max(0.0, self.server_errors - earlier.server_errors),
        )


def counts_query(namespace: str, inference_service: str, window_s: int) -> str:
    """PromQL: requests of one InferenceService's predictor over ``window_s``, by code."""
    if window_s < 1:
        raise ValueError(f"window_s must be ≥ 1, got {window_s}")
    selector = ",".join(
        [
            f'{m.LABEL_REPORTER}="{m.REPORTER_DESTINATION}"',
            f'{m.LABEL_WORKLOAD_NAMESPACE}="{namespace}"',
            f'{m.LABEL_WORKLOAD}=~"{m.workload_regex(inference_service)}"',
        ]
    )
    return (
        f"sum by ({m.LABEL_RESPONSE_CODE}) "
        f"(increase({m.REQUESTS_TOTAL}{{{selector}}}[{window_s}s]))"
    )


def counts_from_codes(by_code: dict[str, float]) -> RequestCounts:
    total = client = server = 0.0
    for code, value in by_code.items():
        if not math.isfinite(value) or value < 0:
            continue
        total += value
        if code.startswith("4"):
            client += value
        elif code.startswith("5"):
            server += value
    return RequestCounts(total, client, server)


def parse_query_response(body: Any) -> dict[str, float]:
    """``/api/v1/query`` JSON (an instant vector summed by response code) → ``{code: value}``."""
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        raise PrometheusError(f"query failed: {error or body!r:.200}")
    data = body.get("data") or {}
    if data.get("resultType") != "vector":
        raise PrometheusError(f"expected a vector, got {data.get('resultType')!r}")
    out: dict[str, float] = {}
    for sample in data.get("result") or []:
        code = str((sample.get("metric") or {}).get(m.LABEL_RESPONSE_CODE, ""))
        try:
            value = float(sample["value"][1])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise PrometheusError(f"malformed sample {sample!r:.200}") from exc
        out[code] = out.get(code, 0.0) + value
    return out


def counts_from_exposition(text: str, namespace: str, inference_service: str) -> RequestCounts:
    """The local router's text exposition → cumulative counts of one InferenceService."""
    workload = re.compile(re.escape(inference_service) + r"-predictor(-.*)?")
    by_code: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != m.REQUESTS_TOTAL:
                continue
            labels = sample.labels
            if (
                labels.get(m.LABEL_REPORTER) == m.REPORTER_DESTINATION
                and labels.get(m.LABEL_WORKLOAD_NAMESPACE) == namespace
                and workload.fullmatch(labels.get(m.LABEL_WORKLOAD, ""))
            ):
                code = labels.get(m.LABEL_RESPONSE_CODE, "")
                by_code[code] = by_code.get(code, 0.0) + sample.value
    return counts_from_codes(by_code)


class RequestCountSource(Protocol):
    """Requests and errors of one InferenceService over the last ``window_s`` seconds."""

    def counts(self, namespace: str, inference_service: str, window_s: int) -> RequestCounts: ...


class PrometheusCounts:
    """Reads counts from a Prometheus server (``prometheusUrl`` in the operator config)."""

    def __init__(self, url: str, client: httpx.Client | None = None, timeout_s: float = 5.0):
        self.url = url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout_s)

    def counts(self, namespace: str, inference_service: str, window_s: int) -> RequestCounts:
        query = counts_query(namespace, inference_service, window_s)
        try:
            response = self._client.get(f"{self.url}/api/v1/query", params={"query": query})
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise PrometheusError(f"Prometheus at {self.url} unreachable: {exc}") from exc
        return counts_from_codes(parse_query_response(body))
