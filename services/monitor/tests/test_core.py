"""The monitor core: pairing, bounded windows and figures against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from services.monitor.config import Limits, ModelConfig
from services.monitor.core import MonitorCore
from services.monitor.tests.events import binary_headers, envelope, request, response

KEY = ("team-a", "churn")
T0 = 1_000_000.0


def call(
    core: MonitorCore,
    rid: str,
    version: str,
    x: list[float],
    score: float | None,
    now: float,
    status: int = 200,
    latency: float = 10.0,
    role: str | None = None,
) -> None:
    core.ingest(request(rid, version, [x], role=role), now)
    core.ingest(
        response(
            rid,
            version,
            [score] if score is not None else None,
            status=status,
            latency_ms=latency,
            role=role,
        ),
        now + 0.001,
    )


def test_request_and_response_pair_by_id_in_either_order() -> None:
    core = MonitorCore()
    core.ingest(response("b", "1", [0.9], latency_ms=5.0), T0)  # response logged first
    core.ingest(request("a", "1", [[1.0, 2.0]]), T0)
    assert len(core.pending) == 2
    core.ingest(request("b", "1", [[3.0, 4.0]]), T0 + 1)
    core.ingest(response("a", "1", [0.1], latency_ms=7.0), T0 + 1)
    assert len(core.pending) == 0
    window = core.models[KEY].versions["1"]
    assert window.requests.size == 2
    assert window.features is not None
    np.testing.assert_array_equal(window.features.ordered()["x"], [[3.0, 4.0], [1.0, 2.0]])
    np.testing.assert_allclose(window.scores.ordered()["score"], [0.9, 0.1])


def test_figures_match_hand_computed_values() -> None:
    core = MonitorCore()
    # version 1: latencies 10..100 ms, one 503, one 400 (a client error, never held against it)
    for i in range(10):
        call(core, f"s{i}", "1", [float(i)], 0.5, T0 + i, latency=10.0 * (i + 1))
    call(core, "s-err", "1", [1.0], None, T0 + 20, status=503, latency=1.0)
    call(core, "s-bad", "1", [1.0], None, T0 + 21, status=400, latency=1000.0)
    figures = core.figures(KEY, None, None, now=T0 + 30)["versions"]["1"]
    assert figures["requests"] == 12
    assert (figures["successes"], figures["serverErrors"], figures["clientErrors"]) == (10, 1, 1)
    assert figures["errorRate"] == pytest.approx(1 / 11)
    # judged latencies: 10,20,...,100 and the 503's 1 ms (the 400's 1000 ms is excluded)
    judged = np.array([1.0, *[10.0 * (i + 1) for i in range(10)]])
    assert figures["latencyMs"]["p50"] == pytest.approx(np.percentile(judged, 50))
    assert figures["latencyMs"]["p99"] == pytest.approx(np.percentile(judged, 99))
    assert figures["latencyMs"]["max"] == 100.0


def test_since_selects_the_analysis_interval() -> None:
    core = MonitorCore()
    for i in range(10):
        call(core, f"r{i}", "1", [1.0], 0.5, T0 + i, status=500 if i >= 7 else 200)
    last = core.figures(KEY, since=T0 + 5, until=None, now=T0 + 60)["versions"]["1"]
    assert (last["requests"], last["serverErrors"]) == (5, 3)
    assert last["errorRate"] == pytest.approx(3 / 5)
    assert last["truncated"] is False
    bounded = core.figures(KEY, since=T0 + 5, until=T0 + 7, now=T0 + 60)["versions"]["1"]
    assert bounded["requests"] == 2  # calls completed at T0+5.001 and T0+6.001


def test_windows_are_bounded_by_size_and_age() -> None:
    core = MonitorCore()
    core.set_config(KEY, ModelConfig(window_size=50, max_age_seconds=100))
    for i in range(500):
        call(core, f"r{i}", "1", [float(i), 1.0], i / 500, T0 + i)
    window = core.models[KEY].versions["1"]
    nbytes = window.nbytes
    assert window.requests.size == 50
    assert window.features is not None and window.features.size == 50
    np.testing.assert_array_equal(window.features.ordered()["x"][:, 0], np.arange(450, 500))
    figures = core.figures(KEY, since=0, until=None, now=T0 + 500)["versions"]["1"]
    # max age 100 s: only the calls of the last 100 s count, and the ring did wrap
    assert figures["requests"] == 50 and figures["truncated"] is True
    later = core.figures(KEY, since=None, until=None, now=T0 + 560)["versions"]["1"]
    assert later["requests"] == 40  # completed at T0+460.001 .. T0+499.001
    for i in range(500, 1000):
        call(core, f"r{i}", "1", [float(i), 1.0], 0.5, T0 + i)
    assert window.nbytes == nbytes  # memory does not grow with traffic


def test_resizing_keeps_the_newest_rows() -> None:
    core = MonitorCore()
    for i in range(30):
        call(core, f"r{i}", "1", [float(i)], 0.5, T0 + i)
    core.set_config(KEY, ModelConfig(window_size=10))
    window = core.models[KEY].versions["1"]
    assert window.features is not None
    np.testing.assert_array_equal(window.features.ordered()["x"][:, 0], np.arange(20, 30))


def test_shadow_pairs_and_disagreement() -> None:
    core = MonitorCore()
    core.set_config(KEY, ModelConfig(score_tolerance=0.2, shadow_version="2", stable_version="1"))
    stable_scores = [0.10, 0.40, 0.60, 0.90, 0.55]
    shadow_scores = [0.15, 0.55, 0.65, 0.60, 0.30]
    # flips at 0.5: #2 (0.40→0.55), #5 (0.55→0.30); gap > 0.2: #4 (0.30), #5 (0.25)
    for i, (a, b) in enumerate(zip(stable_scores, shadow_scores, strict=True)):
        core.ingest(response(f"m{i}", "1", [a], role="stable"), T0 + i)
        core.ingest(response(f"m{i}", "2", [b], role="shadow"), T0 + i + 0.01)
    core.ingest(response("lonely", "1", [0.5], role="stable"), T0 + 9)
    figures = core.figures(KEY, None, None, now=T0 + 10)["versions"]
    shadow = figures["2"]
    assert shadow["role"] == "shadow" and shadow["pairedWith"] == "1"
    assert (shadow["pairedRequests"], shadow["pairedPredictions"]) == (5, 5)
    assert shadow["disagreements"] == 3
    assert shadow["disagreementRate"] == pytest.approx(3 / 5)
    assert shadow["meanAbsScoreDiff"] == pytest.approx(
        np.mean(np.abs(np.subtract(stable_scores, shadow_scores)))
    )
    assert figures["1"]["pairedRequests"] == 0
    assert len(core.shadow_pending) == 1  # the stable response whose mirror never came
    core.expire(T0 + 100)
    assert len(core.shadow_pending) == 0


def test_class_predictions_disagree_on_label() -> None:
    core = MonitorCore()
    # No shadow configured or seen yet: a stable response first is not held for pairing...
    core.ingest(response("m0", "1", [[0.1, 0.7, 0.2]], role="stable"), T0)
    core.ingest(response("m0", "2", [[0.1, 0.7, 0.2]], role="shadow"), T0)
    assert core.figures(KEY, None, None, T0 + 1)["versions"]["2"]["pairedRequests"] == 0
    # ...but once a shadow answered recently, stable responses wait for their mirror.
    core.ingest(response("m", "1", [[0.1, 0.7, 0.2]], role="stable"), T0)
    core.ingest(response("m", "2", [[0.1, 0.2, 0.7]], role="shadow"), T0)
    assert core.figures(KEY, None, None, T0 + 1)["versions"]["2"]["disagreements"] == 1


def test_unanswered_requests_expire_without_counting_as_server_errors() -> None:
    core = MonitorCore()
    core.ingest(request("r1", "1", [[1.0]]), T0)
    core.expire(T0 + 10)
    assert len(core.pending) == 1
    core.expire(T0 + 31)  # default pairing timeout 30 s
    figures = core.figures(KEY, None, None, T0 + 40)["versions"]["1"]
    assert (figures["requests"], figures["unanswered"], figures["serverErrors"]) == (1, 1, 0)
    assert figures["errorRate"] is None  # nothing judged yet: inconclusive, not 0


def test_bad_payloads_are_counted_and_never_enter_the_window() -> None:
    core = MonitorCore()
    call(core, "ok", "1", [1.0, 2.0], 0.5, T0)
    core.ingest(envelope(binary_headers("request", "nan", "1"), b'{"instances": [[NaN, 1]]}'), T0)
    core.ingest(response("nan", "1", [0.5]), T0)
    core.ingest(request("str", "1", [["a", "b"]]), T0)
    core.ingest(response("str", "1", [0.5]), T0)
    core.ingest(request("wide", "1", [[1.0, 2.0, 3.0]]), T0)  # different feature count
    core.ingest(response("wide", "1", [0.5]), T0)
    core.ingest(request("nanout", "1", [[1.0, 2.0]]), T0)
    core.ingest(envelope(binary_headers("response", "nanout", "1"), b'{"predictions": [NaN]}'), T0)
    window = core.models[KEY].versions["1"]
    assert window.features is not None
    assert window.features.size == 2  # "ok" and "nanout"'s request rows only
    assert np.isfinite(window.features.ordered()["x"]).all()
    assert np.isfinite(window.scores.ordered()["score"]).all()
    reasons = {entry["reason"]: entry["count"] for entry in core.bad_input_report()}
    assert reasons == {"nan": 2, "wrong_type": 1, "feature_count_mismatch": 1}
    # the traffic still counts: five calls, all answered 200
    assert core.figures(KEY, None, None, T0 + 1)["versions"]["1"]["requests"] == 5


def test_duplicates_and_pending_overflow_are_counted() -> None:
    core = MonitorCore(Limits(max_pending=3))
    core.ingest(request("dup", "1", [[1.0]]), T0)
    core.ingest(request("dup", "1", [[1.0]]), T0)
    for i in range(4):
        core.ingest(request(f"p{i}", "1", [[1.0]]), T0)
    assert len(core.pending) == 3
    reasons = {entry["reason"]: entry["count"] for entry in core.bad_input_report()}
    assert reasons == {"duplicate_event": 1, "pending_overflow": 2}


def test_version_windows_per_model_are_capped() -> None:
    core = MonitorCore(Limits(max_versions_per_model=3))
    for version in ["1", "2", "3", "4"]:
        call(core, f"r{version}", version, [1.0], 0.5, T0)
    assert list(core.models[KEY].versions) == ["2", "3", "4"]


def test_roles_come_from_config_when_events_carry_none() -> None:
    core = MonitorCore()
    core.set_config(KEY, ModelConfig(stable_version="1", candidate_version="2"))
    call(core, "a", "1", [1.0], 0.5, T0)
    call(core, "b", "2", [1.0], 0.5, T0)
    versions = core.figures(KEY, None, None, T0 + 1)["versions"]
    assert (versions["1"]["role"], versions["2"]["role"]) == ("stable", "candidate")


def test_snapshot_for_drift_holds_only_live_finite_rows() -> None:
    core = MonitorCore()
    core.set_config(KEY, ModelConfig(window_size=100, max_age_seconds=50))
    for i in range(80):
        call(core, f"r{i}", "1", [float(i), 2.0], 0.5, T0 + i)
    snapshot = core.snapshot(KEY, "1", now=T0 + 80)
    assert snapshot is not None
    assert snapshot.features.shape == (50, 2)
    assert snapshot.features[0, 0] == 30.0
    assert snapshot.scores.shape == (50,)
    assert core.snapshot(KEY, "9", now=T0) is None


def test_ring_extend_wraps_and_keeps_the_newest_rows() -> None:
    from services.monitor.windows import Ring

    ring = Ring(5, {"v": (np.float64, ())})
    ring.extend(3, ts=1.0, v=np.array([1.0, 2.0, 3.0]))
    ring.extend(4, ts=2.0, v=np.array([4.0, 5.0, 6.0, 7.0]))  # crosses the end of the ring
    assert ring.ordered()["v"].tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]
    ring.extend(7, ts=3.0, v=np.arange(10.0, 17.0))  # more rows than the ring holds
    assert ring.ordered()["v"].tolist() == [12.0, 13.0, 14.0, 15.0, 16.0]
    assert ring.oldest_ts() == 3.0
    assert ring.resized(3).ordered()["v"].tolist() == [14.0, 15.0, 16.0]


def kserve_headers(
    kind: str, ce_id: str, isvc: str, version: str, x_request_id: str
) -> dict[str, str]:
    """Exactly what KServe's Go logger sends: no kubeloop extensions, annotations instead."""
    headers = binary_headers(kind, ce_id, version)
    for name in [n for n in headers if n.startswith("ce-kubeloop")]:
        del headers[name]
    headers["ce-inferenceservicename"] = isvc
    headers["ce-annotations"] = json.dumps({"kubeloop.io/model-version": version})
    headers["ce-metadata"] = json.dumps({"X-Request-Id": [x_request_id]})
    return headers


def test_plain_kserve_logger_events_are_understood() -> None:
    core = MonitorCore()
    core.set_config(KEY, ModelConfig(stable_version="1", shadow_version="2"))
    body = {"instances": [[1.0, 2.0]]}
    # KServe made up different ce-ids on each InferenceService; Istio kept x-request-id.
    core.ingest(envelope(kserve_headers("request", "uuid-a", "churn-v1", "1", "abc"), body), T0)
    core.ingest(
        envelope(
            kserve_headers("response", "uuid-a", "churn-v1", "1", "abc"), {"predictions": [0.2]}
        ),
        T0 + 0.05,
    )
    core.ingest(
        envelope(
            kserve_headers("response", "uuid-b", "churn-v2", "2", "abc"), {"predictions": [0.7]}
        ),
        T0 + 0.06,
    )
    versions = core.figures(KEY, None, None, T0 + 1)["versions"]
    stable = versions["1"]
    assert (stable["role"], stable["requests"], stable["successes"]) == ("stable", 1, 1)
    assert stable["latencyMs"]["p50"] == pytest.approx(50.0)  # from the event gap
    assert versions["2"]["role"] == "shadow"
    assert (versions["2"]["pairedRequests"], versions["2"]["disagreements"]) == (1, 1)


def test_every_recorded_call_reaches_the_prediction_sinks_with_what_was_served() -> None:
    core = MonitorCore()
    seen: list = []
    core.prediction_sinks.append(seen.append)
    call(core, "a", "1", [1.0, 2.0], 0.8, T0, latency=12.0)
    call(core, "b", "1", [3.0, 4.0], None, T0 + 1, status=503)
    core.ingest(request("c", "2", [[5.0, 6.0]]), T0 + 2)  # never answered
    core.expire(T0 + 1000)
    assert [(p.event_id, p.version, p.status) for p in seen] == [
        ("a", "1", 200),
        ("b", "1", 503),
        ("c", "2", 0),  # STATUS_UNANSWERED
    ]
    first = seen[0]
    assert first.request_id == "a" and first.served_at == T0 and first.latency_ms == 12.0
    np.testing.assert_array_equal(first.features, [[1.0, 2.0]])
    np.testing.assert_allclose(first.scores, [0.8])
    assert seen[1].scores is None and seen[2].scores is None
