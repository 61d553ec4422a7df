"""Error figures from the mesh (istio_requests_total via Prometheus), not from KServe's logs,
which hold only 200 responses (issue #13 item 5)."""

from __future__ import annotations

from datetime import timedelta

from operators.api.mlmodel import MLMODEL
from operators.backends.monitor import ModelFigures
from operators.backends.prometheus import PrometheusError, RequestCounts
from operators.mlmodel.analysis import VersionFigures
from operators.mlmodel.rollout import RolloutState
from operators.mlmodel.service import with_mesh_counts
from operators.mlmodel.tests.test_service import T0, backends, mlmodel, tick
from tests.support.fakes import FakeObject, FakeRegistry


class FakeCounts:
    def __init__(self, by_isvc: dict[str, RequestCounts]) -> None:
        self.by_isvc = by_isvc
        self.asked: list[tuple[str, str, int]] = []
        self.down = False

    def counts(self, namespace: str, inference_service: str, window_s: int) -> RequestCounts:
        self.asked.append((namespace, inference_service, window_s))
        if self.down:
            raise PrometheusError("Prometheus at http://prom unreachable: refused")
        return self.by_isvc.get(inference_service, RequestCounts(0, 0, 0))


def test_mesh_counts_replace_the_logged_ones_and_keep_the_monitors_latency() -> None:
    # What the monitor saw from KServe's agent: 200s only, so no errors at all.
    logged = ModelFigures(
        versions={"1": VersionFigures(requests=880, latency_p99_ms=42.0)}, paired={"2": 700}
    )
    source = FakeCounts(
        {
            "churn-v1": RequestCounts(900.0, 0.0, 1.0),
            "churn-v2": RequestCounts(1000.4, 10.0, 50.0),
        }
    )
    state = RolloutState(stable_version="1", candidate_version="2")
    got = with_mesh_counts(
        logged, source, "team-a", "churn", state, T0, T0 + timedelta(minutes=5, seconds=0.5)
    )
    assert got.versions["1"] == VersionFigures(
        requests=900, server_errors=1, client_errors=0, latency_p99_ms=42.0
    )
    assert got.versions["2"] == VersionFigures(requests=1000, server_errors=50, client_errors=10)
    assert got.paired == {"2": 700}
    assert sorted(source.asked) == [("team-a", "churn-v1", 301), ("team-a", "churn-v2", 301)]


def test_prometheus_down_gives_no_verdict() -> None:
    registry = FakeRegistry("churn", ["1"])
    serving, _ = backends(registry)
    source = FakeCounts({})
    serving.request_counts = source
    obj = FakeObject(MLMODEL, mlmodel())
    tick(obj, serving)
    tick(obj, serving)
    registry.versions.append("2")
    tick(obj, serving, T0 + timedelta(minutes=1))
    assert obj.status.phase == "Shadow"
    before = obj.status
    source.down = True
    for minutes in (5, 10, 30):
        tick(obj, serving, T0 + timedelta(minutes=minutes))
    assert obj.status.phase == "Shadow"
    assert obj.status.analysis == before.analysis
    assert source.asked, "the mesh was asked for the versions' counts"
