"""The embedded default's error figures: the local router's istio_requests_total, read by
the operator as a cluster's reads Prometheus (issue #13 item 5), since the local predictors
log only 200 responses, as KServe's agent does."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter

from contracts import mesh_metrics as mesh
from operators.backends.prometheus import (
    PrometheusError,
    RequestCounts,
    RouterCounts,
    mlmodel_of,
    window_counts,
)

ROUTER = "http://127.0.0.1:18080"


class Router:
    """The router's counter (same names and labels as localcluster/serving/router.py)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.total = PromCounter(
            mesh.REQUESTS_TOTAL.removesuffix("_total"), "requests", mesh.LABELS,
            registry=self.registry,
        )  # fmt: skip
        self.up = True

    def serve(self, workload: str, code: int, n: int = 1) -> None:
        labels = (mesh.REPORTER_DESTINATION, workload, "team", workload, str(code))
        self.total.labels(*labels).inc(n)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("refused", request=request)
        assert request.url.path == mesh.ROUTER_METRICS_PATH
        return httpx.Response(200, content=generate_latest(self.registry))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def source(router: Router, clock: Clock, url: str | None = ROUTER) -> RouterCounts:
    urls = {("team", "churn"): url}
    client = httpx.Client(transport=httpx.MockTransport(router.handler))
    return RouterCounts(lambda ns, name: urls.get((ns, name)), client=client, clock=clock)


def test_counts_are_differenced_over_the_window() -> None:
    router, clock = Router(), Clock()
    counts = source(router, clock)
    router.serve("churn-v2-predictor", 200, 8)
    router.serve("churn-v2-predictor", 500, 2)
    # First reading: nothing earlier to subtract, the whole counter.
    assert counts.counts("team", "churn-v2", 30) == RequestCounts(10, 0, 2)
    clock.now += 30
    router.serve("churn-v2-predictor", 200, 5)
    router.serve("churn-v2-predictor", 503, 5)
    router.serve("churn-v2-predictor", 404, 1)
    assert counts.counts("team", "churn-v2", 30) == RequestCounts(11, 1, 5)
    # A wider window than the readings go back: everything since the first.
    assert counts.counts("team", "churn-v2", 3600) == RequestCounts(21, 1, 7)
    # Another version behind the same router is counted apart.
    router.serve("churn-v1-predictor", 200, 4)
    assert counts.counts("team", "churn-v1", 30) == RequestCounts(4, 0, 0)


def test_no_router_url_means_no_mesh_counts() -> None:
    """A VirtualService without status.url (a cluster: Istio writes none): None, so the
    monitor's figures stand."""
    assert source(Router(), Clock(), url=None).counts("team", "churn-v1", 30) is None


def test_an_unreachable_router_gives_no_verdict() -> None:
    router = Router()
    router.up = False
    with pytest.raises(PrometheusError, match="router metrics"):
        source(router, Clock()).counts("team", "churn-v1", 30)


def test_window_counts_and_names() -> None:
    a, b = RequestCounts(10, 1, 1), RequestCounts(30, 2, 5)
    history = [(100.0, a)]
    assert window_counts(history, 130.0, b, 30) == RequestCounts(20, 1, 4)
    assert window_counts(history, 129.0, b, 30) == b  # no reading before the window
    assert window_counts(history, 130.0, RequestCounts(3, 0, 1), 30) == RequestCounts(3, 0, 1)
    assert mlmodel_of("churn-v12") == "churn"
    assert mlmodel_of("my-model-v3") == "my-model"
