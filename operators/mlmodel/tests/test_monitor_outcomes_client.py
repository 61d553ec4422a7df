"""The operator's monitor client for outcomes (quality, compare) on a mocked transport: what
it asks, what each answer becomes; a silent or wrong monitor never becomes a verdict."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from operators.backends.monitor import CompareRequest, HttpMonitor, MonitorUnavailable

SINCE = datetime(2026, 6, 1, tzinfo=UTC)
REQUEST = CompareRequest(candidate="2", stable="1", metric="logLoss", design="paired", since=SINCE)


def client(answer: Callable[[httpx.Request], httpx.Response]) -> tuple[HttpMonitor, list[Any]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    monitor = HttpMonitor("http://monitor.test")
    monitor.http = httpx.Client(base_url=monitor.base_url, transport=httpx.MockTransport(handler))
    return monitor, seen


def test_quality_report_is_parsed() -> None:
    body = {
        "namespace": "team", "model": "churn", "now": 1.0, "orphans": 2, "pendingLabels": 1,
        "versions": [{"version": "1", "role": "stable", "labeled": 10, "positives": 4,
                      "auc": {"value": 0.8, "low": 0.7, "high": 0.9}, "logLoss": {"value": 0.4}}],
    }  # fmt: skip
    monitor, seen = client(lambda r: httpx.Response(200, json=body))
    report = monitor.quality("team", "churn")
    assert seen[0].url.path == "/v1/models/team/churn/quality"
    assert report is not None and report.orphans == 2
    one = report.versions[0]
    assert one.auc.high == 0.9 and one.log_loss.value == 0.4 and one.accuracy.value is None


def test_quality_of_an_unknown_model_is_none() -> None:
    monitor, _ = client(lambda r: httpx.Response(404, json={"error": "unknown model"}))
    assert monitor.quality("team", "churn") is None


@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx.Response(500, text="boom"),
        lambda r: httpx.Response(200, text="not json"),
        lambda r: httpx.Response(200, json={"namespace": "team"}),  # missing fields
    ],
)
def test_a_bad_quality_answer_is_unavailable(answer: Any) -> None:
    monitor, _ = client(answer)
    with pytest.raises(MonitorUnavailable):
        monitor.quality("team", "churn")


def test_compare_sends_the_request_and_parses_the_comparison() -> None:
    body = {
        "metric": "logLoss", "candidate": "2", "stable": "1", "design": "paired", "n": 300,
        "nStable": 300, "estimate": -0.01, "variance": 0.0001, "method": "paired-mean",
        "since": SINCE.timestamp(),
    }  # fmt: skip
    monitor, seen = client(lambda r: httpx.Response(200, json=body))
    found = monitor.compare("team", "churn", REQUEST)
    assert seen[0].url.path == "/v1/models/team/churn/compare"
    assert dict(seen[0].url.params) == {
        "candidate": "2",
        "stable": "1",
        "metric": "logLoss",
        "design": "paired",
        "since": f"{SINCE.timestamp():.3f}",
    }
    assert found.n == 300 and found.estimate == -0.01 and found.method == "paired-mean"


def test_compare_on_an_unknown_model_is_an_empty_comparison() -> None:
    monitor, _ = client(lambda r: httpx.Response(404, json={"error": "unknown model"}))
    found = monitor.compare("team", "churn", REQUEST)
    assert (found.n, found.estimate, found.variance) == (0, None, None)
    assert found.since == SINCE.timestamp() and found.design == "paired"


@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx.Response(400, json={"error": "metric: unknown"}),
        lambda r: httpx.Response(200, json={"metric": "auc"}),
    ],
)
def test_a_bad_compare_answer_is_unavailable(answer: Any) -> None:
    monitor, _ = client(answer)
    with pytest.raises(MonitorUnavailable):
        monitor.compare("team", "churn", REQUEST)


def test_an_unreachable_monitor_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    monitor, _ = client(refuse)
    with pytest.raises(MonitorUnavailable):
        monitor.compare("team", "churn", REQUEST)
    with pytest.raises(MonitorUnavailable):
        monitor.quality("team", "churn")
