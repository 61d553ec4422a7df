"""A version's request and error counts from the mesh's request metric (contracts/mesh_metrics.py).

KServe logs only 200 responses, so on a cluster the error gate's figures come from Prometheus:
``istio_requests_total`` of the version's predictor workloads, by response code, over the
analysis interval (a Flagger-style query, see :mod:`contracts.mesh_metrics`). The embedded
default has no Prometheus: the local router exports the same counter and
:class:`RouterCounts` reads it (:func:`counts_from_exposition`, cumulative, differenced
between readings by :func:`window_counts`).

Pure builders and parsers first; :class:`PrometheusCounts` is the small I/O shell.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
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
    """Requests and errors of one InferenceService over the last ``window_s`` seconds; None
    where this source has no mesh metric for it (the monitor's figures then stand)."""

    def counts(
        self, namespace: str, inference_service: str, window_s: int
    ) -> RequestCounts | None: ...


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


# --- the embedded default: the local router's own exposition ------------------------------

Reading = tuple[float, RequestCounts]  # (wall-clock seconds, cumulative counts)
_KEEP_READINGS = 512


def mlmodel_of(inference_service: str) -> str:
    """The MLModel behind ``<mlmodel>-v<version>`` (``operators.backends.serving.isvc_name``)."""
    match = re.fullmatch(r"(.+)-v[^-]+", inference_service)
    return match.group(1) if match else inference_service


def window_counts(
    history: list[Reading], now: float, current: RequestCounts, window_s: int
) -> RequestCounts:
    """Counts over the last ``window_s`` from cumulative readings: ``current`` less the latest
    earlier reading taken at or before the window's start. Without one (the operator has not
    read this counter that long) the whole cumulative count: the router's counters start with
    the router, so this over-counts at most what came before the window."""
    start = now - window_s
    baseline = None
    for taken, counts in history:
        if taken <= start:
            baseline = counts
    return current if baseline is None else current - baseline


class RouterCounts:
    """The mesh metric in the embedded default: ``istio_requests_total`` as the local router
    exports it (``localcluster/serving/router.py``) at its URL, which the serving controller
    writes to the VirtualService's ``status.url``. ``router_url(namespace, mlmodel)`` reads
    it; a VirtualService without one (Istio writes none) gives None: no mesh counts here, the
    monitor's figures stand. Readings are kept to difference the cumulative counter."""

    def __init__(
        self,
        router_url: Callable[[str, str], str | None],
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 5.0,
    ) -> None:
        self._router_url = router_url
        self._client = client or httpx.Client(timeout=timeout_s)
        self._clock = clock
        self._history: dict[tuple[str, str], list[Reading]] = {}

    def counts(self, namespace: str, inference_service: str, window_s: int) -> RequestCounts | None:
        url = self._router_url(namespace, mlmodel_of(inference_service))
        if not url:
            return None
        target = str(url).rstrip("/") + m.ROUTER_METRICS_PATH
        try:
            response = self._client.get(target)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise PrometheusError(f"router metrics at {target} unreachable: {exc}") from exc
        now = float(self._clock())
        current = counts_from_exposition(response.text, namespace, inference_service)
        history = self._history.setdefault((namespace, inference_service), [])
        found = window_counts(history, now, current, window_s)
        history.append((now, current))
        del history[:-_KEEP_READINGS]
        return found
