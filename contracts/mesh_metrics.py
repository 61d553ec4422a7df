"""The mesh's request metric, from which a version's error counts come.

KServe's agent logs only responses with status 200 (``pkg/logger/handler.go`` in
kserve/kserve: the response event is queued only when ``statusCode == http.StatusOK``), so the
monitor's events cannot show a version's errors on a cluster. Istio's sidecars count every
request in ``istio_requests_total`` (labels ``reporter``, ``destination_workload``,
``destination_workload_namespace``, ``destination_service_name``, ``response_code``); Flagger
gates canaries on the same counter (fluxcd/flagger ``README.md``, "HTTP success rate query":
``sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace=~ns,
destination_workload=~workload, response_code!~"5.*"}[interval])) / sum(rate(...))``).

Written by Istio's sidecars on a cluster and by the local router stand-in
(``localcluster/serving/router.py``, at :data:`ROUTER_METRICS_PATH`); read by the operator
through Prometheus (``operators/backends/prometheus.py``, ``prometheusUrl`` in its config) or,
in the embedded default, from the router's exposition directly.
"""

from __future__ import annotations

from typing import Final

REQUESTS_TOTAL: Final = "istio_requests_total"

LABEL_REPORTER: Final = "reporter"
LABEL_WORKLOAD: Final = "destination_workload"
LABEL_WORKLOAD_NAMESPACE: Final = "destination_workload_namespace"
LABEL_SERVICE_NAME: Final = "destination_service_name"
LABEL_RESPONSE_CODE: Final = "response_code"
LABELS: Final = (
    LABEL_REPORTER,
    LABEL_WORKLOAD,
    LABEL_WORKLOAD_NAMESPACE,
    LABEL_SERVICE_NAME,
    LABEL_RESPONSE_CODE,
)

#: The server-side sidecar's report (one per request that reached the workload, mirrors too).
REPORTER_DESTINATION: Final = "destination"

#: Where the local router serves its Prometheus text exposition (outside any model path).
ROUTER_METRICS_PATH: Final = "/_kubeloop/router/metrics"


def predictor_workload(host: str) -> tuple[str, str]:
    """``(workload, namespace)`` of a predictor Service host
    ``<isvc>-predictor.<ns>.svc.cluster.local``: KServe's raw Deployment is named as its
    Service (``<isvc>-predictor``); a Knative revision's adds a suffix, which
    :func:`workload_regex` allows. A host with no namespace part gives namespace ``""``."""
    name, _, rest = host.partition(".")
    return name, rest.partition(".")[0]


def workload_regex(inference_service: str) -> str:
    """The PromQL regex (anchored by Prometheus) of an InferenceService's predictor workloads:
    ``<isvc>-predictor`` (raw) and ``<isvc>-predictor-00001-deployment`` (Knative)."""
    return f"{_escape(inference_service)}-predictor(-.*)?"


def _escape(text: str) -> str:
    # Kubernetes names hold only [a-z0-9.-]; '.' is the one regex metacharacter among them.
    return text.replace(".", "\\\\.")
