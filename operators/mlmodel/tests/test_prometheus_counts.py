"""Error counts from Istio's request metric through Prometheus (contracts/mesh_metrics.py)."""

from __future__ import annotations

import httpx
import pytest

from operators.backends.prometheus import (
    PrometheusCounts,
    PrometheusError,
    RequestCounts,
    counts_query,
    parse_query_response,
)


def vector(*samples: tuple[str, str]) -> dict:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"response_code": code}, "value": [1700000000.0, value]}
                for code, value in samples
            ],
        },
    }


def test_query_is_flagger_style_by_destination_and_code() -> None:
    query = counts_query("team-a", "churn-v2", 300)
    assert query.startswith("sum by (response_code) (increase(istio_requests_total{")
    assert 'reporter="destination"' in query
    assert 'destination_workload_namespace="team-a"' in query
    assert 'destination_workload=~"churn-v2-predictor(-.*)?"' in query
    assert query.endswith("[300s]))")
    with pytest.raises(ValueError, match="window_s"):
        counts_query("team-a", "churn-v2", 0)


def test_client_queries_prometheus_and_sums_codes() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params["query"])
        assert request.url.path == "/api/v1/query"
        return httpx.Response(200, json=vector(("200", "90"), ("503", "7.5"), ("404", "2.5")))

    client = httpx.Client(transport=httpx.MockTransport(handler))
    counts = PrometheusCounts("http://prom:9090/", client).counts("team-a", "churn-v2", 60)
    assert counts == RequestCounts(100.0, 2.5, 7.5)
    assert seen == [counts_query("team-a", "churn-v2", 60)]


@pytest.mark.parametrize(
    "body",
    [
        {"status": "error", "errorType": "bad_data", "error": "parse error"},
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
        ["not", "an", "object"],
    ],
)
def test_bad_answers_raise_prometheus_error(body: object) -> None:
    with pytest.raises(PrometheusError):
        parse_query_response(body)


def test_unreachable_prometheus_is_a_prometheus_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    with pytest.raises(PrometheusError, match="unreachable"):
        PrometheusCounts("http://prom:9090", client).counts("ns", "m-v1", 60)


def test_differences_of_cumulative_counts_survive_a_counter_reset() -> None:
    assert RequestCounts(10, 2, 3) - RequestCounts(4, 1, 1) == RequestCounts(6, 1, 2)
    assert RequestCounts(3, 0, 1) - RequestCounts(10, 2, 3) == RequestCounts(3, 0, 1)
